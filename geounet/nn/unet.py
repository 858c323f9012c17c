r"""The U-Net of Williams, Falck et al. (NeurIPS 2023, Def. 1), evaluated literally.

A U-Net is (V, W, E, D, P, U_0). The U-Net of resolution i is

.. math::

    U_0(v_0) &= \mathrm{bottleneck}(v_0), \\
    U_i(v_i) &= D_i\bigl(U_{i-1}(P_{i-1}(E_i(v_i))),\; E_i(v_i)\bigr), \qquad i = 1, \dots, I,

with P the hierarchy's ``restrict``. With E_i = id (a Multi-ResNet, Def. 3) this unrolls
to D_I(...D_1(U_0(P_0 v), P_1 v)..., v): the skip at level j is exactly P_j v.

The network maps ``[B, N_I, C_in]`` to ``[B, N_I, C_out]`` on the hierarchy it is called
with: a pointwise ``lift`` x -> W x + b into V (C_v channels), U_I, then a pointwise
linear ``head``. Restriction acts node-wise-linearly and the lift channel-wise, so

    P(W x + b 1) = W (P x) + b (P 1),

and the lift commutes with every restriction exactly when it has no bias (b = 0) or the
restriction reproduces constants (P 1 = 1: Haar averages, spaces that hold the constant).
Then a Multi-ResNet's skips are the lifted projections of the raw input, and its coarse
outputs are those of the coarse evaluation, y_j(x) = y_j(P_j x) (:mod:`geounet.nn.staged`).
Spaces without the constant (zero-Dirichlet eigenbases) have P 1 != 1: build those U-Nets
with ``lift_bias=False`` (:func:`geounet.models.build_unet`) where that consistency matters.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.finest import finest_levels
from geounet.hierarchy.healpix_face import kind_change_hint
from geounet.nn.inputs import NONFINITE_POLICIES, check_model_input, check_model_output


def geometry_for(model: nn.Module, hierarchy: Hierarchy, kind: str, num_levels: int) -> Hierarchy:
    """The levels of ``hierarchy`` that a model built for ``kind`` with ``num_levels`` levels
    runs on: its ``num_levels`` finest. Raises when the kind differs or it is too shallow."""
    if not isinstance(hierarchy, Hierarchy):
        raise TypeError(f"{type(model).__name__} is called model(x, hierarchy) with a geounet Hierarchy, "
                        f"got {type(hierarchy).__name__}")
    if hierarchy.kind != kind:
        fix = kind_change_hint(kind, hierarchy.kind) or "build a model from a hierarchy of that kind"
        raise GeounetError(f"{type(model).__name__} was built for {kind} hierarchies, got a {hierarchy.kind}; {fix}")
    if hierarchy.num_levels < num_levels:
        raise GeounetError(f"{type(model).__name__} has {num_levels} levels but the hierarchy only "
                         f"{hierarchy.num_levels}; build the hierarchy with at least {num_levels} levels")
    return finest_levels(hierarchy, num_levels)


class UNet(nn.Module):
    """A U-Net for hierarchies of one kind, called ``unet(x, hierarchy, cond=None)``.

    It holds only parameters: the hierarchy (V, P) comes with every call, and may be any
    geometry of the kind the U-Net was built for, or a batch of them. A hierarchy with
    more levels than the U-Net is used through its finest ``num_levels`` levels.

    Args:
        kind: the hierarchy kind (``Hierarchy.kind``) the spatial operators were built for.
        num_levels: I + 1.
        lift: pointwise map ``[B, N, C_in] -> [B, N, C_v]``.
        encoders: E_i for i = 1..I, keyed by level.
        bottleneck: U_0.
        decoders: D_i for i = 1..I, keyed by level.
        head: pointwise map ``[B, N, C_I] -> [B, N, C_out]``.
        nonfinite: ``"raise"`` (default) on NaN / Inf inputs, and on NaN / Inf outputs of finite
            inputs (:func:`~geounet.nn.inputs.check_model_output`), or ``"warn"`` once and go on.
    """

    def __init__(
        self,
        kind: str,
        num_levels: int,
        lift: nn.Linear,
        encoders: Mapping[int, nn.Module],
        bottleneck: nn.Module,
        decoders: Mapping[int, nn.Module],
        head: nn.Linear,
        nonfinite: str = "raise",
    ):
        super().__init__()
        levels = set(range(1, num_levels))
        for name, parts in (("encoders", encoders), ("decoders", decoders)):
            if set(parts) != levels:
                raise GeounetError(f"{name} must be given for exactly the levels {sorted(levels)}, got {sorted(parts)}")
        if nonfinite not in NONFINITE_POLICIES:
            raise GeounetError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
        self.kind = kind
        self.num_levels = num_levels
        self.nonfinite = nonfinite
        self._warned: set[str] = set()
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

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:
        """``x [B, N_I, C_in] -> [B, N_I, C_out]`` on ``hierarchy``; ``cond [B, cond_dim]`` if the blocks use it."""
        levels = geometry_for(self, hierarchy, self.kind, self.num_levels)
        finest = levels.finest_level
        check_model_input(x, levels.num_nodes(finest), self.in_channels, self.lift.weight.dtype, "UNet",
                          self.nonfinite, self._warned)
        y = self.head(self.evaluate(self.lift(x), levels, finest, cond))
        return check_model_output(y, x, "UNet", self.nonfinite, self._warned)

    def evaluate(self, v: Tensor, hierarchy: Hierarchy, level: int, cond: Tensor | None = None,
                 outputs: list[Tensor] | None = None) -> Tensor:
        """U_level(v) for ``v [B, N_level, C_v]`` in V_level of ``hierarchy`` (already cut to this
        U-Net's levels), returning W_level features. ``outputs``, when given, receives the W_j
        features of every level j = 0 .. level, coarsest first (for per-level heads)."""
        if level == 0:
            w = self.bottleneck(v, hierarchy, cond)
        else:
            encoded = self.encoders[str(level)](v, hierarchy, cond)  # E_i(v_i)
            coarse = self.evaluate(hierarchy.restrict(encoded, level), hierarchy, level - 1, cond, outputs)
            w = self.decoders[str(level)](coarse, encoded, hierarchy, cond)  # D_i(U_{i-1}(P E v), E v)
        if outputs is not None:
            outputs.append(w)
        return w

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

    def extra_repr(self) -> str:
        return f"kind={self.kind}, num_levels={self.num_levels}"
