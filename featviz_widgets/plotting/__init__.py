"""Matplotlib figures of the core's results: feature-map grids, layer comparisons and
occlusion maps. Depends on `core` only."""

from .figures import feature_grid_figure, layer_comparison_figure, occlusion_figure

__all__ = ["feature_grid_figure", "layer_comparison_figure", "occlusion_figure"]
