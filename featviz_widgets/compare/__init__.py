"""Model comparison: every model's layers profiled on one image (mean activation and sparsity
against relative depth), layers aligned across models by depth, and the figure. On `core`
and `plotting` only."""

from .profile import LayerProfile, ModelComparison, compare_models, profile_model

__all__ = ["LayerProfile", "ModelComparison", "compare_models", "profile_model"]
