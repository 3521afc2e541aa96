"""Image collections for dataset scans: folders, lists, `Dataset`s and `DataLoader`s.

Every collection becomes an ordered list of sources (a file path, or an index into the user's
sequence or dataset) and a way to read image `i` again. Images are decoded and preprocessed in
`DataLoader` workers; an image that cannot be read or preprocessed is reported, not fatal. An
exception raised by the user's own `Dataset.__getitem__` is not ours to hide: it propagates.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from ..core.inputs import Preprocessor

__all__ = ["IMAGE_EXTENSIONS", "Batch", "DataSource", "open_source"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)


def _image_files(folder: Path) -> list[str]:
    """Image files under `folder`, recursively, in a stable (sorted relative path) order."""
    found = [
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
    ]
    return [str(path) for path in sorted(found, key=lambda p: p.relative_to(folder).as_posix())]


def _strip_label(item: Any) -> Any:
    """The image of an `(image, label, ...)` item, or the item itself."""
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return item[0]
    return item


@dataclass
class Batch:
    """A prepared batch: global image indices of the images that loaded, their (B, C, H, W)
    tensor (None if none did), and (index, reason) of those that did not."""

    indices: list[int]
    images: torch.Tensor | None
    skipped: list[tuple[int, str]] = field(default_factory=list)


class _Prepared(Dataset):
    """Image `i` of a source as a preprocessed (C, H, W) CPU tensor, or the reason it failed."""

    def __init__(self, source: DataSource, preprocessor: Preprocessor) -> None:
        self.source, self.preprocessor = source, preprocessor

    def __len__(self) -> int:
        return len(self.source.sources)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        item = self.source.item(i)  # the user's own errors propagate
        try:
            tensor = self.preprocessor(item, torch.device("cpu"), torch.float32)
        except Exception as exc:  # unreadable, corrupt, or not an image: skipped and reported
            return i, None, f"{type(exc).__name__}: {exc}"
        if tensor.shape[0] != 1:
            return i, None, f"an item is a batch of {tensor.shape[0]} images, not one image"
        return i, tensor[0], None


def _collate(items: list[tuple[int, torch.Tensor | None, str | None]]) -> Batch:
    good = [(i, t) for i, t, _ in items if t is not None]
    skipped = [(i, reason) for i, t, reason in items if t is None]
    if not good:
        return Batch([], None, skipped)
    shapes = {tuple(t.shape) for _, t in good}
    if len(shapes) > 1:
        raise ValueError(
            f"images of one batch give different input sizes {sorted(shapes)}; a dataset scan "
            "needs one size: use a transform that resizes and crops (the model's default does)."
        )
    return Batch([i for i, _ in good], torch.stack([t for _, t in good]), skipped)


class DataSource:
    """An ordered image collection: `sources[i]` names image i (a path or an index).

    `kind` is "files" (a folder or a list of paths), "sequence" (a list of in-memory images),
    "dataset" or "loader" (a `DataLoader`, iterated as it is)."""

    def __init__(self, kind: str, sources: list[str | int], data: Any) -> None:
        self.kind, self.sources, self.data = kind, sources, data

    def item(self, i: int) -> Any:
        """Image i as the user gave it (a path, a PIL image, an array, a tensor)."""
        if self.kind == "files":
            return self.sources[i]
        if self.kind == "loader":
            loader: DataLoader = self.data
            if not isinstance(loader.sampler, SequentialSampler):
                raise ValueError(
                    "this DataLoader shuffles or samples, so its image i cannot be read again; "
                    "pass its `dataset` (or a DataLoader without shuffle) to re-read examples."
                )
            return _strip_label(loader.dataset[i])
        return _strip_label(self.data[i])

    def batches(
        self,
        numbers: Sequence[int],
        batch_size: int,
        preprocessor: Preprocessor,
        num_workers: int,
        pin_memory: bool,
    ) -> Iterator[Batch]:
        """Batches `numbers` (batch b holds images b*batch_size up to (b+1)*batch_size)."""
        total = len(self.sources)
        if self.kind == "loader":
            yield from self._loader_batches(numbers, preprocessor)
            return
        plan = [list(range(b * batch_size, min((b + 1) * batch_size, total))) for b in numbers]
        loader = DataLoader(
            _Prepared(self, preprocessor),
            batch_sampler=plan,
            collate_fn=_collate,
            num_workers=num_workers,
            pin_memory=pin_memory,
        )
        yield from loader

    def _loader_batches(
        self, numbers: Sequence[int], preprocessor: Preprocessor
    ) -> Iterator[Batch]:
        wanted = list(numbers)
        if wanted != list(range(wanted[0], wanted[0] + len(wanted)) if wanted else []):
            raise ValueError("a DataLoader is read in order: it cannot be sharded or skipped.")
        if not wanted:
            return
        offset = 0
        for number, batch in enumerate(self.data):
            tensor = preprocessor(_strip_label(batch), torch.device("cpu"), torch.float32)
            if number >= wanted[0]:
                yield Batch(list(range(offset, offset + tensor.shape[0])), tensor)
                if number == wanted[-1]:
                    return
            offset += tensor.shape[0]


def open_source(data: Any) -> DataSource:
    """`data` as a `DataSource`: a folder (searched recursively for image files), a list of
    paths or images, a `torch.utils.data.Dataset` yielding images or (image, label) pairs, or a
    `DataLoader` yielding batches (tensors, or (images, labels))."""
    if isinstance(data, (str, os.PathLike)):
        folder = Path(data)
        if not folder.is_dir():
            raise ValueError(
                f"`data` {os.fspath(data)!r} is not a folder; pass a folder of images, a list "
                "of paths or images, a torch Dataset or a DataLoader."
            )
        files = _image_files(folder)
        if not files:
            raise ValueError(
                f"no image files under {os.fspath(data)!r} (looked for "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))}, in every subfolder)."
            )
        return DataSource("files", files, None)
    if isinstance(data, DataLoader):
        try:
            count = len(data.dataset)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                "the DataLoader's dataset has no length; pass a sized Dataset."
            ) from None
        return DataSource("loader", list(range(count)), data)
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("`data` is an empty list; pass at least one image.")
        if all(isinstance(item, (str, os.PathLike)) for item in data):
            return DataSource("files", [os.fspath(item) for item in data], None)
        return DataSource("sequence", list(range(len(data))), list(data))
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return DataSource("dataset", list(range(len(data))), data)  # type: ignore[arg-type]
    raise TypeError(
        f"`data` of type {type(data).__name__} is not a folder, a list of paths or images, a "
        "torch Dataset or a DataLoader."
    )
