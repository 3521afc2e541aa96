"""`FeatureVisualizer`: feature maps, statistics and occlusion maps of any layer of any model.

The facade: the work is in the modules it calls. Its occlusion methods (`occlusion`,
`visualize_receptive_field`) are `OcclusionMethods`' (`occlusion_methods`), and its class
evidence methods (`class_evidence`, `plot_class_evidence`) `EvidenceMethods'`
(`evidence_methods`), inherited.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from ..core.features import FeatureStore
from ..core.inputs import ImageInput, Preprocessor
from ..core.layers import LayerInfo, probe_layers
from ..core.layout import ModelGeometry
from ..core.pca import LayerPCA, principal_components
from ..core.stats import (
    SORT_MODES,
    channel_scores,
    feature_statistics,
    order_by_scores,
    rank_channels,
)
from ..core.validate import check_positive_int
from ..dataset.scan import DatasetExamples, scan_dataset
from ..occlusion.runner import OcclusionRunner
from ..optimize.optimizer import OptimizationResult, optimize_channels
from ..plotting.figures import layer_comparison_figure, show_figure, top_maps_figure
from .evidence_methods import EvidenceMethods
from .move import move_model
from .occlusion_methods import OcclusionMethods

__all__ = ["DatasetExamples", "FeatureVisualizer", "LayerInfo", "LayerPCA", "LayerView"]


@dataclass(frozen=True)
class LayerView:
    """What a view of one layer shows, from one forward (`FeatureVisualizer.layer_view`).

    Attributes:
        features: the layer's (B, C, H, W) maps, as `get_features` returns them.
        statistics: their statistics, as `get_feature_statistics` returns them.
        rankings: every channel, best first, under each sort mode ("activation", "variance",
            "random" with seed 0), as `rank_channels(..., mode, index=index)` returns them.
    """

    features: torch.Tensor
    statistics: dict
    rankings: dict[str, list[int]]


class FeatureVisualizer(OcclusionMethods, EvidenceMethods):
    """Feature maps, statistics and occlusion sensitivity of any layer of a vision model.

    Works on any `nn.Module` and any module name from `named_modules()`. Outputs in every
    layout timm produces (NCHW, NHWC, ViT tokens with prefix tokens, tuples, pooled vectors)
    are shown as (B, C, H, W) maps. Images are preprocessed with the model's own timm data
    config. Every call runs the model in eval mode without autograd and leaves it as it was:
    modes, `requires_grad` flags and hooks are restored even when a call fails. Float32 results
    are exact on a GPU too: TF32 is off during each call and the global flags come back after.

    Args:
        model: the model to inspect. It is moved to the chosen device once, here; a move that
            fails part-way (out of memory) is undone, and raises a RuntimeError.
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
            move_model(self.model, self.device)  # all of it, or back where it was
        floats = [p.dtype for p in self.model.parameters() if p.is_floating_point()]
        self.dtype: torch.dtype = floats[0] if floats else torch.float32
        self.preprocessor = Preprocessor.for_model(self.model, transform, preprocess_tensors)
        self.geometry = ModelGeometry(self.model)
        self.features = FeatureStore(self.model, self.geometry, cache_size)
        self._occlusions = OcclusionRunner(self.features, self.device, self.preprocessor)
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
        self._occlusions.clear()

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
        return probe_layers(self.features, batch, include)

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
            show_figure(self.last_figure, show)
        return all_stats

    def get_top_activating_features(
        self, image: ImageInput, layer_name: str, top_k: int = 10
    ) -> list[tuple[int, float]]:
        """The `top_k` channels with the highest mean activation (over batch and space),
        as (channel_index, mean_activation) pairs, best first; fewer if the layer has fewer."""
        check_positive_int("top_k", top_k)
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
        return rank_channels(self._maps(image, layer_name), sort_by, seed, index=index)

    def layer_view(self, image: ImageInput, layer_name: str, *, index: int | None = 0) -> LayerView:
        """The layer's features, statistics and channel rankings under every sort mode, from
        one forward (or the cache) and one resolution of `layer_name`.

        Args:
            image: the input, as for `get_features`.
            layer_name: the layer, as for `get_features` (same errors for a bad name).
            index: the image of the batch the rankings score (None: the whole batch);
                the statistics are over the whole batch, as `get_feature_statistics`'.

        Returns:
            A `LayerView` equal to what `get_features`, `get_feature_statistics` and
            `rank_channels(image, layer_name, mode, index=index)` for each mode return.
        """
        features = self._maps(image, layer_name)
        rankings = {mode: rank_channels(features, mode, index=index) for mode in SORT_MODES}
        return LayerView(features, feature_statistics(features, layer_name), rankings)

    def layer_pca(self, image: ImageInput, layer_name: str, *, index: int = 0) -> LayerPCA:
        """The layer as colour: the first three principal components of image `index`'s maps
        at `layer_name` over their positions, as an RGB image.

        The maps are `get_features`' (one forward, or none where they are cached). Each
        component's sign is fixed so that its loading vector's entry of largest absolute value
        is positive (ties: the lowest channel), so colours do not flip between runs or devices.

        Args:
            image: the input, as for `get_features`.
            layer_name: the layer, as for `get_features` (same errors for a bad name).
            index: the image of the batch.

        Returns:
            A `LayerPCA`: the (H, W, 3) colours in [0, 1], the component scores and loadings,
            the share of variance each explains, and the map's size.

        Raises:
            ValueError: if `index` is out of range, the layer's map has fewer than 3 positions
                (a pooled output, a classifier head) or it has fewer than 3 channels, or the
                image's activations there hold NaN or inf.

        Example:
            >>> pca = viz.layer_pca(image, "layer3")
            >>> pca.rgb.shape, pca.explained.sum() < 1
            (torch.Size([14, 14, 3]), tensor(True))
        """
        return principal_components(self._maps(image, layer_name), layer_name, index=index)

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
        check_positive_int("num_features", num_features)
        return top_maps_figure(
            self._maps(image, layer_name),
            layer_name,
            num_features,
            sort_by,
            index=index,
            seed=seed,
            shared_scale=shared_scale,
            figsize=figsize,
            cmap=cmap,
            save_path=save_path,
        )

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
