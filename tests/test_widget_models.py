"""FeatureExplorer over several models (`widget.models`), without a browser: the mapping and
its checks, the model menu (`model_name`), the switch with its layer aligned by relative
depth, and the comparison (equal to `compare_models` on the same image), its cache, progress
and Cancel; a single model keeps none of it.

Real timm models with random weights (pretrained=False) at 64 px: resnet18 and convnext_atto.
"""

from __future__ import annotations

import threading

import matplotlib.pyplot as plt
import pytest
import timm
import torch
import traitlets
from conftest import resnet18_64px, scene
from PIL import Image

from featviz_widgets import FeatureExplorer, FeatureVisualizer, compare_models
from featviz_widgets.widget import model_set as _model_set

SMALL = dict(pretrained_cfg_overlay=dict(input_size=(3, 64, 64), crop_pct=1.0))


@pytest.fixture(scope="module")
def resnet():
    return resnet18_64px()


@pytest.fixture(scope="module")
def convnext():
    torch.manual_seed(0)
    return timm.create_model("convnext_atto", pretrained=False, **SMALL)


@pytest.fixture(scope="module")
def pair(resnet, convnext):
    return {"resnet18": resnet, "convnext_atto": convnext}


@pytest.fixture
def make(pair):
    made: list[FeatureExplorer] = []

    def build(models=None, image=None, wait: bool = True, **kwargs) -> FeatureExplorer:
        explorer = FeatureExplorer(pair if models is None else models, image or scene(), **kwargs)
        made.append(explorer)
        return explorer.wait(120) if wait else explorer

    yield build
    for explorer in made:
        explorer.close()


def default_layers(model) -> list[str]:
    return [info.name for info in FeatureVisualizer(model, device="cpu").list_layers(scene())]


def assert_same_rows(got, expected):
    assert [(r.model, r.layer, r.depth, r.channels, r.height, r.width) for r in got] == [
        (r.model, r.layer, r.depth, r.channels, r.height, r.width) for r in expected
    ]
    for a, b in zip(got, expected):
        assert a.mean == pytest.approx(b.mean, rel=1e-5, abs=1e-6), (a, b)
        assert a.sparsity == pytest.approx(b.sparsity, abs=1e-6), (a, b)


# ---------------------------------------------------------------------------- the mapping
def test_a_mapping_of_models_gives_a_menu_and_shows_the_first(make, pair, resnet):
    explorer = make(layer="layer2")
    assert explorer.model_names == ["resnet18", "convnext_atto"] == explorer._model_names
    assert explorer.model_name == "resnet18" and explorer.error == ""
    assert explorer.model is resnet
    assert explorer.layers == default_layers(resnet) and explorer.layer == "layer2"
    expected = FeatureVisualizer(resnet, device="cpu").get_features(scene(), "layer2")
    assert torch.allclose(explorer.features, expected, atol=1e-5)


def test_the_comparison_equals_compare_models_on_the_same_image(make, pair):
    explorer = make(layer="layer2")
    comparison = explorer.comparison
    assert comparison is not None
    expected = compare_models(pair, scene(), device="cpu")
    assert comparison.models == expected.models == ["resnet18", "convnext_atto"]
    assert_same_rows(comparison.rows, expected.rows)
    meta = explorer._comparison
    assert (meta["done"], meta["total"], meta["note"]) == (2, 2, "")
    assert meta["models"] == expected.models and len(meta["rows"]) == len(expected.rows)
    assert meta["rows"][0].keys() == expected.table()[0].keys()
    assert {row["model"] for row in meta["rows"]} == set(expected.models)


