"""The U-Net of Williams, Falck et al. (NeurIPS 2023, Def. 1), evaluated literally.

A U-Net is (V, W, E, D, P, U_0). The U-Net of resolution i is

    U_0(v_0)  = bottleneck(v_0),
    U_i(v_i)  = D_i( U_{i-1}( P_{i-1}( E_i(v_i) ) ),  E_i(v_i) ),   i = 1..I,

with P the hierarchy's ``restrict``. With E_i = id (a Multi-ResNet, Def. 3) this unrolls
to D_I(...D_1(U_0(P_0 v), P_1 v)..., v): the skip at level j is exactly P_j v.

The network maps ``[B, N_I, C_in]`` to ``[B, N_I, C_out]``: a pointwise linear ``lift``
into V (C_v channels), U_I, then a pointwise linear ``head``. Because the lift is
pointwise linear it commutes with every restriction, so a Multi-ResNet's skips are also
the lifted projections of the raw input: the encoder stays parameter-free.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from geounet.hierarchy.base import Hierarchy


class UNet(nn.Module):
    """A U-Net over a :class:`~geounet.hierarchy.Hierarchy`.

    Args:
        hierarchy: the nested spaces and projections (V, P).
        lift: pointwise map ``[B, N, C_in] -> [B, N, C_v]``.
        encoders: E_i for i = 1..I, keyed by level.
        bottleneck: U_0.
        decoders: D_i for i = 1..I, keyed by level.
        head: pointwise map ``[B, N, C_I] -> [B, N, C_out]``.
    """

    def __init__(
        self,
        hierarchy: Hierarchy,
        lift: nn.Linear,
        encoders: Mapping[int, nn.Module],
        bottleneck: nn.Module,
        decoders: Mapping[int, nn.Module],
        head: nn.Linear,
    ):
        super().__init__()
        levels = set(range(1, hierarchy.num_levels))
        for name, parts in (("encoders", encoders), ("decoders", decoders)):
            if set(parts) != levels:
                raise ValueError(f"{name} must be given for exactly the levels {sorted(levels)}, got {sorted(parts)}")
        self.hierarchy = hierarchy
        self.lift = lift
        self.encoders = nn.ModuleDict({str(i): encoders[i] for i in sorted(levels)})
        self.bottleneck = bottleneck
        self.decoders = nn.ModuleDict({str(i): decoders[i] for i in sorted(levels)})
        self.head = head

    @property
    def in_channels(self) -> int:
        return self.lift.in_features

    @property
    def out_channels(self) -> int:
        return self.head.out_features

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """``x [B, N_I, C_in] -> [B, N_I, C_out]``; ``cond [B, cond_dim]`` if the blocks use it."""
        finest = self.hierarchy.finest_level
        expected = self.hierarchy.num_nodes(finest)
        if x.dim() != 3 or x.shape[1] != expected or x.shape[2] != self.in_channels:
            raise ValueError(
                f"expected input of shape [batch, {expected}, {self.in_channels}] "
                f"(finest level nodes, in_channels), got {tuple(x.shape)}"
            )
        return self.head(self.evaluate(self.lift(x), finest, cond))

    def evaluate(self, v: Tensor, level: int, cond: Tensor | None = None) -> Tensor:
        """U_level(v) for ``v [B, N_level, C_v]`` in V_level, returning W_level features."""
        if level == 0:
            return self.bottleneck(v, cond)
        encoded = self.encoders[str(level)](v, cond)  # E_i(v_i)
        coarse = self.evaluate(self.hierarchy.restrict(encoded, level), level - 1, cond)
        return self.decoders[str(level)](coarse, encoded, cond)  # D_i(U_{i-1}(P E v), E v)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part: lift, encoder, bottleneck, decoder, head, total."""

        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters() if p.requires_grad)

        counts = {
            "lift": count(self.lift),
            "encoder": count(self.encoders),
            "bottleneck": count(self.bottleneck),
            "decoder": count(self.decoders),
            "head": count(self.head),
        }
        counts["total"] = sum(counts.values())
        return counts
