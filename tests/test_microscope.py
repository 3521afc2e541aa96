"""`build_microscope`: the site's units hold the same top-k as `dataset_examples`, statistics
equal to ones computed from the captured maps, class contributions equal to `class_evidence`'s,
"looks for" pictures equal to `optimize`'s; ViT tokens get their patch outlined; bad input is
refused before anything is written, an interrupted build leaves no index.html and resumes."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import resnet18_64px, small_vit
from matplotlib import cbook
from PIL import Image

from featviz_widgets import (
    FeatureVisualizer,
    LayerNotFoundError,
    MicroscopeError,
    ScanCancelled,
    build_microscope,
)
from featviz_widgets.dataset.topk import HISTOGRAM_EDGES
from featviz_widgets.microscope.build import CACHE, default_layers
from featviz_widgets.microscope.output import MARKER, file_stems

LAYERS = ["layer1", "layer2"]
K = 3
GOOD = ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "hopper.jpg", "nested/hopper_crop.png"]


def write_photos(folder: Path) -> None:
    """Real photos (skimage's, matplotlib's Grace Hopper), one in a subfolder, and an
    unreadable file."""
    data = pytest.importorskip("skimage.data")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((128, 128)).save(folder / f"{name}.jpg")
    with cbook.get_sample_data("grace_hopper.jpg") as photo:
        hopper = Image.open(photo).convert("RGB").resize((128, 150))
    hopper.save(folder / "hopper.jpg")
    (folder / "nested").mkdir(exist_ok=True)
    hopper.crop((20, 30, 100, 110)).save(folder / "nested" / "hopper_crop.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")


def read_script(path: Path) -> tuple[str, list]:
    """(callback name, its arguments) of one of the site's data scripts."""
    text = path.read_text()
    prefix = "window.fvzMicroscope."
    assert text.startswith(prefix) and text.endswith(");\n")
    name, _, args = text[len(prefix) : -3].partition("(")
    return name, json.loads(f"[{args}]")


def outline_free(crop: np.ndarray, cell: list[int] | None, band: int = 3) -> np.ndarray:
    """Which pixels of `crop` the outline of `cell` (drawn inside its border) leaves alone."""
    keep = np.ones(crop.shape[:2], dtype=bool)
    if cell is not None:
        top, bottom, left, right = cell
        keep[top:bottom, left:right] = False
        keep[top + band : bottom - band, left + band : right - band] = True
    return keep


def layer_data(site: Path, layer: str) -> dict:
    name, (layer_name, data) = read_script(site / "data" / f"{file_stems([layer])[layer]}.js")
    assert (name, layer_name) == ("layer", layer)
    return data


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    write_photos(folder)
    return folder


@pytest.fixture(scope="module")
def site(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "microscope"
    with pytest.warns(UserWarning, match="skipped"):
        index = build_microscope(
            resnet18_64px(),
            photos,
            out,
            layers=LAYERS,
            top_k=K,
            device="cpu",
            image_format="png",
            looks_for=["layer1"],
            looks_for_size=32,
            looks_for_steps=2,
            progress=False,
        )
    assert index == out / "index.html"
    return out


@pytest.fixture(scope="module")
def viz() -> FeatureVisualizer:
    return FeatureVisualizer(resnet18_64px(), device="cpu")


@pytest.fixture(scope="module")
def examples(viz, photos):
    with pytest.warns(UserWarning, match="skipped"):
        return viz.dataset_examples(photos, LAYERS, k=K, progress=False)


def test_the_site_is_complete_and_lists_what_was_scanned(site, photos):
    assert (site / "index.html").read_text().count("<script src=") == 2
    assert json.loads((site / MARKER).read_text())["complete"] is True
    for name in ("site.js", "site.css"):
        assert (site / name).stat().st_size > 0
    name, (manifest,) = read_script(site / "data" / "manifest.js")
    assert name == "manifest"
    assert [entry["name"] for entry in manifest["layers"]] == LAYERS
    assert [entry["channels"] for entry in manifest["layers"]] == [64, 128]
    assert manifest["images"] == 6 and manifest["scanned"] == 5 and manifest["k"] == K
    [(skipped, reason)] = manifest["skipped"]
    assert skipped == "broken.jpg" and "not a readable image" in reason
    assert str(photos) not in reason and "'broken.jpg'" in reason  # no path of this machine
    assert (site / CACHE).is_file()


@pytest.mark.parametrize("layer", LAYERS)
def test_units_hold_dataset_examples_top_k_and_crops(site, examples, photos, layer):
    data = layer_data(site, layer)
    assert data["channels"] == examples.states[layer].scores.shape[0]
    for unit in range(data["channels"]):
        got = [(e["image"], e["score"], tuple(e["at"])) for e in data["top"][unit]]
        want = examples.top(layer, unit)
        assert [g[0] for g in got] == [w[0] for w in want]
        assert [g[2] for g in got] == [w[2] for w in want]
        np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=1e-5)
    names = {int(i): name for i, name in data["names"].items()}
    for index, name in names.items():
        assert Path(examples.sources[index]) == photos / name
    assert set(names.values()) <= set(GOOD)
    # At 64 px some of layer2's units see the whole input: the whole image, its cell outlined.
    outlined = 0
    for unit in (0, 7, data["channels"] - 1):
        crops = examples.crops(layer, unit)
        assert len(crops) == len(data["top"][unit]) == K
        for rank, crop in enumerate(crops):
            entry = data["top"][unit][rank]
            if "cell" in entry:
                assert crop.shape[:2] == (64, 64)
                saved = np.asarray(Image.open(site / "images" / f"{entry['image']}.png"))
                outlined += 1
            else:
                saved = np.asarray(Image.open(site / "crops" / layer / f"{unit}-{rank}.png"))
            assert np.array_equal(saved, crop)
    assert (outlined > 0) == (layer == "layer2")


