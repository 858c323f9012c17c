"""Per-level heads, multi-resolution inference (geounet.nn.staged) and staged training (geounet.train.staged)."""

from __future__ import annotations

import pytest
import torch

from geounet.data.samples import Dataset
from geounet.hierarchy import HealpixHaarHierarchy, SquareHaarHierarchy
from geounet.models import build_unet
from geounet.nn.staged import StagedUNet
from geounet.train.staged import Stage, staged_config, train_staged


def train(staged, inputs, targets, hierarchy, stages, batch_size=8, **fit_options):
    data = Dataset(inputs, targets, hierarchy)
    return train_staged(staged, data, stages, staged_config(stages, batch_size=batch_size), **fit_options)


def staged_model(hierarchy, variant="multiresnet", seed=0):
    torch.manual_seed(seed)
    unet = build_unet(hierarchy, 2, 1, variant=variant, width=8)
    return StagedUNet(unet)


@pytest.mark.parametrize("variant", ["multiresnet", "residual"])
def test_outputs_at_every_level_and_the_finest_is_the_unet(variant):
    hierarchy = SquareHaarHierarchy(16, 4)
    staged = staged_model(hierarchy, variant)
    x = torch.randn(3, 256, 2)
    outputs = staged(x, hierarchy)
    assert [tuple(y.shape) for y in outputs] == [(3, 4, 1), (3, 16, 1), (3, 64, 1), (3, 256, 1)]
    assert torch.equal(outputs[-1], staged.unet(x, hierarchy))  # bitwise: the same modules, same input, same order


@pytest.mark.parametrize("variant", ["multiresnet", "residual"])
def test_the_coarsest_stage_is_the_sub_unet(variant):
    hierarchy = HealpixHaarHierarchy(4, 3)
    staged = staged_model(hierarchy, variant)
    x0 = torch.randn(2, 12, 2)
    (y0,) = staged(x0, hierarchy, stage=0)
    unet = staged.unet
    assert torch.allclose(y0, staged.heads[0](unet.bottleneck(unet.lift(x0), hierarchy)))
    x1 = torch.randn(2, 48, 2)  # stage 1 = U_1 = D_1(U_0(P E_1 v), E_1 v)
    v = unet.lift(x1)
    encoded = unet.encoders["1"](v, hierarchy)
    w1 = unet.decoders["1"](unet.bottleneck(hierarchy.restrict(encoded, 1), hierarchy), encoded, hierarchy)
    assert torch.allclose(staged(x1, hierarchy, stage=1)[1], staged.heads[1](w1), atol=1e-6)


def test_multiresnet_coarse_outputs_equal_the_coarse_evaluation():
    # E_i = id: y_j(x) = y_j(P_j x), so every resolution answers consistently.
    hierarchy = SquareHaarHierarchy(16, 4)
    staged = staged_model(hierarchy)
    x = torch.randn(2, 256, 2)
    fine = staged(x, hierarchy)
    for level in range(3):
        coarse = staged(hierarchy.project(x, 3, level), hierarchy, stage=level)
        assert torch.allclose(coarse[level], fine[level], atol=1e-5)


def test_staged_training_freezes_earlier_stages_and_learns():
    hierarchy = SquareHaarHierarchy(8, 3)
    staged = staged_model(hierarchy)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(16, 64, 2, generator=generator)
    targets = inputs[..., :1] * 2 - inputs[..., 1:]  # a pointwise linear map, learnable at every level
    history = train(staged, inputs, targets, hierarchy, [Stage(0, 30, lr=1e-2)], batch_size=8)
    assert history[0][-1] < history[0][0]
    frozen = {id(p): p.detach().clone() for level in (0, 1) for p in staged.level_parameters(level)}
    finest_before = [p.detach().clone() for p in staged.level_parameters(2)]
    train(staged, inputs, targets, hierarchy, [Stage(2, 10, lr=1e-2, freeze_coarser=True)], batch_size=8)
    for level in (0, 1):
        for p in staged.level_parameters(level):
            assert torch.equal(p, frozen[id(p)])
    assert any(not torch.equal(p, q) for p, q in zip(staged.level_parameters(2), finest_before, strict=True))
    assert all(p.requires_grad for p in staged.parameters())  # unfrozen afterwards


def test_unfrozen_stage_moves_earlier_levels_and_multi_res_loss_scores_every_level():
    hierarchy = SquareHaarHierarchy(8, 3)
    staged = staged_model(hierarchy)
    inputs, targets = torch.randn(8, 64, 2), torch.randn(8, 64, 1)
    before = [p.detach().clone() for p in staged.level_parameters(0)]
    history = train(staged, inputs, targets, hierarchy, [Stage(1, 3, multi_res_loss=True)], batch_size=4)
    assert len(history[0]) == 3
    assert any(not torch.equal(p, q) for p, q in zip(staged.level_parameters(0), before, strict=True))


def test_bad_stages_are_named():
    hierarchy = SquareHaarHierarchy(8, 3)
    staged = staged_model(hierarchy)
    with pytest.raises(ValueError, match="stage must be a level in"):
        staged(torch.randn(1, 64, 2), hierarchy, stage=3)
    with pytest.raises(ValueError, match="expected|shape|nodes"):
        staged(torch.randn(1, 64, 2), hierarchy, stage=1)  # level-2 data given to stage 1
    with pytest.raises(ValueError, match="stage levels must lie in"):
        train(staged, torch.randn(2, 64, 2), torch.randn(2, 64, 1), hierarchy, [Stage(5, 1)])