def test_switching_shows_the_other_model_at_the_layer_nearest_in_depth(make, pair, convnext):
    explorer = make(layer="layer2")
    reference = compare_models(pair, scene(), device="cpu")
    depth = next(r.depth for r in reference.profiles("resnet18") if r.layer == "layer2")
    explorer.model_name = "convnext_atto"  # returns at once: the worker switches
    explorer.wait(120)
    assert explorer.error == "" and explorer.model_name == "convnext_atto"
    assert explorer.model is convnext
    assert explorer.layers == default_layers(convnext)
    assert explorer.layer == reference.nearest_layer("convnext_atto", depth) == "stages.1"
    expected = FeatureVisualizer(convnext, device="cpu").get_features(scene(), "stages.1")
    assert torch.allclose(explorer.features, expected, atol=1e-5)
    assert explorer.statistics["num_channels"] == expected.shape[1]
    assert explorer._grid["layer"] == "stages.1"
    assert explorer.compare and set(explorer.compare) <= set(explorer.layers)
    assert set(explorer.compare_statistics) == set(explorer.compare)
    # and back, from the deepest stage: the deepest block of resnet18 near it
    explorer.layer = "stages.3"
    explorer.wait(120)
    depth = next(r.depth for r in reference.profiles("convnext_atto") if r.layer == "stages.3")
    explorer.model_name = "resnet18"
    explorer.wait(120)
    assert explorer.layer == reference.nearest_layer("resnet18", depth)
    assert explorer.layers == default_layers(pair["resnet18"])


def test_switching_at_once_waits_for_nothing_of_the_old_model(make, pair, convnext):
    # the first view's layer chart is queued behind the switch: it must not run on convnext
    explorer = make(layer="layer3", wait=False)
    explorer.model_name = "convnext_atto"
    explorer.wait(120)
    assert explorer.error == "" and explorer.model is convnext
    reference = compare_models(pair, scene(), device="cpu")
    depth = next(r.depth for r in reference.profiles("resnet18") if r.layer == "layer3")
    assert explorer.layer == reference.nearest_layer("convnext_atto", depth)
    assert explorer.compare and set(explorer.compare_statistics) == set(explorer.compare)
    assert set(explorer.compare) <= set(explorer.layers)


def test_model_name_is_checked_and_can_choose_the_first_model(make, convnext):
    explorer = make(model_name="convnext_atto")
    assert explorer.model is convnext and explorer.layer.startswith("stages")
    with pytest.raises(traitlets.TraitError, match=r"one of \['resnet18', 'convnext_atto'\]"):
        explorer.model_name = "vit"
    assert explorer.model_name == "convnext_atto"
    with pytest.raises(ValueError, match=r"`model_name` must be one of"):
        make(model_name="vit", wait=False)


def test_switching_is_cached_per_image_and_a_new_image_is_profiled_again(make, pair, monkeypatch):
    calls: list[str] = []
    profile = _model_set.profile_model

    def counted(name, model, image, **options):
        calls.append(name)
        return profile(name, model, image, **options)

    monkeypatch.setattr(_model_set, "profile_model", counted)
    explorer = make(layer="layer2")
    assert sorted(calls) == ["convnext_atto", "resnet18"]
    for name in ("convnext_atto", "resnet18", "convnext_atto"):
        explorer.model_name = name
        explorer.wait(120)
    assert len(calls) == 2, calls  # the switches use the profiles of the image shown
    other = scene(seed=5).rotate(90)
    explorer.image = other
    explorer.wait(120)
    assert len(calls) == 4
    assert_same_rows(explorer.comparison.rows, compare_models(pair, other, device="cpu").rows)
    assert explorer.model_name == "convnext_atto" and explorer.error == ""


def test_layers_may_be_given_per_model(make, convnext):
    explorer = make(layers={"convnext_atto": ["stages.2", "stages.3"]}, layer="layer1")
    explorer.model_name = "convnext_atto"
    explorer.wait(120)
    assert explorer.layers == ["stages.2", "stages.3"]
    assert explorer.layer == "stages.2"  # the nearest of its list to layer1's depth