def test_statistics_equal_the_captured_maps(site, viz, photos):
    maps = viz.get_features([str(photos / name) for name in GOOD], "layer2").double()
    data = layer_data(site, "layer2")
    np.testing.assert_allclose(data["mean"], maps.mean(dim=(0, 2, 3)).numpy(), rtol=1e-5)
    maxima = maps.flatten(2).max(dim=2).values  # (images, C)
    np.testing.assert_allclose(data["max"], maxima.max(dim=0).values.numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        data["sparsity"], (maps == 0).double().mean(dim=(0, 2, 3)).numpy(), rtol=1e-5
    )
    edges = HISTOGRAM_EDGES.numpy()
    assert data["edges"] == pytest.approx(edges.tolist(), rel=1e-5)
    bins = np.digitize(maxima.numpy(), edges)  # edges[i-1] <= x < edges[i], as bucketize
    for unit in range(maps.shape[1]):
        counts = np.bincount(bins[:, unit], minlength=len(edges) + 1)
        assert data["histogram"][unit] == counts.tolist()
    assert sum(data["histogram"][0]) == len(GOOD)


def test_class_contributions_equal_class_evidence(site, viz, examples):
    data = layer_data(site, "layer2")
    classes = data["classes"]
    winners = sorted({i for u in range(128) for i, _, _ in examples.top("layer2", u)})
    paths = [examples.sources[i] for i in winners]
    top1 = viz.class_evidence(paths, "layer2").targets
    counts = Counter(top1)
    assert classes["ids"] == sorted(counts, key=lambda c: (-counts[c], c))[:5]
    per_class = {
        c: dict(zip(winners, viz.class_evidence(paths, "layer2", c).contributions.double()))
        for c in classes["ids"]
    }
    for unit in (0, 5, 127):
        rows = [index for index, _, _ in examples.top("layer2", unit)]
        want = [
            float(torch.stack([per_class[c][i][unit] for i in rows]).mean()) for c in classes["ids"]
        ]
        np.testing.assert_allclose(classes["values"][unit], want, rtol=1e-4, atol=1e-6)


def test_looks_for_pictures_equal_optimize(site, viz):
    for unit in (3, 63):
        want = viz.optimize("layer1", [unit], size=32, steps=2, progress=False).images[0]
        saved = np.asarray(Image.open(site / "looks" / "layer1" / f"{unit}.png"))
        assert np.array_equal(saved, want)
    assert len(list((site / "looks" / "layer1").iterdir())) == 64
    assert not (site / "looks" / "layer2").exists()
    assert layer_data(site, "layer1")["looks_for"] and not layer_data(site, "layer2")["looks_for"]


