"""Lucid's "redirected ReLU", for feature visualization by optimization (`optimizer`): a ReLU
whose backward, for an image it passes no gradient for at all, passes the gradient wherever
that would raise a negative input, so a dead unit still gets one; and a context that runs it
in place of every `nn.ReLU` module of a model, restoring their forwards on leaving.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["redirected_relus"]

_MISSING = object()


class _RedirectedReLU(torch.autograd.Function):
    """ReLU whose backward, for an example the ordinary ReLU passes no gradient for at all and
    whose entry of `active` (a (B,) bool tensor) is True, passes the gradient wherever it would
    raise the input (or the input is not negative)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, active)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, active = ctx.saved_tensors
        relu_grad = torch.ops.aten.threshold_backward(grad, x, 0)  # ReLU's own: 0 where x <= 0
        if x.ndim < 2 or x.shape[0] != active.shape[0]:
            return relu_grad, None  # not batched like the images: no redirection
        blocked = active & ~relu_grad.flatten(1).any(dim=1)
        if x.device.type == "cpu" and not bool(blocked.any()):  # free to ask on a CPU
            return relu_grad, None
        # Descent lowers x where grad > 0: that is blocked for negative inputs.
        redirected = grad.masked_fill((x < 0) & (grad > 0), 0)
        return torch.where(blocked.view(-1, *([1] * (x.ndim - 1))), redirected, relu_grad), None


class _Switch:
    """Which images (a (N,) bool tensor) the redirected ReLU acts for; None: plain ReLUs."""

    active: torch.Tensor | None = None


@contextmanager
def redirected_relus(model: nn.Module, enabled: bool = True) -> Iterator[_Switch]:
    """While inside, each `nn.ReLU` module of `model` runs the redirected ReLU for the images
    the yielded switch's `active` marks (its own forward while `active` is None); the modules'
    forwards are restored on leaving, whatever happens."""
    switch = _Switch()
    patched: list[tuple[nn.Module, object]] = []
    try:
        if enabled:
            for module in model.modules():
                if type(module) is not nn.ReLU:
                    continue
                saved = module.__dict__.get("forward", _MISSING)
                own = module.forward

                def forward(x: torch.Tensor, _own: Callable = own) -> torch.Tensor:
                    active = switch.active
                    if active is None or not torch.is_grad_enabled():
                        return _own(x)
                    return _RedirectedReLU.apply(x, active)

                module.__dict__["forward"] = forward
                patched.append((module, saved))
        yield switch
    finally:
        for module, saved in reversed(patched):
            if saved is _MISSING:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = saved
