"""`ClassEvidence`: the classes a model predicts for a batch and the evidence for one class
per image at one layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..core.validate import check_index

__all__ = ["ClassEvidence"]


@dataclass(frozen=True)
class ClassEvidence:
    """What a classifier predicts for each image of a batch, and the evidence at one layer.

    Attributes:
        layer: the layer the evidence is read at.
        top_classes: per image, the top 5 (class index, name, probability), from the softmax
            of the logits, most probable first.
        targets: per image, the class explained (default: the top-1 class).
        cam: Grad-CAM at the layer, (B, H, W) on the layer's grid: ReLU of
            sum_c alpha_c * A_c, alpha_c the spatial mean of d logit[target] / d A_c. Equal to
            Captum's `LayerGradCam(model, layer).attribute(x, target, relu_attributions=True)`
            for channels-first layers (Captum's default, `relu_attributions=False`, keeps the
            negative part). NHWC and token layers are read as (B, C, H, W) first (prefix tokens
            left out), which Captum does not do.
        contributions: (B, C) per channel, gradient x activation summed over positions: the
            first-order share of each channel in the target's logit.
        target_names: per image, the name of the class in `targets`.
        layout: the layer's source layout ("NCHW", "NHWC", "tokens", "pooled" or "unknown").

    Example:
        >>> evidence = viz.class_evidence(image, "layer4")
        >>> evidence.top_classes[0][0]
        (207, 'golden retriever', 0.41)
        >>> evidence.ranked_channels()[:3]
        [301, 12, 77]
    """

    layer: str
    top_classes: list[list[tuple[int, str, float]]]
    targets: list[int]
    cam: torch.Tensor
    contributions: torch.Tensor
    target_names: list[str] = field(default_factory=list)
    layout: str = "NCHW"

    def ranked_channels(self, index: int = 0) -> list[int]:
        """Every channel of the layer for image `index`, by descending contribution (ties
        keep channel order)."""
        row = self.contributions[check_index(index, self.contributions.shape[0])]
        order = torch.sort(row.double(), descending=True, stable=True).indices
        return order.tolist()

    def upsampled_cam(self, size: int | tuple[int, int]) -> torch.Tensor:
        """`cam` resized to `size` ((H, W), or one int for a square) bilinearly, as Captum's
        `LayerAttribution.interpolate(..., interpolate_mode="bilinear")`: (B, H, W)."""
        if isinstance(size, int):
            size = (size, size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"`size` must be (H, W) of two positive integers, got {size!r}.")
        resized = F.interpolate(self.cam[:, None], size=tuple(size), mode="bilinear")
        return resized[:, 0]

    def to_dict(self) -> dict:
        """Plain Python values (lists, floats, strings), ready for JSON."""
        return {
            "layer": self.layer,
            "layout": self.layout,
            "targets": list(self.targets),
            "target_names": list(self.target_names),
            "top_classes": [[list(entry) for entry in image] for image in self.top_classes],
            "cam": self.cam.tolist(),
            "contributions": self.contributions.tolist(),
        }
