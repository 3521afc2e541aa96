"""Evaluation precision: exact float32 (TF32 off), TF32, and autocast to float16 / bfloat16.

cuDNN convolutions run float32 in TF32 by default on Ampere and newer GPUs, and PyTorch's
float32 matmul precision may let cuBLAS (TF32) or oneDNN on CPUs (bfloat16) round too. These
switches are process-global, so exact float32 is held by a reference-counted request: the first
request saves the user's settings and switches, the last one to leave restores them, whatever
thread it runs on and however it leaves. A request for exact float32 outranks one for TF32.

PyTorch 2.9 added per-backend `fp32_precision` settings beside the legacy `allow_tf32` flags and
`float32_matmul_precision`, and refuses (at the kernel's check) a matmul whose legacy and new
settings disagree. Both are therefore switched together, and restored together.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import torch

__all__ = [
    "PRECISIONS",
    "exact_float32",
    "precision_context",
    "precision_dtype",
    "rounding_unit",
    "tf32_float32",
]

PRECISIONS = ("float32", "tf32", "float16", "bfloat16")

# The spacing of numbers just above 1.0 in each precision: TF32 keeps float32's range and
# float16's 10-bit mantissa.
_ROUNDING = {"float32": 2.0**-23, "tf32": 2.0**-10, "float16": 2.0**-10, "bfloat16": 2.0**-7}


def rounding_unit(precision: str) -> float:
    """The relative spacing of numbers near 1 in `precision` (float32's machine epsilon, ...)."""
    return _ROUNDING[precision]


def _cpu_supports(dtype: torch.dtype) -> bool:
    """Whether oneDNN has native kernels for `dtype` on this CPU (AVX512-BF16/FP16, AMX)."""
    name = "_is_mkldnn_bf16_supported" if dtype == torch.bfloat16 else "_is_mkldnn_fp16_supported"
    try:
        return bool(getattr(torch.ops.mkldnn, name)())
    except (AttributeError, RuntimeError):
        return False


def _has_tf32(device: torch.device) -> bool:
    """Whether `device` is a CUDA GPU with TF32 tensor cores (compute capability 8.0 or newer)."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def precision_dtype(precision: str, device: torch.device, method: str = "exact") -> torch.dtype:
    """The dtype for `precision`, or a ValueError saying why this device cannot use it and
    what to use instead with occlusion `method` ("exact" or "gradient")."""
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "tf32":
        if not _has_tf32(device):
            raise ValueError(
                f"precision='tf32' has no native support on {device}: TF32 runs on the tensor "
                "cores of CUDA GPUs of compute capability 8.0 and newer (Ampere, Hopper, ...). "
                "Use precision='float32' (exact), or such a GPU."
            )
        return torch.float32
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


def precision_context(precision: str, device: torch.device) -> AbstractContextManager:
    """What to run a computation in `precision` under: exact float32 (TF32 off), TF32 on,
    or `torch.autocast` to float16 / bfloat16 on `device`."""
    if precision == "float32":
        return exact_float32()
    if precision == "tf32":
        return tf32_float32()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, precision))


# ----------------------------------------------------------------------------- global flags
# PyTorch 2.9+: per-backend settings, each "ieee", "tf32", "bf16" or "none" (inherit).
_NEW_API = torch.__version__ >= (2, 9) and hasattr(torch.backends.cudnn, "conv")


def _leaves() -> tuple:
    """The per-operation settings this module switches (PyTorch 2.9+), CUDA's first."""
    if not _NEW_API:
        return ()
    backends = torch.backends
    return (
        backends.cuda.matmul,
        backends.cudnn.conv,
        backends.cudnn.rnn,
        backends.mkldnn.matmul,
        backends.mkldnn.conv,
        backends.mkldnn.rnn,
    )


@dataclass(frozen=True)
class _Flags:
    """Every setting that decides how float32 convolutions and matmuls round."""

    matmul: str | None  # legacy float32 matmul precision ("highest", "high", "medium")
    cudnn: bool | None  # legacy cuDNN allow_tf32
    leaves: tuple[str, ...]  # the `_leaves()` settings; () before PyTorch 2.9
    # None: a legacy setting that PyTorch would not report; it is left alone.


@contextmanager
def _trying(leaves: tuple, values: tuple[str, ...]) -> Iterator[None]:
    """Set `leaves` to `values` for a moment; put their settings back."""
    saved = [leaf.fp32_precision for leaf in leaves]
    try:
        for leaf, value in zip(leaves, values):
            leaf.fp32_precision = value
        yield
    finally:
        for leaf, value in zip(leaves, saved):
            leaf.fp32_precision = value


def _legacy_matmul() -> str | None:
    """The legacy float32 matmul precision. PyTorch refuses to report it while the new matmul
    settings disagree with it; with them in an agreeing state for a moment, it does."""
    try:
        return torch.get_float32_matmul_precision()
    except RuntimeError:
        pass
    leaves = _leaves()[0], _leaves()[3]  # CUDA's and oneDNN's matmuls
    for values in (("ieee", "ieee"), ("tf32", "tf32"), ("tf32", "bf16"), ("tf32", "ieee")):
        with _trying(leaves, values):
            try:
                return torch.get_float32_matmul_precision()
            except RuntimeError:
                continue
    return None


def _legacy_cudnn() -> bool | None:
    """The legacy cuDNN allow_tf32 flag. PyTorch reports it only while cuDNN's convolution and
    RNN settings agree with it; with them in each agreeing state for a moment, it does."""
    try:
        return bool(torch.backends.cudnn.allow_tf32)
    except RuntimeError:
        pass
    for value in ("ieee", "tf32"):
        with _trying(_leaves()[1:3], (value, value)):
            try:
                return bool(torch.backends.cudnn.allow_tf32)
            except RuntimeError:
                continue
    return None


def _read_flags() -> _Flags:
    leaves = tuple(leaf.fp32_precision for leaf in _leaves())
    return _Flags(_legacy_matmul(), _legacy_cudnn(), leaves)


def _write_flags(flags: _Flags) -> None:
    # Legacy first: its setters also write some of the new settings, which come last.
    if flags.matmul is not None:
        torch.set_float32_matmul_precision(flags.matmul)
    if flags.cudnn is not None:
        torch.backends.cudnn.allow_tf32 = flags.cudnn
    for leaf, value in zip(_leaves(), flags.leaves):
        leaf.fp32_precision = value


def _mode_flags(mode: str, saved: _Flags) -> _Flags:
    """The settings for "exact" (no TF32, no bfloat16 rounding anywhere) or "tf32" (TF32 for
    CUDA convolutions and matmuls, CPU kernels exact); legacy settings that `saved` could not
    tell are left alone, as they are for the user."""
    tf32 = mode == "tf32"
    matmul = None if saved.matmul is None else "high" if tf32 else "highest"
    cudnn = None if saved.cudnn is None else tf32
    cuda = "tf32" if tf32 else "ieee"
    leaves = (cuda, cuda, cuda, "ieee", "ieee", "ieee")[: len(saved.leaves)]
    return _Flags(matmul, cudnn, leaves)


class _Float32Requests:
    """Reference-counted requests for a float32 mode, shared by every thread of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"exact": 0, "tf32": 0}
        self._saved: _Flags | None = None  # the user's settings, while any request is held
        self._mode: str | None = None  # the mode the flags are in now

    def _settle(self) -> None:
        """Put the flags in the strictest requested mode, or back to the user's (lock held)."""
        mode = "exact" if self._counts["exact"] else "tf32" if self._counts["tf32"] else None
        if mode == self._mode:
            return
        if mode is None:
            saved, self._saved, self._mode = self._saved, None, None
            if saved is not None:
                _write_flags(saved)
            return
        if self._saved is None:
            self._saved = _read_flags()
        self._mode = mode
        _write_flags(_mode_flags(mode, self._saved))

    @contextmanager
    def hold(self, mode: str) -> Iterator[None]:
        with self._lock:
            self._counts[mode] += 1
            try:
                self._settle()
            except BaseException:
                self._counts[mode] -= 1
                self._settle()
                raise
        try:
            yield
        finally:
            with self._lock:
                self._counts[mode] -= 1
                self._settle()


_REQUESTS = _Float32Requests()


def exact_float32() -> AbstractContextManager[None]:
    """Exact float32 while inside: TF32 off for cuDNN convolutions, RNNs and cuBLAS matmuls,
    and no bfloat16 rounding of float32 matmuls or convolutions by oneDNN on CPUs.

    The user's settings (`torch.backends.cudnn.allow_tf32`, `torch.backends.cuda.matmul.
    allow_tf32`, `torch.set_float32_matmul_precision`, the `fp32_precision` settings) come back
    when the last overlapping request, from any thread, leaves, also on an exception. Changing
    them meanwhile from another thread is undone then.
    """
    return _REQUESTS.hold("exact")


def tf32_float32() -> AbstractContextManager[None]:
    """TF32 for CUDA convolutions and matmuls while inside (a faster approximation); like
    `exact_float32` otherwise, which wins while both are requested."""
    return _REQUESTS.hold("tf32")
