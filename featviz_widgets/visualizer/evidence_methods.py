"""`FeatureVisualizer`'s class-evidence methods (a mixin): the top classes of an image and
the evidence for one class at a layer (`class_evidence`, computed by `evidence`), and its
figure (`plot_class_evidence`, drawn by `plotting.evidence`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from matplotlib.figure import Figure

from ..core.features import FeatureStore
from ..core.inputs import ImageInput, Preprocessor
from ..core.validate import check_index
from ..evidence import ClassEvidence, class_evidence
from ..evidence.gradcam import Target
from ..plotting.evidence import plot_class_evidence
from ..plotting.figures import show_figure

__all__ = ["EvidenceMethods"]


class EvidenceMethods:
    """`FeatureVisualizer`'s class-evidence methods (a mixin; the work is `evidence`'s)."""

    features: FeatureStore
    preprocessor: Preprocessor
    last_figure: Figure | None

    if TYPE_CHECKING:  # FeatureVisualizer's

        def prepare(self, image: ImageInput) -> torch.Tensor: ...

    def class_evidence(
        self,
        image: ImageInput,
        layer_name: str,
        target: Target = None,
        *,
        class_names: Sequence[str] | None = None,
    ) -> ClassEvidence:
        """Which class the model sees in each image, and where and through which channels of
        `layer_name`, from one forward and one backward.

        Returns a `ClassEvidence`: per image the top-5 classes (index, name, probability),
        the `targets` explained (`target`: None for each image's top class, one class index
        for all, or one per image), Grad-CAM (B, H, W) on the layer's grid (as Captum's
        `LayerGradCam` with `relu_attributions=True`) and each channel's contribution (B, C),
        gradient x activation summed over positions. NHWC (Swin) and token (ViT) layers are
        read as (B, C, H, W) maps first, prefix tokens left out. Names: `class_names` (one per
        class), else ImageNet's for 1000 classes, else "class i".

        The model needs its classifier head: `num_classes=0` and `features_only=True` models
        are refused with a ValueError, as is a `target` out of range.
        """
        return class_evidence(
            self.features, self.prepare(image), layer_name, target, class_names=class_names
        )

    def plot_class_evidence(
        self,
        image: ImageInput,
        layer: str,
        target: Target = None,
        save_path: str | os.PathLike | None = None,
        *,
        index: int = 0,
        class_names: Sequence[str] | None = None,
        num_channels: int = 10,
        show: bool | None = None,
    ) -> Figure:
        """The figure of `class_evidence` for image `index`: the image as the model sees it
        with the Grad-CAM over it, the `num_channels` channels contributing most, and the
        top-5 classes. Saved to `save_path`, shown in a notebook (`show=None`: when running
        in one) and kept as `last_figure`."""
        batch = self.prepare(image)
        evidence = class_evidence(self.features, batch, layer, target, class_names=class_names)
        picture = self.preprocessor.to_display(batch, check_index(index, batch.shape[0]))
        self.last_figure = plot_class_evidence(
            evidence, picture, index=index, num_channels=num_channels, save_path=save_path
        )
        show_figure(self.last_figure, show)
        return self.last_figure
