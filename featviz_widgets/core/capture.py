"""Forward hooks that capture layer outputs, stop the forward early and leave no trace."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .hooks import Hooks, StopForward, run_until_stopped
from .layout import LayoutTracker, first_tensor

__all__ = [
    "LayerNotFoundError",
    "capture",
    "capture_with_layer_grad",
    "capture_with_layer_grads",
    "preserved_model_state",
    "resolve_layers",
]


class LayerNotFoundError(ValueError):
    """A layer name that is not a module of the model."""


def resolve_layers(model: nn.Module, layer_names: Sequence[str]) -> dict[str, nn.Module]:
    """The modules named in `layer_names`, with a helpful error for any unknown name."""
    if isinstance(layer_names, str) or not all(isinstance(n, str) for n in layer_names):
        raise TypeError("layer names must be strings, e.g. 'layer3' or 'blocks.6'.")
    modules = dict(model.named_modules())
    resolved = {}
    for name in layer_names:
        if name == "":
            raise LayerNotFoundError(
                f"layer name '' is the whole {type(model).__name__}, not a layer; pick a layer "
                "such as one of `FeatureVisualizer.list_layers()` (e.g. 'layer3' or 'blocks.6')."
            )
        if name in modules:
            resolved[name] = modules[name]
            continue
        if name in dict(model.named_parameters()) or name in dict(model.named_buffers()):
            owner = name.rpartition(".")[0]
            fix = f"use its module {owner!r} instead." if owner else "pass a module name."
            raise LayerNotFoundError(f"{name!r} is a parameter or buffer, not a layer; {fix}")
        close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
        hint = f" Closest layers: {', '.join(repr(c) for c in close)}." if close else ""
        raise LayerNotFoundError(
            f"Layer {name!r} not found in {type(model).__name__}.{hint} "
            "List every layer with `FeatureVisualizer.list_layers(include='all')` "
            "or `[n for n, _ in model.named_modules()]`."
        )
    return resolved


@contextmanager
def preserved_model_state(model: nn.Module) -> Iterator[None]:
    """Put the model in eval mode; restore every module's mode and `requires_grad` afterwards."""
    modes = [(module, module.training) for module in model.modules()]
    grads = [(param, param.requires_grad) for param in model.parameters()]
    try:
        if any(training for _, training in modes):
            model.eval()
        yield
    finally:
        # Only what changed is set back: assigning `training` on every module of a large
        # model costs milliseconds per call.
        for module, training in modes:
            if module.training != training:
                module.training = training
        for param, requires_grad in grads:
            if param.requires_grad != requires_grad:
                param.requires_grad_(requires_grad)


@contextmanager
def _hooks(
    modules: dict[str, nn.Module],
    outputs: dict[str, Any],
    stop_early: bool,
    model: nn.Module,
    tracker: LayoutTracker | None,
    versions: dict[str, int] | None = None,
):
    """Register one capturing hook per module in `modules`, and with a `tracker` a
    layout-observing hook on every module of `model` (first, so it sees a layer before the
    forward stops there); remove them all whatever happens. `versions` receives each captured
    tensor's version counter, to tell outputs changed in place later in the forward."""
    wanted = set(modules)

    def hook(name: str, _module: nn.Module, _inputs: Any, output: Any) -> None:
        if name in outputs:  # a module called twice: the first call is what we show
            return
        outputs[name] = output
        tensor = first_tensor(output)
        if versions is not None and tensor is not None:
            versions[name] = tensor._version
        if stop_early and wanted.issubset(outputs):
            raise StopForward

    with Hooks() as hooks:
        if tracker is not None:
            for name, module in model.named_modules():
                hooks.forward_hook(
                    module, lambda m, i, o, _name=name: tracker.observe(_name, m, i, o)
                )
        for name, module in modules.items():
            hooks.forward_hook(module, lambda m, i, o, _name=name: hook(_name, m, i, o))
        yield


