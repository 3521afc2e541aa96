"""The microscope: a static site of every unit of a model's layers over the user's images
(`build_microscope`), from one dataset scan, with crops, statistics, class contributions and
optimised pictures. Depends on `visualizer` (the facade) and the analyses under it."""

from .build import build_microscope, default_layers
from .output import MicroscopeError

__all__ = ["MicroscopeError", "build_microscope", "default_layers"]
