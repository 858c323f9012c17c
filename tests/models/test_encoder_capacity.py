"""The paper-capacity learned encoder, the Multi-ResNet matched to it, and zero-init.

- ``encoder_channel_mult`` widens the learned encoder per level (channels change after
  the restriction, on the coarser level) so that it holds about half the parameters;
  ``multiresnet_matched`` then has the same total within a few per cent.
- ``zero_init``: a U-Net whose residual branches are zero equals its prolonged
  bottleneck path, computed here independently from the hierarchy's restrict / prolong.
"""

import pytest
import torch

from geounet.hierarchy import SquareHaarHierarchy
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.models.unet import build_unet, zero_init_residuals
from geounet.nn.blocks import ResidualBranch
from geounet.nn.square import SquareConvFactory
from geounet.train.config import ConfigError, ModelConfig, build_dataclass

WIDE = {"encoder_channel_mult": [1, 2, 4], "encoder_blocks": 2}


def _domains():
    """(hierarchy, factory) on the periodic square (3x3 convolutions) and on HEALPix (message passing)."""
    return {
        "square": (SquareHaarHierarchy(16, 4, periodic=True), SquareConvFactory()),
        "healpix": (HealpixHaarHierarchy(8, 4), None),
    }


@pytest.mark.parametrize("domain", ["square", "healpix"])
def test_wide_encoder_doubles_channels_per_coarser_level_and_holds_about_half(domain):
    hierarchy, factory = _domains()[domain]
    torch.manual_seed(0)
    model = build_unet(hierarchy, 2, 1, factory, variant="residual", width=8, channel_mult=[1, 2, 4], **WIDE)
    x = torch.randn(2, hierarchy.num_nodes(3), 2)
    v = model.lift(x)
    for level, channels in ((3, 8), (2, 16), (1, 32)):
        v = model.encoders[str(level)](v, hierarchy)
        assert v.shape == (2, hierarchy.num_nodes(level), channels)
        v = hierarchy.restrict(v, level)  # the width changes on the coarser level, after P
    assert model.encoders["3"].widen is None and model.encoders["2"].widen.level == 2
    counts = model.parameter_counts()
    assert 0.4 < counts["encoder"] / counts["total"] < 0.6
    small = build_unet(hierarchy, 2, 1, factory, variant="residual", width=8, channel_mult=[1, 2, 4])
    assert small.parameter_counts()["encoder"] / small.parameter_counts()["total"] < 0.1


@pytest.mark.parametrize("domain", ["square", "healpix"])
@pytest.mark.parametrize("options", [WIDE, {**WIDE, "decoder_blocks": 1}, {"encoder_channel_mult": [1, 2]},
                                     {"encoder_channel_mult": [1, 2, 4], "cond_dim": 5}, {}])
def test_matched_multiresnet_has_the_wide_residual_unets_parameter_count(domain, options):
    hierarchy, factory = _domains()[domain]
    totals = {
        variant: build_unet(hierarchy, 3, 3, factory, variant=variant, width=8, **options).parameter_counts()
        for variant in ("residual", "multiresnet_matched")
    }
    residual, matched = totals["residual"]["total"], totals["multiresnet_matched"]["total"]
    assert totals["multiresnet_matched"]["encoder"] == 0
    assert abs(matched - residual) <= 0.03 * residual, (matched, residual)


