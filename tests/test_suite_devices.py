"""The suite's `device` fixture: the CPU always, CUDA where there is one, or the one asked for."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import DEVICES, suite_devices

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("setting", "cuda", "expected"),
    [
        (None, False, ["cpu"]),
        (None, True, ["cpu", "cuda"]),
        ("", True, ["cpu", "cuda"]),
        ("cpu", True, ["cpu"]),
        ("CUDA", True, ["cuda"]),
        (" cuda ", True, ["cuda"]),
    ],
)
def test_devices_default_to_the_cpu_and_cuda_where_available(setting, cuda, expected):
    environ = {} if setting is None else {"FEATVIZ_TEST_DEVICE": setting}
    assert suite_devices(environ, cuda_available=cuda) == expected


def test_a_device_that_cannot_run_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"FEATVIZ_TEST_DEVICE must be 'cpu' or 'cuda', got 'gpu'"):
        suite_devices({"FEATVIZ_TEST_DEVICE": "gpu"}, cuda_available=True)
    with pytest.raises(
        ValueError, match=r"FEATVIZ_TEST_DEVICE=cuda, but torch.cuda.is_available\(\) is False"
    ):
        suite_devices({"FEATVIZ_TEST_DEVICE": "cuda"}, cuda_available=False)


def test_this_run_uses_the_devices_of_its_environment(device):
    assert suite_devices(os.environ, torch.cuda.is_available()) == DEVICES
    assert device in DEVICES and torch.device(device).type == device


@pytest.mark.slow
def test_a_bad_setting_stops_pytest_before_any_test():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/test_samples.py"],
        cwd=REPO,
        env={**os.environ, "FEATVIZ_TEST_DEVICE": "tpu"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "FEATVIZ_TEST_DEVICE must be 'cpu' or 'cuda', got 'tpu'" in result.stderr
