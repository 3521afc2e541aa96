"""`ModelTwin`: the model's modules anew over the same weights; what is done to the twin is not
seen on the model, and the model's changes reach the twin or mark it outdated."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from featviz_widgets.core.twin import ModelTwin


def tied() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.BatchNorm1d(4))
    model[2].weight = model[0].weight
    return model.train()


def test_same_outputs_own_modules_tied_weights_stay_tied():
    model = timm.create_model("resnet18", pretrained=False).train()
    model.register_forward_hook(lambda *_: (_ for _ in ()).throw(AssertionError("user hook")))
    twin = ModelTwin(model).module
    x = torch.rand(2, 3, 64, 64)
    model._forward_hooks.clear()
    with torch.no_grad():
        expected = model.eval()(x)
        assert torch.equal(twin(x), expected)
    model.train()
    assert not any(m.training for m in twin.modules()) and all(m.training for m in model.modules())
    assert not any(p.requires_grad for p in twin.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert {id(m) for m in twin.modules()}.isdisjoint(id(m) for m in model.modules())
    small = ModelTwin(tied()).module
    assert small[2].weight is small[0].weight and len(list(small.parameters())) == 5


def test_weights_are_shared_and_their_changes_are_seen():
    model = tied()
    twin = ModelTwin(model)
    assert twin.module[0].weight.data_ptr() == model[0].weight.data_ptr()
    assert not twin.sync()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert torch.equal(twin.module[0].weight, model[0].weight)
    assert twin.sync() and not twin.sync()
    model(torch.rand(3, 4))  # training mode: BatchNorm's statistics change in place
    assert twin.sync() and torch.equal(twin.module[3].running_mean, model[3].running_mean)


def test_a_moved_twin_holds_copies_refreshed_by_sync():
    model = tied()
    twin = ModelTwin(model)
    twin.module.to(torch.float64)  # a conversion, as a move to another device
    with torch.no_grad():
        model[0].weight.mul_(2.0)
    assert not torch.equal(twin.module[0].weight, model[0].weight.double())
    assert twin.sync()
    assert torch.equal(twin.module[0].weight, model[0].weight.double())
    assert model[0].weight.dtype == torch.float32 and not twin.outdated()


def test_replaced_modules_and_tensors_make_it_outdated_flags_are_mirrored():
    model = tied()
    twin = ModelTwin(model)
    model[1].some_flag = True
    twin.sync()
    assert twin.module[1].some_flag is True and not twin.outdated()
    model[2] = nn.Linear(4, 4)
    assert twin.outdated()
    twin = ModelTwin(model)
    model.to(torch.float64)
    assert twin.outdated()


@pytest.mark.filterwarnings("ignore:`torch.nn.utils.weight_norm` is deprecated:FutureWarning")
def test_weight_norm_hooks_are_kept_and_the_user_s_are_not():
    model = nn.Sequential(nn.utils.weight_norm(nn.Linear(4, 3)))
    calls = []
    model[0].register_forward_hook(lambda *_: calls.append(1))
    twin = ModelTwin(model).module
    x = torch.rand(2, 4)
    with torch.no_grad():
        assert torch.allclose(twin(x), model(x))
    assert calls == [1]  # the model's own forward only
    with torch.no_grad():
        model[0].weight_g.mul_(3.0)
        assert torch.allclose(twin(x), model(x))
