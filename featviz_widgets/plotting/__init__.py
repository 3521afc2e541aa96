"""Matplotlib figures of the core's results: feature-map grids, layer comparisons and
occlusion maps, class evidence (`evidence`), model comparisons (`comparison`) and the layer as
colour (`pca`). Depends on `core`, and on `evidence` for its result type."""

from .comparison import depth_profile_figure
from .evidence import plot_class_evidence
from .figures import feature_grid_figure, layer_comparison_figure, occlusion_figure
from .pca import plot_layer_pca

__all__ = [
    "depth_profile_figure",
    "feature_grid_figure",
    "layer_comparison_figure",
    "occlusion_figure",
    "plot_class_evidence",
    "plot_layer_pca",
]
