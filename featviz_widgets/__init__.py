"""featviz_widgets: see what a vision network computes, in a notebook."""

from .core.cancel import Cancelled, OptimizationCancelled
from .core.capture import LayerNotFoundError
from .core.layout import LayoutError, LayoutWarning
from .core.samples import sample_image
from .core.stats import NonFiniteActivationWarning
from .dataset.scan import DatasetExamples, ScanCancelled
from .monitor.monitor import FeatureMonitor
from .occlusion.engine import OcclusionCancelled, OcclusionResult
from .optimize.optimizer import OptimizationResult
from .visualizer.facade import FeatureVisualizer, LayerInfo
from .widget.explorer import FeatureExplorer

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
