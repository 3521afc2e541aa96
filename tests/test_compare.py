"""`featviz_widgets.compare_models` (featviz_widgets.compare): each model's default layers
profiled on a real photo, with the statistics `get_feature_statistics` gives, ordered by a
relative depth in [0, 1], aligned across models, and drawn as one line per model."""

from __future__ import annotations

import json

import pytest
from conftest import timm_model
from matplotlib.figure import Figure

from featviz_widgets import (
    FeatureVisualizer,
    LayerProfile,
    ModelComparison,
    compare_models,
    sample_image,
)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def models():
    return {
        "resnet18": timm_model("resnet18", zero_init_last=False),
        "efficientnet_b0": timm_model("efficientnet_b0"),
    }


@pytest.fixture(scope="module")
def comparison(models):
    return compare_models(models, sample_image(), use_cuda=False)


def test_rows_are_each_models_default_layers_with_get_feature_statistics(models, comparison):
    assert isinstance(comparison, ModelComparison)
    assert comparison.models == ["resnet18", "efficientnet_b0"]
    picture = sample_image()
    for name, model in models.items():
        viz = FeatureVisualizer(model, device="cpu")
        rows = comparison.profiles(name)
        assert all(isinstance(row, LayerProfile) and row.model == name for row in rows)
        assert {row.layer for row in rows} == {info.name for info in viz.list_layers()}
        for row in rows:
            stats = viz.get_feature_statistics(picture, row.layer)
            assert row.mean == stats["mean"] and row.sparsity == stats["sparsity"], row.layer
            assert (row.channels, row.height, row.width) == (
                stats["num_channels"],
                *stats["spatial_size"],
            )


def test_depth_runs_from_0_to_1_in_forward_order(comparison):
    for name in comparison.models:
        depths = [row.depth for row in comparison.profiles(name)]
        assert depths[0] == 0.0 and depths[-1] == 1.0
        assert all(a < b for a, b in zip(depths, depths[1:]))
    layers = [row.layer for row in comparison.profiles("resnet18")]
    # a stage comes after its last block, the stem before the stages, the head last
    assert layers.index("layer1.1") < layers.index("layer1") < layers.index("layer2.0")
    assert layers[:2] == ["conv1", "bn1"] and layers[-1] == "fc"


def test_bn1_keeps_its_own_values_under_the_inplace_relu(comparison):
    rows = {row.layer: row for row in comparison.profiles("resnet18")}
    assert rows["bn1"].sparsity == 0.0 < rows["act1"].sparsity  # before and after the ReLU


def test_nearest_layer_and_alignment(comparison):
    assert comparison.nearest_layer("resnet18", 0.0) == "conv1"
    assert comparison.nearest_layer("efficientnet_b0", 1.0) == "classifier"
    middle = comparison.nearest_layer("efficientnet_b0", 0.5)
    rows = comparison.profiles("efficientnet_b0")
    best = min(abs(row.depth - 0.5) for row in rows)
    assert abs({r.layer: r for r in rows}[middle].depth - 0.5) == best
    aligned = comparison.alignment()
    assert len(aligned) == len(comparison.profiles("resnet18"))
    assert aligned[0] == {"resnet18": "conv1", "efficientnet_b0": "conv_stem"}
    assert aligned[-1] == {"resnet18": "fc", "efficientnet_b0": "classifier"}
    with pytest.raises(ValueError, match="`depth`"):
        comparison.nearest_layer("resnet18", 1.5)
    with pytest.raises(ValueError, match="not one of the compared models"):
        comparison.nearest_layer("vgg", 0.5)


def test_table_text_and_dict(comparison):
    table = comparison.table()
    assert len(table) == len(comparison.rows)
    assert set(table[0]) == {
        "model",
        "layer",
        "depth",
        "mean",
        "sparsity",
        "channels",
        "height",
        "width",
    }
    text = str(comparison)
    assert text.splitlines()[0].split()[:3] == ["model", "layer", "depth"]
    assert len(text.splitlines()) == len(comparison.rows) + 2
    assert json.loads(json.dumps(comparison.to_dict()))["rows"] == table


def test_figure_has_one_line_per_model_on_each_axis(comparison, tmp_path):
    fig = comparison.figure(save_path=tmp_path / "compare.png")
    assert isinstance(fig, Figure) and (tmp_path / "compare.png").stat().st_size > 10_000
    mean_ax, sparsity_ax = fig.axes
    for ax, key in ((mean_ax, "mean"), (sparsity_ax, "sparsity")):
        assert [line.get_label() for line in ax.get_lines()] == comparison.models
        for line, name in zip(ax.get_lines(), comparison.models):
            rows = comparison.profiles(name)
            assert list(line.get_xdata()) == [row.depth for row in rows]
            assert list(line.get_ydata()) == [getattr(row, key) for row in rows]


def test_explicit_layers_and_errors(models):
    picture = sample_image()
    chosen = compare_models(
        models,
        picture,
        layers={"resnet18": ["layer2", "layer4"], "efficientnet_b0": ["blocks.3"]},
        use_cuda=False,
    )
    assert [(r.model, r.layer, r.depth) for r in chosen.rows] == [
        ("resnet18", "layer2", 0.0),
        ("resnet18", "layer4", 1.0),
        ("efficientnet_b0", "blocks.3", 0.0),
    ]
    with pytest.raises(TypeError, match="mapping"):
        compare_models([models["resnet18"]], picture)
    with pytest.raises(ValueError, match="empty"):
        compare_models({}, picture)
    with pytest.raises(ValueError, match="not in `models`"):
        compare_models(models, picture, layers={"vgg": ["x"]})
    with pytest.raises(ValueError, match="Closest layers"):
        compare_models({"r": models["resnet18"]}, picture, layers=["layer_4"], use_cuda=False)
