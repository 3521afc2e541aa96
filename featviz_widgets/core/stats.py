"""Statistics and channel rankings of (B, C, H, W) feature maps."""

from __future__ import annotations

import warnings

import torch

from .validate import check_index

__all__ = [
    "SORT_MODES",
    "NonFiniteActivationWarning",
    "channel_scores",
    "feature_statistics",
    "order_by_scores",
    "rank_channels",
]

SORT_MODES = ("activation", "variance", "random")
ACTIVE_THRESHOLD = 0.01


class NonFiniteActivationWarning(RuntimeWarning):
    """A layer produced NaN or infinite activations."""


def _finite_view(features: torch.Tensor, layer_name: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The features as float64, their finite mask, and the count of non-finite values,
    which are reported in a warning."""
    values = features.detach().to(torch.float64)
    finite = torch.isfinite(values)
    bad = int((~finite).sum())
    if bad:
        channels = torch.nonzero((~finite).any(dim=(0, 2, 3))).flatten().tolist()
        shown = ", ".join(map(str, channels[:10])) + (" ..." if len(channels) > 10 else "")
        warnings.warn(
            f"layer {layer_name!r} has {bad} non-finite activation(s) (NaN or inf) in "
            f"channel(s) {shown}; statistics use the finite values only and report the "
            "count under 'non_finite'.",
            NonFiniteActivationWarning,
            stacklevel=3,
        )
    return values, finite, bad


def feature_statistics(features: torch.Tensor, layer_name: str = "") -> dict:
    """Statistics over a whole (B, C, H, W) tensor, the batch included.

    Keys: mean, std (unbiased, over all elements), sparsity (fraction exactly 0), max, min,
    active_channels (channels whose mean over batch and space > 0.01), num_channels,
    spatial_size (H, W), and non_finite (count of NaN/inf values left out of the others).
    """
    values, finite_mask, bad = _finite_view(features, layer_name)
    finite = values[finite_mask]
    if finite.numel() == 0:
        raise ValueError(f"layer {layer_name!r} has no finite activation to describe.")
    per_channel = torch.where(finite_mask, values, 0).sum(dim=(0, 2, 3)) / finite_mask.sum(
        dim=(0, 2, 3)
    ).clamp(min=1)
    return {
        "mean": finite.mean().item(),
        "std": finite.std().item() if finite.numel() > 1 else 0.0,
        "sparsity": (finite == 0).double().mean().item(),
        "max": finite.max().item(),
        "min": finite.min().item(),
        "active_channels": int((per_channel > ACTIVE_THRESHOLD).sum()),
        "num_channels": int(features.shape[1]),
        "spatial_size": (int(features.shape[2]), int(features.shape[3])),
        "non_finite": bad,
    }


def channel_scores(features: torch.Tensor, sort_by: str) -> torch.Tensor:
    """Per-channel score (C,) averaged over the batch: spatial mean or unbiased spatial variance."""
    values = features.detach().to(torch.float64)
    if sort_by == "activation":
        scores = values.mean(dim=(2, 3))
    elif sort_by == "variance":
        flat = values.flatten(2)
        scores = flat.var(dim=2) if flat.shape[2] > 1 else torch.zeros(flat.shape[:2])
    else:
        raise ValueError(f"`sort_by` must be one of {SORT_MODES}, got {sort_by!r}.")
    # NaN scores sort last, not first.
    return torch.nan_to_num(scores.mean(dim=0), nan=-torch.inf)


def order_by_scores(scores: torch.Tensor) -> list[int]:
    """Channel indices by descending (C,) `scores`; ties keep channel order."""
    return torch.sort(scores.cpu(), descending=True, stable=True).indices.tolist()


def rank_channels(
    features: torch.Tensor, sort_by: str = "activation", seed: int = 0, *, index: int | None = None
) -> list[int]:
    """Every channel index of (B, C, H, W) `features`, best first under `sort_by`, scored over
    the batch or, given `index`, on that image alone.

    "random" is a permutation drawn from a generator seeded with `seed`: reproducible.
    """
    if index is not None:
        features = features[check_index(index, features.shape[0]) : index + 1]
    if sort_by not in SORT_MODES:
        raise ValueError(f"`sort_by` must be one of {SORT_MODES}, got {sort_by!r}.")
    num_channels = features.shape[1]
    if sort_by == "random":
        generator = torch.Generator().manual_seed(int(seed))
        return torch.randperm(num_channels, generator=generator).tolist()
    return order_by_scores(channel_scores(features, sort_by))
