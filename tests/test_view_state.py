"""The explorer holds one immutable view state (`ViewState`): a control's change makes a new
one, the panels read it, and no module of the widget but explorer.py reads or writes an
explorer attribute whose name starts with `_` (watched at run time, whatever the variable
holding the explorer is called, over a session that uses every part of the explorer).

Real timm models with random weights at 64 px, no browser.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import resnet18_64px, scene
from matplotlib import cbook
from PIL import Image

import featviz_widgets.widget as widget_package
from featviz_widgets import FeatureExplorer
from featviz_widgets.widget.panels import EXPORT_VIEWS

WIDGET = Path(widget_package.__file__).resolve().parent
EXPLORER = WIDGET / "explorer.py"


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        return Image.open(file).convert("RGB")


def test_a_controls_change_makes_a_new_state_and_leaves_the_old_one_as_it_was(photo):
    explorer = FeatureExplorer(resnet18_64px(), photo, layer="layer2").wait(60)
    try:
        first = explorer._state
        assert first.layer == "layer2" and first.features.shape[1] == 128
        assert first.channel == explorer.channel and first.sort_by == "activation"
        with pytest.raises(dataclasses.FrozenInstanceError):
            first.channel = 3  # type: ignore[misc]
        explorer.channel = 5
        explorer.sort_by = "variance"
        explorer.num_features = 4
        explorer.position = [1, 2]
        now = explorer._state
        assert now is not first and first.channel != 5 and first.sort_by == "activation"
        assert (now.channel, now.sort_by, now.num_features, now.position) == (
            5,
            "variance",
            4,
            (1, 2),
        )
        assert now.features is first.features  # no model work: the same maps
        assert explorer._unit["channel"] == 5 and len(explorer._grid["channels"]) == 4
        explorer.layer = "layer3"
        explorer.wait(60)
        assert explorer._state.layer == "layer3" and explorer._state.features.shape[1] == 256
        assert torch.equal(explorer.features, explorer._state.features)
    finally:
        explorer.close()


def test_a_failed_view_leaves_the_state_and_the_controls_as_they_were(photo):
    explorer = FeatureExplorer(resnet18_64px(), photo, layer="layer2").wait(60)
    try:
        before = explorer._state
        explorer.image = np.zeros((2, 2, 2, 2, 2), np.uint8)  # no image the core can read
        explorer.wait(60)
        assert explorer.error and explorer._state is before and explorer.layer == "layer2"
    finally:
        explorer.close()


class _Watch:
    """Records each read or write of an explorer's `_` attribute made from a module of the
    widget other than explorer.py (traitlets', ipywidgets' and anywidget's own are theirs)."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def note(self, name: str) -> None:
        if not name.startswith("_") or name.startswith("__"):
            return
        caller = Path(sys._getframe(2).f_code.co_filename).resolve()
        if caller.is_relative_to(WIDGET) and caller != EXPLORER:
            self.seen.add((caller.relative_to(WIDGET).as_posix(), name))


@pytest.fixture
def watched(monkeypatch):
    watch = _Watch()
    plain_get, plain_set = FeatureExplorer.__getattribute__, FeatureExplorer.__setattr__

    def get(self, name):
        watch.note(name)
        return plain_get(self, name)

    def set_(self, name, value):
        watch.note(name)
        plain_set(self, name, value)

    monkeypatch.setattr(FeatureExplorer, "__getattribute__", get)
    monkeypatch.setattr(FeatureExplorer, "__setattr__", set_)
    return watch


def test_no_module_but_the_explorer_touches_its_private_attributes(watched, photo, tmp_path):
    torch.manual_seed(0)
    models = {"a": resnet18_64px(), "b": resnet18_64px()}
    explorer = FeatureExplorer(models, photo, layer="layer2", num_features=4).wait(120)
    try:
        explorer._repr_mimebundle_()
        explorer.channel = 3
        explorer.sort_by = "variance"
        explorer.num_features = 6
        explorer.color_scale = "shared"
        explorer.layer = "layer3"
        explorer.position = [1, 1]  # occlusion
        explorer.wait(120)
        explorer.show_cam = True  # class evidence
        explorer.sort_by = "class contribution"
        explorer.wait(120)
        explorer.run_looks_for()
        explorer.cancel()
        explorer.wait(120)
        explorer.image = [scene(), scene(seed=1)]  # a batch
        explorer.wait(120)
        explorer.image_index = 1
        explorer.all_layers = True
        explorer.wait(120)
        explorer.scan_dataset([scene(seed=s) for s in range(4)], k=2)
        explorer.wait(120)
        explorer.model_name = "b"
        explorer.wait(120)
        explorer._handle_message(explorer, {"type": "pull"}, [])
        for view in EXPORT_VIEWS:
            with contextlib.suppress(ValueError):  # a view with nothing to save says so
                explorer.save_png(tmp_path / f"{view}.png", view)
        explorer.save_html(tmp_path / "page.html", layers=["layer1"])
        assert explorer.error == ""
        assert (tmp_path / "grid.png").exists() and (tmp_path / "channel.png").exists()
        assert watched.seen == set(), sorted(watched.seen)
        # the watch sees such a read: code compiled as if it stood in static.py
        eval(compile("explorer._state", str(WIDGET / "static.py"), "eval"))
        assert watched.seen == {("static.py", "_state")}
    finally:
        explorer.close()
