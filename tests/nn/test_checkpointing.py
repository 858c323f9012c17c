"""Activation checkpointing of residual branches: same numbers, fewer saved activations."""

import copy

import pytest
import torch

from geounet.experiment.config import ExperimentConfig
from geounet.experiment.runner import build_configured_unet
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.models import build_unet
from geounet.nn.blocks import ResidualBlock, set_checkpointing
from geounet.nn.decoder import ResidualDecoder
from geounet.nn.message_passing import MessagePassingFactory
from geounet.tasks import TaskStructure
from geounet.train.config import ConfigError, ModelConfig, build_dataclass


def _forward_backward(model, x, hierarchy, cond):
    """Output, input gradient and parameter gradients, and the bytes autograd saved."""
    saved = []

    def pack(tensor):
        saved.append(tensor.untyped_storage().nbytes())
        return tensor

    x = x.clone().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(x, hierarchy, cond)
    out.square().sum().backward()
    grads = [x.grad] + [p.grad for p in model.parameters()]
    return out, grads, sum(saved)


@pytest.mark.parametrize("variant", ["multiresnet", "residual"])
def test_checkpointed_model_has_identical_outputs_and_gradients(variant):
    hierarchy = HealpixHaarHierarchy(8, 3)
    torch.manual_seed(0)
    plain = build_unet(hierarchy, 2, 3, variant=variant, width=8, decoder_blocks=1, cond_dim=4).double()
    checkpointed = copy.deepcopy(plain)
    set_checkpointing(checkpointed)
    assert all(m.checkpoint for m in checkpointed.modules() if isinstance(m, (ResidualBlock, ResidualDecoder)))
    x = torch.randn(2, hierarchy.num_nodes(2), 2, dtype=torch.float64)
    cond = torch.randn(2, 4, dtype=torch.float64)
    out, grads, saved = _forward_backward(plain, x, hierarchy, cond)
    out_ckpt, grads_ckpt, saved_ckpt = _forward_backward(checkpointed, x, hierarchy, cond)
    assert torch.equal(out, out_ckpt)  # bitwise: checkpointing runs the same forward ops on the same tensors
    for grad, grad_ckpt in zip(grads, grads_ckpt, strict=True):
        torch.testing.assert_close(grad, grad_ckpt, rtol=1e-13, atol=1e-15)
    assert saved_ckpt < saved / 3  # only the branches' inputs are kept


def test_checkpointing_is_off_by_default_switchable_and_idle_without_gradients():
    hierarchy = HealpixHaarHierarchy(4, 2)
    model = build_unet(hierarchy, 1, 1, width=4)
    blocks = [m for m in model.modules() if isinstance(m, (ResidualBlock, ResidualDecoder))]
    assert blocks and not any(m.checkpoint for m in blocks)
    model = build_unet(hierarchy, 1, 1, width=4, checkpoint=True)
    assert all(m.checkpoint for m in model.modules() if isinstance(m, (ResidualBlock, ResidualDecoder)))
    with torch.no_grad():
        out = model(torch.randn(1, hierarchy.num_nodes(1), 1), hierarchy)
    assert out.grad_fn is None
    assert not any(m.checkpoint for m in set_checkpointing(model, False).modules()
                   if isinstance(m, (ResidualBlock, ResidualDecoder)))


def test_model_config_flag_reaches_the_built_unet():
    hierarchy = HealpixHaarHierarchy(4, 2)
    task = TaskStructure(hierarchy, MessagePassingFactory(hierarchy), 1, 1)
    for flag in (False, True):
        model = build_dataclass(ModelConfig, {"width": 4, "num_levels": 2, "checkpoint": flag}, "model")
        unet = build_configured_unet(ExperimentConfig(task=None, model=model), task)
        assert {m.checkpoint for m in unet.modules() if isinstance(m, (ResidualBlock, ResidualDecoder))} == {flag}
    with pytest.raises(ConfigError, match="model.checkpoint must be bool"):
        build_dataclass(ModelConfig, {"checkpoint": "yes"}, "model")
