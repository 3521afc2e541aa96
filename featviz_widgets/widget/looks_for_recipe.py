"""The recipe of the explorer's "looks for" runs: the full one on CUDA (512 steps at the
model's input size), a 128-step preview at `model_size=128` elsewhere, and which `optimize`
options `looks_for_options` may override."""

from __future__ import annotations

from typing import Any

__all__ = [
    "FULL_STEPS",
    "LOOKS_FOR_OPTIONS",
    "PREVIEW_STEPS",
    "PROGRESS_EVERY",
    "check_looks_for_options",
    "looks_for_settings",
]

PREVIEW_STEPS = 128
"""Steps of the preview run on devices other than CUDA."""
FULL_STEPS = 512
"""Steps of the full recipe, on CUDA."""
PREVIEW_MODEL_SIZE = 128
"""The preview's model input size (about half the CPU time of 224 px)."""
PICTURE_SIZE = 128
PROGRESS_EVERY = 4
"""`optimize`'s `progress_every`: how often a partial picture is made."""

LOOKS_FOR_OPTIONS = (
    "size",
    "model_size",
    "lr",
    "seed",
    "fourier",
    "decorrelate",
    "transforms",
    "redirect_relu",
    "precision",
)
"""The `optimize` recipe options `looks_for_options` may set."""


def looks_for_settings(device_type: str, steps: int | None, options: dict[str, Any]) -> dict:
    """The `optimize` keyword arguments of a "looks for" run on `device_type`: the full recipe
    on CUDA, a preview elsewhere; `steps` (None: the device's default) and `options` win."""
    full = device_type == "cuda"
    settings: dict[str, Any] = {
        "steps": FULL_STEPS if full else PREVIEW_STEPS,
        "size": PICTURE_SIZE,
        "model_size": None if full else PREVIEW_MODEL_SIZE,
    }
    if steps is not None:
        settings["steps"] = steps
    settings.update(options)
    return settings


def check_looks_for_options(options: dict) -> dict:
    """`options` if every key is a recipe option `looks_for_options` may set, else ValueError
    (values are checked by `optimize` when it runs; a bad one shows in `error`)."""
    unknown = sorted(set(options) - set(LOOKS_FOR_OPTIONS))
    if unknown:
        raise ValueError(
            f"`looks_for_options` takes {list(LOOKS_FOR_OPTIONS)}, not {unknown}; the number of "
            "steps is `looks_for_steps`."
        )
    return dict(options)
