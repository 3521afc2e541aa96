"""Matplotlib figures of the core's results: feature-map grids, layer comparisons and
occlusion maps, class evidence (`evidence`) and model comparisons (`comparison`). Depends on
`core`, and on `evidence` for its result type."""

from .comparison import depth_profile_figure
from .evidence import plot_class_evidence
from .figures import feature_grid_figure, layer_comparison_figure, occlusion_figure

__all__ = [
    "depth_profile_figure",
    "feature_grid_figure",
    "layer_comparison_figure",
    "occlusion_figure",
    "plot_class_evidence",
]
