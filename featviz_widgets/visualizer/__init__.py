"""`FeatureVisualizer`, the facade with the seed's API: it owns the model, its device and
preprocessing, and composes the analyses (`occlusion`, `optimize`, `dataset`) and the figures
(`plotting`), handing each what it needs."""

from ..core.layers import LayerInfo
from .facade import FeatureVisualizer

__all__ = ["FeatureVisualizer", "LayerInfo"]
