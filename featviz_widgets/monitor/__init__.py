"""`FeatureMonitor`: layer statistics recorded during training (`monitor`), and their figures
and live view (`plots`). Depends on `core` only."""

from .monitor import STATISTICS, FeatureMonitor

__all__ = ["STATISTICS", "FeatureMonitor"]
