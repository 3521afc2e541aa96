"""`sample_image()`: a real photograph that needs no download."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import featviz_widgets
from featviz_widgets import sample_image
from featviz_widgets.core import samples as _samples


def test_sample_image_is_a_real_rgb_photograph():
    photo = sample_image()
    assert isinstance(photo, Image.Image)
    assert photo.mode == "RGB" and photo.size == (512, 600)
    pixels = np.asarray(photo, dtype=np.float64)
    assert pixels.std() > 30  # not a constant or near-constant picture
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10_000  # photographic colour range
    # neighbouring pixels agree far more than random ones: a natural image, not noise
    assert np.abs(np.diff(pixels, axis=1)).mean() < 0.25 * pixels.std()


def test_sample_image_returns_independent_copies():
    first = sample_image()
    first.paste((0, 0, 0), (0, 0, 512, 600))
    assert np.asarray(sample_image()).max() > 0


def test_sample_image_is_public():
    assert "sample_image" in featviz_widgets.__all__
    assert featviz_widgets.sample_image is sample_image


def test_missing_sample_data_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_samples, "_SAMPLE", "no-such-photo.jpg")
    with pytest.raises(FileNotFoundError, match="without its sample data"):
        sample_image()


def test_sample_image_feeds_the_visualizer():
    import timm

    from featviz_widgets import FeatureVisualizer

    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    features = FeatureVisualizer(model, use_cuda=False).get_features(sample_image(), "layer1")
    assert tuple(features.shape) == (1, 64, 56, 56)
