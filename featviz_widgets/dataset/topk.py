"""Running per-channel top-k over a stream of batches, kept on the model's device.

For each channel of a layer the state holds the k images whose maximum over positions is the
highest (score, image index, flat position of that maximum) and the running sum of the channel
over images and positions. A batch is folded in by concatenating the state with the batch's
candidates and selecting again, so memory is O(channels x k) whatever the number of images, and
nothing is read back to the host per batch.

Order is deterministic: best score first, ties to the lowest image index (`torch.topk` is not
stable, so selection is two stable sorts: by index, then by score). Merging two states is the
same selection over their union, hence associative and commutative: states of disjoint shards
(ranks, resumed runs) merge to the state of one pass over everything.

Beside the top-k, each channel counts its values that are exactly 0 (its sparsity) and
histograms its per-image maxima on fixed bins (`HISTOGRAM_EDGES`), which are sums too, so they
resume and merge the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["EMPTY", "HISTOGRAM_EDGES", "ChannelTopK", "select"]

# The index of an empty slot (fewer than k images so far): it loses every tie.
EMPTY = torch.iinfo(torch.int64).max

# Bin edges of the per-image maxima: 0, then 4 bins a decade from 0.01 to 1000 on each side.
# Fixed (not fitted to the data) so that shards and resumed runs add up bin by bin. Bin i holds
# [edges[i-1], edges[i]); bin 0 everything below edges[0], the last bin everything from
# edges[-1] on.
_DECADES = torch.logspace(-2, 3, 21, dtype=torch.float64)
HISTOGRAM_EDGES = torch.cat([-_DECADES.flip(0), torch.zeros(1, dtype=torch.float64), _DECADES])


def select(
    scores: torch.Tensor, index: torch.Tensor, position: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k best of (C, N) candidates per row: highest score first, ties to the lowest index.

    NaN scores count as -inf (a map with NaN never outranks a finite one)."""
    scores = torch.where(torch.isnan(scores), float("-inf"), scores)
    order = torch.argsort(index, dim=1, stable=True)
    scores, index, position = (t.gather(1, order) for t in (scores, index, position))
    order = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]
    return scores.gather(1, order), index.gather(1, order), position.gather(1, order)


@dataclass
class ChannelTopK:
    """The running state of one layer: per channel, top-k (score, image index, position) and
    the sum over images and positions.

    Attributes:
        scores: (C, k) float32, best first; -inf in empty slots.
        index: (C, k) int64 image indices; `EMPTY` in empty slots.
        position: (C, k) int64 flat positions `h * width + w` of each image's maximum.
        total: (C,) float64 sum of the channel over every image and position seen.
        count: how many values each channel's `total` adds up (images x height x width).
        height, width: the layer's map size.
        zeros: (C,) int64 how many of those values are exactly 0.
        histogram: (C, len(HISTOGRAM_EDGES) + 1) int64 per-image maxima counted per bin
            (NaN maxima in none).
    """

    scores: torch.Tensor
    index: torch.Tensor
    position: torch.Tensor
    total: torch.Tensor
    count: int
    height: int
    width: int
    zeros: torch.Tensor
    histogram: torch.Tensor

    @classmethod
    def empty(
        cls, channels: int, k: int, height: int, width: int, device: torch.device
    ) -> ChannelTopK:
        return cls(
            torch.full((channels, k), float("-inf"), device=device),
            torch.full((channels, k), EMPTY, dtype=torch.int64, device=device),
            torch.zeros((channels, k), dtype=torch.int64, device=device),
            torch.zeros(channels, dtype=torch.float64, device=device),
            0,
            height,
            width,
            torch.zeros(channels, dtype=torch.int64, device=device),
            torch.zeros((channels, len(HISTOGRAM_EDGES) + 1), dtype=torch.int64, device=device),
        )

    @property
    def k(self) -> int:
        return self.scores.shape[1]

    def update(self, maps: torch.Tensor, indices: torch.Tensor) -> None:
        """Fold in a batch of (B, C, H, W) maps of images with global `indices` (B,), which are
        on the maps' device. No host synchronisation."""
        batch, channels = maps.shape[:2]
        flat = maps.detach().flatten(2)
        best, where = flat.max(dim=2)  # ties: the first (lowest) position
        self.total += flat.sum(dim=(0, 2), dtype=torch.float64)
        self.count += flat.shape[0] * flat.shape[2]
        self.zeros += (flat == 0).sum(dim=(0, 2))
        edges = HISTOGRAM_EDGES.to(flat.device)
        bins = torch.bucketize(best.t().contiguous().double(), edges, right=True)  # (C, B)
        self.histogram.scatter_add_(1, bins, (~torch.isnan(best.t())).long())
        self.scores, self.index, self.position = select(
            torch.cat([self.scores, best.t().float()], dim=1),
            torch.cat([self.index, indices.view(1, batch).expand(channels, batch)], dim=1),
            torch.cat([self.position, where.t()], dim=1),
            self.k,
        )

    def merge(self, other: ChannelTopK) -> ChannelTopK:
        """The state of both streams together (the image indices of the two must differ)."""
        if (self.scores.shape, self.height, self.width) != (
            other.scores.shape,
            other.height,
            other.width,
        ):
            raise ValueError("cannot merge top-k states of different layers, shapes or k.")
        other = other.to(self.scores.device)
        scores, index, position = select(
            torch.cat([self.scores, other.scores], dim=1),
            torch.cat([self.index, other.index], dim=1),
            torch.cat([self.position, other.position], dim=1),
            self.k,
        )
        return ChannelTopK(
            scores,
            index,
            position,
            self.total + other.total,
            self.count + other.count,
            self.height,
            self.width,
            self.zeros + other.zeros,
            self.histogram + other.histogram,
        )

    def to(self, device: torch.device | str) -> ChannelTopK:
        return ChannelTopK(
            self.scores.to(device),
            self.index.to(device),
            self.position.to(device),
            self.total.to(device),
            self.count,
            self.height,
            self.width,
            self.zeros.to(device),
            self.histogram.to(device),
        )

    def mean(self) -> torch.Tensor:
        """(C,) float64 mean of each channel over images and positions (NaN before any)."""
        return self.total / self.count if self.count else torch.full_like(self.total, float("nan"))

    def tensors(self) -> dict[str, torch.Tensor]:
        """Plain CPU tensors, for `torch.save` (with `count`, `height`, `width` as 0-d)."""
        state = self.to("cpu")
        return {
            "scores": state.scores,
            "index": state.index,
            "position": state.position,
            "total": state.total,
            "zeros": state.zeros,
            "histogram": state.histogram,
            "shape": torch.tensor([self.count, self.height, self.width], dtype=torch.int64),
        }

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, torch.Tensor], device: torch.device | str = "cpu"
    ) -> ChannelTopK:
        count, height, width = (int(v) for v in tensors["shape"].tolist())
        return cls(
            tensors["scores"].to(device),
            tensors["index"].to(device),
            tensors["position"].to(device),
            tensors["total"].to(device),
            count,
            height,
            width,
            tensors["zeros"].to(device),
            tensors["histogram"].to(device),
        )
