"""`build_microscope`: a static site of every unit of the chosen layers of a model, over a
collection of images.

One dataset scan (`FeatureVisualizer.dataset_examples`: one forward per batch for all layers,
resumable from its cache in the output folder) gives each unit's top-k images, mean, maximum,
sparsity and histogram; then each layer's crops, class contributions and (asked for) "looks
for" pictures are written, and the data of each layer as one classic script the page loads
when that layer is opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..core.capture import resolve_layers
from ..core.validate import check_positive_int
from ..dataset.sources import open_source
from ..visualizer.facade import FeatureVisualizer
from .output import (
    MicroscopeError,
    check_out_dir,
    file_stems,
    finish,
    index_template,
    start,
    write_script,
)
from .units import LayerClasses, class_contributions, write_crops, write_looks_for

__all__ = ["CACHE", "MicroscopeError", "build_microscope", "default_layers"]

CACHE = "scan-cache.pt"  # the scan's resumable state, inside the output folder
_FORMATS = {"jpeg": "jpg", "png": "png"}


def default_layers(viz: FeatureVisualizer) -> list[str]:
    """The layers `list_layers()` names that have more than one position, without a container
    whose numbered blocks are listed too (its output is its last block's)."""
    listed = [info for info in viz.list_layers() if info.shape[1] * info.shape[2] > 1]
    names = [info.name for info in listed]
    return [name for name in names if not any(n.startswith(name + ".") for n in names)]


def _image_names(data: Any, sources: list[str | int]) -> list[str]:
    """What the page calls each image: its path under the folder scanned (or under the files'
    common folder, for a list of paths), "image i" for images given in memory."""
    if isinstance(data, (str, os.PathLike)):
        return [Path(s).relative_to(data).as_posix() for s in sources]  # type: ignore[arg-type]
    if sources and all(isinstance(s, str) for s in sources):
        paths = [os.path.abspath(s) for s in sources]  # type: ignore[arg-type]
        parent = os.path.dirname(paths[0]) if len(paths) == 1 else os.path.commonpath(paths)
        return [Path(os.path.relpath(p, parent)).as_posix() for p in paths]
    return [f"image {s}" for s in sources]


def _rank() -> int:
    """This process's rank under torch.distributed (0 without it)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def build_microscope(
    model: nn.Module | FeatureVisualizer,
    images: Any,
    out_dir: str | os.PathLike,
    *,
    layers: Sequence[str] | None = None,
    top_k: int = 9,
    looks_for: bool | Sequence[str] = False,
    device: str | None = None,
    batch_size: int = 32,
    resume: bool = True,
    max_classes: int = 5,
    class_names: Sequence[str] | None = None,
    looks_for_size: int = 128,
    looks_for_steps: int = 256,
    image_format: str = "jpeg",
    num_workers: int = 0,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Write a static site (a "microscope") of every unit of `layers` over `images` to
    `out_dir`, and return the (absolute) path of its `index.html`.

    The site works from `file://` and behind any static server, with no network: the index
    lists the layers and, once one is opened, its units (sortable by mean, maximum and
    sparsity over the images, searchable by number); `index.html#<layer>/<unit>` opens a
    unit: its `top_k` images (the top-k of `dataset_examples` on the same images) cropped to
    the region the unit sees (a token layer's whole image with the patch outlined), each with
    its file name and activation; its mean, maximum, sparsity and the histogram of its
    per-image maxima; its strongest class contributions (gradient x activation towards the
    logits of the classes the model predicts most on the top images, averaged over them) where
    the model is a classifier; its optimised picture if `looks_for`.

    Args:
        model: the model (or a `FeatureVisualizer` of it, for its own preprocessing).
        images: a folder (searched recursively), a list of paths or images, a Dataset.
        out_dir: a new or empty folder, or one an earlier build wrote (anything else is
            refused). An interrupted build leaves no `index.html`; building again with
            `resume=True` continues the scan from its cache there.
        layers: the layers (default: `default_layers`); an unknown name lists the closest.
        top_k: images per unit.
        looks_for: also optimise one picture per unit (`FeatureVisualizer.optimize`,
            `looks_for_steps` steps at `looks_for_size` px, `batch_size` units at a time; slow
            on a CPU): True for every layer, or a list of some of `layers`.
        device: where the model runs (default: CUDA where available).
        batch_size: images per forward.
        resume: continue a scan interrupted in `out_dir` (False: start it over). A scan of
            other images, layers, `top_k`, `batch_size` or weights starts over anyway.
        max_classes: how many classes the class contributions are computed towards (0:
            none; they cost one forward and backward per class, layer and winning image).
        class_names: one name per class (default: ImageNet's for 1000 classes).
        image_format: "jpeg" or "png", for crops and pictures.
        num_workers: DataLoader workers that read the images.
        progress: show progress bars (`tqdm.auto`).
        should_stop: called before each batch of the scan; True stops it (`ScanCancelled`).

    Raises:
        MicroscopeError: `out_dir` holds something other than a microscope.
        LayerNotFoundError: an unknown layer (the closest names listed).
        ValueError: no images, or a bad argument.
    """
    if image_format not in _FORMATS:
        raise ValueError(f"`image_format` must be 'jpeg' or 'png', got {image_format!r}.")
    for name, value in (
        ("top_k", top_k),
        ("batch_size", batch_size),
        ("looks_for_size", looks_for_size),
        ("looks_for_steps", looks_for_steps),
    ):
        check_positive_int(name, value)
    if not isinstance(max_classes, int) or isinstance(max_classes, bool) or max_classes < 0:
        raise ValueError(f"`max_classes` must be a non-negative integer, got {max_classes!r}.")
    if isinstance(model, FeatureVisualizer):
        if device is not None:
            raise ValueError("pass `device` to the FeatureVisualizer, not with it.")
        viz = model
    else:
        viz = FeatureVisualizer(model, device=device)
    if isinstance(layers, str):
        layers = [layers]
    names = default_layers(viz) if layers is None else list(dict.fromkeys(layers))
    if not names:
        raise ValueError("`layers` is empty; pass at least one layer name.")
    resolve_layers(viz.model, names)
    if isinstance(looks_for, bool):
        optimised = set(names) if looks_for else set()
    else:
        optimised = {looks_for} if isinstance(looks_for, str) else set(looks_for)
        if optimised - set(names):
            extra = sorted(optimised - set(names))
            raise ValueError(f"`looks_for` names layers that are not in `layers`: {extra}.")
    open_source(images)  # no images, or not images: refused before the folder is touched
    out = check_out_dir(out_dir)
    # Under torch.distributed every rank scans its share (the scan merges them) and rank 0
    # alone writes the site.
    writer = _rank() == 0
    if writer:
        start(out)
    cache = out / CACHE
    if not resume:  # this scan's cache, and each rank's under torch.distributed
        for path in out.glob(f"{CACHE}*"):
            path.unlink(missing_ok=True)
    scan = dict(
        k=top_k,
        batch_size=batch_size,
        num_workers=num_workers,
        cache=cache,
        progress=progress,
        should_stop=should_stop,
    )
    try:
        examples = viz.dataset_examples(images, names, **scan)
    except ValueError as exc:
        # The cache of an earlier build of other images, layers, k or weights: no use here.
        if "belongs to another scan" not in str(exc) or not cache.exists():
            raise
        cache.unlink()
        examples = viz.dataset_examples(images, names, **scan)
    if not examples.scanned:
        _, name, reason = examples.skipped[0]
        raise ValueError(
            f"none of the {len(examples.sources)} images could be read, e.g. {name!r}: {reason}"
        )
    if not writer:
        return out.resolve() / "index.html"
    image_names = _image_names(images, examples.sources)
    if max_classes:
        classes, notes = class_contributions(
            viz,
            examples,
            names,
            max_classes=max_classes,
            batch_size=batch_size,
            class_names=class_names,
            progress=progress,
        )
    else:
        classes, notes = {}, dict.fromkeys(names, "Not computed (max_classes=0).")
    stems = file_stems(names)
    extension = _FORMATS[image_format]
    entries = []
    for layer in names:
        stem = stems[layer]
        units = write_crops(
            viz,
            examples,
            layer,
            out / "crops" / stem,
            out / "images",
            extension=extension,
            batch_size=batch_size,
            progress=progress,
        )
        state = examples.states[layer]
        channels = state.scores.shape[0]
        if layer in optimised:
            write_looks_for(
                viz,
                layer,
                channels,
                out / "looks" / stem,
                extension=extension,
                size=looks_for_size,
                steps=looks_for_steps,
                batch_size=batch_size,
                progress=progress,
            )
        data = _layer_data(
            examples, layer, stem, units, image_names, classes.get(layer), notes.get(layer)
        )
        data["looks_for"] = layer in optimised
        data["extension"] = extension
        size = write_script(out / "data" / f"{stem}.js", "layer", layer, data)
        entries.append(
            {
                "name": layer,
                "file": stem,
                "channels": channels,
                "grid": [state.height, state.width],
                "bytes": size,
            }
        )
    manifest = {
        "model": type(viz.model).__name__,
        "k": top_k,
        "input_size": list(examples.input_size) if examples.input_size else None,
        "images": len(examples.sources),
        "scanned": len(examples.scanned),
        # the reason names the file by its name on the page, not by a path of this machine
        "skipped": [
            [image_names[i], reason.replace(str(source), image_names[i])]
            for i, source, reason in examples.skipped
        ],
        "layers": entries,
        "looks_for": sorted(optimised),
    }
    write_script(out / "data" / "manifest.js", "manifest", manifest)
    finish(out, index_template())
    return out.resolve() / "index.html"


def _layer_data(
    examples,
    layer: str,
    stem: str,
    units: list[list[dict]],
    image_names: list[str],
    classes: LayerClasses | None,
    note: str | None,
) -> dict:
    """What the page needs of one layer: per unit its statistics, histogram, top images
    (with their names) and class contributions."""
    state = examples.states[layer]
    channels = state.scores.shape[0]
    used = sorted({entry["image"] for entries in units for entry in entries})
    histograms = state.histogram.tolist()
    _, edges = examples.maxima_histogram(layer, 0)
    data = {
        "name": layer,
        "file": stem,
        "channels": channels,
        "grid": [state.height, state.width],
        "input_size": list(examples.input_size or (0, 0)),
        "mean": examples.mean(layer).tolist(),
        "max": [entries[0]["score"] if entries else None for entries in units],
        "sparsity": examples.sparsity(layer).tolist(),
        "edges": edges.tolist(),
        "histogram": histograms,
        "top": units,
        "names": {str(i): image_names[i] for i in used},
    }
    if classes is not None:
        data["classes"] = {
            "ids": classes.classes,
            "names": classes.names,
            "values": classes.values.tolist(),
        }
    else:
        data["classes"] = {"note": note or "no class contributions"}
    return data
