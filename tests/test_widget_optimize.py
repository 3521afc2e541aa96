"""FeatureExplorer's "looks for" view: `FeatureVisualizer.optimize` on the explorer's worker.

A timm resnet18 with random weights at 64 px and a 32 px picture over 16 steps keeps every run
in milliseconds; the view's side is played by setting traits and calling the message handler.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import traitlets
from conftest import resnet18_64px
from PIL import Image

from featviz_widgets.widget.explorer import FeatureExplorer
from featviz_widgets.widget.panels import CONTRACT
from featviz_widgets.widget.panels.looks_for import looks_for_settings, looks_for_view
from featviz_widgets.widget.protocol import JobState, Message

LOOKS_FOR = "looks_for"  # the panel's name: its job kind and its message

STEPS = 16
OPTIONS = {"size": 32, "model_size": 64}


@pytest.fixture(scope="module")
def model():
    return resnet18_64px()


@pytest.fixture
def make(model):
    made: list[FeatureExplorer] = []

    def build(**kwargs) -> FeatureExplorer:
        kwargs.setdefault("layer", "layer2")
        kwargs.setdefault("looks_for_steps", STEPS)
        kwargs.setdefault("looks_for_options", OPTIONS)
        explorer = FeatureExplorer(model, **kwargs)
        made.append(explorer)
        return explorer.wait(60)

    yield build
    for explorer in made:
        explorer.close()


def picture(explorer: FeatureExplorer) -> np.ndarray:
    meta = explorer._looks_for
    return np.frombuffer(explorer._looks_for["data"], np.uint8).reshape(meta["h"], meta["w"], 3)


def count_optimize(explorer: FeatureExplorer) -> list[int]:
    """Count the explorer's `optimize` calls (channels asked for)."""
    calls: list[int] = []
    viz = explorer.visualizer
    original = viz.optimize

    def counted(layer, channels, **kwargs):
        calls.append(channels)
        return original(layer, channels, **kwargs)

    viz.optimize = counted  # type: ignore[method-assign]
    return calls


def test_device_defaults():
    assert looks_for_settings("cpu", None, {}) == {"steps": 128, "size": 128, "model_size": 128}
    assert looks_for_settings("cuda", None, {}) == {"steps": 512, "size": 128, "model_size": None}
    assert looks_for_settings("cpu", 8, {"model_size": 96, "seed": 3}) == {
        "steps": 8,
        "size": 128,
        "model_size": 96,
        "seed": 3,
    }
    assert LOOKS_FOR in CONTRACT["cancellable_jobs"]


def test_payload_is_optimize_and_partial_pictures_arrive(make):
    explorer = make()
    metas, jobs = [], []
    explorer.observe(lambda c: metas.append(dict(c["new"])), names="_looks_for")
    explorer.observe(lambda c: jobs.append(c["new"]), names="_job")
    explorer.run_looks_for()
    explorer.wait(60)
    assert explorer.error == ""
    meta = explorer._looks_for
    channel = explorer.channel
    assert meta["complete"] and not meta["cancelled"]
    assert (meta["layer"], meta["channel"], meta["step"], meta["steps"]) == (
        "layer2",
        channel,
        STEPS,
        STEPS,
    )
    reference = explorer.visualizer.optimize(
        "layer2", channel, steps=STEPS, progress=False, **OPTIONS
    )
    assert np.array_equal(picture(explorer), reference.images[0])
    assert explorer.looks_for_result.complete
    assert np.array_equal(explorer.looks_for_result.images, reference.images)
    data, view_meta = looks_for_view(reference, "cpu")  # the pure function
    assert {**view_meta, "data": data} == explorer._looks_for
    partial = [m for m in metas if m and not m["complete"]]
    assert partial and partial[0]["step"] == 4 and partial[0]["channel"] == channel
    # Only a finished picture carries the result's note (see test_optimize for its rule).
    assert meta["note"] == reference.note and all(m["note"] == "" for m in partial)
    rising = dataclasses.replace(reference, still_rising=np.array([True]))
    assert "run more steps" in looks_for_view(rising, "cpu")[1]["note"]
    assert jobs == [LOOKS_FOR, JobState.IDLE.value]
    assert not explorer.busy and explorer.progress == 0.0 and explorer.status == ""