def test_default_encoder_options_build_the_same_weights():
    """None and [1] both mean the constant-width encoder; its weights at a seed are unchanged by the options."""
    hierarchy, factory = _domains()["square"]
    states = []
    for mult in (None, [1]):
        torch.manual_seed(3)
        states.append(build_unet(hierarchy, 1, 1, factory, variant="multiresnet_matched", width=4,
                                 encoder_channel_mult=mult).state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_encoder_channel_mult_is_refused_without_a_learned_encoder():
    hierarchy, factory = _domains()["square"]
    with pytest.raises(ValueError, match="variant 'multiresnet' has none"):
        build_unet(hierarchy, 1, 1, factory, variant="multiresnet", encoder_channel_mult=[1, 2])
    with pytest.raises(ConfigError, match="model.encoder_channel_mult must be positive integers"):
        build_dataclass(ModelConfig, {"variant": "residual", "encoder_channel_mult": [1, 0]}, "model")
    with pytest.raises(ConfigError, match="model.zero_init must be bool"):
        build_dataclass(ModelConfig, {"zero_init": 1}, "model")


def prolonged_bottleneck(model, x, hierarchy):
    """head ι L_I ... ι L_1 U_0(P_0 E_1 ... P_{I-1} E_I lift(x)) with every residual branch left out:
    E_i is the identity, or its channel change when the encoder widens there, and U_0 its input map."""
    finest = model.num_levels - 1
    v = model.lift(x)
    for level in range(finest, 0, -1):
        widen = getattr(model.encoders[str(level)], "widen", None)
        v = hierarchy.restrict(v if widen is None else widen(v, hierarchy), level)
    w = model.bottleneck.channel_map(v)  # [B, N_0, C_0]
    for level in range(1, finest + 1):
        w = hierarchy.prolong(model.decoders[str(level)].channel_map(w), level - 1)
    return model.head(w)


@pytest.mark.parametrize("domain", ["square", "healpix"])
@pytest.mark.parametrize("variant, options", [
    ("residual", {}), ("residual", WIDE), ("multiresnet", {"decoder_blocks": 1}),
    ("multiresnet_matched", {**WIDE, "bottleneck_blocks": 2}),
])
def test_zero_init_unet_equals_its_prolonged_bottleneck(domain, variant, options):
    hierarchy, factory = _domains()[domain]
    x = torch.randn(3, hierarchy.num_nodes(3), 2, dtype=torch.float64)
    cond = torch.randn(3, 4, dtype=torch.float64)
    torch.manual_seed(0)
    model = build_unet(hierarchy, 2, 3, factory, variant=variant, width=4, cond_dim=4, **options).double()
    with torch.no_grad():
        assert (model(x, hierarchy, cond) - prolonged_bottleneck(model, x, hierarchy)).abs().max() > 1e-3
        zero_init_residuals(model)
        torch.testing.assert_close(model(x, hierarchy, cond), prolonged_bottleneck(model, x, hierarchy),
                                   rtol=1e-12, atol=1e-12)
    torch.manual_seed(0)
    built = build_unet(hierarchy, 2, 3, factory, variant=variant, width=4, cond_dim=4, zero_init=True, **options)
    assert all(torch.equal(a, b.float()) for a, b in zip(built.state_dict().values(), model.state_dict().values(),
                                                         strict=True))


def test_zero_init_branches_receive_gradients_and_leave_the_bottleneck_path():
    hierarchy, factory = _domains()["healpix"]
    torch.manual_seed(0)
    model = build_unet(hierarchy, 2, 1, factory, variant="residual", width=4, zero_init=True, **WIDE)
    x, target = torch.randn(2, hierarchy.num_nodes(3), 2), torch.randn(2, hierarchy.num_nodes(3), 1)
    ((model(x, hierarchy) - target) ** 2).mean().backward()
    branches = [m for m in model.modules() if isinstance(m, ResidualBranch)]
    assert all(p.grad.abs().sum() > 0 for b in branches for p in b.op2.parameters() if p.ndim > 1)
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
        assert (model(x, hierarchy) - prolonged_bottleneck(model, x, hierarchy)).abs().max() > 1e-4


def test_config_keys_reach_the_model():
    from pathlib import Path

    from geounet.experiment.config import load_config
    from geounet.experiment.runner import build_configured_unet
    from geounet.tasks import task_structure

    config = Path(__file__).resolve().parents[2] / "experiments/square_navier_stokes/config.toml"
    cfg = load_config(config, ["model.variant='residual'", "model.encoder_channel_mult=[1, 2]", "model.zero_init=true",
                               "model.width=4"])
    unet = build_configured_unet(cfg, task_structure(cfg.task, cfg.model.num_levels))
    # widths 8, 8, 4 on levels 1-3: only E_2 changes channels (4 -> 8); E_3 reads the lift's 4
    assert [unet.encoders[str(i)].widen is None for i in (1, 2, 3)] == [True, False, True]
    branches = [m for m in unet.modules() if isinstance(m, ResidualBranch)]
    assert branches and all(not p.any() for b in branches for p in b.op2.parameters())
