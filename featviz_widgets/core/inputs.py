"""Turn whatever image a user has into a model-ready batch."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

__all__ = ["ImageInput", "Preprocessor", "expected_channels", "image_name", "read_now", "to_pil"]

ImageInput = Image.Image | np.ndarray | torch.Tensor | str | os.PathLike | IO[bytes] | Sequence[Any]

_URL = re.compile(r"^(https?|ftp)://", re.IGNORECASE)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _find_pretrained_cfg(model: nn.Module) -> nn.Module | None:
    """The first module (the model itself or a wrapped backbone) carrying a timm data config."""
    for module in model.modules():
        if getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None):
            return module
    return None


def expected_channels(model: nn.Module) -> tuple[int, str] | None:
    """The number of input channels `model` takes and where that number comes from: timm's
    `in_chans` (which, unlike `pretrained_cfg["input_size"]`, follows `in_chans=1`), else the
    first `nn.Conv2d`'s `in_channels`; None when neither says."""
    for module in model.modules():
        in_chans = getattr(module, "in_chans", None)
        timm_model = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None)
        if timm_model and isinstance(in_chans, int) and in_chans > 0:
            return in_chans, f"timm's `in_chans={in_chans}`"
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels > 0:  # > 0: not a lazy one
            return module.in_channels, f"its first convolution {name!r} takes {module.in_channels}"
    return None


def _channel_fix(found: int, expected: int) -> str:
    """How to turn a `found`-channel tensor `x` into an `expected`-channel one."""
    if expected == 3 and found == 4:
        return "drop the alpha channel with `x[:, :3]`"
    if expected == 3 and found == 1:
        return "repeat the gray channel with `x.expand(-1, 3, -1, -1)`"
    if expected == 1 and found in (3, 4):
        return "average the colour channels with `x[:, :3].mean(dim=1, keepdim=True)`"
    return f"pass a (B, {expected}, H, W) tensor"


def _check_not_empty(shape: Sequence[int], what: str) -> None:
    if any(size == 0 for size in shape):
        raise ValueError(
            f"`image` {what} is empty (shape {tuple(shape)}); pass an image with at least "
            "one pixel on each side."
        )


def _array_to_pil(array: np.ndarray) -> Image.Image:
    """HW, HWC or CHW arrays; uint8, uint16, bool or float (0-1 or 0-255) to an RGB image."""
    if np.iscomplexobj(array):
        raise TypeError(
            f"`image` array has complex dtype {array.dtype}; pass a real-valued image, "
            "e.g. `np.abs(array)` or `array.real`."
        )
    _check_not_empty(array.shape, "array")
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(
            f"`image` array has shape {array.shape}; expected HW, HWC or CHW with 1, 3 or 4 "
            "channels. Pass a list of arrays for a batch."
        )
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.integer):
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
        pixels = np.clip(array / top * 255.0, 0, 255).round().astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        finite = array[np.isfinite(array)]
        if finite.size != array.size:
            raise ValueError("`image` array contains NaN or infinite values.")
        scale = 255.0 if finite.max(initial=0.0) <= 1.0 else 1.0
        pixels = np.clip(array * scale, 0, 255).round().astype(np.uint8)
    else:
        raise TypeError(f"`image` array has unsupported dtype {array.dtype}.")
    return Image.fromarray(pixels).convert("RGB")


def _is_file_like(image: object) -> bool:
    return callable(getattr(image, "read", None))


def _open_file_object(image: IO[bytes]) -> Image.Image:
    """A loaded copy of the image in an open binary file object (left open for its owner)."""
    name = getattr(image, "name", None) or type(image).__name__
    if getattr(image, "closed", False):
        raise ValueError(
            f"`image` file object {name!r} is closed; pass it while it is open, or its path."
        )
    try:
        with Image.open(image) as opened:
            opened.load()
            return opened.copy()
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(
            f"`image` file object {name!r} is not a readable image ({type(exc).__name__}: "
            f"{exc}); pass a file opened in binary mode (`open(path, 'rb')`) on an image "
            "Pillow can read (PNG, JPEG, WebP, TIFF, BMP, GIF...)."
        ) from exc


