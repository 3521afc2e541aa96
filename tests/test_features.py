"""The feature store: typed results, the cache, the layer function and the probe."""

import dataclasses
import hashlib

import pytest
import torch
from conftest import resnet18_64px, scene
from torch import nn

import featviz_widgets.core.features as features_module
from featviz_widgets import FeatureExplorer, FeatureVisualizer
from featviz_widgets.core.features import FeatureMaps, FeatureStore
from featviz_widgets.core.layout import Format, ModelGeometry

X = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))


def store_for(model: nn.Module, cache_size: int = 8) -> FeatureStore:
    return FeatureStore(model, ModelGeometry(model), cache_size)


def test_maps_are_a_frozen_typed_result(tiny):
    found = store_for(tiny).maps(X, ["conv"])["conv"]
    assert isinstance(found, FeatureMaps)
    assert found.maps.shape == (1, 2, 8, 8) and found.layout is Format.NCHW
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.layout = Format.NHWC


def test_cache_reuses_bounds_and_clears(tiny):
    store = store_for(tiny, cache_size=2)
    first = store.maps(X, ["conv", "act"])
    assert len(store) == 2
    again = store.maps(X, ["act"])
    assert again["act"] is first["act"]  # from the cache, not a new forward
    store.maps(X + 1, ["conv"])
    assert len(store) == 2  # the oldest entry went
    store.clear()
    assert len(store) == 0
    assert store.key(X) == store.key(X.clone()) != store.key(X + 1)


def test_layer_fn_and_probe_agree_with_cached_maps(tiny):
    store = store_for(tiny)
    cached = store.maps(X, ["act"])["act"].maps
    torch.testing.assert_close(store.layer_fn("act")(X), cached)
    probed = store.probe(X, ["known", "conv", "act", "head", "unused"])
    assert "unused" not in probed  # never ran
    assert probed["head"].layout is Format.POOLED and probed["head"].maps.shape == (1, 3, 1, 1)
    torch.testing.assert_close(probed["act"].maps, cached)


def test_visualizer_holds_one_store(tiny):
    viz = FeatureVisualizer(tiny, device="cpu", cache_size=3)
    assert isinstance(viz.features, FeatureStore) and viz.features.model is viz.model
    assert viz.cache_size == viz.features.cache_size == 3
    viz.get_features(X, "conv")
    viz.occlusion(X, "conv", patch_size=4, stride=4, progress=False)
    assert len(viz.features) == 1 and viz._occlusions.cache is not None
    viz.clear_cache()
    assert len(viz.features) == 0 and viz._occlusions.cache is None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_key_hashes_the_raw_bytes_of_any_dtype(dtype):
    store = store_for(nn.Identity())
    batch = X.to(dtype)
    key = store.key(batch)
    assert key == store.key(batch.clone()) and key[1:3] == ((1, 3, 8, 8), str(dtype))
    changed = batch.clone()
    changed[0, 0, 0, 0] += 1
    assert store.key(changed)[0] != key[0]
    # the same bytes read as another dtype or shape are another key
    assert store.key(batch.view(torch.int16)) != key
    assert store.key(batch.reshape(1, 3, 4, 16)) != key
    # a non-contiguous view hashes what it shows
    transposed = batch.transpose(2, 3)
    assert store.key(transposed)[0] == store.key(transposed.contiguous())[0]


class CountingHash:
    """`hashlib` for `featviz_widgets.core.features`, counting the images it hashes."""

    def __init__(self) -> None:
        self.calls = 0

    def blake2b(self, *args, **kwargs):
        self.calls += 1
        return hashlib.blake2b(*args, **kwargs)


@pytest.fixture
def hashes(monkeypatch) -> CountingHash:
    counting = CountingHash()
    monkeypatch.setattr(features_module, "hashlib", counting)
    return counting


def test_a_batch_is_hashed_once_until_it_changes(tiny, hashes):
    store = store_for(tiny)
    batch = X.clone()
    first = store.key(batch)
    assert store.key(batch) == store.key(batch.detach()) == store.key(batch[:]) == first
    assert hashes.calls == 1
    batch.add_(1.0)  # in place: the same memory, another image
    assert store.key(batch) != first and hashes.calls == 2
    assert store.key(batch.clone()) == store.key(batch) and hashes.calls == 4


def test_an_explorer_view_hashes_its_image_once(hashes):
    model = resnet18_64px()
    explorer = FeatureExplorer(model, scene(), layer="layer1", device="cpu")
    try:
        explorer.wait(60)
        for layer in ("layer2", "layer3"):
            hashes.calls = 0
            explorer.layer = layer
            explorer.wait(60)
            assert explorer.error == "" and hashes.calls == 1, f"{layer}: {hashes.calls}"
    finally:
        explorer.close()
