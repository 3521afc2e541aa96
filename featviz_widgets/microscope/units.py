"""What the microscope shows of each unit beyond the scan's numbers: its top images' crops,
its class contributions, its "looks for" picture.

Crops: each winning image is read again once per layer, however many units it wins for, and
cut to the region its unit depends on (`DatasetExamples.receptive_boxes`), so each crop equals
`DatasetExamples.crops`'. Where that region is the whole input and the map has several
positions (a ViT or Swin token after attention, a late CNN stage at a small input), a crop
would be the whole image for every position: the page shows the whole image (written once, in
`images/`, for every unit and layer) with the unit's own cell of the grid (its patch) outlined
over it.

Class contributions: gradient x activation of the unit's channel towards a class logit, summed
over positions (`FeatureVisualizer.class_evidence`'s `contributions`; `channel_contributions`
gives them at every layer from one forward and backward), averaged over the unit's top images.
Towards every class that would be one backward per class and image, so the classes are the
ones the model predicts most often (top-1) on the winning images, at most `max_classes` of
them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..core.progress import progress_bar
from ..dataset.result import DatasetExamples
from ..dataset.topk import EMPTY
from ..evidence.gradcam import channel_contributions, class_evidence
from ..visualizer.facade import FeatureVisualizer

__all__ = ["LayerClasses", "class_contributions", "write_crops", "write_looks_for"]


@dataclass
class LayerClasses:
    """A layer's class contributions: `values[u, j]` is unit u's mean contribution towards
    class `classes[j]` (named `names[j]`) over its top images."""

    classes: list[int]
    names: list[str]
    values: np.ndarray


def _chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _model_inputs(
    viz: FeatureVisualizer, examples: DatasetExamples, indices: list[int], device: str = "cpu"
) -> torch.Tensor:
    """Images `indices` read again as model inputs, on the CPU in float32 (as
    `DatasetExamples` does) or on the model's device in its dtype."""
    items = [examples.item(i) for i in indices]
    batch = viz.preprocessor(items, torch.device("cpu"), torch.float32)
    return batch if device == "cpu" else batch.to(viz.device, viz.dtype)


def winners(examples: DatasetExamples, layers: Sequence[str]) -> list[int]:
    """The images in any unit's top-k of any of `layers`, in index order."""
    found: set[int] = set()
    for layer in layers:
        state = examples.states[layer]
        found |= {i for i in state.index.flatten().tolist() if i != EMPTY}
    return sorted(found)


def crop_box(
    boxes: np.ndarray, position: tuple[int, int], input_size: tuple[int, int]
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int] | None]:
    """The crop (top, bottom, left, right) of the unit at `position`, and the cell to outline
    in it (or None): see the module's docstring."""
    h, w = position
    crop = tuple(int(boxes[i, h, w]) for i in range(4))
    height, width = input_size
    grid_h, grid_w = boxes.shape[1:]
    if crop != (0, height, 0, width) or grid_h * grid_w == 1:
        return crop, None  # type: ignore[return-value]
    cell = (
        round(h * height / grid_h),
        round((h + 1) * height / grid_h),
        round(w * width / grid_w),
        round((w + 1) * width / grid_w),
    )
    return crop, cell  # type: ignore[return-value]


def write_crops(
    viz: FeatureVisualizer,
    examples: DatasetExamples,
    layer: str,
    folder: Path,
    whole: Path,
    *,
    extension: str,
    batch_size: int,
    progress: bool,
) -> list[list[dict]]:
    """Write every unit's top-k crops to `folder` as `<unit>-<rank>.<extension>`, and the
    images whose unit sees all of them to `whole` as `<image>.<extension>` (once); returns per
    unit its top images (index, score, position, crop box, cell to outline on the whole
    image), best first."""
    folder.mkdir(parents=True, exist_ok=True)
    whole.mkdir(parents=True, exist_ok=True)
    assert examples.input_size is not None
    boxes = examples.receptive_boxes(layer)
    channels = examples.states[layer].scores.shape[0]
    units: list[list[dict]] = []
    wanted: dict[int, list[tuple[int, int, dict]]] = {}  # image -> (unit, rank, entry)
    for unit in range(channels):
        entries = []
        for rank, (index, score, position) in enumerate(examples.top(layer, unit)):
            crop, cell = crop_box(boxes, position, examples.input_size)
            entry = {"image": index, "score": score, "at": list(position), "box": list(crop)}
            if cell is not None:
                entry["cell"] = list(cell)
            entries.append(entry)
            wanted.setdefault(index, []).append((unit, rank, entry))
        units.append(entries)
    images = sorted(wanted)
    with progress_bar(len(images), f"crops {layer}", enabled=progress, unit="img") as advance:
        for done, chunk in enumerate(_chunks(images, batch_size)):
            batch = _model_inputs(viz, examples, chunk)
            for row, index in enumerate(chunk):
                picture = viz.preprocessor.to_display(batch, row)
                for unit, rank, entry in wanted[index]:
                    if "cell" in entry:
                        path = whole / f"{index}.{extension}"
                        if not path.exists():
                            _save(Image.fromarray(picture), path)
                        continue
                    top, bottom, left, right = entry["box"]
                    crop = Image.fromarray(np.ascontiguousarray(picture[top:bottom, left:right]))
                    _save(crop, folder / f"{unit}-{rank}.{extension}")
            advance(min(len(images), (done + 1) * batch_size))
    return units