def test_vit_tokens_show_the_whole_image_with_their_patch_outlined(photos, tmp_path):
    model = small_vit(64)
    viz = FeatureVisualizer(model, device="cpu")
    with pytest.warns(UserWarning, match="skipped"):
        build_microscope(
            viz, photos, tmp_path / "vit", layers=["blocks.1", "patch_embed"], top_k=2,
            image_format="png", progress=False,
        )  # fmt: skip
    block = layer_data(tmp_path / "vit", "blocks.1")
    entry = block["top"][5][0]
    h, w = entry["at"]
    assert entry["box"] == [0, 64, 0, 64] and entry["cell"] == [
        16 * h,
        16 * h + 16,
        16 * w,
        16 * w + 16,
    ]
    picture = viz.display_image(str(photos / block["names"][str(entry["image"])]))
    whole = np.asarray(Image.open(tmp_path / "vit" / "images" / f"{entry['image']}.png"))
    assert np.array_equal(whole, picture)
    assert not (tmp_path / "vit" / "crops" / "blocks.1").exists() or not any(
        (tmp_path / "vit" / "crops" / "blocks.1").iterdir()
    )
    patch = layer_data(tmp_path / "vit", "patch_embed")["top"][0][0]
    assert "cell" not in patch and patch["box"][1] - patch["box"][0] == 16
    stem = file_stems(["patch_embed"])["patch_embed"]
    small = Image.open(tmp_path / "vit" / "crops" / stem / "0-0.png")
    assert small.size == (16, 16)
    # Every unit of blocks.1 sees every patch: one file per image, not per unit.
    assert len(list((tmp_path / "vit" / "images").iterdir())) == len(block["names"])
    # The class contributions are those of a ViT's head too.
    assert len(block["classes"]["values"]) == 192


def test_a_model_without_classifier_gets_a_note(photos, tmp_path):
    torch.manual_seed(0)
    model = timm.create_model(
        "resnet18",
        pretrained=False,
        num_classes=0,
        pretrained_cfg_overlay=dict(input_size=(3, 64, 64), crop_pct=1.0),
    )
    with pytest.warns(UserWarning, match="skipped"):
        build_microscope(
            model, photos, tmp_path / "site", layers=["layer1"], top_k=1, progress=False
        )
    classes = layer_data(tmp_path / "site", "layer1")["classes"]
    assert "values" not in classes and "num_classes=0" in classes["note"]
    assert (tmp_path / "site" / "crops" / "layer1" / "63-0.jpg").is_file()  # JPEG by default
    assert Image.open(tmp_path / "site" / "crops" / "layer1" / "63-0.jpg").format == "JPEG"


def test_bad_input_is_refused_before_anything_is_written(photos, tmp_path):
    model = resnet18_64px()
    with pytest.raises(LayerNotFoundError, match="Closest layers: 'layer2'"):
        build_microscope(model, photos, tmp_path / "a", layers=["layer2", "layr2"])
    assert not (tmp_path / "a").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        build_microscope(model, empty, tmp_path / "b", layers=["layer2"])
    assert not (tmp_path / "b").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    with pytest.raises(MicroscopeError, match="is not empty and is not a microscope"):
        build_microscope(model, photos, mine, layers=["layer2"])
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    with pytest.raises(MicroscopeError, match="is a file"):
        build_microscope(model, photos, mine / "thesis.tex", layers=["layer2"])


def test_an_interrupted_build_looks_unfinished_and_resumes(photos, tmp_path):
    out = tmp_path / "site"
    shutil.copytree(photos, tmp_path / "photos", ignore=shutil.ignore_patterns("broken.jpg"))
    images = tmp_path / "photos"  # 5 images, 3 batches of 2
    asked = []

    def stop_at_second_batch() -> bool:
        asked.append(1)
        return len(asked) == 2

    args = dict(layers=["layer2"], top_k=2, batch_size=2, progress=False)
    with pytest.raises(ScanCancelled):
        build_microscope(resnet18_64px(), images, out, should_stop=stop_at_second_batch, **args)
    assert not (out / "index.html").exists() and (out / CACHE).is_file()
    assert json.loads((out / MARKER).read_text())["complete"] is False
    asked.clear()
    build_microscope(
        resnet18_64px(), images, out, should_stop=lambda: bool(asked.append(1)), **args
    )
    assert len(asked) == 2  # the first batch came from the cache
    resumed = layer_data(out, "layer2")
    asked.clear()
    build_microscope(
        resnet18_64px(),
        images,
        tmp_path / "whole",
        should_stop=lambda: bool(asked.append(1)),
        **args,
    )
    assert len(asked) == 3
    assert layer_data(tmp_path / "whole", "layer2")["top"] == resumed["top"]
    # Building again over a finished site is allowed; resume=False scans again.
    asked.clear()
    build_microscope(
        resnet18_64px(),
        images,
        out,
        resume=False,
        should_stop=lambda: bool(asked.append(1)),
        **args,
    )
    assert len(asked) == 3 and (out / "index.html").is_file()


