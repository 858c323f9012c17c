"""A U-Net as a denoiser: x_t and the noise level in, the ε- or v-prediction out.

For x_t = a_t x_0 + s_t ε with standardised data (unit variance per node), x_t has
variance about r_t² = a_t² + s_t², so the network sees x_t / r_t (EDM's c_in; 1 for VP)
and the noise level through :class:`~geounet.diffusion.embedding.NoiseLevelEmbedding` of
log SNR(t). Extra conditioning fields (e.g. a forecast's previous state) are
concatenated as channels.

**Batches of different meshes.** FiLM conditioning takes one ``cond`` row per batch
element, and a batch of different meshes is one element (``x [1, Σ_j N_j, C]`` on a
disjoint union), so every mesh of such a batch shares one noise level t. The loss draws
one t per batch element; to decorrelate meshes, draw several mesh batches per step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geounet.diffusion import noise as noise_lib
from geounet.diffusion.embedding import NoiseLevelEmbedding
from geounet.diffusion.schedules import Schedule
from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy


class Denoiser(nn.Module):
    """``denoiser(x_t, hierarchy, t, context=None) -> prediction`` around a conditioned U-Net.

    Args:
        model: called ``model(x, hierarchy, cond)``, built with ``cond_dim`` and with
            ``data channels + context channels`` inputs and ``data channels`` outputs.
        schedule: the noise schedule (for a_t, s_t, log SNR).
        prediction: ``"eps"`` or ``"v"`` (see :mod:`geounet.diffusion.noise`).
        cond_dim: the model's ``cond_dim``.
    """

    def __init__(self, model: nn.Module, schedule: Schedule, prediction: str, cond_dim: int):
        super().__init__()
        self.model = model
        self.schedule = schedule
        self.prediction = noise_lib.check_prediction(prediction)
        self.embedding = NoiseLevelEmbedding(cond_dim)

    def forward(self, x_t: Tensor, hierarchy: Hierarchy, t: Tensor, context: Tensor | None = None) -> Tensor:
        x, cond = self.network_input(x_t, t, context)
        return self.model(x, hierarchy, cond)

    def network_input(self, x_t: Tensor, t: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The model's ``x`` (x_t / r_t and the context channels) and ``cond`` (the noise-level embedding)."""
        # x_t: [B, N, C], t: [B], context: [B, N, C_ctx]
        if t.shape != (x_t.shape[0],):
            raise GeounetError(f"t must hold one time per batch element, shape [{x_t.shape[0]}], got {tuple(t.shape)}")
        a, s = self.schedule.a(t), self.schedule.s(t)
        scaled = x_t / torch.sqrt(a**2 + s**2).to(x_t.dtype)[:, None, None]
        if context is not None:
            scaled = torch.cat([scaled, context], dim=-1)
        return scaled, self.embedding(self.schedule.log_snr(t).to(x_t.dtype))

    def denoise(self, x_t: Tensor, hierarchy: Hierarchy, t: Tensor, context: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """(x̂_0, ε̂) at ``x_t``: what the samplers use."""
        output = self(x_t, hierarchy, t, context)
        return noise_lib.split(self.prediction, output, x_t, self.schedule.a(t), self.schedule.s(t))
