"""Shared fixtures: the suite's devices, real timm models (pretrained=False), seeded images, a
model-state snapshot, and a session guard that fails the run if a test changed the repository's
files."""

from __future__ import annotations

import functools
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset


def suite_devices(environ: Mapping[str, str], cuda_available: bool) -> list[str]:
    """The devices that tests taking `device` run on: "cpu", and "cuda" where a GPU is there;
    FEATVIZ_TEST_DEVICE=cpu or =cuda runs them on that one only."""
    chosen = environ.get("FEATVIZ_TEST_DEVICE", "").strip().lower()
    if not chosen:
        return ["cpu", "cuda"] if cuda_available else ["cpu"]
    if chosen not in ("cpu", "cuda"):
        raise ValueError(
            f"FEATVIZ_TEST_DEVICE must be 'cpu' or 'cuda', got {environ['FEATVIZ_TEST_DEVICE']!r}"
            "; unset it to run on the CPU and on CUDA where available."
        )
    if chosen == "cuda" and not cuda_available:
        raise ValueError(
            "FEATVIZ_TEST_DEVICE=cuda, but torch.cuda.is_available() is False: run on a machine "
            "with a CUDA GPU and a CUDA build of torch, or unset FEATVIZ_TEST_DEVICE."
        )
    return [chosen]


try:
    DEVICES = suite_devices(os.environ, torch.cuda.is_available())
    _DEVICE_ERROR = None
except ValueError as error:  # reported by pytest_configure, before any test runs
    DEVICES, _DEVICE_ERROR = ["cpu"], str(error)


def pytest_configure(config: pytest.Config) -> None:
    if _DEVICE_ERROR is not None:
        raise pytest.UsageError(_DEVICE_ERROR)
    if "OMP_NUM_THREADS" not in os.environ and not hasattr(config, "workerinput"):
        # The cores shared out among pytest-xdist's workers, which inherit this (so their
        # OpenMP starts with it), as do the kernels, notebooks and servers the tests start. An
        # OpenMP team with more threads than the cores left to it waits at every barrier on
        # its descheduled thread: 2 threads beside one busy process made a resnet18 forward
        # 2.8x as slow as idle, and 2 workers of 2 threads each ran "looks for" 2.2x as slow.
        workers = config.getoption("numprocesses", None) or 1
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(scope="session", params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """The device a test runs its models on: once per entry of `DEVICES` (only "cpu" on a
    machine without a GPU, so a CPU-only run does not grow)."""
    return request.param


def marked_slow(cases: list[tuple], slow: set[str]) -> list:
    """Parametrize `cases`, those whose first value is in `slow` marked `slow` (over about 5 s
    on an idle 2-core machine: left out of the quick tier, `-m "not slow"`)."""
    return [
        pytest.param(*case, marks=pytest.mark.slow) if case[0] in slow else case for case in cases
    ]


@functools.cache
def timm_model(name: str, **kwargs) -> nn.Module:
    """One instance per (name, kwargs) for the session; tests must leave it as they found it
    (a `FeatureVisualizer` moves it to its device: tests pass `device=` and move their inputs)."""
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs)


def small_vit(size: int = 96) -> nn.Module:
    """A fresh vit_tiny (seed 0) at `size` px whose preprocessing feeds it `size` px images:
    a (size / 16)-square grid of patch tokens."""
    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=size,
        pretrained_cfg_overlay=dict(input_size=(3, size, size), crop_pct=1.0),
    )


def resnet18_64px(zero_init_last: bool = False) -> nn.Module:
    """A fresh resnet18 (seed 0) whose preprocessing feeds it 64 px images: the widget tests'
    model, small enough for a browser test. `zero_init_last=False` keeps every block's last
    BatchNorm non-zero, so random weights still give varied maps."""
    torch.manual_seed(0)
    return timm.create_model(
        "resnet18",
        pretrained=False,
        zero_init_last=zero_init_last,
        pretrained_cfg_overlay=dict(input_size=(3, 64, 64), crop_pct=1.0),
    )


