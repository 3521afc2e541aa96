"""`FeatureVisualizer.dataset_examples`: one streaming pass keeps each channel's top-k images
(ties to the lowest index) and mean, skips unreadable files, resumes from its cache, merges
shards under torch.distributed, and crops each winner to its unit's exact receptive field."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from conftest import scene
from matplotlib import cbook
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from featviz_widgets import FeatureVisualizer
from featviz_widgets.core.precision import exact_float32
from featviz_widgets.dataset.scan import DatasetExamples
from featviz_widgets.dataset.topk import EMPTY, ChannelTopK
from featviz_widgets.occlusion.incremental import build_plan
from featviz_widgets.occlusion.receptive import receptive_boxes

PX = 64
LAYERS = ["layer2", "layer3"]


def small_model(name: str, px: int = PX, **kwargs) -> torch.nn.Module:
    """A seeded timm model (pretrained=False) whose data config asks for `px` inputs, so the
    default preprocessing (resize, crop, the model's mean/std) makes small batches."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs)
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, px, px), "crop_pct": 1.0}
    return model


@pytest.fixture(scope="module")
def viz() -> FeatureVisualizer:
    return FeatureVisualizer(small_model("resnet18"), device="cpu")


def write_images(folder: Path) -> None:
    """Grace Hopper crops, generated scenes, exact duplicates (ties), one image in a
    subfolder, a corrupt JPEG and a text file."""
    folder.mkdir(parents=True, exist_ok=True)
    with cbook.get_sample_data("grace_hopper.jpg") as photo:
        hopper = Image.open(photo).convert("RGB")
    for i, (x, y, size) in enumerate(
        [(0, 0, 300), (100, 80, 200), (200, 250, 260), (50, 300, 150)]
    ):
        hopper.crop((x, y, x + size, y + size)).save(folder / f"hopper_{i}.jpg")
    for seed in range(10):
        scene(96, 80, seed=seed).save(folder / f"scene_{seed:02d}.png")
    shutil.copy(folder / "scene_03.png", folder / "scene_03_copy.png")
    shutil.copy(folder / "hopper_1.jpg", folder / "hopper_1_copy.jpg")
    (folder / "nested").mkdir(exist_ok=True)
    scene(70, 90, seed=42).save(folder / "nested" / "deep.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not an image")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images")
    write_images(path)
    return path


@pytest.fixture(scope="module")
def scanned(viz, folder) -> DatasetExamples:
    with pytest.warns(UserWarning, match="1 image.*skipped.*broken.jpg"):
        return viz.dataset_examples(folder, LAYERS, k=5, batch_size=7, progress=False)


def brute_force(viz, sources, skipped, layer, k, batch_size):
    """Every image's per-channel max (first position on ties) and the layer's mean, from
    forwards of the same batches the scan used; the top-k by sorting (-score, index)."""
    bad = {i for i, _, _ in skipped}
    scores, total, count = [], 0.0, 0
    for start in range(0, len(sources), batch_size):
        indices = [i for i in range(start, min(start + batch_size, len(sources))) if i not in bad]
        maps = viz.get_features([sources[i] for i in indices], layer).double()
        flat = maps.flatten(2)
        best, where = flat.max(dim=2)
        total, count = total + flat.sum(dim=(0, 2)), count + flat.shape[0] * flat.shape[2]
        for row, i in enumerate(indices):
            scores.append((i, best[row], where[row]))
    width = maps.shape[-1]
    tops = []
    for c in range(maps.shape[1]):
        ranked = sorted(
            ((float(s[c]), i, int(w[c])) for i, s, w in scores), key=lambda t: (-t[0], t[1])
        )
        tops.append([(i, s, divmod(p, width)) for s, i, p in ranked[:k]])
    return tops, (total / count).numpy()


