"""Statistics and rankings against values computed by hand on a hand-built model."""

import math
import warnings

import pytest
import torch
from torch import nn

from featviz_widgets import FeatureVisualizer, NonFiniteActivationWarning
from featviz_widgets.core.stats import feature_statistics, rank_channels

X = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def test_statistics_of_relu_layer_match_hand_values(tiny, device):
    stats = FeatureVisualizer(tiny, device=device).get_feature_statistics(X, "act")
    # ReLU(conv): channel 0 is 1 everywhere, channel 1 is ReLU(-1) = 0: 64 ones, 64 zeros.
    assert stats["mean"] == pytest.approx(0.5)
    assert stats["std"] == pytest.approx(math.sqrt(128 * 0.25 / 127))
    assert stats["sparsity"] == pytest.approx(0.5)
    assert (stats["max"], stats["min"]) == (1.0, 0.0)
    assert stats["active_channels"] == 1
    assert stats["num_channels"] == 2
    assert stats["spatial_size"] == (8, 8)
    assert stats["non_finite"] == 0


def test_statistics_of_known_maps_and_batch(tiny, device):
    batch = X.repeat(3, 1, 1, 1)
    stats = FeatureVisualizer(tiny, device=device).get_feature_statistics(batch, "known")
    values = torch.tensor([2.0] * 16 + [0.0, 4.0] * 8 + [3.0] * 16 + [0.0] * 16)
    assert stats["mean"] == pytest.approx(values.mean().item())
    assert stats["std"] == pytest.approx(values.repeat(3).std().item())
    assert stats["sparsity"] == pytest.approx(24 / 64)
    # Channels, not batch x channel pairs: 3 of 4 channels have mean > 0.01.
    assert stats["active_channels"] == 3
    assert stats["num_channels"] == 4
    assert isinstance(stats["spatial_size"], tuple)


def test_rankings_by_activation_variance_and_seeded_random(tiny, device):
    viz = FeatureVisualizer(tiny, device=device)
    assert viz.rank_channels(X, "known", "activation") == [2, 0, 1, 3]
    assert viz.rank_channels(X, "known", "variance")[0] == 1
    first = viz.rank_channels(X, "known", "random", seed=7)
    assert sorted(first) == [0, 1, 2, 3]
    assert viz.rank_channels(X, "known", "random", seed=7) == first
    seeds = {tuple(viz.rank_channels(X, "known", "random", seed=s)) for s in range(10)}
    assert len(seeds) > 1
    with pytest.raises(ValueError, match="`sort_by` must be one of"):
        viz.rank_channels(X, "known", "brightness")


def test_top_activating_features_pairs(tiny, device):
    viz = FeatureVisualizer(tiny, device=device)
    top = viz.get_top_activating_features(X, "known", top_k=2)
    assert top == [(2, 3.0), (0, 2.0)]
    assert all(isinstance(c, int) and isinstance(v, float) for c, v in top)
    # More than the layer has: every channel, no error.
    assert len(viz.get_top_activating_features(X, "known", top_k=50)) == 4


def test_top_activating_features_score_once_and_match_brute_force(monkeypatch, device):
    from conftest import scene, timm_model

    from featviz_widgets.core import stats as _stats
    from featviz_widgets.visualizer import facade as visualizer

    viz = FeatureVisualizer(timm_model("resnet18"), device=device)
    batch = [scene(seed=1), scene(seed=2)]
    features = viz.get_features(batch, "layer4").double()
    means = [features[:, c].mean().item() for c in range(features.shape[1])]
    expected = sorted(range(len(means)), key=lambda c: (-means[c], c))[:10]
    calls = []
    real = _stats.channel_scores

    def counted(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(_stats, "channel_scores", counted)
    monkeypatch.setattr(visualizer, "channel_scores", counted)
    top = viz.get_top_activating_features(batch, "layer4", top_k=10)
    assert calls == ["activation"]  # one scoring pass, not one more to rank
    assert [c for c, _ in top] == expected
    assert [v for _, v in top] == pytest.approx([means[c] for c in expected], rel=1e-9)
    assert top[0][1] > top[-1][1] > 0


def test_non_finite_activations_are_reported_not_averaged():
    features = torch.ones(1, 3, 2, 2)
    features[0, 1, 0, 0] = float("nan")
    features[0, 2, 1, 1] = float("inf")
    with pytest.warns(NonFiniteActivationWarning, match=r"2 non-finite .* channel\(s\) 1, 2"):
        stats = feature_statistics(features, "blocks.3")
    assert stats["non_finite"] == 2
    assert stats["mean"] == 1.0 and stats["max"] == 1.0
    assert math.isfinite(stats["std"])


def test_nan_layer_through_the_api_warns(device):
    class NaNLayer(nn.Module):
        def forward(self, x):
            return x / 0 * 0  # NaN everywhere x is finite

    model = nn.Sequential(nn.Conv2d(3, 2, 1), NaNLayer())
    with warnings.catch_warnings(record=True), pytest.raises(ValueError, match="no finite"):
        FeatureVisualizer(model, device=device).get_feature_statistics(X, "1")


def test_rank_channels_pooled_variance_is_zero_not_nan():
    assert rank_channels(torch.tensor([[[[1.0]], [[3.0]]]]), "variance") == [0, 1]
