"""The layer as colour in the explorer: the PCA panel of the panel registry.

Its payload is `FeatureVisualizer.layer_pca`'s colours for the image and layer shown, one
pixel per position; a layer it cannot show says why in the panel; `save_png("pca")` draws it;
only a view change (layer, image, model, weights) computes it again.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import resnet18_64px, scene, small_vit
from PIL import Image

from featviz_widgets.widget.explorer import FeatureExplorer
from featviz_widgets.widget.panels import EXPORT_VIEWS, PANELS, PAYLOADS
from featviz_widgets.widget.panels.pca import PcaPanel


@pytest.fixture
def make():
    made: list[FeatureExplorer] = []

    def build(**kwargs) -> FeatureExplorer:
        kwargs.setdefault("layer", "layer2")
        explorer = FeatureExplorer(kwargs.pop("model", None) or resnet18_64px(), **kwargs)
        made.append(explorer)
        return explorer.wait(60)

    yield build
    for explorer in made:
        explorer.close()


def colours(explorer: FeatureExplorer) -> np.ndarray:
    payload = explorer._pca
    return np.frombuffer(payload["data"], np.uint8).reshape(payload["h"], payload["w"], 3)


def test_the_registry_lists_the_panel_once_for_every_part():
    assert [panel.name for panel in PANELS] == [
        "grid",
        "unit",
        "occlusion",
        "pca",
        "looks_for",
        "examples",
        "comparison",
        "evidence",
    ]
    assert "pca" in EXPORT_VIEWS and "_pca" in PAYLOADS
    assert FeatureExplorer.class_traits(sync=True)["_pca"].default() == {}


def test_the_panel_shows_the_layer_as_colour_of_the_image_and_layer_shown(make):
    explorer = make(image=scene(80, 64, seed=3))
    reference = explorer.visualizer.layer_pca(explorer.image, "layer2")
    assert explorer.error == "" and explorer._pca["layer"] == "layer2"
    assert (explorer._pca["h"], explorer._pca["w"]) == reference.map_size == (8, 8)
    expected = np.rint(reference.rgb.numpy() * 255)
    assert np.abs(colours(explorer).astype(int) - expected).max() <= 1
    assert explorer._pca["explained"] == pytest.approx(reference.explained.tolist())
    assert explorer._pca["note"] == ""
    explorer.layer = "layer1"
    explorer.wait(60)
    assert explorer._pca["layer"] == "layer1" and explorer._pca["h"] == 16


def test_on_a_vit_the_positions_are_its_patch_tokens(make):
    explorer = make(model=small_vit(96), layer="blocks.1", image=scene(96, 96, seed=4))
    assert explorer.error == "" and (explorer._pca["h"], explorer._pca["w"]) == (6, 6)
    reference = explorer.visualizer.layer_pca(explorer.image, "blocks.1")
    assert np.abs(colours(explorer).astype(int) - np.rint(reference.rgb.numpy() * 255)).max() <= 1


def test_a_batch_shows_the_selected_images_colours(make):
    images = [scene(64, 64, seed=s) for s in (1, 2)]
    explorer = make(image=images)
    first = colours(explorer).copy()
    explorer.image_index = 1
    explorer.wait(60)
    alone = explorer.visualizer.layer_pca(images[1], "layer2")
    assert np.abs(colours(explorer).astype(int) - np.rint(alone.rgb.numpy() * 255)).max() <= 1
    assert not np.array_equal(colours(explorer), first)


def test_a_layer_it_cannot_show_says_why_and_save_png_too(make, tmp_path):
    explorer = make()
    explorer.layer = "fc"  # 1000 channels, one position
    explorer.wait(60)
    assert explorer.error == ""
    note = explorer._pca["note"]
    assert explorer._pca["h"] == 0 and "'fc' gives 1 position per image" in note
    assert "choose an earlier layer" in note
    with pytest.raises(ValueError, match="no pca view for fc: 'fc' gives 1 position"):
        explorer.save_png(tmp_path / "pca.png", view="pca")


def test_save_png_draws_the_colours_over_the_input(make, tmp_path):
    explorer = make()
    path = explorer.save_png(tmp_path / "pca.png", view="pca")
    with Image.open(path) as picture:
        assert picture.size[0] > 200 and picture.size[1] > 200
        pixels = np.asarray(picture.convert("RGB"), dtype=int)
    assert pixels.std() > 10  # a picture, not a blank figure


def test_only_a_view_change_computes_it_again(make, monkeypatch):
    calls: list[str] = []
    compute = PcaPanel.compute

    def counted(self, view, job):
        calls.append(view.layer)
        return compute(self, view, job)

    monkeypatch.setattr(PcaPanel, "compute", counted)
    explorer = make()
    assert calls == ["layer2"]
    explorer.channel = explorer.ranking[3]
    explorer.sort_by = "variance"
    explorer.num_features = 4
    explorer.wait(60)
    assert calls == ["layer2"]
    explorer.layer = "layer3"
    explorer.wait(60)
    assert calls == ["layer2", "layer3"]


def test_a_panels_names_stand_in_its_two_modules_the_registries_and_the_explorer():
    """Adding a panel is its two modules and a line in each registry: nothing else in the
    widget or the front end names it (the explorer's `save_png` docstring may)."""
    repo = Path(__file__).resolve().parents[1]
    roots = [repo / "featviz_widgets" / "widget", repo / "js" / "src"]
    # "grid" and "unit" are words the whole view uses (the layout grid, the unit chosen)
    for panel in [panel for panel in PANELS if panel.name not in ("grid", "unit")]:
        pattern = re.compile(rf"\b{panel.name}\b|{panel.meta.__name__}", re.IGNORECASE)
        naming = {
            path.relative_to(repo).as_posix()
            for root in roots
            for path in root.rglob("*")
            if path.suffix in (".py", ".js") and pattern.search(path.read_text())
        }
        allowed = {
            f"featviz_widgets/widget/panels/{panel.name}.py",
            "featviz_widgets/widget/panels/__init__.py",
            f"js/src/panels/{panel.name}.js",
            "js/src/panels/index.js",
            "featviz_widgets/widget/explorer.py",
        }
        assert naming <= allowed, f"{panel.name} is named in {sorted(naming - allowed)}"
        own = {f"featviz_widgets/widget/panels/{panel.name}.py", f"js/src/panels/{panel.name}.js"}
        assert own <= naming