def test_top_k_and_mean_equal_brute_force_with_ties(viz, scanned):
    assert len(scanned.sources) == 18 and scanned.layers == LAYERS
    for layer in LAYERS:
        tops, means = brute_force(viz, scanned.sources, scanned.skipped, layer, 5, 7)
        assert [scanned.top(layer, c) for c in range(len(tops))] == tops
        np.testing.assert_allclose(scanned.mean(layer), means, rtol=1e-6, atol=1e-7)
        # Ties happened (the duplicated files among them) and went to the lower index.
        pairs = [(a, b) for t in tops for a, b in zip(t, t[1:]) if a[1] == b[1]]
        assert pairs and all(a[0] < b[0] for a, b in pairs)
        assert layer != "layer2" or any((a[0], b[0]) == (2, 3) for a, b in pairs)


def test_files_are_found_recursively_and_the_corrupt_one_is_skipped(folder, scanned):
    names = [Path(s).relative_to(folder).as_posix() for s in scanned.sources]
    assert names == sorted(names) and "nested/deep.png" in names and "notes.txt" not in names
    (index, source, reason), *rest = scanned.skipped
    assert not rest and source.endswith("broken.jpg") and names[index] == "broken.jpg"
    assert "not a readable image" in reason
    winners = {i for layer in LAYERS for c in range(128) for i, _, _ in scanned.top(layer, c)}
    assert index not in winners


