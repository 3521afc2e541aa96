"""A twin of the user's model for the explorer's background work: module objects of its own
over the same weights.

What the work does to its modules (hooks, eval mode, `requires_grad` flags, the redirected
ReLU's patched forwards, a move to another device) happens to the twin only, so a forward or
a training step the user runs meanwhile sees none of it; and the user's own hooks (a
`FeatureMonitor`'s) do not fire on the twin's forwards. The twin's parameters and buffers
alias the model's storage, so it computes with the weights as they are now, training included.
Each alias has its own version counter: an optimizer step of the user's that lands between a
forward and a backward of the twin's is not an autograd error there.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

__all__ = ["ModelTwin"]

# What a module's attributes hold that the twin keeps its own of (and its hooks: `_own`);
# all else is mirrored.
_OWN_STATE = {"_parameters", "_buffers", "_non_persistent_buffers_set", "_modules", "training"}
# Old-style reparametrisations compute a weight in a forward pre-hook: part of the model.
_MODEL_HOOKS = (WeightNorm, SpectralNorm)


class _Mark(NamedTuple):
    """What a parameter or buffer of the model was when the twin was made."""

    tensor: torch.Tensor
    data_ptr: int
    device: torch.device
    dtype: torch.dtype
    shape: torch.Size


def _alias(tensor: torch.Tensor) -> torch.Tensor:
    """A tensor over `tensor`'s storage with a version counter of its own."""
    try:
        alias = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
        return alias.set_(
            tensor.untyped_storage(), tensor.storage_offset(), tensor.size(), tensor.stride()
        )
    except (RuntimeError, TypeError, NotImplementedError):  # a tensor subclass: share it
        return tensor.detach()


def _own(key: str) -> bool:
    """Whether a module attribute named `key` is one the twin keeps its own of."""
    return key in _OWN_STATE or "hook" in key


def _twin_tree(module: nn.Module, memo: dict[int, object]) -> nn.Module:
    """`module` and its children as new module objects in eval mode, without the user's
    hooks, their parameters aliases that do not require grad. Shared modules and tied
    parameters stay shared (`memo`)."""
    if id(module) in memo:
        return memo[id(module)]  # type: ignore[return-value]
    twin = copy.copy(module)  # a new object with a shallow copy of the attributes
    memo[id(module)] = twin
    state = twin.__dict__
    for key, value in list(state.items()):
        if "hook" in key and isinstance(value, dict):  # the user's hooks: none
            state[key] = type(value)()
    state["_forward_pre_hooks"].update(
        (key, hook)
        for key, hook in module._forward_pre_hooks.items()
        if isinstance(hook, _MODEL_HOOKS)
    )
    params: dict[str, nn.Parameter | None] = {}
    for name, param in module._parameters.items():
        if param is not None and id(param) not in memo:
            memo[id(param)] = nn.Parameter(_alias(param), requires_grad=False)
        params[name] = None if param is None else memo[id(param)]  # type: ignore[assignment]
    state["_parameters"] = params
    state["_buffers"] = {
        name: None if buffer is None else _alias(buffer) for name, buffer in module._buffers.items()
    }
    state["_non_persistent_buffers_set"] = set(module._non_persistent_buffers_set)
    state["_modules"] = {
        name: None if child is None else _twin_tree(child, memo)
        for name, child in module._modules.items()
    }
    state["training"] = False
    return twin


def _marks(model: nn.Module) -> list[_Mark]:
    tensors = [*model.parameters(), *model.buffers()]
    return [_Mark(t, t.data_ptr(), t.device, t.dtype, t.shape) for t in tensors]


class ModelTwin:
    """`model`'s twin (`module`), and whether `model` has since changed under it.

    Raises:
        TypeError: the model cannot be twinned (a TorchScript module).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        memo: dict[int, object] = {}
        try:
            self.module: nn.Module = _twin_tree(model, memo)
        except Exception as exc:
            raise TypeError(f"cannot make a twin of {type(model).__name__}: {exc}") from exc
        self._pairs = [(m, memo[id(m)]) for m in model.modules()]
        self._marks = _marks(model)
        self._version = self.weights_version()

    def weights_version(self) -> int:
        """A number that grows with every in-place change of the model's weights and
        buffers (an optimizer step, a BatchNorm's statistics in training mode)."""
        return sum(mark.tensor._version for mark in self._marks)

    def synced_version(self) -> int:
        """`sync()`, then the model's weights' version: a cache key for results computed on the
        twin, which moves when the user trains, read with the twin's copies up to date."""
        self.sync()
        return self._version

    def outdated(self) -> bool:
        """True when the twin no longer mirrors the model: a module or tensor was replaced,
        moved or converted (`model.to`, `model.fc = ...`, `load_state_dict(assign=True)`)."""
        if [id(m) for m in self.model.modules()] != [id(m) for m, _ in self._pairs]:
            return True
        marks = _marks(self.model)
        return len(marks) != len(self._marks) or any(
            now.tensor is not then.tensor or now[1:] != then[1:]
            for now, then in zip(marks, self._marks)
        )

    def sync(self) -> bool:
        """Mirror the modules' plain attributes (a flag the user set) into the twin, and the
        weights where it holds copies (after a move to another device); True when the model's
        weights changed since the last sync or the twin was made, so results computed before
        are stale."""
        for original, twin in self._pairs:
            mine = twin.__dict__
            for key, value in original.__dict__.items():
                if not _own(key) and mine.get(key, _OWN_STATE) is not value:
                    mine[key] = value
        version = self.weights_version()
        if version == self._version:
            return False
        self._version = version
        copies = [*self.module.parameters(), *self.module.buffers()]
        with torch.no_grad():
            for original, twin in zip((mark.tensor for mark in self._marks), copies):
                if twin.data_ptr() != original.data_ptr():
                    twin.copy_(original)
        return True