def capture(
    model: nn.Module,
    batch: torch.Tensor,
    layer_names: Sequence[str],
    *,
    stop_early: bool = True,
    allow_missing: bool = False,
    with_grad: bool = False,
    tracker: LayoutTracker | None = None,
    modules: dict[str, nn.Module] | None = None,
) -> dict[str, Any]:
    """Raw outputs of `layer_names` for `batch`, from one forward without autograd.

    The forward stops right after the last requested layer has run when `stop_early` is set.
    An output that a later in-place operation changes (a BatchNorm's, by an inplace ReLU) is
    captured again by a forward stopped at its layer, so every output holds its layer's
    values. A layer that never runs is an error unless `allow_missing`. With `with_grad` the outputs
    keep their graph to the input (parameters' `.grad` is never written by this module).
    A `tracker` observes every module's output and decides its layout. `modules`, the layers
    already resolved (`resolve_layers`), spares resolving them again.
    The model's modes and flags are restored and no hook is left behind, even on failure.
    """
    if modules is None:
        modules = resolve_layers(model, layer_names)
    outputs: dict[str, Any] = {}
    versions: dict[str, int] = {}
    grad_mode = torch.enable_grad() if with_grad else torch.no_grad()
    with (
        preserved_model_state(model),
        grad_mode,
        _hooks(modules, outputs, stop_early, model, tracker, versions),
    ):
        try:
            run_until_stopped(model, batch)
        except Exception as exc:
            raise RuntimeError(
                f"the model's forward failed on an input of shape {tuple(batch.shape)} "
                f"({type(exc).__name__}: {exc}). Check the image size and channels the model "
                "expects, or pass `transform=`."
            ) from exc
    missing = [name for name in layer_names if name not in outputs]
    if missing and not allow_missing:
        raise ValueError(
            f"layer(s) {', '.join(map(repr, missing))} exist but never ran in the forward pass "
            "(unused modules, or code paths the model skips); pick a layer that runs."
        )
    # An output changed in place later in the forward (a BatchNorm's, by the inplace ReLU
    # after it) no longer holds the layer's values: capture it again, stopped right there.
    for name, version in versions.items():
        if first_tensor(outputs[name])._version != version:
            again = capture(
                model,
                batch,
                [name],
                with_grad=with_grad,
                allow_missing=True,
                modules={name: modules[name]},
            )
            if name in again:
                outputs[name] = again[name]
    return outputs


def capture_with_layer_grad(
    model: nn.Module, batch: torch.Tensor, layer_name: str
) -> tuple[torch.Tensor, Any]:
    """(layer output, model output) from one whole forward, ready for a gradient at the layer.

    The forward runs without autograd up to `layer_name`. Its output is kept as a detached
    leaf that requires grad, and the rest of the model gets a copy of it with autograd on, so
    `torch.autograd.grad(f(model_output), layer_output)` is d f / d layer: nothing upstream
    of the layer is recorded, no parameter's `.grad` is written, and in-place operations
    after the layer (an inplace ReLU after a BatchNorm) cannot overwrite the kept output.
    Only the layer's first call is used. The model's modes and flags are restored and no hook
    is left behind, even on failure.

    Raises:
        ValueError: the layer never runs, or returns something other than one tensor (a tuple
            of an attention module: pick its enclosing block).
        RuntimeError: the forward failed, or the kept output was changed in place by the
            model (a module that holds on to its own output).
    """
    outputs, model_output = capture_with_layer_grads(model, batch, [layer_name])
    return outputs[layer_name], model_output


def capture_with_layer_grads(
    model: nn.Module, batch: torch.Tensor, layer_names: Sequence[str]
) -> tuple[dict[str, torch.Tensor], Any]:
    """`capture_with_layer_grad` for several layers from one forward: {layer: output} and the
    model output, one backward giving the gradient at every layer.

    Autograd starts at the first of the layers to run (its output a detached leaf, as there);
    a later layer's output is part of that graph and is kept as it is, the rest of the model
    getting a copy, so in-place operations after it cannot change it. A layer whose output does
    not depend on any earlier one kept becomes a leaf of its own. Same errors as
    `capture_with_layer_grad`, for the first layer at fault.
    """
    names = list(dict.fromkeys(layer_names))
    modules = resolve_layers(model, names)
    kept: dict[str, Any] = {}
    versions: dict[str, int] = {}

    def hook_for(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
            if name in kept:  # a module called twice: its first call is the one kept
                return None
            if not isinstance(output, torch.Tensor) or not output.is_floating_point():
                kept[name] = output
                return None
            if not output.requires_grad:  # the first layer, or one no kept layer reaches
                output = output.detach().requires_grad_(True)
            kept[name], versions[name] = output, output._version
            torch.set_grad_enabled(True)  # the rest of the forward is recorded, from here on
            return output.clone()

        return hook

    # no_grad's exit restores the grad mode the hooks turned on.
    with Hooks() as hooks, preserved_model_state(model), torch.no_grad():
        for name in names:
            hooks.forward_hook(modules[name], hook_for(name))
        try:
            model_output = model(batch)
        except Exception as exc:
            raise RuntimeError(
                f"the model's forward failed on an input of shape {tuple(batch.shape)} "
                f"({type(exc).__name__}: {exc}). Check the image size and channels the "
                "model expects, or pass `transform=`."
            ) from exc
    for layer_name in names:
        if layer_name not in kept:
            raise ValueError(
                f"layer {layer_name!r} exists but never ran in the forward pass (unused "
                "modules, or code paths the model skips); pick a layer that runs."
            )
        output = kept[layer_name]
        if not isinstance(output, torch.Tensor) or not output.requires_grad:
            raise ValueError(
                f"layer {layer_name!r} returns {type(output).__name__}, not one floating-point "
                "tensor, so there is no gradient to take at it; pick its enclosing block (a "
                "ViT block rather than its attention module) or a convolution or norm inside "
                "it."
            )
        if output._version != versions[layer_name]:
            raise RuntimeError(
                f"the output of layer {layer_name!r} was changed in place later in the "
                "forward, so its values are no longer the layer's; pick the module after the "
                "in-place operation."
            )
    return kept, model_output