def test_scanned_and_skipped_files_are_separate_fields(viz, tmp_path):
    """A folder with an unreadable and a truncated JPEG: `scanned` lists exactly the files
    that were read, in index order, and each opens again; `skipped` names the others and why;
    both survive save and load."""
    with cbook.get_sample_data("grace_hopper.jpg") as photo:
        data = photo.read()
    hopper = Image.open(io.BytesIO(data)).convert("RGB")
    hopper.crop((0, 0, 200, 200)).save(tmp_path / "a_hopper.jpg")
    scene(80, 80, seed=1).save(tmp_path / "c_scene.png")
    scene(80, 80, seed=2).save(tmp_path / "e_scene.png")
    (tmp_path / "b_unreadable.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (tmp_path / "d_truncated.jpg").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="2 image"):
        result = viz.dataset_examples(tmp_path, ["layer3"], k=3, batch_size=2, progress=False)
    names = lambda paths: [Path(p).name for p in paths]  # noqa: E731
    assert names(result.scanned) == ["a_hopper.jpg", "c_scene.png", "e_scene.png"]
    assert [(i, Path(s).name) for i, s, _ in result.skipped] == [
        (1, "b_unreadable.jpg"),
        (3, "d_truncated.jpg"),
    ]
    assert "not a readable image" in result.skipped[0][2]
    assert "truncated" in result.skipped[1][2]
    assert "3 images scanned, 2 skipped" in repr(result)
    # What was scanned opens again, and its features are the ones the scan ranked.
    features = viz.get_features(result.scanned, "layer3").flatten(2).amax(dim=2)
    for channel in range(3):
        (index, score, _), *_ = result.top("layer3", channel)
        row = result.scanned.index(result.sources[index])
        assert score == pytest.approx(float(features[:, channel].max()), rel=1e-5)
        assert float(features[row, channel]) == pytest.approx(score, rel=1e-5)
    with pytest.raises(ValueError, match=r"image 3 \('.*d_truncated.jpg'\) was skipped.*trunc"):
        result.item(3)
    assert result.item(2) == result.scanned[1]
    result.save(tmp_path / "result.pt")
    loaded = DatasetExamples.load(tmp_path / "result.pt")
    assert loaded.scanned == result.scanned and loaded.skipped == result.skipped


def test_ties_and_merge_are_deterministic_and_associative():
    """Integer scores (many ties) in random batches and shards: every order and grouping
    gives the sorted (-score, index) top-k."""
    rng = np.random.default_rng(1)
    n, channels, k = 60, 5, 7
    maps = torch.from_numpy(rng.integers(0, 4, (n, channels, 2, 3)).astype(np.float32))

    def scan(indices, sizes):
        state, start = ChannelTopK.empty(channels, k, 2, 3, torch.device("cpu")), 0
        for size in sizes:
            chunk = indices[start : start + size]
            state.update(maps[chunk], torch.tensor(chunk))
            start += size
        return state

    everything = scan(list(range(n)), [13, 1, 20, 26])
    flat = maps.flatten(2)
    best, where = flat.max(dim=2)
    for c in range(channels):
        expected = sorted(range(n), key=lambda i: (-float(best[i, c]), i))[:k]
        assert everything.index[c].tolist() == expected
        assert everything.position[c].tolist() == where[expected, c].tolist()
    shards = [scan(list(range(r, n, 3)), [5, 15]) for r in range(3)]
    left = shards[0].merge(shards[1]).merge(shards[2])
    right = shards[2].merge(shards[0].merge(shards[1]))
    for merged in (left, right):
        assert torch.equal(merged.index, everything.index)
        assert torch.equal(merged.scores, everything.scores)
        assert torch.equal(merged.position, everything.position)
        assert merged.count == everything.count
        torch.testing.assert_close(merged.mean(), everything.mean())
    few = scan([4, 2], [2])  # fewer images than k: empty slots rank last
    assert few.index[0, 2:].eq(EMPTY).all() and set(few.index[0, :2].tolist()) == {2, 4}


def test_crops_are_the_exact_receptive_fields(viz, scanned):
    layer, channel = "layer2", 3
    top = scanned.top(layer, channel)
    boxes = scanned.crop_boxes(layer, channel)
    probe = torch.zeros(1, 3, PX, PX)
    for (_, _, (h, w)), box in zip(top, boxes):
        plan = build_plan(viz.model, probe, layer, (h, w))  # the occlusion engine's cone
        assert box == plan.needs[0]
    nan_boxes = receptive_boxes(
        viz.features, layer, (3, PX, PX), device=viz.device, dtype=torch.float32, method="nan"
    )
    assert np.array_equal(nan_boxes, scanned.receptive_boxes(layer))
    # A 64 px input at layer2 (stride 8): the corner unit sees 50 rows, centre units all 64.
    assert tuple(nan_boxes[:, 0, 0]) == (0, 50, 0, 50)
    # Outside the box nothing matters; the box's last row does.
    index, score, (h, w) = top[0]
    (a, b), (c, d) = boxes[0]
    one = viz.prepare(scanned.sources[index])
    noisy = torch.randn_like(one) * 3
    noisy[:, :, a:b, c:d] = one[:, :, a:b, c:d]
    with exact_float32(), torch.no_grad():
        clean = viz.features.capture(one, [layer])[layer].maps[0, channel, h, w]
        outside = viz.features.capture(noisy, [layer])[layer].maps[0, channel, h, w]
    assert float(clean) == pytest.approx(score, abs=1e-5)
    assert torch.equal(clean, outside)
    edge = one.clone()
    edge[:, :, b - 1, c:d] = float("nan")
    with torch.no_grad():
        assert torch.isnan(viz.features.capture(edge, [layer])[layer].maps[0, channel, h, w])
    crops, images = scanned.crops(layer, channel), scanned.images(layer, channel)
    assert len(crops) == len(images) == 5
    for crop, image, ((a, b), (c, d)) in zip(crops, images, boxes):
        assert image.shape == (PX, PX, 3) and image.dtype == np.uint8
        assert np.array_equal(crop, image[a:b, c:d])
    assert np.array_equal(images[0], viz.display_image(scanned.sources[top[0][0]]))


def test_vit_token_layer(tmp_path):
    viz = FeatureVisualizer(small_model("vit_tiny_patch16_224", img_size=64), device="cpu")
    images = [scene(80, 72, seed=s) for s in range(6)] + [scene(80, 72, seed=2)]
    examples = viz.dataset_examples(images, ["blocks.1", "patch_embed"], k=3, batch_size=4)
    assert examples.sources == list(range(7)) and not examples.skipped
    tops, means = brute_force(viz, images, [], "blocks.1", 3, 4)
    assert [examples.top("blocks.1", c) for c in range(192)] == tops
    np.testing.assert_allclose(examples.mean("blocks.1"), means, rtol=1e-5, atol=1e-6)
    # Patch embedding: each token sees its own 16 x 16 patch; after attention, everything.
    index, _, (h, w) = examples.top("patch_embed", 0)[0]
    assert examples.crop_boxes("patch_embed", 0)[0] == (
        (16 * h, 16 * h + 16),
        (16 * w, 16 * w + 16),
    )
    assert examples.crops("patch_embed", 0)[0].shape == (16, 16, 3)
    assert set(examples.crop_boxes("blocks.1", 5)) == {((0, 64), (0, 64))}


class Flaky(Dataset):
    """PIL images with labels; raises `error` at image `fail_at` while armed; counts reads."""

    def __init__(self, images, fail_at, error):
        self.images, self.fail_at, self.error = images, fail_at, error
        self.armed, self.reads = True, 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        if self.armed and i == self.fail_at:
            raise self.error
        self.reads += 1
        return self.images[i], i % 3


def same_result(a: DatasetExamples, b: DatasetExamples) -> None:
    assert a.sources == b.sources and a.skipped == b.skipped and a.layers == b.layers
    for layer in a.layers:
        for name in ("scores", "index", "position", "total"):
            assert torch.equal(getattr(a.states[layer], name), getattr(b.states[layer], name))
        assert a.states[layer].count == b.states[layer].count


@pytest.mark.parametrize("error", [RuntimeError("disk gone"), KeyboardInterrupt()])
def test_an_interrupted_scan_resumes_from_its_cache(viz, tmp_path, error):
    images = [scene(64, 64, seed=s) for s in range(22)]
    reference = viz.dataset_examples(images, ["layer3"], k=4, batch_size=4, progress=False)
    data = Flaky(images, fail_at=13, error=error)
    cache = tmp_path / "scan.pt"
    with pytest.raises(type(error)):
        viz.dataset_examples(data, ["layer3"], k=4, batch_size=4, cache=cache, save_every=2)
    assert cache.exists() and not list(tmp_path.glob(".*tmp*"))
    data.armed, data.reads = False, 0
    resumed = viz.dataset_examples(data, ["layer3"], k=4, batch_size=4, cache=cache, save_every=2)
    assert data.reads == 22 - 12  # batches 0-2 were done; batch 3 (images 12-15) starts again
    same_result(resumed, reference)
    data.reads = 0  # a finished cache: nothing is read again
    same_result(viz.dataset_examples(data, ["layer3"], k=4, batch_size=4, cache=cache), reference)
    assert data.reads == 0
    with pytest.raises(ValueError, match="belongs to another scan"):
        viz.dataset_examples(data, ["layer3"], k=5, batch_size=4, cache=cache)
    with pytest.raises(ValueError, match="belongs to another scan"):
        viz.dataset_examples(images[:-1], ["layer3"], k=4, batch_size=4, cache=cache)


def test_dataset_pairs_and_dataloader_give_the_list_result(viz):
    images = [scene(64, 64, seed=s) for s in range(10)]
    reference = viz.dataset_examples(images, ["layer3"], k=3, batch_size=4, progress=False)
    pairs = Flaky(images, fail_at=-1, error=None)
    same_result(viz.dataset_examples(pairs, ["layer3"], k=3, batch_size=4), reference)
    tensors = viz.prepare(images)
    loader = DataLoader(list(zip(tensors, range(10))), batch_size=4)
    from_loader = viz.dataset_examples(loader, ["layer3"], k=3, progress=False)
    for name in ("scores", "index", "position"):
        a, b = from_loader.states["layer3"], reference.states["layer3"]
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(from_loader.images("layer3", 0)[0], reference.images("layer3", 0)[0])


def test_save_and_load_round_trip(viz, scanned, tmp_path):
    path = tmp_path / "examples.pt"
    scanned.save(path)
    loaded = DatasetExamples.load(path, viz=viz)
    same_result(loaded, scanned)
    assert loaded.k == 5 and loaded.input_size == (PX, PX)
    assert loaded.top("layer3", 9) == scanned.top("layer3", 9)
    assert np.array_equal(loaded.crops("layer3", 9)[0], scanned.crops("layer3", 9)[0])
    with pytest.raises(ValueError, match="without its model"):
        DatasetExamples.load(path).images("layer3", 9)
    payload = torch.load(path, weights_only=True)  # plain tensors and JSON: no pickled objects
    assert set(payload) == {"format", "version", "meta", "states"}


def test_state_does_not_grow_with_the_images(viz, monkeypatch):
    calls = []

    def recording_bar(total, description, *, enabled=True, unit="it"):
        from contextlib import contextmanager

        @contextmanager
        def bar():
            done = []
            yield done.append
            calls.append((total, unit, done))

        return bar()

    monkeypatch.setattr("featviz_widgets.dataset.scan.progress_bar", recording_bar)
    sizes = {}
    for n in (3, 12):
        examples = viz.dataset_examples([scene(48, 48, seed=s) for s in range(n)], ["layer4"], k=2)
        sizes[n] = {name: tuple(t.shape) for name, t in examples.states["layer4"].tensors().items()}
    assert sizes[3] == sizes[12] and sizes[3]["scores"] == (512, 2)
    assert [(total, unit, done[-1]) for total, unit, done in calls] == [
        (3, "img", 3),
        (12, "img", 12),
    ]


def _rank(rank: int, world: int, init: str, folder: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        viz = FeatureVisualizer(small_model("resnet18"), device="cpu")
        examples = viz.dataset_examples(folder, LAYERS, k=5, batch_size=7, progress=False)
        examples.save(f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_give_the_one_process_result(scanned, folder, tmp_path):
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    # Forked: the ranks start with everything imported (spawned ones re-import torch and timm,
    # most of this test's time on a busy machine); torch gives forked children one thread.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    args = (2, init, str(folder), str(tmp_path / "out"))
    mp.start_processes(_rank, args=args, nprocs=2, start_method=method)
    for rank in range(2):
        merged = DatasetExamples.load(tmp_path / f"out.{rank}")
        assert merged.sources == scanned.sources and merged.skipped == scanned.skipped
        for layer in LAYERS:
            a, b = merged.states[layer], scanned.states[layer]
            for name in ("scores", "index", "position"):
                assert torch.equal(getattr(a, name), getattr(b, name))
            assert a.count == b.count
            torch.testing.assert_close(a.mean(), b.mean(), rtol=1e-12, atol=1e-12)


def test_a_failure_inside_a_batch_keeps_the_last_whole_state(viz, tmp_path):
    tensors = list(viz.prepare([scene(64, 64, seed=s) for s in range(12)]))
    reference = viz.dataset_examples(tensors, ["layer3"], k=3, batch_size=4, progress=False)
    broken = [*tensors[:8], *torch.zeros(4, 3, 32, 32)]  # batch 2 (images 8-11) fails to fold
    cache = tmp_path / "scan.pt"
    with pytest.raises(ValueError, match="one input size"):
        viz.dataset_examples(broken, ["layer3"], k=3, batch_size=4, cache=cache, save_every=1)
    resumed = viz.dataset_examples(tensors, ["layer3"], k=3, batch_size=4, cache=cache)
    same_result(resumed, reference)


def test_progress_callback_and_should_stop(viz, tmp_path):
    from featviz_widgets import ScanCancelled

    images = [scene(48, 48, seed=s) for s in range(10)]
    seen: list[tuple[int, int]] = []
    viz.dataset_examples(
        images, ["layer4"], k=2, batch_size=4, progress=False, on_progress=lambda *a: seen.append(a)
    )
    assert seen == [(0, 10), (4, 10), (8, 10), (10, 10)]
    # stopped before the third batch: its cache keeps two, and a restart finishes the scan
    cache = tmp_path / "scan.pt"
    with pytest.raises(ScanCancelled, match="cancelled"):
        viz.dataset_examples(
            images,
            ["layer4"],
            k=2,
            batch_size=4,
            progress=False,
            cache=cache,
            should_stop=lambda: len(seen) >= 7,
            on_progress=lambda *a: seen.append(a),
        )
    assert seen[4:] == [(0, 10), (4, 10), (8, 10)]
    resumed = viz.dataset_examples(
        images, ["layer4"], k=2, batch_size=4, progress=False, cache=cache
    )
    whole = viz.dataset_examples(images, ["layer4"], k=2, batch_size=4, progress=False)
    assert resumed.top("layer4", 3) == whole.top("layer4", 3)
