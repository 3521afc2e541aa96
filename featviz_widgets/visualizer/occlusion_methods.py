"""`FeatureVisualizer`'s occlusion methods (a mixin): one sweep for a unit, with the map of
every channel (`occlusion`), and one channel's sensitivity map with its figure, exact or by
gradient (`visualize_receptive_field`). The sweeps run on `occlusion.runner`'s
`OcclusionRunner`, which keeps the last one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure

from ..core.features import FeatureStore
from ..core.inputs import ImageInput, Preprocessor
from ..core.precision import precision_context, precision_dtype
from ..core.validate import check_channel, check_index, check_patch, check_position
from ..occlusion.engine import OcclusionResult, gradient_map
from ..occlusion.runner import OcclusionRunner
from ..plotting.figures import occlusion_figure, show_figure, unit_centre

__all__ = ["OCCLUSION_METHODS", "OcclusionMethods"]

OCCLUSION_METHODS = ("exact", "gradient")


class OcclusionMethods:
    """`FeatureVisualizer`'s occlusion methods (a mixin; the sweeps are `OcclusionRunner`'s)."""

    device: torch.device
    features: FeatureStore
    preprocessor: Preprocessor
    last_figure: Figure | None
    _occlusions: OcclusionRunner

    if TYPE_CHECKING:  # FeatureVisualizer's

        def prepare(self, image: ImageInput) -> torch.Tensor: ...

    def occlusion(
        self,
        image: ImageInput,
        layer_name: str,
        position: tuple[int, int] | None = None,
        *,
        patch_size: int = 16,
        stride: int = 8,
        index: int = 0,
        batch_size: int | None = None,
        on_progress: Callable[[int, int, OcclusionResult], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        precision: str = "float32",
        progress: bool = True,
    ) -> OcclusionResult:
        """One occlusion sweep for the unit at `position` (default: the map's centre) of
        image `index`; the result gives the map of every channel (`result.map(channel)`).

        A `patch_size` square filled with the mean colour (0 after normalisation) slides with
        `stride` over the whole image, up to its border. Exact in float32, on a GPU too (TF32
        is off while the sweep runs; the global flags come back afterwards); each placement
        recomputes only the part of the network it changes where the model allows it.
        `on_progress(done, total, partial_result)` is called after each batch;
        `should_stop()` returning True makes it raise `OcclusionCancelled`.
        `precision="tf32"` (CUDA GPUs from Ampere on), `"float16"` or `"bfloat16"` (devices
        with native support only) is a faster approximation. `batch_size` sets the placements
        per batch; by default a GPU takes as many as half its free memory holds (half of what
        `torch.cuda.set_per_process_memory_fraction` leaves, where set). A progress bar
        (placements done / total) appears once the sweep has run 2 s; `progress=False` turns
        it off.
        """
        return self._occlusions.sweep(
            self.prepare(image),
            layer_name,
            position,
            patch_size=patch_size,
            stride=stride,
            index=index,
            batch_size=batch_size,
            on_progress=on_progress,
            should_stop=should_stop,
            precision=precision,
            progress=progress,
        )

    def visualize_receptive_field(
        self,
        image: ImageInput,
        layer_name: str,
        channel: int,
        position: tuple[int, int] | None = None,
        save_path: str | os.PathLike | None = None,
        *,
        patch_size: int = 16,
        stride: int = 8,
        signed: bool = False,
        index: int = 0,
        method: str = "exact",
        precision: str = "float32",
        show: bool | None = None,
        progress: bool = True,
    ) -> np.ndarray:
        """Occlusion sensitivity of unit (`channel`, `position`) of `layer_name`: (H_in, W_in).

        By default |change| / max (1 = most influential); `signed=True` returns the raw change
        of the unit (clean - occluded). The figure (input, and the map over it with a colorbar
        and the unit's centre marked) is saved to `save_path`, shown in a notebook and kept as
        `last_figure`. Another channel at the same position reuses the sweep.

        `method="gradient"` is a fast approximation (one forward and one backward): each
        patch's change estimated to first order as the sum of gradient x (pixel - fill).
        `precision="float16"`/`"bfloat16"` runs either method in reduced precision, on
        devices with native support (CUDA GPUs; CPUs with AVX512-BF16 or AMX), and
        `precision="tf32"` keeps float32 but lets CUDA GPUs from Ampere on round convolutions
        and matmuls to TF32: faster, not exact. Every approximation says so in the figure's
        title. The default, float32, is exact on a GPU too: TF32 is off while it runs.

        The exact sweep shows a progress bar (placements done / total) once it has run 2 s;
        `progress=False` turns it off.
        """
        if method not in OCCLUSION_METHODS:
            raise ValueError(f"`method` must be one of {OCCLUSION_METHODS}, got {method!r}.")
        precision_dtype(precision, self.device, method)  # before any work
        batch = self.prepare(image)  # once: the maps, the sweep and the picture share it
        maps = self.features.maps(batch, [layer_name])[layer_name].maps
        channel = check_channel(channel, layer_name, maps.shape[1])
        one = batch[check_index(index, maps.shape[0]) : index + 1]
        unit = check_position(position, layer_name, maps.shape[-2:])
        if method == "gradient":
            check_patch(patch_size, stride)
            with precision_context(precision, self.device):
                sensitivity = gradient_map(
                    self.features.layer_fn(layer_name, with_grad=True),
                    one,
                    channel=channel,
                    position=unit,
                    patch_size=patch_size,
                    stride=stride,
                    signed=signed,
                )
        else:
            result = self._occlusions.sweep(
                batch,
                layer_name,
                unit,
                patch_size=patch_size,
                stride=stride,
                index=index,
                precision=precision,
                progress=progress,
            )
            sensitivity = result.map(channel, signed=signed)
        picture = self.preprocessor.to_display(batch, index)
        centre = unit_centre(unit, tuple(maps.shape[-2:]), sensitivity.shape)
        labels = ["gradient"] if method == "gradient" else []
        if precision != "float32":
            labels.append(precision)
        approximation = f" ({', '.join(labels)} approximation)" if labels else ""
        self.last_figure = occlusion_figure(
            picture,
            sensitivity,
            centre=centre,
            title=f"{layer_name}, channel {channel}, position {unit}{approximation}",
            signed=signed,
            save_path=save_path,
        )
        show_figure(self.last_figure, show)
        return sensitivity
