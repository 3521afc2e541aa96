"""The layer as colour: the first three principal components of one image's layer maps over
its positions, as an RGB image."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .validate import check_index

__all__ = ["LayerPCA", "principal_components"]

COMPONENTS = 3  # one per colour channel


@dataclass(frozen=True)
class LayerPCA:
    """The first three principal components of one image's maps at one layer.

    From `principal_components` (and `FeatureVisualizer.layer_pca`): the rows of the PCA are
    the layer's positions, its columns the channels, each channel centred on its mean over the
    positions. Tensors are on the CPU; `scores`, `loadings` and `explained` in the float64
    they were computed in (float32 from MPS). Signs follow `principal_components`' rule: each
    loading vector's entry of largest absolute value is positive.

    Attributes:
        layer: the layer's name.
        rgb: (H, W, 3) float32 in [0, 1]: component k's scores min-max scaled on their own into
            colour k (a component with no variance: 0.5).
        scores: (3, H, W) the positions' coordinates on each component (U[:, k] * S[k]).
        loadings: (3, C) each component's unit vector over the channels (rows of Vh).
        explained: (3,) the share of the total variance each component explains, descending.
        map_size: (H, W) of the layer's map.
    """

    layer: str
    rgb: torch.Tensor
    scores: torch.Tensor
    loadings: torch.Tensor
    explained: torch.Tensor
    map_size: tuple[int, int]


def principal_components(maps: torch.Tensor, layer: str, *, index: int = 0) -> LayerPCA:
    """The first three principal components of image `index` of `maps` (B, C, H, W), over the
    H x W positions, computed exactly in float64 (float32 on MPS) on the maps' device.

    X is the (H*W, C) matrix of positions x channels, each column centred on its mean over
    the positions; `torch.linalg.svd(X, full_matrices=False)` gives U, S, Vh. Component k has
    loadings Vh[k], scores U[:, k] * S[k] (reshaped to H x W) and explains
    S[k]**2 / sum(S**2) of the variance.

    Sign rule: each component's sign (which SVD leaves arbitrary) is flipped so that the entry
    of largest absolute value of its loading vector is positive (ties: the lowest channel
    index); scores flip with it. The same maps give the same colours on any device and run.

    Args:
        maps: a layer's maps as the core holds them, (B, C, H, W), on any device.
        layer: the layer's name, for the result and the messages.
        index: the image of the batch.

    Returns:
        A `LayerPCA`, its tensors on the CPU.

    Raises:
        ValueError: if `index` is not an image of the batch; if the map has fewer than 3
            positions or the layer fewer than 3 channels; if the image's activations hold
            NaN or inf, or are the same at every position (no variance to show).
    """
    if maps.ndim != 4:
        raise ValueError(f"`maps` must be (B, C, H, W), got shape {tuple(maps.shape)}.")
    index = check_index(index, maps.shape[0])
    channels, height, width = (int(s) for s in maps.shape[1:])
    positions = height * width
    shape = f"{channels} x {height} x {width}, channels x height x width"
    if positions < COMPONENTS:
        raise ValueError(
            f"{layer!r} gives {positions} position{'s' if positions != 1 else ''} per image "
            f"(its maps are {shape}); the layer as colour needs a map of at least "
            f"{COMPONENTS} positions: choose an earlier layer, one whose output is still a map "
            "(a stage or block before the pooling)."
        )
    if channels < COMPONENTS:
        raise ValueError(
            f"{layer!r} has {channels} channel{'s' if channels != 1 else ''} (its maps are "
            f"{shape}); the layer as colour needs at least {COMPONENTS} channels for its "
            f"{COMPONENTS} components: choose a layer with more channels."
        )
    one = maps[index]
    bad = int((~torch.isfinite(one)).sum())
    if bad:
        raise ValueError(
            f"{layer!r} has {bad} non-finite activation{'s' if bad != 1 else ''} (NaN or inf) "
            f"of {one.numel()} for image {index}; the layer as colour needs finite values. "
            "Check the input and the model's weights, or choose an earlier layer."
        )
    dtype = torch.float32 if one.device.type == "mps" else torch.float64
    x = one.detach().to(dtype).reshape(channels, positions).T  # (positions, channels)
    x = x - x.mean(dim=0, keepdim=True)
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    total = (s * s).sum()
    if not total > 0:
        raise ValueError(
            f"{layer!r} gives image {index} the same activations at every position (its maps "
            f"are {shape}): there is no variance for the layer as colour to show."
        )
    loadings = vh[:COMPONENTS]
    largest = loadings.abs().argmax(dim=1, keepdim=True)  # the first of equal maxima
    signs = 1.0 - 2.0 * (loadings.gather(1, largest) < 0).to(dtype)  # (3, 1) of +-1
    loadings = loadings * signs
    scores = (u[:, :COMPONENTS] * (s[:COMPONENTS] * signs[:, 0])).T  # (3, positions)
    explained = s[:COMPONENTS] ** 2 / total

    # Colours: each component min-max scaled; one below the rank tolerance has no variance.
    tolerance = s[0] * max(positions, channels) * torch.finfo(dtype).eps
    low = scores.min(dim=1, keepdim=True).values
    spread = scores.max(dim=1, keepdim=True).values - low
    flat = (spread[:, 0] == 0) | (s[:COMPONENTS] <= tolerance)
    scaled = (scores - low) / torch.where(flat[:, None], 1.0, spread).to(dtype)
    scaled = torch.where(flat[:, None], 0.5, scaled).clamp(0.0, 1.0)
    rgb = scaled.T.reshape(height, width, COMPONENTS)
    return LayerPCA(
        layer=layer,
        rgb=rgb.to(device="cpu", dtype=torch.float32).contiguous(),
        scores=scores.reshape(COMPONENTS, height, width).cpu(),
        loadings=loadings.cpu(),
        explained=explained.cpu(),
        map_size=(height, width),
    )
