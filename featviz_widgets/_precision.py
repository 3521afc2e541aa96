"""Reduced-precision evaluation: where the device runs it natively, and how to switch it on."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

import torch

__all__ = ["PRECISIONS", "precision_context", "precision_dtype"]

PRECISIONS = ("float32", "float16", "bfloat16")


def _cpu_supports(dtype: torch.dtype) -> bool:
    """Whether oneDNN has native kernels for `dtype` on this CPU (AVX512-BF16/FP16, AMX)."""
    name = "_is_mkldnn_bf16_supported" if dtype == torch.bfloat16 else "_is_mkldnn_fp16_supported"
    try:
        return bool(getattr(torch.ops.mkldnn, name)())
    except (AttributeError, RuntimeError):
        return False


def precision_dtype(precision: str, device: torch.device, method: str = "exact") -> torch.dtype:
    """The dtype for `precision`, or a ValueError saying why this device cannot use it and
    what to use instead with occlusion `method` ("exact" or "gradient")."""
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
    dtype = getattr(torch, precision)
    if dtype == torch.float32:
        return dtype
    if device.type == "cuda":
        supported = dtype == torch.float16 or torch.cuda.is_bf16_supported()
    else:
        supported = device.type == "cpu" and _cpu_supports(dtype)
    if not supported:
        instead = (
            "precision='float32' (method='gradient' is fast already)"
            if method == "gradient"
            else "method='gradient' for a fast approximation on this device"
        )
        raise ValueError(
            f"precision={precision!r} has no native support on {device} (it would be slower "
            f"than float32, not faster). Use a CUDA GPU, or {instead}."
        )
    return dtype


def precision_context(dtype: torch.dtype, device: torch.device) -> AbstractContextManager:
    """`torch.autocast` to `dtype` on `device`, or nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
