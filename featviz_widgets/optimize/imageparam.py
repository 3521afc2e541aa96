"""Image parameterisations and random transforms for feature visualization by optimization.

The recipe is the one of Olah, Mordvintsev and Schubert, "Feature Visualization" (Distill,
2017), as Lucid and Lucent implement it: the image is a Fourier spectrum scaled by 1/f
(so that steps change low frequencies as readily as high ones), in a decorrelated colour space
(ImageNet's colour correlation), squashed to [0, 1] by a sigmoid; each step sees it padded,
jittered, scaled, rotated and jittered again, which keeps the optimum robust instead of
adversarial. Written from the paper and the libraries' documented constants.

Every random draw for image i comes from its own `torch.Generator`, seeded from
(seed, channel): an image is the same whether optimised alone or in a batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

__all__ = [
    "COLOR_CORRELATION",
    "ImageParam",
    "TransformSampler",
    "channel_generator",
]

# Square root of ImageNet's RGB colour covariance (via its SVD), as published with Lucid:
# columns are the decorrelated colour directions.
_COLOR_CORRELATION_SVD_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float64
)
COLOR_CORRELATION = _COLOR_CORRELATION_SVD_SQRT / np.max(
    np.linalg.norm(_COLOR_CORRELATION_SVD_SQRT, axis=0)
)

# Standard deviation of the random initialisation (pixels or spectrum coefficients).
INIT_SD = 0.01
# Lucid divides the inverse FFT's output by this, keeping the start close to grey.
_FFT_DAMPING = 4.0

# The random transforms of each step (Lucid's "standard transforms").
PAD = 12
JITTER_1 = 8
SCALES = tuple(1 + (i - 5) / 50 for i in range(11))  # 0.9 ... 1.1
ANGLES = tuple(range(-10, 11)) + (0,) * 5  # degrees; upright 6 times in 26
JITTER_2 = 4


def channel_generator(seed: int, channel: int) -> torch.Generator:
    """A CPU generator that depends on (seed, channel) only."""
    state = np.random.SeedSequence([int(seed), int(channel)]).generate_state(1, np.uint64)[0]
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(state))
    return generator


def _fourier_scale(height: int, width: int, decay_power: float = 1.0) -> torch.Tensor:
    """(height, width // 2 + 1) weights 1 / f**decay_power of the real FFT's frequencies,
    the lowest (0) clamped to one cycle per image."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(height, width)) ** decay_power
    return torch.from_numpy(scale.astype(np.float32))


class ImageParam:
    """N images of `size` x `size`, their pixels a differentiable function of `self.param`.

    Args:
        generators: one per image (its initialisation is drawn from it).
        size: image side in pixels.
        fourier: a 1/f-scaled spectrum (else raw pixels before the sigmoid).
        decorrelate: the three channels are decorrelated colour components (else RGB).
        device: where the parameter lives.
    """

    def __init__(
        self,
        generators: list[torch.Generator],
        size: int,
        *,
        fourier: bool = True,
        decorrelate: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        self.size = size
        self.fourier = fourier
        self.decorrelate = decorrelate
        if fourier:
            shape = (3, size, size // 2 + 1, 2)
            self.scale = _fourier_scale(size, size).to(device)[None, None]
        else:
            shape = (3, size, size)
            self.scale = None
        # Each image's draw from its own generator, on the CPU: the same on every device.
        init = torch.stack([torch.randn(shape, generator=g) * INIT_SD for g in generators])
        self.param = init.to(device).requires_grad_(True)
        self.color = torch.tensor(COLOR_CORRELATION.T, dtype=torch.float32, device=device)

    def pixels(self) -> torch.Tensor:
        """(N, 3, size, size) images in [0, 1] (differentiable in `param`)."""
        if self.fourier:
            spectrum = torch.view_as_complex(self.param) * self.scale
            raw = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
            raw = raw / _FFT_DAMPING
        else:
            raw = self.param
        if self.decorrelate:
            raw = torch.einsum("nchw,cd->ndhw", raw, self.color)
        return torch.sigmoid(raw)


def _theta(
    size: int,
    jitter_1: ArrayLike,
    scale: ArrayLike,
    angle_deg: ArrayLike,
    jitter_2: ArrayLike,
) -> np.ndarray:
    """The 2x3 `affine_grid` matrices (normalised output -> normalised input coordinates) of
    pad, jitter, scale, rotate and jitter applied in turn to a `size` x `size` image; the
    result fills the whole output, whatever its size (the final resize is part of it).
    Vectorised: `scale` and `angle_deg` of shape S, jitters (*S, 2) give (*S, 2, 3).

    In pixels: the padded canvas has side P = size + 2 * PAD; the first jitter keeps a window
    of side W1 = P - JITTER_1 at offset j; scaling makes it W2 = W1 * scale; rotation turns it
    about its centre; the second jitter keeps W3 = W2 - JITTER_2 from offset k.
    """
    scale = np.asarray(scale, dtype=np.float64)
    a = np.radians(np.asarray(angle_deg, dtype=np.float64))
    j = np.asarray(jitter_1, dtype=np.float64)
    k = np.asarray(jitter_2, dtype=np.float64)
    w1 = size + 2 * PAD - JITTER_1
    w2 = w1 * scale
    w3 = w2 - JITTER_2
    cos, sin = np.cos(a), np.sin(a)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    linear = (w3 / (size * scale))[..., None, None] * rotation
    centre = w2 / 2
    # the output's centre, in the W2 frame
    inside = centre[..., None] + (rotation @ (k + (w3 / 2 - centre)[..., None])[..., None])[..., 0]
    offset = (2 / size) * (j - PAD + inside / scale[..., None]) - 1
    return np.concatenate([linear, offset[..., None]], axis=-1)


class TransformSampler:
    """Per-step random transforms and the final resize, one `grid_sample` for the batch.

    Every step's matrices are drawn up front and sent to the device once: the loop then does
    no host work and no host-to-device copy per step (on a GPU, where a step's kernels take a
    few milliseconds, such per-step work would be what the GPU waits on). Outside the image,
    the canvas is grey (0.5), as with Lucid's constant padding.
    """

    def __init__(
        self,
        generators: list[torch.Generator],
        size: int,
        out_size: tuple[int, int],
        *,
        steps: int = 1,
        enabled: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        self.out_size = out_size
        identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device)
        self._identity = identity.expand(len(generators), 2, 3)
        self._schedule = (
            torch.tensor(self.draw(generators, size, steps), dtype=torch.float32).to(device)
            if enabled
            else None
        )

    @staticmethod
    def draw(generators: list[torch.Generator], size: int, steps: int) -> np.ndarray:
        """(steps, N, 2, 3) matrices, image i's drawn from `generators[i]` only."""
        per_image = []
        for generator in generators:
            u = torch.rand((steps, 6), generator=generator, dtype=torch.float64).numpy()
            jitter_1 = np.floor(u[:, 0:2] * JITTER_1)
            scale = np.asarray(SCALES)[np.floor(u[:, 2] * len(SCALES)).astype(int)]
            angle = np.asarray(ANGLES)[np.floor(u[:, 3] * len(ANGLES)).astype(int)]
            jitter_2 = np.floor(u[:, 4:6] * JITTER_2)
            per_image.append(_theta(size, jitter_1, scale, angle, jitter_2))
        return np.stack(per_image, axis=1)

    def resample(self, pixels: torch.Tensor, thetas: torch.Tensor) -> torch.Tensor:
        """`pixels` (N, 3, size, size) seen through `thetas` at `out_size`."""
        grid = F.affine_grid(thetas, [pixels.shape[0], 3, *self.out_size], align_corners=False)
        centred = pixels - 0.5  # zeros padding = grey canvas
        return F.grid_sample(centred, grid, mode="bilinear", align_corners=False) + 0.5

    def __call__(self, pixels: torch.Tensor, step: int) -> torch.Tensor:
        """`pixels` through step `step`'s random transforms (a plain resize if disabled)."""
        if self._schedule is None:
            return self.plain(pixels)
        return self.resample(pixels, self._schedule[step])

    def plain(self, pixels: torch.Tensor) -> torch.Tensor:
        """`pixels` resized to `out_size` only (no random transform)."""
        return self.resample(pixels, self._identity)
