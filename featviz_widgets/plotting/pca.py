"""The picture of a `LayerPCA`: the layer as colour, alone or over the image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch.nn.functional as F

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.image import AxesImage
    from PIL import Image

    from ..core.pca import LayerPCA

__all__ = ["plot_layer_pca", "upsampled_rgb"]

UPSAMPLING = ("nearest", "bilinear")


def upsampled_rgb(pca: LayerPCA, size: tuple[int, int], mode: str = "nearest") -> np.ndarray:
    """`pca.rgb` resized to `size` (H, W) by `mode` ("nearest" or "bilinear"): float32
    (H, W, 3) in [0, 1]."""
    if mode not in UPSAMPLING:
        raise ValueError(f"`upsample` must be one of {UPSAMPLING}, got {mode!r}.")
    planes = pca.rgb.permute(2, 0, 1)[None]  # (1, 3, h, w)
    resized = F.interpolate(planes, size=tuple(int(s) for s in size), mode=mode)
    return resized[0].permute(1, 2, 0).clamp(0.0, 1.0).numpy()


def plot_layer_pca(
    pca: LayerPCA,
    ax: Axes,
    image: np.ndarray | Image.Image | None = None,
    *,
    alpha: float = 0.6,
    upsample: str = "nearest",
) -> AxesImage:
    """Draw the layer as colour on `ax`, titled with the layer and the variance shown.

    Args:
        pca: from `FeatureVisualizer.layer_pca`.
        ax: the matplotlib Axes to draw on.
        image: the image the model saw ((H, W, 3), e.g. `FeatureVisualizer.display_image`):
            drawn first, the colours over it at `alpha`, resized to its size by `upsample`.
            None: the colours alone, one pixel per position.
        alpha: the colours' opacity over `image`, in [0, 1].
        upsample: "nearest" (one block per position) or "bilinear".

    Returns:
        The image artist of the colours.

    Example:
        >>> fig = Figure()
        >>> plot_layer_pca(viz.layer_pca(image, "layer3"), fig.subplots(), viz.display_image(image))
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha!r}.")
    if image is None:
        if upsample not in UPSAMPLING:
            raise ValueError(f"`upsample` must be one of {UPSAMPLING}, got {upsample!r}.")
        artist = ax.imshow(pca.rgb.numpy(), interpolation="nearest")
    else:
        picture = np.asarray(image)
        ax.imshow(picture)
        colours = upsampled_rgb(pca, picture.shape[:2], upsample)
        artist = ax.imshow(colours, alpha=alpha, interpolation="nearest")
    shown = float(pca.explained.sum())
    ax.set_title(f"{pca.layer}: PCA 1-3 (explains {shown:.0%} of variance)")
    ax.axis("off")
    return artist
