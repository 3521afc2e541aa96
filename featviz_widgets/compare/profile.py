"""`compare_models`: how the features of several models evolve with depth on one image."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import chain

import torch
from matplotlib.figure import Figure
from torch import nn

from ..core.capture import resolve_layers
from ..core.features import FeatureStore
from ..core.inputs import ImageInput, Preprocessor
from ..core.layers import is_default_layer, trunk_prefix
from ..core.layout import LayoutError, ModelGeometry
from ..core.precision import exact_float32
from ..core.stats import feature_statistics
from ..plotting.comparison import depth_profile_figure

__all__ = ["LayerProfile", "ModelComparison", "compare_models"]

_COLUMNS = ("model", "layer", "depth", "mean", "sparsity", "channels", "height", "width")


@dataclass(frozen=True)
class LayerProfile:
    """One layer of one model on the compared image.

    Attributes:
        model: the model's name (its key in `compare_models`' mapping).
        layer: the layer's module name.
        depth: its relative depth in [0, 1]: its place among the model's profiled layers in
            the order the forward finishes them (a stage after its last block), 0 for the
            first and 1 for the last.
        mean: the mean activation, as `FeatureVisualizer.get_feature_statistics`' "mean".
        sparsity: the fraction of activations exactly 0, as its "sparsity".
        channels, height, width: the layer's (C, H, W) map shape.
    """

    model: str
    layer: str
    depth: float
    mean: float
    sparsity: float
    channels: int
    height: int
    width: int


@dataclass(frozen=True)
class ModelComparison:
    """Layer profiles of several models on one image, in model order, each model's layers by
    depth.

    Example:
        >>> comparison = compare_models({"resnet18": r18, "convnext": cnx}, image)
        >>> comparison.nearest_layer("convnext", 0.5)
        'stages.1'
        >>> comparison.figure()  # mean and sparsity against depth, one line per model
    """

    models: list[str]
    rows: list[LayerProfile]

    def profiles(self, model_name: str) -> list[LayerProfile]:
        """The rows of `model_name`, shallowest first."""
        if model_name not in self.models:
            raise ValueError(
                f"`model_name` {model_name!r} is not one of the compared models {self.models}."
            )
        return [row for row in self.rows if row.model == model_name]

    def nearest_layer(self, model_name: str, depth: float) -> str:
        """The layer of `model_name` whose relative depth is closest to `depth` (in [0, 1];
        on a tie, the shallower one)."""
        if not isinstance(depth, (int, float)) or not 0.0 <= depth <= 1.0:
            raise ValueError(f"`depth` must be a number in [0, 1], got {depth!r}.")
        rows = self.profiles(model_name)
        return min(rows, key=lambda row: abs(row.depth - depth)).layer

    def alignment(self, reference: str | None = None) -> list[dict[str, str]]:
        """For each layer of the `reference` model (default: the first), the nearest layer by
        relative depth in every model: a list of {model name: layer name}."""
        reference = self.models[0] if reference is None else reference
        return [
            {name: self.nearest_layer(name, row.depth) for name in self.models}
            for row in self.profiles(reference)
        ]

    def table(self) -> list[dict]:
        """One dict per row (model, layer, depth, mean, sparsity, channels, height, width),
        ready for `pandas.DataFrame(comparison.table())`."""
        return [asdict(row) for row in self.rows]

    def format_table(self) -> str:
        """The rows as an aligned text table."""
        cells = [list(_COLUMNS)] + [
            [
                row.model,
                row.layer,
                f"{row.depth:.3f}",
                f"{row.mean:.4g}",
                f"{row.sparsity:.2%}",
                str(row.channels),
                str(row.height),
                str(row.width),
            ]
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()

    def figure(self, save_path: str | os.PathLike | None = None) -> Figure:
        """Mean activation and sparsity against relative depth: two axes, one line per
        model on each."""
        series = {
            name: [(row.depth, row.mean, row.sparsity) for row in self.profiles(name)]
            for name in self.models
        }
        return depth_profile_figure(series, save_path=save_path)

    def to_dict(self) -> dict:
        """Plain Python values, ready for JSON: the model names and the rows as dicts."""
        return {"models": list(self.models), "rows": self.table()}


def _default_layers(model: nn.Module) -> list[str]:
    """`FeatureVisualizer.list_layers()`' candidates: the model's stages and blocks."""
    trunk = trunk_prefix(model)
    return [
        name
        for name, module in model.named_modules()
        if name and is_default_layer(name, module, trunk)
    ]


def _profile(
    name: str,
    model: nn.Module,
    image: ImageInput,
    layers: Sequence[str] | None,
    device: torch.device,
    transform,
) -> list[LayerProfile]:
    """The rows of one model, from one whole forward."""
    model = getattr(model, "_orig_mod", model)
    if any(p.device != device for p in chain(model.parameters(), model.buffers())):
        model.to(device)
    floats = [p.dtype for p in model.parameters() if p.is_floating_point()]
    batch = Preprocessor.for_model(model, transform)(
        image, device, floats[0] if floats else torch.float32
    )
    store = FeatureStore(model, ModelGeometry(model), cache_size=0)
    explicit = layers is not None
    names = list(layers) if explicit else _default_layers(model)
    if explicit:
        resolve_layers(model, names)
    with exact_float32():
        raw = store.capture_raw(batch, names, stop_early=False, allow_missing=not explicit)
    wanted = set(names)
    found = []
    for layer in raw:  # in the order the forward finished them
        if layer not in wanted:
            continue
        try:
            maps = store.normalise(raw[layer], layer, batch).maps
        except LayoutError:
            if explicit:
                raise
            continue  # not shown as maps: not in list_layers() either
        found.append((layer, maps))
    if not found:
        raise ValueError(f"model {name!r} has no layer whose output can be read as maps.")
    last = max(len(found) - 1, 1)
    rows = []
    for i, (layer, maps) in enumerate(found):
        stats = feature_statistics(maps, layer)
        c, h, w = maps.shape[1:]
        rows.append(
            LayerProfile(
                name, layer, i / last, stats["mean"], stats["sparsity"], int(c), int(h), int(w)
            )
        )
    return rows


def compare_models(
    models: Mapping[str, nn.Module],
    image: ImageInput,
    *,
    layers: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    use_cuda: bool = True,
    device: str | torch.device | None = None,
    transform=None,
) -> ModelComparison:
    """Profile every model's layers on `image` (one whole forward each, exact float32, the
    model left as it was): relative depth, mean activation and sparsity (as
    `FeatureVisualizer.get_feature_statistics`), and map shape.

    Args:
        models: name -> model. Each gets its own timm preprocessing unless `transform`.
        image: one image (or a batch: statistics over the whole batch), any input
            `FeatureVisualizer` takes.
        layers: None for each model's default layer list (`list_layers()`, the explorer's),
            one list of names for every model, or name -> list per model.
        use_cuda: use CUDA when available; `device` overrides it. Models are moved there.
        transform: PIL image -> (C, H, W) tensor, for every model.

    Raises:
        TypeError: `models` is not a mapping of names to `nn.Module`s.
        ValueError: it is empty, or `layers` names a model that is not compared.
    """
    if not isinstance(models, Mapping):
        raise TypeError(
            f"`models` must be a mapping of names to models, e.g. {{'resnet18': model}}, "
            f"got {type(models).__name__}."
        )
    if not models:
        raise ValueError("`models` is empty; pass at least one name -> model.")
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"`models`[{name!r}] must be a torch.nn.Module, got {type(model).__name__}."
            )
    if isinstance(layers, Mapping):
        unknown = sorted(set(layers) - set(models))
        if unknown:
            raise ValueError(
                f"`layers` names {unknown}, which are not in `models` ({list(models)})."
            )
    if device is None:
        device = "cuda" if use_cuda and torch.cuda.is_available() else "cpu"
    rows: list[LayerProfile] = []
    for name, model in models.items():
        chosen = layers.get(name) if isinstance(layers, Mapping) else layers
        profile = profile_model(
            str(name), model, image, layers=chosen, device=device, transform=transform
        )
        rows.extend(profile)
    return ModelComparison([str(name) for name in models], rows)


def profile_model(
    name: str,
    model: nn.Module,
    image: ImageInput,
    *,
    layers: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    transform=None,
) -> list[LayerProfile]:
    """One model's rows of `compare_models` (`name` labels them), from one whole forward."""
    return _profile(name, model, image, layers, torch.device(device), transform)
