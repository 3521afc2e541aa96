"""Grad-CAM and per-channel contributions of one class at one layer, from one forward (no
autograd before the layer) and one backward (from the class's logit to the layer only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..core.capture import capture_with_layer_grad, capture_with_layer_grads
from ..core.features import FeatureStore
from ..core.precision import exact_float32
from .names import class_name_list
from .result import ClassEvidence

__all__ = ["TOP_CLASSES", "channel_contributions", "check_classifier", "class_evidence"]

TOP_CLASSES = 5
Target = int | Sequence[int] | torch.Tensor | None

_NOT_A_CLASSIFIER = (
    "class_evidence needs a classifier: a model whose output is (B, num_classes) logits. "
    "{found} Create the timm model with its classification head (the default, or "
    "`num_classes=<your classes>`), not `num_classes=0` (pooled features) or "
    "`features_only=True` (feature maps)."
)


def check_classifier(model: nn.Module, output: object | None = None) -> None:
    """ValueError unless `model` is a classifier: it has no `num_classes=0`, and its
    `output` (when given) is one (B, K) floating-point tensor with K >= 2."""
    if getattr(model, "num_classes", None) == 0:
        found = f"This {type(model).__name__} has `num_classes=0` (no classifier head)."
        raise ValueError(_NOT_A_CLASSIFIER.format(found=found))
    if output is None:
        return
    if not isinstance(output, torch.Tensor):
        found = f"This {type(model).__name__} returns {type(output).__name__}."
        raise ValueError(_NOT_A_CLASSIFIER.format(found=found))
    if output.ndim != 2 or output.shape[1] < 2 or not output.is_floating_point():
        found = (
            f"This {type(model).__name__} returns a tensor of shape {tuple(output.shape)} "
            f"({output.dtype})."
        )
        raise ValueError(_NOT_A_CLASSIFIER.format(found=found))


def _targets(target: Target, logits: torch.Tensor) -> list[int]:
    """One class index per image: the top-1 class by default, else `target` checked."""
    batch, num_classes = logits.shape
    if target is None:
        return logits.argmax(dim=1).tolist()
    if isinstance(target, torch.Tensor):
        target = target.tolist()
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        values = [int(target)] * batch
    elif isinstance(target, (list, tuple)) and all(
        isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in target
    ):
        if len(target) != batch:
            raise ValueError(
                f"`target` has {len(target)} classes for a batch of {batch} image(s); pass "
                "one class per image, one int for all, or None for each image's top class."
            )
        values = [int(t) for t in target]
    else:
        raise TypeError(f"`target` must be None, a class index or a list of them, got {target!r}.")
    for value in values:
        if not 0 <= value < num_classes:
            raise ValueError(
                f"target {value} is out of range: the model has {num_classes} classes "
                f"(0-{num_classes - 1})."
            )
    return values


def _check_target_type(target: Target) -> None:
    """TypeError before any work for a `target` that cannot be a class (a str, a float)."""
    if target is None or isinstance(target, torch.Tensor):
        return
    items = target if isinstance(target, (list, tuple)) else [target]
    if not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in items):
        raise TypeError(f"`target` must be None, a class index or a list of them, got {target!r}.")


def class_evidence(
    store: FeatureStore,
    batch: torch.Tensor,
    layer_name: str,
    target: Target = None,
    *,
    class_names: Sequence[str] | None = None,
) -> ClassEvidence:
    """The top classes of each image of `batch`, and Grad-CAM and per-channel contributions
    of the `target` class (per image: one int for all, a list, or None for the top-1) at
    `layer_name`, read as (B, C, H, W) maps in the layer's own layout. Exact float32.

    The model runs once, whole, in eval mode; autograd records only from the layer on, and
    one backward from the sum of the targets' logits gives each image's gradient (images do
    not mix in eval mode). Nothing of the model changes: no hook stays, modes and
    `requires_grad` come back, no parameter's `.grad` is written.

    Raises:
        LayerNotFoundError: `layer_name` is not a module of the model (closest names listed).
        ValueError: the model is not a classifier, or `target` is out of range.
        TypeError: `target` or `class_names` has the wrong type.
    """
    model = store.model
    if not isinstance(layer_name, str):
        raise TypeError(f"`layer_name` must be a string, got {type(layer_name).__name__}.")
    _check_target_type(target)
    check_classifier(model)
    with exact_float32():
        store.decide_layout(batch, layer_name)
        activation, logits = capture_with_layer_grad(model, batch, layer_name)
        check_classifier(model, logits)
        targets = _targets(target, logits)
        index = torch.tensor(targets, device=logits.device)
        score = logits.gather(1, index[:, None]).sum()
        if not score.requires_grad:
            raise ValueError(
                f"the model's logits do not depend on layer {layer_name!r} (no gradient flows "
                "back to it); pick a layer on the path to the classifier."
            )
        (gradient,) = torch.autograd.grad(score, activation, allow_unused=True)
        if gradient is None:
            raise ValueError(
                f"the model's logits do not depend on layer {layer_name!r}; pick a layer on "
                "the path to the classifier."
            )
        maps = store.normalise(activation.detach(), layer_name, batch)
        grads = store.normalise(gradient, layer_name, batch).maps
        acts = maps.maps
        alpha = grads.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((alpha * acts).sum(dim=1))
        contributions = (grads * acts).sum(dim=(2, 3))
    names = class_name_list(logits.shape[1], class_names)
    scores = logits.detach().float()
    top = torch.topk(scores, k=min(TOP_CLASSES, logits.shape[1]), dim=1).indices
    probabilities = torch.softmax(scores.double(), dim=1).gather(1, top).cpu().tolist()
    top_classes = [
        [(i, names[i], p) for i, p in zip(indices, values)]
        for indices, values in zip(top.cpu().tolist(), probabilities)
    ]
    return ClassEvidence(
        layer=layer_name,
        top_classes=top_classes,
        targets=targets,
        cam=cam.detach().float().cpu(),
        contributions=contributions.detach().float().cpu(),
        target_names=[names[t] for t in targets],
        layout=maps.layout.value,
    )


def channel_contributions(
    store: FeatureStore,
    batch: torch.Tensor,
    layer_names: Sequence[str],
    target: Target = None,
) -> dict[str, torch.Tensor]:
    """`class_evidence(...).contributions` at several layers from one forward and one
    backward: per layer, (B, C) gradient x activation of the `target` logits summed over
    positions, on the CPU. Same checks and errors as `class_evidence`, for the first layer at
    fault; cheaper than one `class_evidence` per layer by about the number of layers."""
    model = store.model
    names = list(dict.fromkeys(layer_names))
    _check_target_type(target)
    check_classifier(model)
    with exact_float32():
        for name in names:
            store.decide_layout(batch, name)
        activations, logits = capture_with_layer_grads(model, batch, names)
        check_classifier(model, logits)
        index = torch.tensor(_targets(target, logits), device=logits.device)
        score = logits.gather(1, index[:, None]).sum()
        if not score.requires_grad:
            raise ValueError(
                f"the model's logits do not depend on layers {names}; pick layers on the path "
                "to the classifier."
            )
        gradients = torch.autograd.grad(
            score, [activations[name] for name in names], allow_unused=True
        )
        found = {}
        for name, gradient in zip(names, gradients):
            if gradient is None:
                raise ValueError(
                    f"the model's logits do not depend on layer {name!r}; pick a layer on the "
                    "path to the classifier."
                )
            acts = store.normalise(activations[name].detach(), name, batch).maps
            grads = store.normalise(gradient, name, batch).maps
            found[name] = (grads * acts).sum(dim=(2, 3)).detach().float().cpu()
    return found
