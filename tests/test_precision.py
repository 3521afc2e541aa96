"""Exact float32 on every device: TF32 (and oneDNN's bfloat16 rounding) off while the engine
computes, and the user's global settings back afterwards, whichever thread asked and however
the computation ended. The settings exist on CPU builds too, so all of this runs on the CPU."""

from __future__ import annotations

import contextlib
import random
import threading

import numpy as np
import pytest
import torch
from conftest import timm_model
from torch import nn

from featviz_widgets import FeatureVisualizer, LayerNotFoundError, OcclusionCancelled
from featviz_widgets.core import precision as _precision
from featviz_widgets.core.precision import exact_float32, rounding_unit, tf32_float32

NEW_API = _precision._NEW_API
# (backend, operation) of every `fp32_precision` setting of PyTorch 2.9+, parents included.
SETTINGS = [
    ("generic", "all"),
    ("cuda", "all"),
    ("cuda", "matmul"),
    ("cuda", "conv"),
    ("cuda", "rnn"),
    ("mkldnn", "all"),
    ("mkldnn", "matmul"),
    ("mkldnn", "conv"),
    ("mkldnn", "rnn"),
]
EXACT = (False, False, "highest")  # (cudnn.allow_tf32, cuda.matmul.allow_tf32, matmul precision)
TF32 = (True, True, "high")


def _answer(read):
    try:
        return read()
    except RuntimeError:  # PyTorch refuses to report a legacy flag the new settings contradict
        return "refused"


def observed() -> dict:
    """Everything that decides how float32 convolutions and matmuls round, as PyTorch reports
    it: each legacy getter's answer (cuBLAS runs the `allow_tf32` one's check before every
    float32 matmul, so "refused" there means failing matmuls) and each new raw setting."""
    found = {
        "cudnn.allow_tf32": _answer(lambda: torch.backends.cudnn.allow_tf32),
        "cuda.matmul.allow_tf32": _answer(lambda: torch.backends.cuda.matmul.allow_tf32),
        "float32_matmul_precision": _answer(torch.get_float32_matmul_precision),
    }
    if NEW_API:
        for backend, op in SETTINGS:
            found[(backend, op)] = torch._C._get_fp32_precision_getter(backend, op)
    return found


def flags() -> tuple:
    """The three legacy answers, as most users read and set them."""
    found = observed()
    return (
        found["cudnn.allow_tf32"],
        found["cuda.matmul.allow_tf32"],
        found["float32_matmul_precision"],
    )


def cuda_tf32(op: str) -> bool:
    """Whether CUDA's `op` ("matmul", "conv", "rnn") resolves to TF32 ("none" inherits)."""
    for backend, name in (("cuda", op), ("cuda", "all"), ("generic", "all")):
        value = torch._C._get_fp32_precision_getter(backend, name)
        if value != "none":
            return value == "tf32"
    return False


def assert_mode(tf32: bool) -> None:
    """Every answer agrees (nothing refused) and says `tf32` for CUDA, exact for oneDNN."""
    assert flags() == (TF32 if tf32 else EXACT)
    if NEW_API:
        assert [cuda_tf32(op) for op in ("matmul", "conv", "rnn")] == [tf32] * 3
        onednn = [torch._C._get_fp32_precision_getter("mkldnn", op) for op in ("matmul", "conv")]
        assert onednn == ["ieee", "ieee"]


@pytest.fixture(autouse=True)
def _defaults_back():
    """Each test starts from PyTorch's settings as the session found them and leaves them so;
    no request may stay held."""
    start = observed()
    yield
    assert _precision._REQUESTS._counts == {"exact": 0, "tf32": 0}
    torch.set_float32_matmul_precision(start["float32_matmul_precision"])
    torch.backends.cudnn.allow_tf32 = start["cudnn.allow_tf32"]
    if NEW_API:
        for backend, op in SETTINGS:
            torch._C._set_fp32_precision_setter(backend, op, start[(backend, op)])
    assert observed() == start


def _legacy_speed() -> None:
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True


def _legacy_exact() -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def _new_api_mixed() -> None:
    torch.backends.cuda.matmul.fp32_precision = "tf32"  # legacy matmul precision still "highest"
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    torch.backends.cudnn.rnn.fp32_precision = "ieee"  # conv and RNN disagree


def _generic_tf32() -> None:
    torch.backends.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "none"  # inherits it


new_api = pytest.mark.skipif(not NEW_API, reason="PyTorch before 2.9 has no fp32_precision")


