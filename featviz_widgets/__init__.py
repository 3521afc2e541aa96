"""featviz_widgets: see what a vision network computes, in a notebook."""

from .compare.profile import LayerProfile, ModelComparison, compare_models
from .core.cancel import Cancelled, OptimizationCancelled
from .core.capture import LayerNotFoundError
from .core.layout import LayoutError, LayoutWarning
from .core.pca import LayerPCA
from .core.samples import sample_image
from .core.stats import NonFiniteActivationWarning
from .dataset.scan import DatasetExamples, ScanCancelled
from .evidence.result import ClassEvidence
from .microscope import MicroscopeError, build_microscope
from .monitor.monitor import FeatureMonitor
from .occlusion.engine import OcclusionCancelled, OcclusionResult
from .optimize.optimizer import OptimizationResult
from .visualizer.facade import FeatureVisualizer, LayerInfo
from .widget.explorer import FeatureExplorer

__all__ = [
    "Cancelled",
    "ClassEvidence",
    "DatasetExamples",
    "FeatureExplorer",
    "FeatureMonitor",
    "FeatureVisualizer",
    "LayerInfo",
    "LayerPCA",
    "LayerProfile",
    "LayerNotFoundError",
    "LayoutError",
    "LayoutWarning",
    "MicroscopeError",
    "ModelComparison",
    "NonFiniteActivationWarning",
    "OcclusionCancelled",
    "OcclusionResult",
    "OptimizationCancelled",
    "OptimizationResult",
    "ScanCancelled",
    "build_microscope",
    "compare_models",
    "sample_image",
]
__version__ = "0.1.0"
