"""Class evidence: which class the model sees in an image, where (Grad-CAM at a layer) and
through which channels (gradient x activation), from one forward and one backward. Pure
computation on `core` only; the figure is `plotting.evidence`'s."""

from .gradcam import class_evidence
from .names import class_name_list
from .result import ClassEvidence

__all__ = ["ClassEvidence", "class_evidence", "class_name_list"]
