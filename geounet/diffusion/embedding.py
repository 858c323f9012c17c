"""The noise-level embedding fed to the U-Net's FiLM conditioning.

The network is told the noise level through λ = log SNR(t), which is schedule-free
(VP and EDM times mean different things, λ means the same). Sinusoidal features

    γ(λ) = [sin(ω_k λ), cos(ω_k λ)]_k,    ω_k geometric from 1 / ``max_period`` to 1,

go through a two-layer MLP to ``cond [B, cond_dim]``, which every residual block of a U-Net
built with ``cond_dim`` turns into a per-channel scale and shift (geounet.nn.blocks).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from geounet.errors import GeounetError


class NoiseLevelEmbedding(nn.Module):
    """``log_snr [B] -> cond [B, cond_dim]``: sinusoidal features, then Linear-SiLU-Linear.

    Args:
        cond_dim: width of the output (the U-Net's ``cond_dim``).
        features: number of sinusoidal features (even).
        max_period: the longest period, in units of log SNR (which spans about ±15 in use).
    """

    def __init__(self, cond_dim: int, features: int = 64, max_period: float = 200.0):
        super().__init__()
        if features < 2 or features % 2:
            raise GeounetError(f"features must be an even number >= 2, got {features}")
        half = features // 2
        self.register_buffer("frequencies", torch.exp(-math.log(max_period) * torch.arange(half) / max(half - 1, 1)))
        self.mlp = nn.Sequential(nn.Linear(features, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, log_snr: Tensor) -> Tensor:  # [B]
        angles = log_snr.to(self.frequencies.dtype)[:, None] * self.frequencies  # [B, F/2]
        return self.mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1))  # [B, cond_dim]
