"""The one place the package puts forward hooks on a model, and takes them off again.

Every forward hook and forward pre-hook of the package is registered through a `Hooks`,
which keeps the handles and removes them all at once (as torch-cam keeps `hook_handles`).
Temporary hooks live in a `with Hooks() as hooks:` block: they come off on the way out,
also when the block raises or registering one of several fails half way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["Hooks", "StopForward", "run_until_stopped"]


class StopForward(Exception):
    """Raised from a hook once the wanted layers have run: the rest of the forward is skipped.

    Run such a forward with `run_until_stopped`, which catches it."""


def run_until_stopped(forward: Callable[..., Any], *args: Any) -> Any:
    """`forward(*args)`, or None when a hook stopped it with `StopForward`.
    Any other exception propagates."""
    try:
        return forward(*args)
    except StopForward:
        return None


class Hooks:
    """Forward hooks and pre-hooks registered together, removed together.

    `remove()` takes every one off and may be called any number of times; the set can be
    used again afterwards. As a context manager it removes them on exit, whatever happens.
    Each registration also returns torch's own handle, whose `remove()` is idempotent too.
    """

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def forward_hook(
        self, module: nn.Module, hook: Callable[..., Any], *, with_kwargs: bool = False
    ) -> RemovableHandle:
        """Call `hook(module, args, output)` (with `with_kwargs`: `(module, args, kwargs,
        output)`) after each forward of `module`."""
        handle = module.register_forward_hook(hook, with_kwargs=with_kwargs)
        self._handles.append(handle)
        return handle

    def forward_pre_hook(
        self, module: nn.Module, hook: Callable[..., Any], *, with_kwargs: bool = False
    ) -> RemovableHandle:
        """Call `hook(module, args)` (with `with_kwargs`: `(module, args, kwargs)`) before each
        forward of `module`."""
        handle = module.register_forward_pre_hook(hook, with_kwargs=with_kwargs)
        self._handles.append(handle)
        return handle

    def remove(self) -> None:
        """Remove every hook registered here. Idempotent."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()

    def __len__(self) -> int:
        return len(self._handles)

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
