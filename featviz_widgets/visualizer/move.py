"""Moving the user's model to a device all the way, or not at all.

`nn.Module.to` moves one tensor after another, in place: an error part-way (CUDA out of memory
at the 30th parameter) leaves the model split across devices, unusable on either. `move_model`
keeps what each parameter, gradient and buffer was and puts every one of them back when the
move fails, so the model is as it was: the same parameter objects, on their devices, with
their values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["move_model"]


@dataclass
class _Parameter:
    """One parameter as it was: its object, its data and its gradient (object and data)."""

    module: nn.Module
    name: str
    param: nn.Parameter
    data: torch.Tensor
    grad: torch.Tensor | None
    grad_data: torch.Tensor | None


@dataclass
class _Buffer:
    module: nn.Module
    name: str
    buffer: torch.Tensor


def _devices(params: list[_Parameter], buffers: list[_Buffer]) -> list[str]:
    found = {str(p.data.device) for p in params} | {str(b.buffer.device) for b in buffers}
    return sorted(found)


def _snapshot(model: nn.Module) -> tuple[list[_Parameter], list[_Buffer]]:
    params, buffers = [], []
    for module in model.modules():
        for name, param in module._parameters.items():
            if param is not None:
                grad = param.grad
                params.append(
                    _Parameter(
                        module,
                        name,
                        param,
                        param.data,
                        grad,
                        None if grad is None else grad.data,
                    )
                )
        for name, buffer in module._buffers.items():
            if buffer is not None:
                buffers.append(_Buffer(module, name, buffer))
    return params, buffers


def _put_back(tensor: torch.Tensor, data: torch.Tensor) -> None:
    """`tensor` (the same object) holding `data` again: through `.data` where the two kinds
    of tensor allow it (CPU and CUDA), else by swapping it back (`swap_tensors` moves)."""
    try:
        tensor.data = data
    except RuntimeError:
        if isinstance(tensor, nn.Parameter):
            data = nn.Parameter(data, requires_grad=tensor.requires_grad)
        torch.utils.swap_tensors(tensor, data)


def _restore(params: list[_Parameter], buffers: list[_Buffer]) -> None:
    """Every parameter object back in its module with its old data and gradient, every
    buffer back in its module."""
    with torch.no_grad():
        for p in params:
            p.module._parameters[p.name] = p.param
            if p.param.device != p.data.device or p.param.data_ptr() != p.data.data_ptr():
                _put_back(p.param, p.data)
            grad, grad_data = p.grad, p.grad_data
            if grad is not None and grad_data is not None and grad.device != grad_data.device:
                _put_back(grad, grad_data)
            if p.param.grad is not p.grad:
                p.param.grad = p.grad
        for b in buffers:
            b.module._buffers[b.name] = b.buffer


def move_model(model: nn.Module, device: str | torch.device) -> nn.Module:
    """`model.to(device)`, all of it or none of it.

    Args:
        model: the model to move, in place (its parameters stay the same objects).
        device: where to.

    Returns:
        `model`, every parameter and buffer on `device`.

    Raises:
        RuntimeError: the move failed (the reason is its cause); every parameter, gradient
            and buffer is back on the device it was on, with its values.
    """
    device = torch.device(device)
    params, buffers = _snapshot(model)
    try:
        model.to(device)
    except BaseException as exc:
        _restore(params, buffers)
        if not isinstance(exc, Exception):  # KeyboardInterrupt: rolled back, still raised
            raise
        where = ", ".join(_devices(params, buffers)) or "its device"
        raise RuntimeError(
            f"could not move the model to {device}: {exc}; it was left on {where}."
        ) from exc
    return model
