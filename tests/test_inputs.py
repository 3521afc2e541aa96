"""Every kind of image a user has becomes the same model-ready batch."""

import io

import numpy as np
import pytest
import torch
from conftest import scene, timm_model
from PIL import Image
from torch import nn

from featviz_widgets import FeatureVisualizer


@pytest.fixture(scope="module")
def viz(device):
    return FeatureVisualizer(timm_model("resnet18"), device=device)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "I;16", "CMYK", "1", "F"])
def test_pil_images_of_any_mode(viz, mode):
    image = scene().convert(mode) if mode != "I;16" else None
    if mode == "I;16":
        values = (np.asarray(scene().convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        image = Image.fromarray(values)
    batch = viz.prepare(image)
    assert batch.shape == (1, 3, 224, 224) and batch.dtype == torch.float32
    assert batch.device == viz.device
    assert torch.isfinite(batch).all() and batch.std() > 0.1


def test_grayscale_16_bit_matches_8_bit(viz):
    gray = scene().convert("L")
    wide = Image.fromarray(np.asarray(gray, dtype=np.uint16) * 257)
    assert wide.mode == "I;16"
    assert torch.allclose(viz.prepare(gray), viz.prepare(wide), atol=1e-5)


def test_transparent_pixels_become_white(viz):
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    shown = viz.display_image(rgba)
    assert shown.shape == (224, 224, 3) and shown.dtype == np.uint8
    assert shown.min() >= 254


@pytest.mark.parametrize(
    "convert",
    [
        lambda a: a,  # HWC uint8
        lambda a: a.astype(np.float32) / 255,  # float 0-1
        lambda a: a.astype(np.float64),  # float 0-255
        lambda a: np.moveaxis(a, -1, 0),  # CHW
    ],
    ids=["hwc-uint8", "float01", "float255", "chw"],
)
def test_numpy_layouts_and_ranges_agree(viz, convert):
    array = np.asarray(scene())
    expected = viz.prepare(scene())
    assert torch.allclose(viz.prepare(convert(array)), expected, atol=1e-4)


def test_numpy_grayscale_and_file_path(viz, tmp_path):
    gray = np.asarray(scene().convert("L"))
    assert viz.prepare(gray).shape == (1, 3, 224, 224)
    path = tmp_path / "dog.png"
    scene().save(path)
    assert torch.equal(viz.prepare(str(path)), viz.prepare(scene()))
    assert torch.equal(viz.prepare(path), viz.prepare(scene()))


def test_tensors_are_model_ready_unless_asked(viz):
    chw = torch.rand(3, 100, 120)
    assert torch.equal(viz.prepare(chw).cpu(), chw[None])
    assert viz.prepare(chw.double()).dtype == torch.float32
    assert viz.prepare(torch.rand(2, 3, 50, 50)).shape == (2, 3, 50, 50)
    resizing = FeatureVisualizer(timm_model("resnet18"), device=viz.device, preprocess_tensors=True)
    resized = resizing.prepare(chw)
    assert resized.shape == (1, 3, 224, 224)


def test_lists_are_batches_with_timm_preprocessing(viz):
    batch = viz.prepare([scene(seed=1), np.asarray(scene(seed=2)), scene(100, 80, seed=3)])
    assert batch.shape == (3, 3, 224, 224)
    assert not torch.equal(batch[0], batch[1])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    white = viz.prepare(Image.new("RGB", (50, 50), "white"))[0].cpu()
    assert torch.allclose(white, (1 - mean) / std * torch.ones_like(white), atol=1e-5)


def test_model_data_config_input_size_is_used(device):
    viz = FeatureVisualizer(timm_model("vit_base_patch16_reg4_gap_256"), device=device)
    assert viz.prepare(scene()).shape == (1, 3, 256, 256)


def test_custom_transform(device):
    def transform(pil):
        return torch.from_numpy(np.asarray(pil.resize((32, 32)), dtype=np.float32) / 255).permute(
            2, 0, 1
        )

    viz = FeatureVisualizer(timm_model("resnet18"), device=device, transform=transform)
    assert viz.prepare(scene()).shape == (1, 3, 32, 32)
    assert viz.list_layers()[0].shape == (64, 16, 16)


def test_bad_inputs_give_clear_errors(viz, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found: 'missing.jpg'"):
        viz.prepare("missing.jpg")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        viz.prepare(junk)
    with pytest.raises(ValueError, match=r"shape \(5, 5, 7\)"):
        viz.prepare(np.zeros((5, 5, 7), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected \(C, H, W\)"):
        viz.prepare(torch.zeros(5, 5))
    with pytest.raises(TypeError, match="invalid `image` type int"):
        viz.prepare(3)
    with pytest.raises(ValueError, match="empty list"):
        viz.prepare([])
    with pytest.raises(ValueError, match="NaN"):
        viz.prepare(np.full((8, 8, 3), np.nan))


def test_file_objects_are_read_like_their_path(viz, tmp_path):
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as photo:  # an open binary file
        batch = viz.prepare(photo)
        assert not photo.closed  # the caller's file stays the caller's
        path = photo.name
    expected = viz.prepare(path)
    assert batch.shape == (1, 3, 224, 224) and batch.std() > 0.1
    assert torch.equal(batch, expected)
    with open(path, "rb") as handle:
        data = handle.read()
    assert torch.equal(viz.prepare(io.BytesIO(data)), expected)
    with open(path, "rb") as handle:
        handle.read(100)  # a file object not at its start is read from the start
        assert torch.equal(viz.prepare([handle, scene()])[0], expected[0])
    closed = open(path, "rb")  # noqa: SIM115
    closed.close()
    with pytest.raises(ValueError, match=r"`image` file object .*grace_hopper.jpg' is closed"):
        viz.prepare(closed)
    with pytest.raises(ValueError, match=r"'BytesIO' is not a readable image"):
        viz.prepare(io.BytesIO(b"not an image"))
    with open(path) as text, pytest.raises(ValueError, match=r"open\(path, 'rb'\)"):
        viz.prepare(text)


@pytest.mark.parametrize(
    "url",
    ["http://example.com/dog.jpg", "https://example.com/a.png?x=1", "FTP://host/cat.jpg"],
)
def test_urls_are_refused_with_how_to_download(viz, url):
    with pytest.raises(ValueError, match=r"is a URL; .*urllib\.request\.urlretrieve\(url\)"):
        viz.prepare(url)


@pytest.mark.parametrize(
    ("image", "size"),
    [
        (Image.new("RGB", (0, 0)), r"\(0x0 pixels\)"),
        (Image.new("L", (0, 12)), r"\(0x12 pixels\)"),
        (np.zeros((0, 10, 3), dtype=np.uint8), r"array is empty \(shape \(0, 10, 3\)\)"),
        (np.zeros((10, 0), dtype=np.float32), r"array is empty \(shape \(10, 0\)\)"),
        (torch.zeros(1, 3, 0, 224), r"tensor is empty \(shape \(1, 3, 0, 224\)\)"),
        (torch.zeros(3, 224, 0), r"tensor is empty \(shape \(3, 224, 0\)\)"),
    ],
    ids=["pil-0x0", "pil-0x12", "array-rows", "array-cols", "tensor-4d", "tensor-3d"],
)
def test_empty_images_name_their_size(viz, image, size):
    with pytest.raises(ValueError, match=size + r".*at least one pixel"):
        viz.prepare(image)


def test_complex_images_are_refused_not_cast(viz):
    with pytest.raises(TypeError, match=r"`image` tensor has complex dtype torch.complex64"):
        viz.prepare(torch.ones(1, 3, 8, 8, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"`image` array has complex dtype complex128.*np\.abs"):
        viz.prepare(np.ones((8, 8, 3), dtype=np.complex128))


class _Forwards:
    """Counts forwards of `model` through a removable pre-hook."""

    def __init__(self, model: nn.Module) -> None:
        self.count = 0
        self.handle = model.register_forward_pre_hook(lambda *_: self._bump())

    def _bump(self) -> None:
        self.count += 1


@pytest.mark.parametrize(
    ("channels", "fix"),
    [
        (4, r"drop the alpha channel with `x\[:, :3\]`"),
        (1, r"repeat the gray channel with `x\.expand\(-1, 3, -1, -1\)`"),
    ],
)
def test_wrong_channel_count_is_refused_before_the_forward(viz, channels, fix, snapshot):
    state = snapshot(viz.model)
    forwards = _Forwards(viz.model)
    try:
        with pytest.raises(
            ValueError,
            match=rf"tensor of shape \(1, {channels}, 224, 224\) has {channels} channel\(s\), "
            rf"but the model expects 3 \(timm's `in_chans=3`\); {fix}",
        ):
            viz.get_features(torch.rand(1, channels, 224, 224), "layer1")
    finally:
        forwards.handle.remove()
    assert forwards.count == 0
    state.assert_unchanged()


def test_one_channel_timm_model_takes_one_channel_tensors(device):
    viz = FeatureVisualizer(timm_model("resnet18", in_chans=1), device=device)
    assert viz.get_features(torch.rand(1, 1, 64, 64), "layer1").shape == (1, 64, 16, 16)
    assert viz.list_layers()[0].shape == (64, 112, 112)  # the blank probe has 1 channel too
    with pytest.raises(ValueError, match=r"expects 1 \(timm's `in_chans=1`\); average"):
        viz.get_features(torch.rand(1, 3, 64, 64), "layer1")
    with pytest.raises(ValueError, match=r"transform made 3-channel input .* expects 1"):
        viz.get_features(scene(), "layer1")


def test_channels_of_a_plain_model_come_from_its_first_convolution(device):
    model = nn.Sequential(nn.Identity(), nn.Conv2d(2, 4, 3), nn.Conv2d(4, 4, 3))
    viz = FeatureVisualizer(model, device=device)
    assert viz.get_features(torch.rand(1, 2, 16, 16), "2").shape == (1, 4, 12, 12)
    with pytest.raises(ValueError, match=r"expects 2 \(its first convolution '1' takes 2\)"):
        viz.get_features(torch.rand(1, 3, 16, 16), "2")
