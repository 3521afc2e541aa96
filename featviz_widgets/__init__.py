"""featviz_widgets: see what a vision network computes, in a notebook."""

from ._cancel import Cancelled, OptimizationCancelled
from ._capture import LayerNotFoundError
from ._dataset_examples import DatasetExamples, ScanCancelled
from ._layout import LayoutError, LayoutWarning
from ._occlusion import OcclusionCancelled, OcclusionResult
from ._optimize import OptimizationResult
from ._samples import sample_image
from ._stats import NonFiniteActivationWarning
from .monitor import FeatureMonitor
from .visualizer import FeatureVisualizer, LayerInfo
from .widget import FeatureExplorer

__all__ = [
    "Cancelled",
    "DatasetExamples",
    "FeatureExplorer",
    "FeatureMonitor",
    "FeatureVisualizer",
    "LayerInfo",
    "LayerNotFoundError",
    "LayoutError",
    "LayoutWarning",
    "NonFiniteActivationWarning",
    "OcclusionCancelled",
    "OcclusionResult",
    "OptimizationCancelled",
    "OptimizationResult",
    "ScanCancelled",
    "sample_image",
]
__version__ = "0.1.0"
