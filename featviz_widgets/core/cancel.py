"""Exceptions for long calls that a caller's `should_stop()` can cancel."""

from __future__ import annotations

__all__ = ["Cancelled", "OptimizationCancelled"]


class Cancelled(Exception):
    """A long call (occlusion sweep, optimization) stopped because `should_stop()` said so."""


class OptimizationCancelled(Cancelled):
    """`should_stop()` asked a feature-visualization optimization to stop."""
