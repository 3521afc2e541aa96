"""The figure of a `ClassEvidence`: where the class is seen (Grad-CAM over the image), through
which channels (their contributions) and what else the model sees (its top classes)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from ..core.validate import check_index, check_positive_int
from .figures import _finish

if TYPE_CHECKING:
    from PIL import Image

    from ..evidence.result import ClassEvidence

__all__ = ["plot_class_evidence"]

_LABEL = 28  # characters of a class name shown on an axis


def _short(name: str) -> str:
    return name if len(name) <= _LABEL else name[: _LABEL - 1] + "…"


def plot_class_evidence(
    evidence: ClassEvidence,
    image: np.ndarray | Image.Image,
    *,
    index: int = 0,
    num_channels: int = 10,
    save_path: str | os.PathLike | None = None,
) -> Figure:
    """Three panels for image `index` of `evidence`: `image` (what the model saw, (H, W, 3))
    with the Grad-CAM upsampled over it, the `num_channels` channels with the largest
    contributions to the target's logit (bars, negative ones in blue), and the top classes'
    probabilities, the target's bar marked."""
    index = check_index(index, len(evidence.targets))
    check_positive_int("num_channels", num_channels)
    picture = np.asarray(image)
    height, width = picture.shape[:2]
    cam = evidence.upsampled_cam((height, width))[index].numpy()
    target, name = evidence.targets[index], evidence.target_names[index]

    fig = Figure(figsize=(15, 4.8))
    fig.suptitle(f"{evidence.layer}: evidence for class {target} ({_short(name)})", fontsize=12)
    overlay, channels, classes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.1, 1.1]})
    overlay.imshow(picture)
    top = float(cam.max())
    heat = overlay.imshow(cam, cmap="jet", alpha=0.5, vmin=0.0, vmax=top if top > 0 else 1.0)
    overlay.set_title("Grad-CAM (red = evidence for the class)", fontsize=10)
    overlay.axis("off")
    fig.colorbar(heat, ax=overlay, fraction=0.046, pad=0.04)

    ranked = evidence.ranked_channels(index)[:num_channels]
    values = evidence.contributions[index, ranked].numpy()
    positions = np.arange(len(ranked))
    colours = ["#c44e52" if v >= 0 else "#4c72b0" for v in values]
    channels.barh(positions, values, color=colours)
    channels.set_yticks(positions, [f"ch {c}" for c in ranked], fontsize=8)
    channels.invert_yaxis()
    channels.axvline(0.0, color="black", linewidth=0.8)
    channels.set_xlabel("gradient x activation, summed over positions", fontsize=9)
    channels.set_title(f"Top {len(ranked)} channels by contribution", fontsize=10)

    entries = evidence.top_classes[index]
    probabilities = [p for _, _, p in entries]
    positions = np.arange(len(entries))
    colours = ["#dd8452" if i == target else "#55a868" for i, _, _ in entries]
    bars = classes.barh(positions, probabilities, color=colours)
    classes.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
    classes.set_yticks(positions, [f"{i}: {_short(n)}" for i, n, _ in entries], fontsize=8)
    classes.invert_yaxis()
    classes.set_xlim(0.0, min(1.0, max(probabilities) * 1.3) if probabilities else 1.0)
    classes.set_xlabel("probability (softmax)", fontsize=9)
    classes.set_title(f"Top {len(entries)} classes (target in orange)", fontsize=10)
    fig.tight_layout()
    return _finish(fig, save_path)