def scene(width: int = 320, height: int = 240, seed: int = 0) -> Image.Image:
    """A deterministic RGB image with structure (gradients, a disc, stripes) and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    image = np.stack([xx, yy, 1 - xx], axis=-1)
    disc = (xx - 0.4) ** 2 + (yy - 0.35) ** 2 < 0.02
    image[disc] = (1.0, 0.8, 0.1)
    image[:, ::16] *= 0.3
    image += rng.normal(0, 0.05, image.shape)
    return Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))


def before_each_forward(module: nn.Module, action):
    """Make `module` call `action()` before each forward, in the explorer's twin of the model
    too (a hook would not be copied there: the twin leaves the user's hooks out). Returns
    the undo for the explorers made after it."""
    cls = type(module)

    def forward(self, *args, **kwargs):
        action()
        return cls.forward(self, *args, **kwargs)

    module.__class__ = type(f"Waiting{cls.__name__}", (cls,), {"forward": forward})
    return lambda: setattr(module, "__class__", cls)


class SlowScenes(Dataset):
    """`count` generated scenes that take a while each to read: a dataset scan of seconds."""

    def __init__(self, count: int = 400) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> Image.Image:
        time.sleep(0.01)
        return scene(48, 48, seed=i)


@pytest.fixture
def image() -> Image.Image:
    return scene()


class ModelSnapshot:
    """Everything a call must leave untouched: weights, modes, flags, hooks. Weights are kept
    and compared on the CPU: a `FeatureVisualizer` moves the model to its device, by design."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.modes = [m.training for m in model.modules()]
        self.flags = [p.requires_grad for p in model.parameters()]

    def assert_unchanged(self) -> None:
        for module in self.model.modules():
            assert not module._forward_hooks, f"hook left on {type(module).__name__}"
            assert not module._forward_pre_hooks
        assert [m.training for m in self.model.modules()] == self.modes
        assert [p.requires_grad for p in self.model.parameters()] == self.flags
        for key, value in self.model.state_dict().items():
            assert torch.equal(value.detach().cpu(), self.state[key]), f"{key} changed"


@pytest.fixture
def snapshot():
    return ModelSnapshot


class KnownMaps(nn.Module):
    """Outputs fixed maps whatever the input, so statistics are known by hand.

    Channel 0: constant 2. Channel 1: checkerboard of 0 and 4 (mean 2, high variance).
    Channel 2: constant 3. Channel 3: all 0. Shape (B, 4, 4, 4), on the input's device.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.zeros(x.shape[0], 4, 4, 4, device=x.device, dtype=x.dtype)
        steps = torch.arange(4, device=x.device)
        maps[:, 0] = 2.0
        maps[:, 1] = (steps[:, None] + steps[None, :]) % 2 * 4.0
        maps[:, 2] = 3.0
        return maps + 0 * x.mean()


class TinyNet(nn.Module):
    """A small hand-built network: a fixed-maps layer, a conv, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.known = KnownMaps()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.copy_(torch.tensor([1.0, -1.0]))
        self.act = nn.ReLU()
        self.head = nn.Linear(2, 3)
        self.unused = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.known(x)
        y = self.act(self.conv(x))
        return self.head(y.mean(dim=(2, 3)))


@pytest.fixture
def tiny() -> TinyNet:
    return TinyNet()


REPO = Path(__file__).resolve().parents[1]


def _tree_state(root: Path) -> dict[str, tuple[int, int] | None] | None:
    """(mtime, size) of every file git tracks or would add in `root`; None outside git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    state: dict[str, tuple[int, int] | None] = {}
    for name in filter(None, listed.decode("utf-8", "surrogateescape").split("\0")):
        try:
            stat = (root / name).stat()
            state[name] = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            state[name] = None  # tracked but deleted
    return state


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


@pytest.fixture
def tree_state():
    """The guard's snapshot function, for testing the guard itself."""
    return _tree_state, _changed


@pytest.fixture(scope="session", autouse=True)
def _tests_leave_the_tree_alone():
    """Tests write to tmp_path or the git-ignored test-artifacts/, never to the repository."""
    before = _tree_state(REPO)
    yield
    after = _tree_state(REPO)
    if before is None or after is None:
        return
    changed = _changed(before, after)
    if os.environ.get("FEATVIZ_UPDATE_SCREENSHOT") == "1":  # asked for: see tests/e2e
        changed = [name for name in changed if name != "docs/screenshot.png"]
    assert not changed, (
        f"the test run changed or created files in the repository: {changed}. Tests must write "
        "to tmp_path or test-artifacts/ (if you edited these files during the run, re-run)."
    )
