"""`FeatureVisualizer`: feature maps, statistics and occlusion maps of any layer of any model."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from ._dataset_examples import DatasetExamples, scan_dataset
from ._features import FeatureStore
from ._incremental import IncrementalPlan, build_plan
from ._inputs import ImageInput, Preprocessor
from ._layers import LayerInfo, is_default_layer, trunk_prefix
from ._layout import Format, ModelGeometry
from ._occlusion import (
    OcclusionResult,
    gradient_map,
    occlusion_sweep,
    patch_starts,
    placements_per_batch,
)
from ._optimize import OptimizationResult, optimize_channels
from ._plotting import (
    MAX_FEATURE_MAPS,
    feature_grid_figure,
    layer_comparison_figure,
    occlusion_figure,
    unit_centre,
)
from ._precision import precision_context, precision_dtype
from ._progress import progress_bar
from ._stats import (
    SORT_MODES,
    channel_scores,
    feature_statistics,
    order_by_scores,
    rank_channels,
)
from ._validate import check_channel, check_index, check_patch, check_position

__all__ = ["DatasetExamples", "FeatureVisualizer", "LayerInfo"]

OCCLUSION_METHODS = ("exact", "gradient")


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def _show(fig: Figure, show: bool | None) -> None:
    if show if show is not None else _in_notebook():
        from IPython.display import display

        display(fig)


class FeatureVisualizer:
    """Feature maps, statistics and occlusion sensitivity of any layer of a vision model.

    Works on any `nn.Module` and any module name from `named_modules()`. Outputs in every
    layout timm produces (NCHW, NHWC, ViT tokens with prefix tokens, tuples, pooled vectors)
    are shown as (B, C, H, W) maps. Images are preprocessed with the model's own timm data
    config. Every call runs the model in eval mode without autograd and leaves it as it was:
    modes, `requires_grad` flags and hooks are restored even when a call fails. Float32 results
    are exact on a GPU too: TF32 is off during each call and the global flags come back after.

    Args:
        model: the model to inspect. It is moved to the chosen device once, here.
        use_cuda: use CUDA when available (falls back to the CPU silently).
        device: an explicit device; overrides `use_cuda`.
        transform: PIL image -> (C, H, W) tensor; defaults to the model's timm eval transform.
        preprocess_tensors: also pass tensor inputs through the transform (by default a tensor
            is taken as already model-ready).
        cache_size: how many (image, layer) feature tensors to keep for reuse.

    Example:
        >>> model = timm.create_model("resnet18", pretrained=False)
        >>> viz = FeatureVisualizer(model)
        >>> viz.get_features(image, "layer3").shape
        torch.Size([1, 256, 14, 14])
    """

    def __init__(
        self,
        model: nn.Module,
        use_cuda: bool = True,
        *,
        device: str | torch.device | None = None,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        preprocess_tensors: bool = False,
        cache_size: int = 8,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        # A torch.compile'd model: hook the original modules (same weights, same names).
        self.model: nn.Module = getattr(model, "_orig_mod", model)
        if device is None:
            device = "cuda" if use_cuda and torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if any(p.device != self.device for p in chain(model.parameters(), model.buffers())):
            self.model.to(self.device)
        floats = [p.dtype for p in self.model.parameters() if p.is_floating_point()]
        self.dtype: torch.dtype = floats[0] if floats else torch.float32
        self.preprocessor = Preprocessor.for_model(self.model, transform, preprocess_tensors)
        self.geometry = ModelGeometry(self.model)
        self.features = FeatureStore(self.model, self.geometry, cache_size)
        self._occlusion_cache: tuple[tuple, OcclusionResult] | None = None
        self.last_figure: Figure | None = None

    # ----------------------------------------------------------------------------- inputs
    def prepare(self, image: ImageInput) -> torch.Tensor:
        """The model-ready (B, C, H, W) batch for `image` on the visualizer's device."""
        return self.preprocessor(image, self.device, self.dtype)

    def display_image(self, image: ImageInput, index: int = 0) -> np.ndarray:
        """The `index`-th image as the model sees it (resized, cropped): uint8 (H, W, 3)."""
        return self.preprocessor.to_display(self.prepare(image), index)

    @property
    def cache_size(self) -> int:
        """How many (image, layer) feature tensors are kept for reuse."""
        return self.features.cache_size

    @cache_size.setter
    def cache_size(self, value: int) -> None:
        self.features.cache_size = value

    def clear_cache(self) -> None:
        """Forget the cached feature maps and the last occlusion sweep."""
        self.features.clear()
        self._occlusion_cache = None

    # ----------------------------------------------------------------------------- capture
    def _maps(self, image: ImageInput, layer_name: str) -> torch.Tensor:
        if not isinstance(layer_name, str):
            raise TypeError(f"`layer_name` must be a string, got {type(layer_name).__name__}.")
        return self.features.maps(self.prepare(image), [layer_name])[layer_name].maps

    def list_layers(
        self, image: ImageInput | None = None, *, include: str = "default"
    ) -> list[LayerInfo]:
        """Layers whose output can be shown as maps, with (C, H, W) shapes, from one probe pass.

        A 4-D output whose channel axis nothing in the model reveals is listed with layout
        "unknown" (its shape read channels-first), rather than guessed.

        Args:
            image: the input to probe with; a blank image of the model's input size if None.
            include: "default" for the model's stages and blocks (top-level modules and the
                numbered children of top-level containers), "all" for every module.
        """
        if include not in ("default", "all"):
            raise ValueError(f"`include` must be 'default' or 'all', got {include!r}.")
        if image is None:
            size = self.preprocessor.input_size
            batch = torch.zeros((1, *size), device=self.device, dtype=self.dtype)
        else:
            batch = self.prepare(image)
        trunk = trunk_prefix(self.model)
        candidates = [
            (name, module)
            for name, module in self.model.named_modules()
            if name and (include == "all" or is_default_layer(name, module, trunk))
        ]
        found = self.features.probe(batch, [name for name, _ in candidates])
        return [
            LayerInfo(name, type(module).__name__, tuple(f.maps.shape[1:]), f.layout.value)
            for name, module in candidates
            if (f := found.get(name)) is not None
        ]

    # ----------------------------------------------------------------------------- the API
    def get_features(self, image: ImageInput, layer_name: str) -> torch.Tensor:
        """Raw features of `layer_name`, shape (B, C, H, W), whatever the layer's layout.

        Token outputs of ViT-like models lose their prefix tokens and get their patch grid
        back; NHWC outputs are permuted; pooled (B, C) outputs become (B, C, 1, 1); for tuple
        outputs the first tensor is used. Repeated calls with the same image reuse a cache.
        """
        return self._maps(image, layer_name)

    def get_feature_statistics(self, image: ImageInput, layer_name: str) -> dict:
        """Statistics of the layer's features over the whole batch.

        Returns a dict with mean, std (unbiased), sparsity (fraction exactly 0), max, min,
        active_channels (channels whose mean over batch and space > 0.01), num_channels,
        spatial_size (H, W), and non_finite (NaN/inf values, left out and warned about).
        """
        return feature_statistics(self._maps(image, layer_name), layer_name)

    def compare_layers(
        self,
        image: ImageInput,
        layer_names: list[str],
        save_path: str | os.PathLike | None = None,
        *,
        plot: bool = True,
        show: bool | None = None,
    ) -> dict[str, dict]:
        """Statistics of several layers from one forward pass, and their comparison chart.

        The chart (mean, std, sparsity and active channels per layer) is saved to `save_path`,
        shown in a notebook (`show=None`: when running in one) and kept as `last_figure`.
        """
        if not layer_names:
            raise ValueError("`layer_names` is empty; pass at least one layer name.")
        found = self.features.maps(self.prepare(image), list(layer_names))
        all_stats = {name: feature_statistics(found[name].maps, name) for name in layer_names}
        if plot or save_path is not None:
            self.last_figure = layer_comparison_figure(all_stats, save_path=save_path)
            _show(self.last_figure, show)
        return all_stats

    def get_top_activating_features(
        self, image: ImageInput, layer_name: str, top_k: int = 10
    ) -> list[tuple[int, float]]:
        """The `top_k` channels with the highest mean activation (over batch and space),
        as (channel_index, mean_activation) pairs, best first; fewer if the layer has fewer."""
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}.")
        scores = channel_scores(self._maps(image, layer_name), "activation").cpu()
        return [(c, float(scores[c])) for c in order_by_scores(scores)[:top_k]]

    def rank_channels(
        self,
        image: ImageInput,
        layer_name: str,
        sort_by: str = "activation",
        *,
        seed: int = 0,
        index: int | None = None,
    ) -> list[int]:
        """Every channel of the layer, best first under `sort_by` ("activation", "variance"
        or "random" with `seed`), scored over the batch or on image `index` alone."""
        maps = self._maps(image, layer_name)
        if index is not None:
            maps = maps[check_index(index, maps.shape[0]) : index + 1]
        return rank_channels(maps, sort_by, seed)

    def plot_feature_maps(
        self,
        image: ImageInput,
        layer_name: str,
        num_features: int = 16,
        sort_by: str = "activation",
        save_path: str | os.PathLike | None = None,
        figsize: tuple[int, int] | None = None,
        *,
        index: int = 0,
        seed: int = 0,
        shared_scale: bool = False,
        cmap: str = "viridis",
    ) -> Figure:
        """A grid of the layer's `num_features` top maps for image `index` of the batch.

        Channels are chosen on that image by `sort_by`: "activation" (highest spatial mean),
        "variance" (highest spatial variance) or "random" (reproducible with `seed`). Each map
        is titled with its channel and mean; `shared_scale` puts all on one colour scale.
        A layer with fewer channels than `num_features` shows them all; asking for more than
        the default 16 and more than the layer has, or than `MAX_FEATURE_MAPS` (256), also
        warns with the number shown.
        """
        if sort_by not in SORT_MODES:
            raise ValueError(f"`sort_by` must be one of {SORT_MODES}, got {sort_by!r}.")
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"`num_features` must be a positive integer, got {num_features!r}.")
        maps = self._maps(image, layer_name)
        one = maps[check_index(index, maps.shape[0]) : index + 1]
        c, h, w = maps.shape[1:]
        shown = min(c, MAX_FEATURE_MAPS)
        if num_features > max(shown, 16):
            warnings.warn(
                f"`num_features`={num_features} is more than can be shown: {layer_name!r} has "
                f"{c} channels and a figure shows at most {MAX_FEATURE_MAPS} maps; showing "
                f"the top {shown}.",
                UserWarning,
                stacklevel=2,
            )
        channels = rank_channels(one, sort_by, seed)[: min(num_features, shown)]
        title = f"{layer_name}: top {len(channels)} of {c} channels by {sort_by} ({h}x{w})"
        if maps.shape[0] > 1:
            title += f", image {index} of {maps.shape[0]}"
        return feature_grid_figure(
            one[0],
            channels,
            title=title,
            shared_scale=shared_scale,
            figsize=figsize,
            cmap=cmap,
            save_path=save_path,
        )

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
        return self._occlusion(
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

    def _occlusion(
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
        """`occlusion` on an already prepared batch."""
        check_patch(patch_size, stride)
        precision_dtype(precision, self.device)  # a clear error for what this device lacks
        found = self.features.maps(batch, [layer_name])[layer_name]
        maps = found.maps
        unit = check_position(position, layer_name, maps.shape[-2:])
        one = batch[check_index(index, maps.shape[0]) : index + 1]
        key = (self.features.key(one), layer_name, unit, patch_size, stride, precision)
        cached = self._occlusion_cache
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
                batch_size=batch_size or self._occlusion_batch_size(layer_fn, one, plan),
                on_progress=report,
                should_stop=should_stop,
                plan=plan,
                precision=precision,
            )
        self._occlusion_cache = (key, result)
        return result

    def _occlusion_batch_size(
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
        per_image = self._forward_peak(layer_fn, one) + 2 * one.numel() * one.element_size()
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

    def _forward_peak(self, layer_fn: Callable, one: torch.Tensor) -> int:
        """CUDA bytes that `layer_fn(one)` adds at its highest, read before and after every
        module (the user's peak-memory statistics are not reset for it)."""
        device = self.device
        base = highest = torch.cuda.memory_allocated(device)

        def note(*_: object) -> None:
            nonlocal highest
            highest = max(highest, torch.cuda.memory_allocated(device))

        handles = []
        try:
            for module in self.model.modules():
                handles.append(module.register_forward_pre_hook(note))
                handles.append(module.register_forward_hook(note))
            layer_fn(one)
        finally:
            for handle in handles:
                handle.remove()
        return max(highest - base, 1)

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
            result = self._occlusion(
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
        _show(self.last_figure, show)
        return sensitivity

    def dataset_examples(
        self,
        data,
        layer_names: list[str],
        *,
        k: int = 9,
        batch_size: int = 64,
        num_workers: int = 0,
        cache: str | os.PathLike | None = None,
        progress: bool = True,
        save_every: int = 16,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> DatasetExamples:
        """Per channel of `layer_names`: the `k` images of `data` (a folder, searched
        recursively; a list of paths or images; a Dataset of images or (image, label) pairs; a
        DataLoader) with the highest maximum over positions, and the channel's mean, from one
        streaming pass (see `DatasetExamples`). `cache=` makes the scan resumable (its state is
        written every `save_every` batches); under torch.distributed each rank scans a share
        and every rank gets the merged result. Unreadable images are skipped and reported.
        `on_progress(images_done, total)` is called after each batch; `should_stop()` returning
        True before a batch makes it raise `ScanCancelled`."""
        return scan_dataset(
            self,
            data,
            layer_names,
            k=k,
            batch_size=batch_size,
            num_workers=num_workers,
            cache=cache,
            progress=progress,
            save_every=save_every,
            on_progress=on_progress,
            should_stop=should_stop,
        )

    # ----------------------------------------------------------------------------- optimize
    def optimize(
        self,
        layer_name: str,
        channels: int | Sequence[int],
        *,
        position: tuple[int, int] | None = None,
        size: int = 128,
        steps: int = 512,
        lr: float = 0.05,
        seed: int = 0,
        on_progress: Callable[[int, int, OptimizationResult], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        **recipe: Any,
    ) -> OptimizationResult:
        """Feature visualization by optimization (Olah et al., Distill 2017): one image per
        channel of `layer_name` that maximises it; a list of channels runs as one batch and
        gives the same images as running each alone. `position=None` maximises the channel's
        mean, `(h, w)` that unit. `on_progress(step, steps, partial_result)` is called every
        `progress_every=16` steps; `should_stop()` returning True raises
        `OptimizationCancelled`. Recipe options (`**recipe`): `fourier=True`,
        `decorrelate=True`, `transforms=True`, `redirect_relu=True`, `model_size=None` (the
        model's input size), `precision="float32"`, `progress=True` (a progress bar after
        2 s). See `featviz_widgets._optimize`."""
        return optimize_channels(
            self,
            layer_name,
            channels,
            position=position,
            size=size,
            steps=steps,
            lr=lr,
            seed=seed,
            on_progress=on_progress,
            should_stop=should_stop,
            **recipe,
        )
