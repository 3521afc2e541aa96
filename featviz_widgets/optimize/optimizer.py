"""Feature visualization by optimization: images that maximise a channel of a layer.

`optimize_channels` runs the recipe of Olah et al. (Distill 2017, as in Lucid/Lucent; see
`imageparam`) on a `FeatureVisualizer`'s model: Adam on a Fourier, colour-decorrelated image,
random transforms each step, the model's own normalisation, the forward stopped at the layer.
Several channels are one batch; each image depends only on (seed, channel), so a batch gives the
images each channel would get alone.

Dead units: a unit that is 0 on every input the optimization starts from gives no gradient
through its ReLU. Every `nn.ReLU` module of the model then runs Lucid's "redirected ReLU": for
an example whose ordinary ReLU gradient is zero everywhere, it passes the gradient wherever that
would raise a negative input; an example with any ordinary gradient keeps it unchanged. Lucid
redirects during the first 16 steps; here during the first `max(16, steps // 10)` steps and,
after them, for each image whose objective was exactly 0 at the step before (a unit still dead;
decided on the device, per image, so batching does not change it), until no unit is dead.
Once a unit is alive, its gradient is the true one and the result maximises the true
activation. Functional `F.relu` calls inside a module's forward are not redirected.

The model is left exactly as it was: every module's mode and every `requires_grad` flag come
back, patched ReLU forwards are removed and capture hooks are gone, also on error or cancel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..core.cancel import OptimizationCancelled
from ..core.capture import preserved_model_state, resolve_layers
from ..core.inputs import IMAGENET_MEAN, IMAGENET_STD
from ..core.layout import Format
from ..core.precision import exact_float32, precision_context, precision_dtype
from ..core.progress import progress_bar
from ..core.validate import check_channel, check_position, check_positive_int, is_int
from .imageparam import ImageParam, TransformSampler, channel_generator
from .redirect_relu import redirected_relus

__all__ = ["OptimizationResult", "optimize_channels", "redirected_relus", "still_rising"]

# After the first steps, how often to ask the device whether a unit is still dead.
_DEAD_CHECK = 16


@dataclass
class OptimizationResult:
    """Images that maximise channels of a layer, and how the optimization went.

    Attributes:
        layer_name, channels, position: the objective (`position` None: the channel's mean
            over its map; (h, w): that unit).
        images: uint8 (N, size, size, 3), image i for `channels[i]`.
        pixels: the same as float32 in [0, 1].
        objective: (steps done, N) the objective at each step, on that step's transformed view.
        activations: (N,) the objective on the final image, resized for the model, with no
            random transform; in a partial result (`complete` False), the last step's objective.
        steps: the steps asked for; `steps_done` how many have run.
        settings: the recipe (size, model_size, lr, seed, fourier, decorrelate, transforms,
            redirect_relu, redirect_steps, precision).
        still_rising: (N,) bool, image i's objective still climbing at the end (see
            `RISING_GAIN`): more steps would give a stronger image. Only then can a photo
            excite the channel more (measured on a random resnet18's layer2 and layer3: every
            channel beat four sample photos with the defaults; with the explorer's 128-step
            CPU preview, the two that did not were both flagged).
    """

    layer_name: str
    channels: tuple[int, ...]
    position: tuple[int, int] | None
    images: np.ndarray
    pixels: np.ndarray = field(repr=False)
    objective: np.ndarray = field(repr=False)
    activations: np.ndarray
    steps: int
    steps_done: int
    settings: dict[str, Any]
    complete: bool = True
    still_rising: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def note(self) -> str:
        """A sentence naming the channels whose image was still improving, or ""."""
        rising = [c for c, r in zip(self.channels, self.still_rising) if r]
        if not rising:
            return ""
        return (
            f"channel{'s' if len(rising) > 1 else ''} {', '.join(map(str, rising))} of "
            f"{self.layer_name!r} still rising after {self.steps_done} steps: a natural image "
            "may excite it more than this picture; run more steps for a converged one."
        )


RISING_GAIN = 0.2
"""An image is still rising when its objective's mean over the last eighth of the steps is
more than this fraction (of that mean) above the mean over the eighth before: a steep climb,
as of a nearly dead unit waking up. A steady climb from 0 gains 13% and is not flagged; on a
random resnet18 most of the 128-step preview's gains were 3% to 15%; the two channels where a photo
won 36% and 55%."""


def still_rising(objective: np.ndarray) -> np.ndarray:
    """(N,) bool from the (steps, N) objective log (see `RISING_GAIN`); True for every image
    before 16 steps (too few to tell) and for an image whose objective ends at exactly 0 (a
    unit still dead)."""
    steps, n = objective.shape
    if steps < 16:
        return np.ones(n, dtype=bool)
    window = steps // 8
    last = objective[-window:].mean(axis=0)
    before = objective[-2 * window : -window].mean(axis=0)
    return (last - before > RISING_GAIN * np.abs(last)) | (last == 0)


# ----------------------------------------------------------------------------- validation
def _check_channels(channels: int | Sequence[int]) -> tuple[int, ...]:
    if is_int(channels):
        return (int(channels),)
    if (
        isinstance(channels, (str, bytes))
        or not isinstance(channels, Sequence)
        or not all(is_int(c) for c in channels)
    ):
        raise TypeError(f"`channels` must be an int or a list of ints, got {channels!r}.")
    if not channels:
        raise ValueError("`channels` is empty; pass at least one channel index.")
    return tuple(int(c) for c in channels)


def _model_size(viz: Any, model_size: int | tuple[int, int] | None) -> tuple[int, int]:
    """(H, W) of the model's input: as asked, else a ViT's fixed patch-embedding size, else
    the model's timm data config."""
    if model_size is None:
        for module in viz.model.modules():
            img_size = getattr(getattr(module, "patch_embed", None), "img_size", None)
            if isinstance(img_size, (tuple, list)) and len(img_size) == 2:
                return int(img_size[0]), int(img_size[1])
        return tuple(int(s) for s in viz.preprocessor.input_size[1:])  # type: ignore[return-value]
    if is_int(model_size):
        model_size = (model_size, model_size)  # type: ignore[assignment]
    if (
        not isinstance(model_size, (tuple, list))
        or len(model_size) != 2
        or not all(is_int(s) and s >= 1 for s in model_size)
    ):
        raise ValueError(
            f"`model_size` must be None, a positive int or (height, width), got {model_size!r}."
        )
    return int(model_size[0]), int(model_size[1])


