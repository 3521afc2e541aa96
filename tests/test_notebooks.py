"""The teaching notebooks run top to bottom, offline, in a real kernel, and show pictures.

Each notebook is copied into tmp_path and executed there with nbclient (the repository is left
alone). Notebooks that take pretrained weights have a cell tagged `parameters` with
`pretrained = True`; as papermill does, a cell setting `pretrained = False` is inserted after it,
so nothing is downloaded. 01-quickstart is executed by tests/test_widget_notebook.py through
`featviz-widgets demo --execute`; here it gets the same structural checks as the others.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NOTEBOOKS = REPO / "notebooks"
RESULT = "NOTEBOOK-RESULT "
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# name: (least image/png outputs, whether it takes pretrained weights, a widget is shown)
EXECUTED = {
    "02-watch-features-emerge.ipynb": (10, False, True),
    "03-compare-architectures.ipynb": (6, True, False),
    "04-many-images.ipynb": (6, True, False),
    "05-class-evidence-and-model-comparison.ipynb": (7, True, True),
    "06-share-what-you-found.ipynb": (2, True, True),
}
# name: {the source of a code cell (or a part only it holds): the pictures it shows}
PROMISED = {
    "05-class-evidence-and-model-comparison.ipynb": {
        'resnet.plot_class_evidence(photo, "layer4", num_channels=8);': 1,
        "top = evidence.ranked_channels()[:4]": 1,  # the maps of the channels driving it
        "target=runner_up": 1,
        'convnext.plot_class_evidence(photo, "stages.3", num_channels=8);': 1,
        "comparison.figure()": 1,
        "explorer = FeatureExplorer(models, photo": 1,  # the explorer's static picture
        'explorer.save_png("model-comparison.png", view="models")': 1,
    },
    "06-share-what-you-found.ipynb": {
        'page = explorer.save_html("explorer.html")': 1,  # the explorer's static picture
        'crops = Path("microscope") / "crops" / "layer2"': 1,
    },
}
ALL = ["01-quickstart.ipynb", *EXECUTED]


def inject_parameters(nb, **values) -> None:
    """Insert a cell setting `values` after the cell tagged `parameters` (papermill's way)."""
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "expected exactly one cell tagged 'parameters'"
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(tagged[0] + 1, cell)


def execute(name: str, folder: Path, report: str = "", **parameters):
    """Run a copy of notebook `name` in `folder`; `report` (an expression) is printed as JSON
    by a cell added at the end. Returns the executed notebook, the report and the seconds."""
    import nbclient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if parameters:
        inject_parameters(nb, **parameters)
    if report:
        nb.cells.append(
            nbformat.v4.new_code_cell(f"import json\nprint({RESULT!r} + json.dumps({report}))")
        )
    nbformat.write(nb, folder / name)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    seconds = time.perf_counter() - started
    nbformat.write(nb, folder / name.replace(".ipynb", ".executed.ipynb"))
    found = None
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and RESULT in output.text:
                found = json.loads(output.text.split(RESULT, 1)[1].splitlines()[0])
    return nb, found, seconds


def outputs(nb) -> list:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def pngs_of_cell(nb, needle: str) -> int:
    """The image/png outputs of the code cell whose source is `needle`, else of the one
    whose source holds it."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    cells = [c for c in code if c.source == needle] or [c for c in code if needle in c.source]
    assert len(cells) == 1, f"{len(cells)} code cells hold {needle!r}"
    return sum("image/png" in out.get("data", {}) for out in cells[0].outputs)


def pngs(nb) -> list[bytes]:
    return [
        base64.b64decode(out["data"]["image/png"])
        for out in outputs(nb)
        if "image/png" in out.get("data", {})
    ]


@pytest.fixture
def kernel_env(monkeypatch):
    """The kernel inherits the environment: this checkout first on its path, no downloads."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a download attempt fails at once, never hangs
    # As on headless servers and CI: a kernel that inherits a non-inline backend must still
    # show the figures as outputs (the notebooks say `%matplotlib inline`).
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.mark.parametrize("name", ALL)
def test_notebook_teaches_and_installs_in_colab(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    prose = [cell.source for cell in nb.cells if cell.cell_type == "markdown"]
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    assert "What you will learn" in "\n".join(prose[:2])
    assert prose[-1].startswith("## Exercises")
    assert 'if "google.colab" in sys.modules:' in code[0]
    assert "%pip install -q featviz-widgets" in code[0]
    takes_weights = name in EXECUTED and EXECUTED[name][1]
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if takes_weights:
        # `pretrained = True` (the tests inject False), or False where it runs offline as is
        assert len(tagged) == 1 and re.search(r"pretrained = (True|False)", tagged[0].source)
        assert any("pretrained = False" in text and "parameters" in text for text in prose)
    else:
        assert not tagged


def test_notebooks_are_listed_in_the_readme():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Learn with the notebooks", 1)[1].split("\n## ", 1)[0]
    for name in ALL:
        assert f"notebooks/{name}" in section
    pictures = [line for line in section.splitlines() if line.startswith("![")]
    assert pictures, "the section shows a picture"
    for line in pictures:
        assert (REPO / line.split("](", 1)[1].rstrip(")")).is_file()


def test_stored_notebooks_are_small():
    for name in ALL:
        assert (NOTEBOOKS / name).stat().st_size < 1_500_000, name


def test_stored_notebooks_keep_no_widget_state():
    """A stored widget view would paint an old copy of the front end from old state (or a
    blank cell offline): outputs keep the static PNG beside it, and the state stays out."""
    for name in ALL:
        notebook = json.loads((NOTEBOOKS / name).read_text())
        assert "widgets" not in notebook["metadata"], name
        outputs = [o for c in notebook["cells"] for o in c.get("outputs", [])]
        views = [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
        assert views == [], name


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", [n for n in EXECUTED if n != "02-watch-features-emerge.ipynb"])
def test_notebook_runs_offline_and_shows_pictures(name, tmp_path, kernel_env):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    least, takes_weights, widget = EXECUTED[name]
    parameters = {"pretrained": False} if takes_weights else {}
    nb, _, seconds = execute(name, tmp_path, **parameters)
    assert not [out for out in outputs(nb) if out.output_type == "error"]
    images = pngs(nb)
    assert len(images) >= least, f"{len(images)} image/png outputs, expected {least} or more"
    assert all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    for needle, count in PROMISED.get(name, {}).items():  # each picture the prose promises
        assert pngs_of_cell(nb, needle) == count, needle
    if widget:
        shown = [out for out in outputs(nb) if WIDGET_MIME in out.get("data", {})]
        assert shown and shown[0]["data"].get("image/png"), "the explorer's static image/png"
    print(f"{name}: {seconds:.1f} s, {len(images)} images")


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.timeout(600)
def test_features_emerge_the_network_learns(tmp_path, kernel_env):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    name = "02-watch-features-emerge.ipynb"
    report = (
        "{'final_accuracy': final_accuracy, 'chance': 1 / len(CLASSES), "
        "'filter_change': filter_change, "
        "'monitor_steps': [int(s) for s in monitor.history['conv1']['step']]}"
    )
    nb, result, seconds = execute(name, tmp_path, report=report)
    assert not [out for out in outputs(nb) if out.output_type == "error"]
    images = pngs(nb)
    assert len(images) >= EXECUTED[name][0]
    widget = [out for out in outputs(nb) if WIDGET_MIME in out.get("data", {})]
    assert widget and widget[0]["data"].get("image/png"), "the explorer's static image/png"
    # Each picture the prose promises is an output of its cell.
    promised = {
        'show_filters(initial_filters, "conv1 filters before training")': 1,
        'print("example:"': 1,  # the maps before training
        "monitor.plot()": 1,
        'monitor.plot_histograms("conv1")': 1,
        'show_filters(model.conv1[0].weight, "after training")': 2,  # before and after
        'viz.plot_feature_maps(example, "conv1", num_features=9)': 1,  # after training
        'viz.plot_feature_maps(example, "conv2", num_features=9)': 1,
        "sensitivity = viz.visualize_receptive_field(": 1,  # a trained unit's occlusion map
        'print("predicted:"': 1,  # the predicted class's occlusion map
    }
    for needle, count in promised.items():
        assert pngs_of_cell(nb, needle) == count, needle
    # Trained: far above chance, and the first-layer filters moved well away from their start.
    assert result["final_accuracy"] > result["chance"] + 0.5, result
    assert result["filter_change"] > 0.3, result
    steps = result["monitor_steps"]
    assert len(steps) >= 5 and steps == sorted(steps)
    assert all(b - a == 5 for a, b in zip(steps, steps[1:])), steps  # every=5
    print(f"{name}: {seconds:.1f} s, {len(images)} images, {result}")