def test_cached_pictures_show_at_once_without_work(make):
    explorer = make()
    calls = count_optimize(explorer)
    first, second = explorer.ranking[:2]
    explorer.run_looks_for()
    explorer.wait(60)
    kept = explorer._looks_for
    explorer.run_looks_for(second)
    explorer.wait(60)
    assert calls == [first, second] and explorer._looks_for["channel"] == second
    explorer.channel = first  # re-selecting: the cached picture, at once, no job
    assert explorer._looks_for["channel"] == first and explorer._looks_for == kept
    assert not explorer.busy
    explorer.run_looks_for()  # asked again: nothing runs
    assert not explorer.busy and calls == [first, second]
    explorer.channel = explorer.ranking[2]  # never asked for: nothing shown, nothing runs
    assert explorer._looks_for == {} and explorer.looks_for_result is None
    explorer.looks_for_steps = STEPS + 1  # other settings: not the cached picture
    explorer.channel = first
    assert explorer._looks_for == {}
    explorer.looks_for_steps = STEPS
    assert explorer._looks_for["channel"] == first
    assert calls == [first, second]


def long_run(explorer: FeatureExplorer) -> threading.Event:
    """Make the next run long; the returned event is set on its first partial picture."""
    explorer.looks_for_steps = 20_000
    started = threading.Event()
    explorer.observe(
        lambda c: c["new"] and not c["new"]["complete"] and started.set(), names="_looks_for"
    )
    return started


def test_cancel_keeps_the_partial_picture_and_a_clean_state(make):
    explorer = make()
    started = long_run(explorer)
    explorer.run_looks_for()
    assert started.wait(30), "no partial picture arrived"
    assert explorer.busy and explorer._job == LOOKS_FOR  # Cancel is enabled
    assert explorer.status.startswith("looks for: layer2 ch ") and explorer.progress > 0
    explorer._handle_message(explorer, {"type": Message.CANCEL.value}, [])
    explorer.wait(30)
    meta = explorer._looks_for
    assert meta["cancelled"] and not meta["complete"] and 0 < meta["step"] < meta["steps"]
    assert explorer.error == "" and not explorer.busy and explorer._job == "idle"
    assert not explorer._panels.panels[LOOKS_FOR].cache  # a cancelled picture is not cached
    explorer.looks_for_steps = STEPS  # the view works on
    explorer.run_looks_for()
    explorer.wait(60)
    assert explorer._looks_for["complete"] and explorer.error == ""


def test_another_channel_while_it_runs_runs_that_one(make):
    explorer = make()
    calls = count_optimize(explorer)
    started = long_run(explorer)
    first, second = explorer.ranking[:2]
    explorer.run_looks_for()
    assert started.wait(30)
    explorer.looks_for_steps = STEPS  # settings change: the long run is replaced too
    explorer.channel = second
    explorer.wait(60)
    meta = explorer._looks_for
    assert meta["channel"] == second and meta["complete"] and meta["steps"] == STEPS
    assert calls[0] == first and calls[-1] == second and explorer.error == ""


def test_a_layer_change_stops_it_and_it_resumes_on_the_new_layer(make):
    explorer = make()
    started = long_run(explorer)
    explorer.run_looks_for()
    assert started.wait(30)
    explorer.layer = "layer3"  # the view job needs the worker: the run stops
    deadline = time.monotonic() + 30
    while explorer._looks_for.get("layer") != "layer3" and time.monotonic() < deadline:
        time.sleep(0.05)
    meta = explorer._looks_for
    assert meta["layer"] == "layer3" and meta["channel"] == explorer.channel
    assert not meta["complete"] and explorer._job == LOOKS_FOR
    assert explorer.features.shape[1] == 256 and explorer.error == ""
    explorer.cancel()
    explorer.wait(30)
    assert explorer._looks_for["cancelled"] and not explorer.busy


def test_message_from_the_view_selects_the_channel_and_runs(make):
    explorer = make()
    other = explorer.ranking[3]
    explorer._handle_message(explorer, {"type": LOOKS_FOR, "channel": other}, [])
    explorer.wait(60)
    assert explorer.channel == other and explorer._looks_for["channel"] == other
    explorer._handle_message(explorer, {"type": LOOKS_FOR, "channel": 10_000}, [])
    assert "out of range" in explorer.error and explorer.channel == other


def test_errors_show_in_error_without_a_stack_trace(make):
    explorer = make(looks_for_options={"lr": -1.0})
    explorer.run_looks_for()
    explorer.wait(60)
    assert explorer.error.startswith("ValueError: `lr` must be a positive number")
    assert "Traceback" not in explorer.error and not explorer.busy
    assert explorer._looks_for == {}
    with pytest.raises(traitlets.TraitError, match="looks_for_steps"):
        explorer.looks_for_options = {"steps": 3}
    with pytest.raises(traitlets.TraitError, match="at least 1"):
        explorer.looks_for_steps = 0


def test_save_png_looks_for(make, tmp_path):
    explorer = make()
    with pytest.raises(ValueError, match="run_looks_for"):
        explorer.save_png(tmp_path / "none.png", view="looks_for")
    explorer.run_looks_for()
    explorer.wait(60)
    path = explorer.save_png(tmp_path / "looks.png", view="looks_for")
    assert Image.open(path).size[0] > 100
