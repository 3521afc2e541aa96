"""Occlusion sweeps for `FeatureVisualizer`: one sweep on a prepared batch, with the
placements per batch sized from the device's memory, a progress bar and the precision, and
the last sweep kept for reuse.

`_occlusion` is the sweep itself and `incremental` what makes each placement cheap; this
module orchestrates them for one visualizer's model and device. The public methods are
`occlusion_methods`'.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..core.features import FeatureStore
from ..core.hooks import Hooks
from ..core.inputs import Preprocessor
from ..core.layout import Format
from ..core.precision import precision_context, precision_dtype
from ..core.progress import progress_bar
from ..core.validate import check_index, check_patch, check_position
from .engine import (
    OcclusionResult,
    occlusion_sweep,
    patch_starts,
    placements_per_batch,
)
from .incremental import IncrementalPlan, build_plan

__all__ = ["OcclusionRunner"]


class OcclusionRunner:
    """Occlusion sweeps over the model of `features` on `device`; the last sweep is kept, so
    that another channel of the same unit (same image, patch, stride, precision) reuses it."""

    def __init__(
        self, features: FeatureStore, device: torch.device, preprocessor: Preprocessor
    ) -> None:
        self.features = features
        self.model = features.model
        self.device = device
        self.preprocessor = preprocessor
        self.cache: tuple[tuple, OcclusionResult] | None = None

    def clear(self) -> None:
        """Forget the last sweep."""
        self.cache = None

    def sweep(
        self,
        batch: torch.Tensor,
        layer_name: str,
        position: tuple[int, int] | None,
        *,
        patch_size: int,
        stride: int,
        index: int,
        batch_size: int | None = None,
        on_progress: Callable[[int, int, OcclusionResult], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        precision: str = "float32",
        progress: bool = True,
    ) -> OcclusionResult:
        """`FeatureVisualizer.occlusion` on an already prepared batch."""
        check_patch(patch_size, stride)
        precision_dtype(precision, self.device)  # a clear error for what this device lacks
        found = self.features.maps(batch, [layer_name])[layer_name]
        maps = found.maps
        unit = check_position(position, layer_name, maps.shape[-2:])
        one = batch[check_index(index, maps.shape[0]) : index + 1]
        key = (self.features.key(one), layer_name, unit, patch_size, stride, precision)
        cached = self.cache
        if cached is not None and cached[0] == key:
            return cached[1]
        layer_fn = self.features.layer_fn(layer_name)
        height, width = one.shape[-2:]
        placements = len(patch_starts(height, patch_size, stride)) * len(
            patch_starts(width, patch_size, stride)
        )
        description = f"occlusion {layer_name} {unit}"
        bar = progress_bar(placements, description, enabled=progress, unit="placement")
        with bar as advance_to, precision_context(precision, self.device):

            def report(done: int, total: int, partial: OcclusionResult) -> None:
                advance_to(int(partial.done.sum()))  # skipped placements count as done
                if on_progress is not None:
                    on_progress(done, total, partial)

            plan = (
                build_plan(self.model, one, layer_name, unit)
                if found.layout is Format.NCHW
                else None
            )
            result = occlusion_sweep(
                layer_fn,
                one,
                layer_name=layer_name,
                position=unit,
                patch_size=patch_size,
                stride=stride,
                batch_size=batch_size or self.batch_size(layer_fn, one, plan),
                on_progress=report,
                should_stop=should_stop,
                plan=plan,
                precision=precision,
            )
        self.cache = (key, result)
        return result

    def batch_size(
        self, layer_fn: Callable, one: torch.Tensor, plan: IncrementalPlan | None
    ) -> int:
        """Placements per batch. CPU: 16 small crops, or up to 8 whole images of up to
        256 x 256 pixels (larger batches do not pay on CPU, delay a cancel, and 1024 px
        images must stay in memory).
        CUDA: as many as half the memory a batch may take holds (`placements_per_batch`), from
        one single-image forward's peak; under `torch.cuda.set_per_process_memory_fraction`,
        half of what that limit leaves."""
        if self.device.type != "cuda":
            pixels = one.shape[-2] * one.shape[-1]
            return 16 if plan is not None else min(8, max(1, 8 * 256 * 256 // pixels))
        # The occluded copy of the image and its channels-last copy come on top of the forward.
        per_image = self.forward_peak(layer_fn, one) + 2 * one.numel() * one.element_size()
        # The memory-fraction calls want an index: "cuda" alone means the current device.
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        allocated = torch.cuda.memory_allocated(index)
        unused_cache = torch.cuda.memory_reserved(index) - allocated
        limit = None
        get_fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)
        fraction = get_fraction(index) if get_fraction is not None else 1.0
        if fraction < 1.0:
            limit = int(fraction * total) - allocated
        return placements_per_batch(per_image, free + unused_cache, limit)

    def forward_peak(self, layer_fn: Callable, one: torch.Tensor) -> int:
        """CUDA bytes that `layer_fn(one)` adds at its highest, read before and after every
        module (the user's peak-memory statistics are not reset for it)."""
        device = self.device
        base = highest = torch.cuda.memory_allocated(device)

        def note(*_: object) -> None:
            nonlocal highest
            highest = max(highest, torch.cuda.memory_allocated(device))

        with Hooks() as hooks:
            for module in self.model.modules():
                hooks.forward_pre_hook(module, note)
                hooks.forward_hook(module, note)
            layer_fn(one)
        return max(highest - base, 1)
