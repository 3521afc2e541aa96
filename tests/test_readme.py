"""README.md runs as written: its two commands are the ones CI runs, and every Python block
executes, in order and in one namespace, offline (`pretrained=True` becomes `pretrained=False`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib.figure
import numpy as np
import pytest

from featviz_widgets import ClassEvidence, FeatureExplorer, LayerInfo, ModelComparison

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
CI = REPO / ".ci" / "run"
INSTALL_AND_DEMO = 'python3 -m pip install -e ".[demo]" && featviz-widgets demo'
CPU_WHEELS = "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
INSTALL_AND_TEST = (
    "apt-get update && apt-get install -y chromium "
    "&& { command -v npm >/dev/null || apt-get install -y nodejs npm; } "
    '&& python3 -m pip install -e ".[test]" '
    "&& ruff check . && ruff format --check . && python3 -m pytest"
)


def blocks(language: str) -> list[str]:
    """The README's fenced blocks of `language`, in order, without their fences."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.M | re.S)


def test_first_two_commands_install_and_demo_then_install_and_test():
    commands = [block.strip() for block in blocks("bash")]
    assert commands[:2] == [INSTALL_AND_DEMO, INSTALL_AND_TEST]
    assert README.index("```") == README.index("```bash\n" + INSTALL_AND_DEMO)  # nothing first
    for words in (
        "featviz-widgets demo --execute",
        "HF_HUB_OFFLINE=1",
        "~/.cache/huggingface",
        CPU_WHEELS,
        "FEATVIZ_UPDATE_SCREENSHOT=1",
    ):
        assert words in README
    assert "dog.jpg" not in README


def test_no_gpu_advice_installs_torch_and_torchvision_from_the_cpu_index():
    """Torch alone from the CPU index is undone by pip: timm pulls a torchvision from PyPI that
    needs another torch, and pip replaces the CPU torch with a CUDA build. Both come together."""
    advice = README[README.index("**No GPU?**") :].split("\n- ", 1)[0]
    assert CPU_WHEELS in " ".join(advice.split())
    commands = re.findall(r"`(pip install [^`]*)`", advice)
    assert commands and all(
        {"torch", "torchvision"} <= set(c.split())
        and "--index-url https://download.pytorch.org/whl/cpu" in c
        for c in commands
    ), commands
    assert "first command" in advice  # before `pip install -e ".[demo]"` can pull its own


def test_ci_runs_both_readme_commands():
    lines = [line.strip() for line in CI.read_text().splitlines()]
    headless = INSTALL_AND_DEMO.replace("pip install -e", "pip install -q -e")
    headless += ' --execute --dir "$demo_dir"'
    assert "set -euo pipefail" in lines
    assert headless in lines and INSTALL_AND_TEST in lines
    assert lines.index(headless) < lines.index(INSTALL_AND_TEST)
    assert os.access(CI, os.X_OK)


@pytest.mark.timeout(300)
def test_python_blocks_run_offline(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a download attempt fails at once, never hangs
    sources = blocks("python")
    assert len(sources) == 3 and all("pretrained=True" in source for source in sources)
    namespace: dict = {"__name__": "readme"}

    def run(number: int) -> None:
        source = sources[number - 1].replace("pretrained=True", "pretrained=False")
        exec(compile(source, f"README.md python block {number}", "exec"), namespace)

    try:
        run(1)  # the widget
        explorer = namespace["explorer"]
        assert isinstance(explorer, FeatureExplorer)
        explorer.wait(120)
        assert explorer.error == ""
        assert explorer.features is not None and explorer.features.shape[0] == 1
        assert explorer.statistics and explorer.layer in explorer.layers
        explorer.close()

        run(2)  # the Python API quickstart
        viz, image = namespace["viz"], namespace["image"]
        assert image.size == (512, 600) and image.mode == "RGB"
        assert all(isinstance(info, LayerInfo) for info in namespace["layers"])
        assert {"layer1", "layer2", "layer3", "layer4"} <= {i.name for i in namespace["layers"]}
        assert isinstance(namespace["fig"], matplotlib.figure.Figure)
        assert isinstance(viz.last_figure, matplotlib.figure.Figure)
        stats = namespace["stats"]
        assert np.isfinite([stats["mean"], stats["std"], stats["sparsity"]]).all()
        assert list(namespace["all_stats"]) == ["layer1", "layer2", "layer3", "layer4"]
        top = namespace["top"]
        channels = viz.get_features(image, "layer2").shape[1]
        assert len(top) == 5 and all(0 <= channel < channels for channel, _ in top)
        assert [value for _, value in top] == sorted((value for _, value in top), reverse=True)
        sensitivity = namespace["sensitivity"]
        assert sensitivity.shape == tuple(viz.prepare(image).shape[-2:]) == (224, 224)
        assert np.isfinite(sensitivity).all()
        assert sensitivity.min() >= 0 and sensitivity.max() == pytest.approx(1.0)
        pca = namespace["pca"]
        assert pca.layer == "layer3" and pca.map_size == (14, 14)
        assert tuple(pca.rgb.shape) == (14, 14, 3) and 0 < float(pca.explained.sum()) <= 1

        run(3)  # class evidence, compare_models and the explorer of two models
        evidence, models = namespace["evidence"], namespace["models"]
        assert isinstance(evidence, ClassEvidence) and len(evidence.top_classes[0]) == 5
        assert namespace["drivers"] == evidence.ranked_channels()[:5]
        assert isinstance(namespace["fig"], matplotlib.figure.Figure)
        comparison = namespace["comparison"]
        assert isinstance(comparison, ModelComparison)
        assert comparison.models == ["resnet18", "convnext_atto"] == list(models)
        assert isinstance(namespace["depth_fig"], matplotlib.figure.Figure)
        explorer = namespace["explorer"]
        explorer.wait(120)
        assert explorer.error == "" and explorer.model_name == "convnext_atto"
        assert explorer.model is models["convnext_atto"]
        assert explorer.layer == comparison.nearest_layer(
            "convnext_atto",
            next(r.depth for r in comparison.profiles("resnet18") if r.layer == "layer3"),
        )
        assert explorer.comparison is not None
    finally:
        for value in namespace.values():
            if isinstance(value, FeatureExplorer):
                value.close()
