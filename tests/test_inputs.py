"""Every kind of image a user has becomes the same model-ready batch."""

import numpy as np
import pytest
import torch
from conftest import scene, timm_model
from PIL import Image

from featviz_widgets import FeatureVisualizer


@pytest.fixture(scope="module")
def viz():
    return FeatureVisualizer(timm_model("resnet18"))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "I;16", "CMYK", "1", "F"])
def test_pil_images_of_any_mode(viz, mode):
    image = scene().convert(mode) if mode != "I;16" else None
    if mode == "I;16":
        values = (np.asarray(scene().convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        image = Image.fromarray(values)
    batch = viz.prepare(image)
    assert batch.shape == (1, 3, 224, 224) and batch.dtype == torch.float32
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
    assert torch.equal(viz.prepare(chw), chw[None])
    assert viz.prepare(chw.double()).dtype == torch.float32
    assert viz.prepare(torch.rand(2, 3, 50, 50)).shape == (2, 3, 50, 50)
    resized = FeatureVisualizer(timm_model("resnet18"), preprocess_tensors=True).prepare(chw)
    assert resized.shape == (1, 3, 224, 224)


def test_lists_are_batches_with_timm_preprocessing(viz):
    batch = viz.prepare([scene(seed=1), np.asarray(scene(seed=2)), scene(100, 80, seed=3)])
    assert batch.shape == (3, 3, 224, 224)
    assert not torch.equal(batch[0], batch[1])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    white = viz.prepare(Image.new("RGB", (50, 50), "white"))[0]
    assert torch.allclose(white, (1 - mean) / std * torch.ones_like(white), atol=1e-5)


def test_model_data_config_input_size_is_used():
    viz = FeatureVisualizer(timm_model("vit_base_patch16_reg4_gap_256"))
    assert viz.prepare(scene()).shape == (1, 3, 256, 256)


def test_custom_transform():
    def transform(pil):
        return torch.from_numpy(np.asarray(pil.resize((32, 32)), dtype=np.float32) / 255).permute(
            2, 0, 1
        )

    viz = FeatureVisualizer(timm_model("resnet18"), transform=transform)
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