@pytest.mark.parametrize(
    "setup",
    [
        lambda: None,
        _legacy_speed,
        _legacy_exact,
        lambda: torch.set_float32_matmul_precision("medium"),
        pytest.param(_new_api_mixed, marks=new_api),
        pytest.param(_generic_tf32, marks=new_api),
    ],
    ids=["defaults", "legacy-tf32-on", "legacy-tf32-off", "matmul-medium", "new-api", "generic"],
)
def test_exact_float32_turns_rounding_off_and_gives_the_settings_back(setup):
    setup()
    before = observed()
    with exact_float32():
        assert_mode(tf32=False)
        with exact_float32():  # a nested request changes nothing, and its exit restores nothing
            assert_mode(tf32=False)
        assert_mode(tf32=False)
    assert observed() == before
    with pytest.raises(RuntimeError, match="boom"), exact_float32():
        assert_mode(tf32=False)
        raise RuntimeError("boom")
    assert observed() == before
    with tf32_float32():
        assert_mode(tf32=True)
        with exact_float32():  # exact outranks TF32 while both are held
            assert_mode(tf32=False)
        assert_mode(tf32=True)
    assert observed() == before


@new_api
def test_random_mixes_of_legacy_and_new_settings_come_back_exactly():
    """Users mix `allow_tf32`, `set_float32_matmul_precision` and the new settings, which can
    leave legacy flags PyTorch refuses to report: they must come back all the same."""
    setters = [
        lambda r: setattr(torch.backends.cudnn, "allow_tf32", r.random() < 0.5),
        lambda r: setattr(torch.backends.cuda.matmul, "allow_tf32", r.random() < 0.5),
        lambda r: torch.set_float32_matmul_precision(r.choice(["highest", "high", "medium"])),
        lambda r: torch._C._set_fp32_precision_setter(
            *r.choice(SETTINGS), r.choice(["ieee", "tf32", "bf16", "none"])
        ),
    ]
    start = observed()
    refused = 0
    for seed in range(400):
        rng = random.Random(seed)
        torch.set_float32_matmul_precision(start["float32_matmul_precision"])
        torch.backends.cudnn.allow_tf32 = start["cudnn.allow_tf32"]
        for backend, op in SETTINGS:
            torch._C._set_fp32_precision_setter(backend, op, start[(backend, op)])
        for _ in range(rng.randint(1, 6)):
            with contextlib.suppress(RuntimeError):  # a value a backend does not take
                rng.choice(setters)(rng)
        before = observed()
        refused += "refused" in before.values()
        tf32 = rng.random() < 0.5
        with tf32_float32() if tf32 else exact_float32():
            assert_mode(tf32)
        assert observed() == before, f"seed {seed}"
    assert refused > 50  # the mixed states were really reached


def test_the_legacy_path_of_pytorch_before_2_9(monkeypatch):
    monkeypatch.setattr(_precision, "_NEW_API", False)
    _legacy_speed()
    with exact_float32():
        assert flags() == EXACT
    assert flags() == TF32
    torch.set_float32_matmul_precision("medium")
    torch.backends.cudnn.allow_tf32 = False
    with tf32_float32():
        assert flags() == TF32
    assert flags() == (False, True, "medium")


def test_rounding_units():
    assert rounding_unit("float32") == torch.finfo(torch.float32).eps
    assert rounding_unit("float16") == torch.finfo(torch.float16).eps
    assert rounding_unit("bfloat16") == torch.finfo(torch.bfloat16).eps
    assert rounding_unit("tf32") == 2.0**-10  # float16's 10-bit mantissa, float32's range


def test_every_computation_runs_exact_and_the_users_flags_come_back(device, snapshot):
    _legacy_speed()  # a user who asked for speed
    model = timm_model("resnet18", zero_init_last=False)
    state = snapshot(model)
    viz = FeatureVisualizer(model, device=device)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    stem, crops, progress = [], [], []
    handles = [
        model.conv1.register_forward_pre_hook(lambda *_: stem.append(flags())),
        # Runs on crops when the incremental plan serves layer2's unit.
        model.layer2[0].conv1.register_forward_pre_hook(lambda *_: crops.append(flags())),
    ]
    calls = {
        "list_layers": lambda: viz.list_layers(image),
        "get_features": lambda: viz.get_features(image, "layer1"),
        "statistics": lambda: viz.get_feature_statistics(image, "layer3"),
        "occlusion": lambda: viz.occlusion(
            image, "layer2", (2, 2), on_progress=lambda *_: progress.append(flags())
        ),
        "gradient": lambda: viz.visualize_receptive_field(
            image, "layer2", 0, method="gradient", show=False
        ),
    }
    try:
        for name, call in calls.items():
            forwards = len(stem)
            result = call()
            assert len(stem) > forwards, f"{name} ran no forward"
            assert flags() == TF32, f"{name} left the flags changed"
            if name == "occlusion":
                assert result.incremental and result.complete
    finally:
        for handle in handles:
            handle.remove()
    assert set(stem) == set(crops) == set(progress) == {EXACT}
    assert len(crops) > 2 and len(progress) >= 1
    state.assert_unchanged()


