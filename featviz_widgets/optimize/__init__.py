"""Feature visualization by optimization: images that excite a channel most (`optimizer`),
with their parameterisation and random transforms (`imageparam`) and the redirected ReLU
(`redirect_relu`). Depends on `core` only."""

from .optimizer import OptimizationResult, optimize_channels

__all__ = ["OptimizationResult", "optimize_channels"]