def _save(image: Image.Image, path: Path) -> None:
    if path.suffix == ".jpg":
        image.save(path, quality=90)
    else:
        image.save(path, compress_level=1)  # lossless either way; level 6 is ~5x as slow


def class_contributions(
    viz: FeatureVisualizer,
    examples: DatasetExamples,
    layers: Sequence[str],
    *,
    max_classes: int,
    batch_size: int,
    class_names: Sequence[str] | None,
    progress: bool,
) -> tuple[dict[str, LayerClasses], dict[str, str]]:
    """Per layer, its units' class contributions (see the module's docstring), and per layer
    where there are none, why (a model without a classifier, a layer the logits do not depend
    on): `class_evidence`'s own message."""
    images = winners(examples, layers)
    notes: dict[str, str] = {}
    usable = list(layers)
    top1: dict[int, int] = {}
    names: dict[int, str] = {}
    # Pass 1: each winning image's top-1 class (from the first layer the logits depend on).
    for chunk in _chunks(images, batch_size):
        batch = _model_inputs(viz, examples, chunk, "model")
        while usable:
            try:
                evidence = class_evidence(viz.features, batch, usable[0], class_names=class_names)
                break
            except ValueError as exc:
                notes[usable.pop(0)] = str(exc)
        if not usable:
            return {}, notes
        top1.update(zip(chunk, evidence.targets))
        names.update(zip(evidence.targets, evidence.target_names))
    counts = Counter(top1.values())
    classes = sorted(counts, key=lambda c: (-counts[c], c))[:max_classes]
    if not classes:
        return {}, notes

    def contributions(batch: torch.Tensor, targets: list[int]) -> dict[str, torch.Tensor]:
        """Every usable layer's contributions at once; a layer the logits do not reach is
        found, noted and left out."""
        while usable:
            try:
                return channel_contributions(viz.features, batch, usable, targets)
            except ValueError:
                failed = []
                for layer in usable:
                    try:
                        channel_contributions(viz.features, batch[:1], [layer], targets[:1])
                    except ValueError as exc:
                        notes[layer] = str(exc)
                        failed.append(layer)
                if not failed:
                    raise
                usable[:] = [layer for layer in usable if layer not in failed]
        return {}

    # Pass 2: every winning image's contributions towards each class at every layer: the batch
    # repeated once per class, one forward and one backward for them all.
    per_batch = max(1, batch_size // len(classes))
    chunks = _chunks(images, per_batch)
    found: dict[str, list[torch.Tensor]] = {layer: [] for layer in usable}
    with progress_bar(len(chunks), "class contributions", enabled=progress) as advance:
        for number, chunk in enumerate(chunks):
            batch = _model_inputs(viz, examples, chunk, "model")
            repeated = batch.repeat(len(classes), 1, 1, 1)
            targets = [c for c in classes for _ in chunk]
            for layer, values in contributions(repeated, targets).items():
                # (classes x images, C) -> (images, classes, C)
                found[layer].append(values.view(len(classes), len(chunk), -1).transpose(0, 1))
            advance(number + 1)
    position = {index: row for row, index in enumerate(images)}
    result = {}
    for layer in usable:
        table = torch.cat(found[layer]).double()  # (images, classes, C)
        state = examples.states[layer]
        channels = state.scores.shape[0]
        values = np.zeros((channels, len(classes)))
        for unit in range(channels):
            rows = [position[index] for index, _, _ in examples.top(layer, unit)]
            if rows:
                values[unit] = table[rows, :, unit].mean(dim=0).numpy()
        result[layer] = LayerClasses(classes, [names[c] for c in classes], values)
    return result, notes


def write_looks_for(
    viz: FeatureVisualizer,
    layer: str,
    channels: int,
    folder: Path,
    *,
    extension: str,
    size: int,
    steps: int,
    batch_size: int,
    progress: bool,
) -> None:
    """Write each unit's optimised picture (`FeatureVisualizer.optimize`, a batch of units at
    a time) to `folder` as `<unit>.<extension>`."""
    folder.mkdir(parents=True, exist_ok=True)
    units = list(range(channels))
    with progress_bar(channels, f"looks for {layer}", enabled=progress, unit="unit") as advance:
        for chunk in _chunks(units, batch_size):
            result = viz.optimize(layer, chunk, size=size, steps=steps, progress=False)
            for unit, image in zip(chunk, result.images):
                _save(Image.fromarray(image), folder / f"{unit}.{extension}")
            advance(chunk[-1] + 1)
