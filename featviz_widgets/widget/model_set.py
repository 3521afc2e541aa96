"""The explorer's models by name (`ModelSet`): each model's `layers`, its twin
(`ModelTwin`, what the background work runs on) and its visualizer; and their layer profiles
per image (`ModelProfiles`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from ..compare import LayerProfile, profile_model
from ..core.capture import resolve_layers
from ..core.inputs import ImageInput
from ..core.twin import ModelTwin
from ..visualizer import FeatureVisualizer

__all__ = ["ModelProfiles", "ModelSet"]


class ModelSet:
    """The explorer's models by name (one model: the name ""), the `layers` each lists, and
    their visualizers (made on first use)."""

    def __init__(
        self,
        models: dict[str, nn.Module],
        restrict: dict[str, list[str] | None],
        current: str,
    ) -> None:
        self.models, self.restrict, self.current = models, restrict, current
        self.visualizers: dict[str, FeatureVisualizer] = {}
        self.twins: dict[str, ModelTwin] = {}

    @property
    def names(self) -> list[str]:
        """The model menu's names; [] for a single model."""
        return [] if list(self.models) == [""] else list(self.models)

    @classmethod
    def from_argument(
        cls, model: Any, layers: Any = None, model_name: str | None = None
    ) -> ModelSet:
        """The explorer's `model` and `layers` arguments, checked.

        Raises:
            TypeError: `model` is neither a module nor a mapping of names to modules; a name
                is not a string; with several models, `layers` is not a mapping.
            ValueError: an empty mapping, an empty or padded name, one model under two names,
                `layers` naming unknown models or layers, an unknown `model_name`.
        """
        if isinstance(model, nn.Module):
            if model_name:
                raise ValueError(
                    f"`model_name` {model_name!r}: this explorer shows one model; pass a "
                    "mapping of names to models to name them."
                )
            return cls({"": model}, {"": None if layers is None else list(layers)}, "")
        if not isinstance(model, Mapping):
            raise TypeError(
                "`model` must be a torch.nn.Module or a mapping of names to modules, e.g. "
                f"{{'resnet18': m1, 'convnext_tiny': m2}}; got {type(model).__name__}."
            )
        if not model:
            raise ValueError("`model` is an empty mapping; pass at least one name -> model.")
        seen: dict[int, str] = {}
        for name, module in model.items():
            if not isinstance(name, str):
                raise TypeError(
                    f"model names must be strings, got {name!r} ({type(name).__name__})."
                )
            if not name.strip() or name != name.strip():
                raise ValueError(
                    f"model name {name!r} is empty or has spaces around it; name each model, "
                    "e.g. 'resnet18'."
                )
            if not isinstance(module, nn.Module):
                raise TypeError(
                    f"`model`[{name!r}] must be a torch.nn.Module, got {type(module).__name__}."
                )
            if id(module) in seen:
                raise ValueError(
                    f"the same model is given as both {seen[id(module)]!r} and {name!r}; give "
                    "each model once (copy.deepcopy it to compare two copies)."
                )
            seen[id(module)] = name
        models = dict(model)
        restrict: dict[str, list[str] | None] = dict.fromkeys(models)
        if layers is not None:
            if not isinstance(layers, Mapping):
                raise TypeError(
                    "with several models, `layers` must be a mapping of model names to layer "
                    f"names, e.g. {{{next(iter(models))!r}: ['layer1', 'layer2']}}."
                )
            unknown = sorted(set(layers) - set(models))
            if unknown:
                raise ValueError(f"`layers` names {unknown}, not in the models {list(models)}.")
            for name, names in layers.items():
                names = list(names)
                if not names:
                    raise ValueError(f"`layers`[{name!r}] is empty; leave it out for the default.")
                resolve_layers(models[name], names)
                restrict[name] = names
        current = next(iter(models)) if model_name is None else model_name
        if current not in models:
            raise ValueError(f"`model_name` must be one of {list(models)}, got {current!r}.")
        return cls(models, restrict, current)

    def visualizer(
        self,
        name: str,
        device: str | torch.device,
        transform: Any,
        cache_size: int,
        *,
        remake: bool = False,
    ) -> FeatureVisualizer:
        """Model `name`'s visualizer on `device`, working on the model's twin (`ModelTwin`):
        made, remade (`remake`, another device, a model changed under its twin), its caches
        cleared when the model's weights changed since the last call."""
        viz, twin = self.visualizers.get(name), self.twins.get(name)
        if remake or viz is None or twin is None or not _same_device(viz.device, device):
            viz = None
        if viz is None or twin is None or twin.outdated():
            twin = ModelTwin(self.models[name])  # a fresh twin per device: aliases on its own
            viz = FeatureVisualizer(
                twin.module, device=device, transform=transform, cache_size=cache_size
            )
            viz.features.weights_version = twin.synced_version
            self.visualizers[name], self.twins[name] = viz, twin
        elif twin.sync():
            viz.clear_cache()
        return viz


def _same_device(current: torch.device, wanted: str | torch.device) -> bool:
    """Whether `wanted` ("cuda", "cuda:1", a torch.device) names `current`; a bare type
    names any device of that type."""
    wanted = torch.device(wanted)
    return current.type == wanted.type and wanted.index in (None, current.index)


class ModelProfiles:
    """Each model's layer profile (`profile_model`: mean activation and sparsity against
    relative depth) of the last few images shown, by image: the model switch aligns layers by
    them, and the panels read them (`ViewState.profiles`). Profiles are made on the worker;
    `lock` guards the cache."""

    KEEP = 4  # images whose profiles are kept

    def __init__(
        self, visualizer_of: Callable[[str], FeatureVisualizer], lock: threading.RLock
    ) -> None:
        self.visualizer_of, self.lock = visualizer_of, lock
        # per image (the input's id, its index): the input (so that its id is not reused while
        # it is a key) and each model's profile
        self.images: OrderedDict[tuple[int, int], tuple[Any, dict[str, list[LayerProfile]]]]
        self.images = OrderedDict()

    def done(self, source: ImageInput, index: int) -> dict[str, list[LayerProfile]]:
        """The profiles of image `index` of `source` made so far, by model name."""
        key = (id(source), index)
        with self.lock:
            entry = self.images.get(key)
            if entry is None or entry[0] is not source:
                entry = (source, {})
                self.images[key] = entry
                while len(self.images) > self.KEEP:
                    self.images.popitem(last=False)
            self.images.move_to_end(key)
            return entry[1]

    def rows(self, name: str, source: ImageInput, index: int) -> list[LayerProfile]:
        """Model `name`'s profile of image `index` of `source` (made now, on the worker, if it
        is not cached)."""
        done = self.done(source, index)
        if name not in done:
            viz = self.visualizer_of(name)
            batch = viz.prepare(source)  # the image as that model's preprocessing makes it
            image = batch[index : index + 1] if batch.shape[0] > 1 else batch
            rows = profile_model(name, viz.model, image, device=viz.device)
            with self.lock:
                done[name] = rows
        return done[name]
