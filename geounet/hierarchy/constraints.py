"""Function constraints as (affine) subspaces of a hierarchy's levels, and a U-Net wrapper.

A constraint picks, on every level, the affine set

    K_i = { x in V_i :  x_n = 0 for boundary nodes n,   ∫ x = c }

(either condition optional; ``c`` a per-channel prescribed integral, ``c = 0`` is zero
mean). Its mass-orthogonal projection is, with ``D`` the mask zeroing boundary nodes
and ``e = D 1`` the constant restricted to the free nodes,

    Π(x) = D x - t e,     t = (∫ D x - c) / ∫ e,

(``x - Π(x)`` is M-orthogonal to every direction ``u`` with ``u_b = 0``, ``∫ u = 0``).
The sets are nested under the hierarchy's inclusion: ``prolong`` maps K_{i-1} into K_i
(boundary cells of level i lie in boundary cells of level i-1, and prolongation keeps
integrals) and ``Π_{i-1} ∘ restrict`` is the projection of K_i onto K_{i-1}.

How a U-Net's output lands in K: the last layer of ``build_unet`` is a pointwise linear
head with a bias, which leaves any such set, so :class:`geounet.models.ConstrainedUNet` applies Π to
the output: the output satisfies the constraint to round-off for *any* weights, and Π
is the identity on outputs that already satisfy it (a projection, not a penalty).
Where the constraint is part of the basis (a Dirichlet
:class:`~geounet.hierarchy.mesh_spectral.MeshSpectralHierarchy` without a vertex level)
every coefficient vector already satisfies it and no projection is needed.

Boundary nodes are what the hierarchy says they are (``Hierarchy.boundary_mask``): for
Haar hierarchies of faces (triangle, subdivision, clusters) a cell is a boundary cell when
one of its faces has a boundary vertex; for the vertex level of a spectral hierarchy they
are the boundary vertices.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy


class AllBoundaryWarning(UserWarning):
    """A zero-boundary constraint fixes every node of a level, so every output there is 0."""


class FunctionConstraint:
    """Zero boundary values and / or a prescribed integral on every level of ``hierarchy``.

    Args:
        hierarchy: the spaces.
        zero_boundary: fix the boundary nodes (``hierarchy.boundary_mask``) to zero.
        integral: prescribed ``∫ x`` per channel (a float for all channels, or a sequence);
            ``0.0`` is the zero-mean constraint; ``None`` for no integral constraint.
    """

    def __init__(
        self, hierarchy: Hierarchy, zero_boundary: bool = False, integral: float | Sequence[float] | None = None
    ):
        if not zero_boundary and integral is None:
            raise GeounetError("a FunctionConstraint needs zero_boundary=True and/or an integral")
        if integral is not None and not hierarchy.reproduces_constants:
            raise GeounetError(
                f"{hierarchy!r} does not contain the constants, so its integral cannot be adjusted "
                "by adding a constant; constrain the integral on a hierarchy that reproduces constants"
            )
        self.hierarchy = hierarchy
        self.zero_boundary = zero_boundary
        self.integral = None if integral is None else torch.as_tensor(integral, dtype=torch.float64)

    def free(self, level: int, like: Tensor) -> Tensor:
        """``[N, 1]`` 1.0 on free nodes, 0.0 on fixed boundary nodes, as ``like``."""
        n = self.hierarchy.num_nodes(level)
        if not self.zero_boundary:
            return torch.ones(n, 1, dtype=like.dtype, device=like.device)

        def build() -> Tensor:
            fixed = self.hierarchy.boundary_mask(level)  # [N] bool
            if n and bool(fixed.all()):
                warnings.warn(
                    f"every one of the {n} nodes of level {level} of this {self.hierarchy.kind} touches the boundary, "
                    "so the zero-boundary constraint makes every output there 0; use a finer mesh or fewer levels",
                    AllBoundaryWarning, stacklevel=4)
            return (~fixed)[:, None]

        return self.hierarchy.cached("free_nodes", level, build).to(like.device, like.dtype)

    def project(self, x: Tensor, level: int) -> Tensor:
        """Π(x) for ``x [..., N, C]``: the mass-orthogonal projection onto K_level."""
        free = self.free(level, x)
        x = x * free  # [..., N, C]
        if self.integral is None:
            return x
        target = self.integral.to(x.device, x.dtype)
        e = free.expand(-1, x.shape[-1])  # [N, C]
        free_measure = self.hierarchy.integrate(e, level)  # [C]
        if not bool((free_measure > 0).all()):
            raise GeounetError(
                f"level {level} has no free nodes (every node touches the boundary), so no function "
                "there vanishes on the boundary with a prescribed integral; use a finer coarsest level"
            )
        shift = (self.hierarchy.integrate(x, level) - target) / free_measure  # [..., C]
        return x - shift.unsqueeze(-2) * e

    def violation(self, x: Tensor, level: int) -> Tensor:
        """Largest absolute violation: boundary values and integral error, a scalar."""
        parts = [(x * (1 - self.free(level, x))).abs().amax()]
        if self.integral is not None:
            parts.append((self.hierarchy.integrate(x, level) - self.integral.to(x.device, x.dtype)).abs().amax())
        return torch.stack(parts).amax()