def test_flags_come_back_after_a_cancel_a_failing_callback_and_a_failing_forward(device):
    _legacy_speed()
    viz = FeatureVisualizer(timm_model("resnet18"), device=device)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    inside = []
    stops = iter([False, True])  # one batch, then stop
    with pytest.raises(OcclusionCancelled):
        viz.occlusion(
            image,
            "layer3",
            batch_size=4,
            should_stop=lambda: next(stops),
            on_progress=lambda *_: inside.append(flags()),
        )
    assert inside == [EXACT] and flags() == TF32

    def failing(*_: object) -> None:
        inside.append(flags())
        raise ValueError("the callback failed")

    with pytest.raises(ValueError, match="the callback failed"):
        viz.occlusion(image, "layer2", (0, 0), on_progress=failing)
    assert inside == [EXACT, EXACT] and flags() == TF32

    class Exploding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.drop = nn.Dropout()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.conv(x)
            inside.append(flags())
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match=r"forward failed .*\(RuntimeError: boom\)"):
        FeatureVisualizer(Exploding(), device=device).get_features(image, "drop")
    assert inside == [EXACT] * 3 and flags() == TF32
    with pytest.raises(LayerNotFoundError, match="'layer9' not found"):
        viz.occlusion(image, "layer9")
    assert flags() == TF32


def _run(target, *args) -> tuple[threading.Thread, list]:
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target(*args)
        except BaseException as error:  # reported by the test, never lost in the thread
            errors.append(error)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread, errors


def test_overlapping_threads_keep_exact_until_the_last_one_leaves():
    _legacy_speed()
    seen = []

    # The other thread comes in first and leaves first: its exit must not restore under us.
    entered, may_leave, left = threading.Event(), threading.Event(), threading.Event()

    def first_in_first_out() -> None:
        with exact_float32():
            entered.set()
            assert may_leave.wait(10)
        left.set()

    thread, errors = _run(first_in_first_out)
    assert entered.wait(10)
    with exact_float32():
        may_leave.set()
        assert left.wait(10)
        seen.append(flags())
    thread.join(10)
    assert not errors and seen == [EXACT] and flags() == TF32

    # We come in first and leave first: the other thread keeps exact float32 until it leaves.
    entered, we_left = threading.Event(), threading.Event()

    def last_out() -> None:
        with exact_float32():
            entered.set()
            assert we_left.wait(10)
            seen.append(flags())

    with exact_float32():
        thread, errors = _run(last_out)
        assert entered.wait(10)
    seen.append(flags())  # we left; the other thread still holds its request
    we_left.set()
    thread.join(10)
    assert not errors and not thread.is_alive()
    assert seen == [EXACT] * 3 and flags() == TF32


def test_a_background_sweep_and_a_foreground_call_overlap_safely(device):
    """The widget's worker sweeps while the user's thread calls the same visualizer."""
    _legacy_speed()
    viz = FeatureVisualizer(timm_model("resnet18"), device=device)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    other = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    first_batch, resume = threading.Event(), threading.Event()
    during = []

    def on_progress(*_: object) -> None:
        during.append(flags())
        if not first_batch.is_set():
            first_batch.set()
            assert resume.wait(60)

    thread, errors = _run(
        lambda: viz.occlusion(image, "layer2", batch_size=8, on_progress=on_progress)
    )
    assert first_batch.wait(120)
    features = viz.get_features(other, "layer1")  # enters and leaves exact float32 meanwhile
    assert features.shape == (1, 64, 16, 16)
    assert flags() == EXACT  # the sweep still holds it
    resume.set()
    thread.join(120)
    assert not errors and not thread.is_alive()
    assert len(during) > 1 and set(during) == {EXACT}
    assert flags() == TF32


def test_tf32_precision_needs_a_cuda_gpu_with_tensor_cores(device):
    model = timm_model("resnet18", zero_init_last=False)
    viz = FeatureVisualizer(model, device=device)
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    if not _precision._has_tf32(torch.device(device)):
        message = (
            rf"precision='tf32' has no native support on {device}: TF32 runs on the tensor "
            r"cores of CUDA GPUs of compute capability 8.0 and newer .* precision='float32'"
        )
        with pytest.raises(ValueError, match=message):
            viz.occlusion(image, "layer2", precision="tf32")
        with pytest.raises(ValueError, match=message):
            viz.visualize_receptive_field(
                image, "layer2", 0, method="gradient", precision="tf32", show=False
            )
        return
    # A CUDA GPU from Ampere on: TF32 while the sweep runs, labelled, close to exact.
    _legacy_exact()
    seen = []
    handle = model.conv1.register_forward_pre_hook(lambda *_: seen.append(flags()))
    try:
        exact = viz.occlusion(image, "layer2", (2, 2))
        seen.clear()
        fast = viz.occlusion(image, "layer2", (2, 2), precision="tf32")
    finally:
        handle.remove()
    assert set(seen) == {TF32} and flags() == (False, False, "highest")
    assert (exact.precision, fast.precision) == ("float32", "tf32")
    channel = int(np.abs(exact.deltas).max(axis=(0, 1)).argmax())
    fine, coarse = exact.map(channel, signed=True), fast.map(channel, signed=True)
    assert np.corrcoef(fine.ravel(), coarse.ravel())[0, 1] > 0.99
    viz.visualize_receptive_field(image, "layer2", channel, (2, 2), precision="tf32", show=False)
    assert viz.last_figure._suptitle.get_text().endswith("(tf32 approximation)")