def test_file_stems_are_safe_and_distinct():
    names = ["layer1.0.conv1", "a/b", "a_2f_b", ".hidden", "Layer", "layer", "x y"]
    stems = file_stems(names)
    assert stems["layer1.0.conv1"] == "layer1.0.conv1"
    assert len({s.lower() for s in stems.values()}) == len(names)
    assert all(
        set(s) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        for s in stems.values()
    )
    assert not stems[".hidden"].startswith(".")


def test_default_layers_are_stages_and_blocks_with_a_map():
    viz = FeatureVisualizer(resnet18_64px(), device="cpu")
    layers = default_layers(viz)
    assert "layer1.0" in layers and "layer4.1" in layers
    assert "layer1" not in layers and "fc" not in layers and "global_pool" not in layers
    assert default_layers(FeatureVisualizer(small_vit(64), device="cpu"))[:2] == [
        "patch_embed",
        "blocks.0",
    ]


@pytest.mark.slow
def test_swin_nhwc_layers(photos, tmp_path):
    """Swin's NHWC maps: the site's units hold dataset_examples' top-k and mean."""
    torch.manual_seed(0)
    model = timm.create_model(
        "swin_tiny_patch4_window7_224",
        pretrained=False,
        img_size=64,
        window_size=4,
        pretrained_cfg_overlay=dict(input_size=(3, 64, 64), crop_pct=1.0),
    )
    viz = FeatureVisualizer(model, device="cpu")
    with pytest.warns(UserWarning, match="skipped"):
        build_microscope(
            viz, photos, tmp_path / "swin", layers=["layers.1"], top_k=2, progress=False
        )
        examples = viz.dataset_examples(photos, ["layers.1"], k=2, progress=False)
    data = layer_data(tmp_path / "swin", "layers.1")
    assert data["grid"] == [8, 8] and data["channels"] == 192
    assert [[e["image"] for e in top] for top in data["top"]] == [
        [index for index, _, _ in examples.top("layers.1", unit)] for unit in range(192)
    ]
    np.testing.assert_allclose(data["mean"], examples.mean("layers.1"), rtol=1e-5, atol=1e-7)


def test_images_named_by_their_path_under_a_list_s_common_folder(photos, tmp_path):
    files = [photos / "chelsea.jpg", photos / "nested" / "hopper_crop.png"]
    build_microscope(
        resnet18_64px(), files, tmp_path / "s", layers=["layer1"], top_k=2, progress=False
    )
    names = layer_data(tmp_path / "s", "layer1")["names"]
    assert sorted(names.values()) == ["chelsea.jpg", "nested/hopper_crop.png"]
    with (
        pytest.raises(ValueError, match="none of the 1 images could be read"),
        pytest.warns(UserWarning),
    ):
        build_microscope(resnet18_64px(), [photos / "broken.jpg"], tmp_path / "t", progress=False)
    assert not (tmp_path / "t" / "index.html").exists()


@pytest.mark.parametrize(
    ("make", "layers"),
    [
        (resnet18_64px, ["layer1", "layer1.0", "layer3"]),
        (lambda: small_vit(64), ["blocks.1", "blocks.3"]),
    ],
    ids=["resnet18", "vit"],
)
def test_channel_contributions_of_several_layers_equal_class_evidence_per_layer(
    make, layers, photos
):
    from featviz_widgets.evidence.gradcam import channel_contributions

    viz = FeatureVisualizer(make(), device="cpu")
    batch = viz.prepare([str(photos / name) for name in GOOD[:3]])
    targets = [3, 3, 800]
    found = channel_contributions(viz.features, batch, layers, targets)
    assert list(found) == layers
    for layer in layers:
        want = viz.class_evidence(batch, layer, targets).contributions
        torch.testing.assert_close(found[layer], want, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        channel_contributions(viz.features, batch, layers, 5000)