def to_pil(image: Image.Image | np.ndarray | str | os.PathLike | IO[bytes]) -> Image.Image:
    """Load one image (PIL of any mode, array, file path or binary file object) as an RGB
    PIL image."""
    if isinstance(image, str) and _URL.match(image):
        raise ValueError(
            f"`image` {image!r} is a URL; featviz_widgets reads local files only. Download "
            "it first, e.g. `path, _ = urllib.request.urlretrieve(url)` and pass `path`, or "
            "pass `PIL.Image.open(io.BytesIO(requests.get(url).content))`."
        )
    if _is_file_like(image):
        image = _open_file_object(image)  # type: ignore[arg-type]
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as opened:
                opened.load()
                image = opened.copy()
        except FileNotFoundError:
            raise FileNotFoundError(f"`image` file not found: {os.fspath(image)!r}") from None
        except OSError as exc:
            message = f"`image` file {os.fspath(image)!r} is not a readable image: {exc}"
            raise ValueError(message) from exc
    if isinstance(image, np.ndarray):
        return _array_to_pil(image)
    if not isinstance(image, Image.Image):
        raise TypeError(
            f"invalid `image` type {type(image).__name__}; expected a PIL image, numpy array, "
            "torch tensor, file path, binary file object or a list of these."
        )
    if image.width == 0 or image.height == 0:
        raise ValueError(
            f"`image` is empty ({image.width}x{image.height} pixels); pass an image with at "
            "least one pixel on each side."
        )
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        return _array_to_pil(values / (65535.0 if values.max(initial=0) > 255 else 255.0))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


