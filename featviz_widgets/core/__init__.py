"""The core every analysis stands on: an image in (`inputs`), a forward with hooks that stops
after the last requested layer (`capture`), every layout normalised to (B, C, H, W)
(`layout`, `features`), statistics and channel rankings (`stats`), a layer's first three
principal components as colour (`pca`), which layers to offer (`layers`), and the shared
checks, precision, progress and cancellation helpers.

Imports nothing else of the package.
"""

from .cancel import Cancelled, OptimizationCancelled
from .capture import LayerNotFoundError, capture, preserved_model_state, resolve_layers
from .context import ModelContext
from .features import FeatureMaps, FeatureStore
from .inputs import ImageInput, Preprocessor
from .layers import LayerInfo
from .layout import LayoutError, LayoutWarning
from .pca import LayerPCA, principal_components
from .samples import sample_image
from .stats import NonFiniteActivationWarning

__all__ = [
    "Cancelled",
    "FeatureMaps",
    "FeatureStore",
    "ImageInput",
    "LayerInfo",
    "LayerNotFoundError",
    "LayerPCA",
    "LayoutError",
    "ModelContext",
    "LayoutWarning",
    "NonFiniteActivationWarning",
    "OptimizationCancelled",
    "Preprocessor",
    "capture",
    "preserved_model_state",
    "principal_components",
    "resolve_layers",
    "sample_image",
]
