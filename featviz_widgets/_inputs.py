"""Turn whatever image a user has into a model-ready batch."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

__all__ = ["ImageInput", "Preprocessor", "to_pil"]

ImageInput = Image.Image | np.ndarray | torch.Tensor | str | os.PathLike | Sequence[Any]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _find_pretrained_cfg(model: nn.Module) -> nn.Module | None:
    """The first module (the model itself or a wrapped backbone) carrying a timm data config."""
    for module in model.modules():
        if getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None):
            return module
    return None


def _array_to_pil(array: np.ndarray) -> Image.Image:
    """HW, HWC or CHW arrays; uint8, uint16, bool or float (0-1 or 0-255) to an RGB image."""
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


def to_pil(image: Image.Image | np.ndarray | str | os.PathLike) -> Image.Image:
    """Load one image (PIL of any mode, array or file path) as an RGB PIL image."""
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
            "torch tensor, file path or a list of these."
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
    """

    transform: Callable[[Image.Image], torch.Tensor]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    input_size: tuple[int, int, int]
    preprocess_tensors: bool = False

    @classmethod
    def for_model(
        cls,
        model: nn.Module,
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
        preprocess_tensors: bool = False,
    ) -> Preprocessor:
        if transform is not None:
            probe = transform(Image.new("RGB", (224, 224)))
            return cls(transform, None, None, tuple(probe.shape), preprocess_tensors)
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
        return cls(
            built,
            tuple(config["mean"]),
            tuple(config["std"]),
            tuple(config["input_size"]),
            preprocess_tensors,
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
        return batch.to(device=device, dtype=dtype)

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
