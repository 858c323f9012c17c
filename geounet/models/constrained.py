"""Models whose outputs satisfy a function constraint exactly, for any weights."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.constraints import FunctionConstraint
from geounet.models.sizing import parameter_counts


class ConstrainedUNet(nn.Module):
    """``Π ∘ model``: the output projected onto the constraint set on the finest level.

    Called ``model(x, hierarchy, cond=None)`` like the model it wraps (a U-Net from
    :func:`geounet.models.build_unet` or any baseline); Π is
    :meth:`~geounet.hierarchy.constraints.FunctionConstraint.project` on ``hierarchy``,
    so the output vanishes on that hierarchy's boundary and / or has the prescribed
    integral to round-off, and Π is the identity on outputs that already do.

    Args:
        model: maps ``[B, N_I, C_in] -> [B, N_I, C_out]`` on the hierarchy it is given.
        zero_boundary: fix the boundary nodes (``hierarchy.boundary_mask``) to zero.
        integral: prescribed ``∫ x`` per channel, or None.
    """

    def __init__(self, model: nn.Module, zero_boundary: bool = False,
                 integral: float | Sequence[float] | None = None):
        super().__init__()
        if not zero_boundary and integral is None:
            raise GeounetError("a ConstrainedUNet needs zero_boundary=True and/or an integral")
        self.unet = model
        self.zero_boundary = zero_boundary
        self.integral = integral

    def constraint(self, hierarchy: Hierarchy) -> FunctionConstraint:
        """The constraint on ``hierarchy``'s levels."""
        return FunctionConstraint(hierarchy, zero_boundary=self.zero_boundary, integral=self.integral)

    def parameter_counts(self) -> dict[str, int]:
        """The wrapped model's counts: the projection Π has no parameters."""
        return parameter_counts(self.unet)

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:  # [B, N_I, C_in]
        out = self.unet(x, hierarchy) if cond is None else self.unet(x, hierarchy, cond)  # [B, N_I, C_out]
        return self.constraint(hierarchy).project(out, hierarchy.finest_level)