def test_cancel_stops_the_comparison_between_models(make, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    profile = _model_set.profile_model

    def slow(name, model, image, **options):
        if name == "convnext_atto" and threading.current_thread().name == "featviz-worker":
            entered.set()
            release.wait(30)
        return profile(name, model, image, **options)

    explorer = make(layer="layer2")
    monkeypatch.setattr(_model_set, "profile_model", slow)
    explorer.image = scene(seed=9)
    assert entered.wait(60), "the comparison never started"
    assert explorer._job == "comparison" and explorer.busy  # the panel's job
    assert 0 <= explorer.progress < 1 and "profiling convnext_atto" in explorer.status
    assert explorer._comparison["done"] == 1 and explorer.comparison is None
    explorer.cancel()
    release.set()
    explorer.wait(120)
    assert "cancelled" in explorer._comparison["note"] and explorer.comparison is None
    assert explorer.error == "" and not explorer.busy
    explorer.image = scene(seed=9)  # shown again: the comparison finishes
    explorer.wait(120)
    assert explorer.comparison is not None and explorer._comparison["note"] == ""


def test_save_png_of_the_comparison(make, tmp_path):
    explorer = make(layer="layer3")
    path = explorer.save_png(tmp_path / "models.png", view="models")
    assert Image.open(path).size[0] > 400
    plt.close("all")


# ---------------------------------------------------------------------------- one model
def test_a_single_model_has_no_menu_and_no_comparison(make, resnet, tmp_path):
    explorer = make(models=resnet, layer="layer2")
    assert explorer.model_names == [] and explorer.model_name == ""
    assert explorer._comparison == {} and explorer.comparison is None
    assert explorer.model is resnet and explorer.error == ""
    with pytest.raises(traitlets.TraitError, match="shows one model"):
        explorer.model_name = "resnet18"
    with pytest.raises(ValueError, match="no model comparison yet"):
        explorer.save_png(tmp_path / "models.png", view="models")
    explorer.layer = "layer3"
    explorer.wait(60)
    assert explorer._comparison == {} and explorer.error == ""


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda m: {}, ValueError, "empty mapping"),
        (lambda m: {"a": m["resnet18"], "b": "convnext"}, TypeError, r"`model`\['b'\] must be"),
        (lambda m: {1: m["resnet18"]}, TypeError, "model names must be strings"),
        (lambda m: {"": m["resnet18"]}, ValueError, "empty or has spaces"),
        (lambda m: {" a": m["resnet18"]}, ValueError, "empty or has spaces"),
        (lambda m: {"a": m["resnet18"], "b": m["resnet18"]}, ValueError, "both 'a' and 'b'"),
        (lambda m: [m["resnet18"], m["convnext_atto"]], TypeError, "or a mapping of names"),
    ],
    ids=["empty", "not-a-module", "int-name", "empty-name", "padded-name", "twice", "list"],
)
def test_bad_mappings_are_refused(pair, build, error, match):
    with pytest.raises(error, match=match):
        FeatureExplorer(build(pair), scene())


def test_bad_layers_for_several_models_are_refused(pair):
    with pytest.raises(TypeError, match="mapping of model names to layer names"):
        FeatureExplorer(pair, scene(), layers=["layer1"])
    with pytest.raises(ValueError, match=r"\['vit'\], not in the models"):
        FeatureExplorer(pair, scene(), layers={"vit": ["blocks.0"]})
    with pytest.raises(ValueError, match="layer9"):
        FeatureExplorer(pair, scene(), layers={"resnet18": ["layer9"]})


def test_switching_to_a_model_with_other_classes_updates_the_class_menu(make, resnet):
    torch.manual_seed(0)
    ten = timm.create_model("resnet18", pretrained=False, num_classes=10, **SMALL)
    explorer = make(models={"imagenet": resnet, "ten": ten}, layer="layer2", target_class=500)
    assert explorer._classes["count"] == 1000 and explorer.target_class == 500
    explorer.model_name = "ten"
    explorer.wait(120)
    assert explorer._classes["count"] == 10 and explorer.class_names[-1] == "class 9"
    assert explorer.target_class is None  # 500 is not a class of "ten": reset, and said
    assert explorer.error == "`target_class` 500 was reset: ten has 10 classes (0 to 9)."
    with pytest.raises(traitlets.TraitError, match="out of range: the model has 10 classes"):
        explorer.target_class = 10
    explorer.target_class = 9
    explorer.model_name = "imagenet"
    explorer.wait(120)
    assert explorer._classes["count"] == 1000 and explorer.target_class == 9
