"""What an analysis needs of the model it inspects, as a protocol the facade satisfies."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from .features import FeatureStore
from .inputs import Preprocessor

__all__ = ["ModelContext"]


class ModelContext(Protocol):
    """A model ready to inspect: `FeatureVisualizer` is one. Analyses that scan or re-read
    images (`dataset`) take this instead of the facade, so they never import it."""

    model: nn.Module
    device: torch.device
    dtype: torch.dtype
    preprocessor: Preprocessor
    features: FeatureStore