def _check_position(
    position: object, maps: torch.Tensor, layout: Format, layer_name: str
) -> tuple[int, int] | None:
    if position is None:
        return None
    if layout is Format.POOLED:
        raise ValueError(
            f"layer {layer_name!r} outputs a (B, {maps.shape[1]}) vector with no spatial map "
            "(a classifier's logits or pooled features); leave `position=None`: the objective "
            "is the channel's value itself."
        )
    return check_position(position, layer_name, maps.shape[-2:])


# ----------------------------------------------------------------------------- the engine
def optimize_channels(
    viz: Any,
    layer_name: str,
    channels: int | Sequence[int],
    *,
    position: tuple[int, int] | None = None,
    size: int = 128,
    steps: int = 512,
    lr: float = 0.05,
    seed: int = 0,
    fourier: bool = True,
    decorrelate: bool = True,
    transforms: bool = True,
    model_size: int | tuple[int, int] | None = None,
    redirect_relu: bool = True,
    precision: str = "float32",
    on_progress: Callable[[int, int, OptimizationResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress_every: int = 16,
    progress: bool = True,
) -> OptimizationResult:
    """Optimise one image per channel of `layer_name` (see `FeatureVisualizer.optimize`).

    `viz` is a `FeatureVisualizer` (its model, device, dtype, feature store and preprocessor
    are used).
    """
    if not isinstance(layer_name, str):
        raise TypeError(f"`layer_name` must be a string, got {type(layer_name).__name__}.")
    resolve_layers(viz.model, [layer_name])  # unknown names: the close-match message
    chans = _check_channels(channels)
    size = check_positive_int("size", size, 8)
    steps = check_positive_int("steps", steps)
    progress_every = check_positive_int("progress_every", progress_every)
    if not is_int(seed) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"`lr` must be a positive number, got {lr!r}.")
    precision_dtype(precision, viz.device)  # a clear error for what this device lacks
    in_channels = viz.preprocessor.input_size[0]
    if in_channels != 3:
        raise ValueError(
            f"optimization makes RGB images; this model takes {in_channels}-channel input."
        )
    out_hw = _model_size(viz, model_size)
    device, dtype = viz.device, viz.dtype

    # One probe at the model's input size: the layer's channels, map and layout.
    grey = torch.full((1, 3, *out_hw), 0.0, device=device, dtype=dtype)
    with exact_float32():
        probe = viz.features.capture(grey, [layer_name])[layer_name]
    num_channels = probe.maps.shape[1]
    for c in chans:
        check_channel(c, layer_name, num_channels)
    unit = _check_position(position, probe.maps, probe.layout, layer_name)

    mean = viz.preprocessor.mean or IMAGENET_MEAN
    std = viz.preprocessor.std or IMAGENET_STD
    mean_t = torch.tensor(mean, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    redirect_steps = min(steps, max(16, steps // 10)) if redirect_relu else 0
    settings = {
        "size": size,
        "model_size": out_hw,
        "lr": float(lr),
        "seed": int(seed),
        "fourier": bool(fourier),
        "decorrelate": bool(decorrelate),
        "transforms": bool(transforms),
        "redirect_relu": bool(redirect_relu),
        "redirect_steps": redirect_steps,
        "precision": precision,
    }

    generators = [channel_generator(seed, c) for c in chans]
    image = ImageParam(generators, size, fourier=fourier, decorrelate=decorrelate, device=device)
    sampler = TransformSampler(
        generators, size, out_hw, steps=steps, enabled=transforms, device=device
    )
    # On CUDA one fused kernel in place of a dozen small ones a step.
    optimizer = torch.optim.Adam([image.param], lr=lr, fused=device.type == "cuda")
    n = len(chans)
    rows = torch.arange(n, device=device)
    wanted = torch.tensor(chans, device=device)
    log = torch.zeros((steps, n), device=device, dtype=torch.float32)
    dead = torch.zeros(n, device=device, dtype=torch.bool)

    def model_input(pixels: torch.Tensor, step: int | None) -> torch.Tensor:
        view = sampler.plain(pixels) if step is None else sampler(pixels, step)
        # Left in the default layout: a channels-last input with the model's channels-first
        # weights sent convolutions to slow paths and copies (measured on CPU).
        return ((view - mean_t) / std_t).to(dtype)

    def objective_of(maps: torch.Tensor) -> torch.Tensor:
        units = maps[rows, wanted]  # (N, h, w)
        if unit is None:
            return units.float().mean(dim=(1, 2))
        return units[:, unit[0], unit[1]].float()

    def result(done: int, activations: np.ndarray | None) -> OptimizationResult:
        with torch.no_grad():
            pixels = image.pixels().permute(0, 2, 3, 1).float().cpu().numpy()
        objective = log[:done].double().cpu().numpy()
        complete = activations is not None
        if activations is None:
            activations = objective[-1].copy() if done else np.zeros(n)
        return OptimizationResult(
            layer_name=layer_name,
            channels=chans,
            position=unit,
            images=(np.clip(pixels, 0, 1) * 255).round().astype(np.uint8),
            pixels=pixels,
            objective=objective,
            activations=activations,
            steps=steps,
            steps_done=done,
            settings=settings,
            complete=complete,
            still_rising=still_rising(objective),
        )

    layer_fn = viz.features.layer_fn(layer_name, with_grad=True)
    plain_fn = viz.features.layer_fn(layer_name)
    description = f"optimize {layer_name} {list(chans) if n > 1 else chans[0]}"
    model = viz.model
    with (
        preserved_model_state(model),
        redirected_relus(model, redirect_steps > 0) as redirect,
        precision_context(precision, device),
        progress_bar(steps, description, enabled=progress, unit="step") as advance_to,
    ):
        for param in model.parameters():
            param.requires_grad_(False)  # no weight gradients: faster, and .grad untouched
        redirecting = redirect_steps > 0
        for step in range(steps):
            if should_stop is not None and should_stop():
                raise OptimizationCancelled(
                    f"optimization of {layer_name!r} cancelled after {step} of {steps} steps"
                )
            if redirecting:  # the first steps, then the images whose unit is still dead
                redirect.active = dead | (step < redirect_steps)
                # Once every unit is alive, the model's own ReLUs (faster): one host sync
                # every `_DEAD_CHECK` steps.
                if step >= redirect_steps and step % _DEAD_CHECK == 0 and not bool(dead.any()):
                    redirecting, redirect.active = False, None
            optimizer.zero_grad(set_to_none=True)
            objective = objective_of(layer_fn(model_input(image.pixels(), step)))
            (-objective.sum()).backward()
            optimizer.step()
            log[step] = objective.detach()
            dead = objective.detach() == 0
            advance_to(step + 1)
            if on_progress is not None and ((step + 1) % progress_every == 0 or step + 1 == steps):
                on_progress(step + 1, steps, result(step + 1, None))
        redirect.active = None
        with torch.no_grad():
            final = objective_of(plain_fn(model_input(image.pixels(), None)))
        return result(steps, final.double().cpu().numpy())
