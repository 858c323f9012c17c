"""A model with the statistics of its training data: trained in standard units, used in physical ones."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geounet.hierarchy.base import Hierarchy
from geounet.models.sizing import parameter_counts


class Standardised(nn.Module):
    """``net`` (called in standard units, as it is trained) with the training statistics as buffers.

    ``forward`` is ``net``'s: standardised inputs ``(x - μ_in) / σ_in`` to standardised
    outputs. :meth:`physical` is the map a user wants,

        x ↦ σ_out · net((x - μ_in) / σ_in) + μ_out,

    and the buffers ``input_mean``, ``input_std`` ``[C_in]`` and ``target_mean``,
    ``target_std`` ``[C_out]`` are saved in every checkpoint with the weights.
    """

    def __init__(self, net: nn.Module, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.net = net
        for name, channels in (("input", in_channels), ("target", out_channels)):
            self.register_buffer(f"{name}_mean", torch.zeros(channels))
            self.register_buffer(f"{name}_std", torch.ones(channels))

    def set_statistics(self, input_mean: Tensor, input_std: Tensor, target_mean: Tensor, target_std: Tensor
                       ) -> Standardised:
        """Store the training statistics (``self``, for chaining)."""
        for name, value in (("input_mean", input_mean), ("input_std", input_std), ("target_mean", target_mean),
                            ("target_std", target_std)):
            getattr(self, name).copy_(value)
        return self

    def parameter_counts(self) -> dict[str, int]:
        """The wrapped network's counts (the statistics are buffers, not parameters)."""
        return parameter_counts(self.net)

    def forward(self, x: Tensor, hierarchy: Hierarchy, *cond: Tensor) -> Tensor:  # [B, N, C_in] standard units
        return self.net(x, hierarchy, *cond)  # [B, N, C_out] standard units

    def physical(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        """Physical inputs ``[B, N, C_in]`` -> physical outputs ``[B, N, C_out]``."""
        standard = (x - self.input_mean) / self.input_std
        return self.net(standard, hierarchy) * self.target_std + self.target_mean
