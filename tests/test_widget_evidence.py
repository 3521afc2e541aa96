"""The explorer's class evidence without a browser: the class menu's classes, `target_class`
and its checks, the Grad-CAM payload, the "class contribution" sort mode, the channel's
contribution, the cache, a batch's image, a model without a classifier, and `save_png`.

Real timm models (random weights, 64 px input) and a real photo (matplotlib's Grace Hopper);
every expected value comes from `FeatureVisualizer.class_evidence` itself.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import timm
import torch
import traitlets
from conftest import before_each_forward, resnet18_64px, scene
from matplotlib import cbook
from PIL import Image

from featviz_widgets.widget.explorer import FeatureExplorer
from featviz_widgets.widget.panels import SORT_MODES
from featviz_widgets.widget.panels.evidence import CLASS_CONTRIBUTION
from featviz_widgets.widget.payload import decode_maps

LAYER = "layer3"


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        return Image.open(file).convert("RGB")


@pytest.fixture(scope="module")
def model():
    return resnet18_64px()


@pytest.fixture
def make(model, photo):
    made: list[FeatureExplorer] = []

    def build(**kwargs) -> FeatureExplorer:
        kwargs.setdefault("layer", LAYER)
        kwargs.setdefault("image", photo)
        explorer = FeatureExplorer(kwargs.pop("model", model), **kwargs)
        made.append(explorer)
        return explorer.wait(60)

    yield build
    for explorer in made:
        explorer.close()


def test_the_class_menu_knows_the_models_classes(make):
    explorer = make()
    assert explorer._classes["count"] == 1000 and explorer._classes["note"] == ""
    assert explorer.class_names[207] == "golden retriever" and len(explorer.class_names) == 1000
    assert CLASS_CONTRIBUTION in SORT_MODES and explorer._contract["sort_modes"] == list(SORT_MODES)
    # off by default: no model work beyond the view, nothing in the payload
    assert not explorer.class_evidence and explorer._evidence == {}
    assert explorer.class_evidence_result is None and explorer.channel_contribution() is None
    small = make(model=timm.create_model("resnet18", pretrained=False, num_classes=10))
    assert small.class_names == [f"class {i}" for i in range(10)]


def test_target_class_is_checked_with_the_class_count(make):
    explorer = make()
    with pytest.raises(
        traitlets.TraitError, match=r"1000 is out of range: .* 1000 classes \(0 to 999\)"
    ):
        explorer.target_class = 1000
    with pytest.raises(traitlets.TraitError, match="out of range"):
        explorer.target_class = -1
    with pytest.raises(traitlets.TraitError, match="class index or None"):
        explorer.target_class = True
    assert explorer.target_class is None and not explorer.class_evidence
    # the same value from the front end: said in `error`, the view gets Python's value back
    explorer.set_state({"target_class": 5000})
    assert "`target_class` 5000 is out of range" in explorer.error
    assert explorer.target_class is None


def test_choosing_a_class_shows_its_evidence(make, photo):
    explorer = make()
    explorer.target_class = 207
    explorer.wait(60)
    assert explorer.error == "" and explorer.class_evidence  # choosing a class turned it on
    expected = explorer.visualizer.class_evidence(photo, LAYER, 207)
    meta = explorer._evidence
    assert (meta["layer"], meta["target"], meta["chosen"]) == (LAYER, 207, True)
    assert meta["target_name"] == "golden retriever" == expected.target_names[0]
    assert [entry[0] for entry in meta["top"]] == [c for c, _, _ in expected.top_classes[0]]
    assert [entry[2] for entry in meta["top"]] == pytest.approx(
        [p for _, _, p in expected.top_classes[0]], rel=1e-5
    )
    # the Grad-CAM at the input image's size, within one quantisation step of the facade's
    height, width = explorer._image["h"], explorer._image["w"]
    assert (meta["h"], meta["w"]) == (height, width)
    cam = decode_maps(explorer._evidence["data"], meta)[0]
    reference = expected.upsampled_cam((height, width))[0].numpy()
    step = (meta["hi"][0] - meta["lo"][0]) / 255
    assert np.abs(cam - reference).max() <= step / 2 + 1e-6
    assert torch.equal(explorer.class_evidence_result.contributions, expected.contributions)
    # back to the top-1 class
    explorer.target_class = None
    explorer.wait(60)
    top1 = explorer.visualizer.class_evidence(photo, LAYER).targets[0]
    assert explorer._evidence["target"] == top1 and not explorer._evidence["chosen"]


def test_sort_by_class_contribution_is_the_evidence_ranking(make, photo):
    explorer = make(num_features=9)
    explorer.sort_by = CLASS_CONTRIBUTION
    explorer.wait(60)
    assert explorer.class_evidence and explorer.error == ""
    viz = explorer.visualizer
    ranked = viz.class_evidence(photo, LAYER).ranked_channels()
    assert explorer.ranking == ranked
    assert explorer._grid["channels"] == ranked[:9]
    assert explorer._grid["sort_by"] == CLASS_CONTRIBUTION
    # another class reorders the grid; another layer too, once its evidence is there
    explorer.target_class = 3
    explorer.wait(60)
    assert explorer.ranking == viz.class_evidence(photo, LAYER, 3).ranked_channels()
    explorer.layer = "layer2"
    explorer.wait(60)
    assert explorer.ranking == viz.class_evidence(photo, "layer2", 3).ranked_channels()
    assert explorer._grid["channels"] == explorer.ranking[:9]
    # leaving the mode gives the core's ranking back
    explorer.sort_by = "variance"
    assert explorer.ranking == viz.rank_channels(photo, "layer2", "variance")
    # turning class evidence off while sorted by it: back to the default order
    explorer.sort_by = CLASS_CONTRIBUTION
    explorer.wait(60)
    explorer.class_evidence = False
    assert explorer.sort_by == "activation" and explorer._grid["sort_by"] == "activation"
    assert explorer.ranking == viz.rank_channels(photo, "layer2", "activation")


def test_the_channel_view_says_its_contribution_and_rank(make, photo):
    explorer = make(target_class=207)
    expected = explorer.visualizer.class_evidence(photo, LAYER, 207)
    ranked = expected.ranked_channels()
    for channel in (ranked[2], ranked[-1]):
        explorer.channel = channel
        said = explorer.channel_contribution()
        assert said["value"] == pytest.approx(float(expected.contributions[0, channel]), rel=1e-6)
        assert said["rank"] == ranked.index(channel) + 1 and said["of"] == 256
        value = f"{float(expected.contributions[0, channel]):+.3g}"
        assert said["text"] == (
            f"contribution to 'golden retriever': {value} (rank {said['rank']} of 256)"
        )
    assert explorer.channel_contribution(ranked[2])["rank"] == 3
    # the ranks in the payload follow `ranked_channels`
    ranks = explorer._evidence["ranks"]
    assert [ranks[c] for c in ranked] == list(range(1, 257))


def test_evidence_is_cached_per_image_layer_and_class(make, monkeypatch):
    explorer = make(target_class=207)
    viz = explorer.visualizer
    calls = []
    original = viz.class_evidence

    def counted(*args, **kwargs):
        calls.append(args[1:])
        return original(*args, **kwargs)

    monkeypatch.setattr(viz, "class_evidence", counted)
    explorer.layer = "layer2"
    explorer.wait(60)
    explorer.layer = LAYER
    explorer.wait(60)
    explorer.target_class = 3
    explorer.wait(60)
    explorer.target_class = 207
    explorer.wait(60)
    assert calls == [("layer2", 207), (LAYER, 3)]  # layer3 / 207 came back from the cache
    assert explorer._evidence["layer"] == LAYER and explorer._evidence["target"] == 207
    # turning it off clears the payload and runs nothing; on again: from the cache
    explorer.class_evidence = False
    assert explorer._evidence == {}
    explorer.class_evidence = True
    explorer.wait(60)
    assert len(calls) == 2 and explorer._evidence["target"] == 207


def test_the_evidence_of_a_batch_is_that_of_the_image_shown(make, photo):
    images = [photo, scene(80, 64, seed=2)]
    explorer = make(image=images, show_cam=True)
    assert explorer.class_evidence  # the overlay turned it on
    viz = explorer.visualizer
    batch = viz.prepare(images)
    first = viz.class_evidence(batch[:1], LAYER)
    assert explorer._evidence["index"] == 0
    assert explorer._evidence["target"] == first.targets[0]
    explorer.image_index = 1
    explorer.wait(60)
    second = viz.class_evidence(images, LAYER)  # the batch: image 1's row
    meta = explorer._evidence
    assert meta["index"] == 1 and meta["target"] == second.targets[1]
    assert meta["contributions"] == pytest.approx(
        second.contributions[1].tolist(), rel=1e-4, abs=1e-6
    )
    explorer.sort_by = CLASS_CONTRIBUTION
    explorer.wait(60)
    assert explorer.ranking == second.ranked_channels(1)


def test_a_model_without_a_classifier_says_so_and_the_other_views_work(make):
    model = timm.create_model(
        "resnet18",
        pretrained=False,
        num_classes=0,
        pretrained_cfg_overlay=dict(input_size=(3, 64, 64), crop_pct=1.0),
    )
    explorer = make(model=model)
    classes = explorer._classes
    assert classes["count"] == 0 and "num_classes=0" in classes["note"]
    assert explorer.class_names == []
    with pytest.raises(traitlets.TraitError, match="cannot be set: .*num_classes=0"):
        explorer.target_class = 3
    with pytest.raises(traitlets.TraitError, match="'class contribution' is not available"):
        explorer.sort_by = CLASS_CONTRIBUTION
    explorer.set_state({"sort_by": CLASS_CONTRIBUTION})  # from the view: said in `error`
    assert "not available" in explorer.error and explorer.sort_by == "activation"
    explorer.error = ""
    explorer.class_evidence = True
    explorer.show_cam = True
    explorer.wait(60)
    meta = explorer._evidence
    assert meta["n"] == 0 and "num_classes=0" in meta["note"]
    assert explorer.error == "" and explorer.class_evidence_result is None
    explorer.layer = "layer2"
    explorer.wait(60)
    assert explorer.error == "" and explorer._grid["n"] == 16
    assert explorer._grid["layer"] == "layer2"
    with pytest.raises(ValueError, match="num_classes=0"):
        explorer.save_png("never.png", view="cam")


def test_save_png_of_the_grad_cam(make, tmp_path):
    explorer = make()
    with pytest.raises(ValueError, match="show_cam"):
        explorer.save_png(tmp_path / "none.png", view="cam")
    explorer.show_cam = True
    explorer.wait(60)
    path = explorer.save_png(tmp_path / "cam.png", view="cam")
    with Image.open(path) as saved:
        assert saved.size[0] > 100 and saved.size[1] > 100


def test_cancel_stops_a_run_and_the_panel_says_so(model, photo):
    """A slow head (the view's forward stops before it; class evidence runs through it): the
    kernel stays free while it runs, Cancel stops it, nothing is shown for it."""
    undo = before_each_forward(model.fc, lambda: time.sleep(1.5))
    explorer = FeatureExplorer(model, photo, layer=LAYER)
    try:
        explorer.wait(60)
        started = time.monotonic()
        explorer.target_class = 207
        assert time.monotonic() - started < 0.5  # the run is on the worker
        deadline = time.monotonic() + 10
        while explorer._job != "evidence" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert explorer._job == "evidence" and explorer.busy
        explorer.cancel()
        explorer.wait(60)
        meta = explorer._evidence
        assert meta["n"] == 0 and "cancelled" in meta["note"] and explorer.error == ""
        assert explorer.class_evidence_result is None
    finally:
        undo()
        explorer.close()
    # asked again: it runs to the end
    explorer = FeatureExplorer(model, photo, layer=LAYER, target_class=207).wait(60)
    try:
        assert explorer._evidence["target"] == 207 and explorer._evidence["n"] == 1
    finally:
        explorer.close()


def test_a_new_image_gets_its_own_evidence(make):
    explorer = make(class_evidence=True)
    assert explorer._evidence["n"] == 1  # on from the constructor: the first view has it
    other = scene(80, 64, seed=5)
    explorer.image = other
    explorer.wait(60)
    expected = explorer.visualizer.class_evidence(other, LAYER)
    meta = explorer._evidence
    assert meta["target"] == expected.targets[0]
    assert meta["contributions"] == pytest.approx(
        expected.contributions[0].tolist(), rel=1e-4, abs=1e-6
    )


def test_a_model_that_does_not_say_its_classes_is_checked_when_it_runs(make, photo):
    """No `num_classes` attribute: the menu has only each image's top classes, and a class the
    model lacks is refused by `class_evidence` itself, in `error` and the panel."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    )
    explorer = make(model=model, layer="1", transform=_to_64px)
    assert explorer._classes["count"] == -1 and explorer.class_names == []
    explorer.class_evidence = True
    explorer.wait(60)
    meta = explorer._evidence
    assert meta["n"] == 1 and len(meta["top"]) == 5 and meta["top"][0][1].startswith("class ")
    explorer.target_class = 50
    explorer.wait(60)
    assert "out of range" in explorer.error and "10 classes" in explorer.error
    assert explorer._evidence["n"] == 0 and "out of range" in explorer._evidence["note"]


def _to_64px(picture: Image.Image) -> torch.Tensor:
    array = np.asarray(picture.convert("RGB").resize((64, 64)), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)
