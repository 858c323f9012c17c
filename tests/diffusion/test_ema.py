"""The EMA of a model's weights under its three decay policies (fixed, warm-up, power)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from geounet.diffusion import EMA
from geounet.diffusion.ema import power_decay, power_gamma, power_sigma_rel, warmup_decay
from geounet.experiment.diffusion import DIFFUSION_DEFAULTS, make_ema


def scalar_model(value: float) -> nn.Module:
    model = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def average_of(ema: EMA, sequence: list[float]) -> float:
    """The EMA's weight after updating towards a model whose weight runs through ``sequence``."""
    model = ema.module.__class__(1, 1, bias=False).double()
    for value in sequence:
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
    return float(ema.module.weight)


def test_fixed_update_and_buffers():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.9, warmup=False)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.fill_(3.0)
    ema.update(model)
    for name, p in ema.module.named_parameters():
        assert torch.allclose(p, 0.9 * start[name] + 0.1 * (start[name] + 1.0))
    assert torch.equal(ema.module[1].running_mean, torch.full((2,), 3.0))  # buffers copied
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_warmup_decay_formula():
    # β_k = min(β, (1 + k) / (10 + k)): 0.1, 2/11, 3/12, ... until the cap β.
    assert [warmup_decay(k, 0.999) for k in range(3)] == pytest.approx([0.1, 2 / 11, 3 / 12])
    assert warmup_decay(889, 0.99) < 0.99 and warmup_decay(890, 0.99) == 0.99  # the cap at k = (10β - 1)/(1 - β)
    ema = EMA(scalar_model(0.0), decay=0.999)
    assert average_of(ema, [10.0]) == pytest.approx(9.0)  # 0.1 old + 0.9 new
    assert ema.current_decay() == pytest.approx(2 / 11)
    assert average_of(ema, [20.0]) == pytest.approx(2 / 11 * 9.0 + 9 / 11 * 20.0)


@pytest.mark.parametrize("policy", [{"decay": 0.99, "warmup": False}, {"decay": 0.99}, {"sigma_rel": 0.1}],
                         ids=["fixed", "warmup", "power"])
def test_the_ema_of_a_constant_is_exact(policy):
    # lerp(θ, θ, w) = θ: a model whose weights do not move keeps its EMA at those weights.
    ema = EMA(scalar_model(0.3), **policy)
    assert average_of(ema, [0.3] * 50) == 0.3


def test_the_power_ema_forgets_its_start_at_once():
    # β_0 = 0: the first update copies, so the EMA of a constant is exact from any start.
    ema = EMA(scalar_model(-7.0), sigma_rel=0.05)
    assert average_of(ema, [0.3] * 5) == pytest.approx(0.3, abs=1e-15)
    # Negative control: a fixed decay keeps the share β^n of the start.
    fixed = EMA(scalar_model(-7.0), decay=0.9, warmup=False)
    assert average_of(fixed, [0.3] * 5) == pytest.approx(0.3 + 0.9**5 * (-7.3))


def test_the_widest_power_ema_is_the_plain_average():
    # γ = 0 (σ_rel = 1/sqrt(12)): β_k = k / (k + 1), the running mean of all weights so far.
    sequence = torch.randn(40, generator=torch.Generator().manual_seed(0), dtype=torch.float64).tolist()
    ema = EMA(scalar_model(5.0), sigma_rel=1 / math.sqrt(12))
    assert ema.gamma == pytest.approx(0.0, abs=1e-9)
    assert average_of(ema, sequence) == pytest.approx(sum(sequence) / len(sequence), rel=1e-9)
    warm = EMA(scalar_model(5.0), decay=0.999)  # negative control: the warm-up EMA is not the plain average
    assert average_of(warm, sequence) != pytest.approx(sum(sequence) / len(sequence), rel=1e-3)


def test_power_ema_weights_telescope():
    # After n updates the weight of update j is (j^(γ+1) - (j-1)^(γ+1)) / n^(γ+1) (they sum to 1).
    gamma, n = power_gamma(0.1), 30
    sequence = [math.sin(j) for j in range(1, n + 1)]
    weights = [(j ** (gamma + 1) - (j - 1) ** (gamma + 1)) / n ** (gamma + 1) for j in range(1, n + 1)]
    expected = sum(w * v for w, v in zip(weights, sequence, strict=True))
    assert average_of(EMA(scalar_model(2.0), sigma_rel=0.1), sequence) == pytest.approx(expected, rel=1e-9)
    assert power_decay(0, gamma) == 0.0 and power_decay(9, gamma) == pytest.approx(0.9 ** (gamma + 1))


def test_sigma_rel_and_gamma_invert_each_other():
    # Karras et al. 2024 quote γ = 6.94 for σ_rel = 0.10 and γ = 16.97 for σ_rel = 0.05.
    assert power_gamma(0.10) == pytest.approx(6.94, abs=0.01)
    assert power_gamma(0.05) == pytest.approx(16.97, abs=0.01)
    for sigma_rel in (0.01, 0.09, 0.2, 0.28):
        assert power_sigma_rel(power_gamma(sigma_rel)) == pytest.approx(sigma_rel, rel=1e-9)
    with pytest.raises(ValueError, match="sigma_rel must lie in"):
        power_gamma(0.3)
    with pytest.raises(ValueError, match="decay"):
        EMA(scalar_model(0.0), decay=1.0)


def test_the_config_picks_the_policy():
    model = scalar_model(0.0)
    assert make_ema(model, {**DIFFUSION_DEFAULTS, "ema": "off"}).current_decay() == 0.0
    assert make_ema(model, {**DIFFUSION_DEFAULTS, "ema": "fixed", "ema_decay": 0.9}).current_decay() == 0.9
    assert make_ema(model, {**DIFFUSION_DEFAULTS, "ema": "warmup"}).current_decay() == pytest.approx(0.1)
    power = make_ema(model, {**DIFFUSION_DEFAULTS, "ema": "power", "ema_sigma_rel": 0.1})
    assert power.policy == "power" and power.gamma == pytest.approx(6.94, abs=0.01)