@dataclass(frozen=True)
class Preprocessor:
    """Model-ready batches from user images, with the model's own timm data config.

    Args:
        transform: maps an RGB PIL image to a (C, H, W) float tensor. Defaults to the model's
            timm eval transform (resize, centre crop, mean/std), or ImageNet's at 224 px.
        mean, std: the normalisation the transform applies, used to show the model's input.
        preprocess_tensors: also run tensors through `transform` (default: tensors are taken
            as already model-ready).
        channels: the input channels the model takes and where that number comes from
            (see `expected_channels`); batches with another count are refused before the
            forward. None: not checked.
    """

    transform: Callable[[Image.Image], torch.Tensor]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    input_size: tuple[int, int, int]
    preprocess_tensors: bool = False
    channels: tuple[int, str] | None = None

    @classmethod
    def for_model(
        cls,
        model: nn.Module,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        preprocess_tensors: bool = False,
    ) -> Preprocessor:
        channels = expected_channels(model)
        if transform is not None:
            probe = transform(Image.new("RGB", (224, 224)))
            return cls(transform, None, None, tuple(probe.shape), preprocess_tensors, channels)
        import timm.data

        source = _find_pretrained_cfg(model)
        if source is not None:
            config = timm.data.resolve_model_data_config(source)
        else:
            config = {
                "input_size": (3, 224, 224),
                "interpolation": "bicubic",
                "mean": IMAGENET_MEAN,
                "std": IMAGENET_STD,
                "crop_pct": 0.875,
                "crop_mode": "center",
            }
        built = timm.data.create_transform(**config, is_training=False)
        input_size = tuple(config["input_size"])
        if channels is not None:  # timm keeps (3, H, W) in the config of `in_chans=1` models
            input_size = (channels[0], *input_size[1:])
        return cls(
            built,
            tuple(config["mean"]),
            tuple(config["std"]),
            input_size,
            preprocess_tensors,
            channels,
        )

    def __call__(self, image: ImageInput, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """A (B, C, H, W) batch on `device` in `dtype`."""
        if isinstance(image, torch.Tensor):
            batch = self._from_tensor(image)
        elif isinstance(image, (list, tuple)):
            if not image:
                raise ValueError("`image` is an empty list; pass at least one image.")
            parts = [self(item, device, dtype) for item in image]
            shapes = {tuple(p.shape[1:]) for p in parts}
            if len(shapes) > 1:
                raise ValueError(
                    f"images in the list give different input sizes {sorted(shapes)}; "
                    "use a transform that resizes them to one size."
                )
            return torch.cat(parts)
        else:
            batch = self._transform(to_pil(image)).unsqueeze(0)
        self._check_channels(batch, from_tensor=isinstance(image, torch.Tensor))
        return batch.to(device=device, dtype=dtype)

    def _check_channels(self, batch: torch.Tensor, from_tensor: bool) -> None:
        """A ValueError, before any forward, when `batch` has channels the model cannot take."""
        if self.channels is None or batch.shape[1] == self.channels[0]:
            return
        expected, source = self.channels
        found = batch.shape[1]
        if from_tensor and not self.preprocess_tensors:
            what = f"`image` tensor of shape {tuple(batch.shape)} has {found} channel(s)"
            fix = _channel_fix(found, expected)
        else:
            what = f"the transform made {found}-channel input from `image`"
            fix = f"pass a `transform=` that makes {expected}-channel tensors"
            if not self.preprocess_tensors:
                fix += f", or a model-ready (B, {expected}, H, W) tensor"
        raise ValueError(f"{what}, but the model expects {expected} ({source}); {fix}.")

    def _transform(self, pil: Image.Image) -> torch.Tensor:
        out = self.transform(pil)
        if not isinstance(out, torch.Tensor) or out.ndim != 3:
            raise TypeError("`transform` must return a (C, H, W) torch.Tensor.")
        return out

    def _from_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.ndim not in (3, 4):
            raise ValueError(
                f"`image` tensor has shape {tuple(tensor.shape)}; "
                "expected (C, H, W) or (B, C, H, W)."
            )
        if tensor.is_complex():
            raise TypeError(
                f"`image` tensor has complex dtype {tensor.dtype}; pass a real-valued image, "
                "e.g. `tensor.abs()` or `tensor.real`."
            )
        _check_not_empty(tensor.shape, "tensor")
        if not tensor.is_floating_point():
            tensor = tensor.float() / 255.0 if tensor.dtype == torch.uint8 else tensor.float()
        batch = tensor.detach().unsqueeze(0) if tensor.ndim == 3 else tensor.detach()
        if self.preprocess_tensors:
            images = [to_pil(img.permute(1, 2, 0).cpu().float().numpy()) for img in batch]
            return torch.stack([self._transform(img) for img in images])
        return batch

    def to_display(self, batch: torch.Tensor, index: int = 0) -> np.ndarray:
        """The `index`-th model input as uint8 (H, W, 3), undoing the normalisation."""
        image = batch[index].detach().float().cpu()
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        image = image[:3]
        if self.mean is not None and self.std is not None and len(self.mean) == image.shape[0]:
            mean = torch.tensor(self.mean).view(-1, 1, 1)
            std = torch.tensor(self.std).view(-1, 1, 1)
            image = image * std + mean
        else:  # unknown normalisation: stretch to the full range
            low, high = image.min(), image.max()
            image = (image - low) / (high - low) if high > low else image * 0
        pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8)
        return pixels.permute(1, 2, 0).numpy()


def image_name(image: ImageInput) -> str:
    """The file name of a path or named file object, else ""."""
    name = getattr(image, "name", None) if callable(getattr(image, "read", None)) else image
    return os.path.basename(os.fspath(name)) if isinstance(name, (str, os.PathLike)) else ""


def read_now(image: ImageInput) -> ImageInput:
    """A file object's image, read at once: jobs re-read their source later (a new device, a
    new comparison), when the caller may have closed the file. Other inputs as they are; an
    unreadable file is left for the job to report in `error`."""
    if not callable(getattr(image, "read", None)):
        return image
    try:
        return to_pil(image)  # type: ignore[arg-type]
    except ValueError:
        return image
