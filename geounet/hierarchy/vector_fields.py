"""Restriction and prolongation of vector fields, commuting with rotations of the geometry.

A field of C vectors is laid out ``[..., N, 3 C]``, vector c in channels ``3c .. 3c + 2``
(x, y, z in world coordinates: e3nn's ``"Cx1o"`` layout). A rotation R of the geometry
acts on it by moving the nodes and rotating every vector, ``(R w)(R p) = R w(p)``.

- On meshes the vectors live in world coordinates and the hierarchy's restrict / prolong
  act on each component separately (per-component Haar averaging, or the eigenbasis
  projection). Both are linear over nodes with coefficients from intrinsic geometry, so
  they commute with R: P(R w) = Σ a_n R w_n = R Σ a_n w_n = R P(w).
- On the sphere the vectors are tangent (``w(p) · p = 0``, :mod:`geounet.geometry.tangent`).
  The per-component average of the children's tangent vectors is not tangent at the parent's
  centre, so ``tangent=True`` follows it by the projection onto the parent's tangent plane,
  ``P_T(w)(p) = Π_p Σ a_n w_n`` with ``Π_p = I - p pᵀ``; prolongation likewise projects the
  copied vector onto each child's plane. Since ``Π_{Rp} R = R Π_p``, both commute with every
  rotation that maps the nodes of each level onto themselves (for HEALPix pixels the 90°
  turns about the polar axis, ``hierarchy.node_symmetries()``) and keep fields tangent.
  Unlike the scalar projections they are not exactly nested (P_T ι_T w ≠ w), since a
  parent's tangent plane differs from its children's by the pixel's angular size.
"""

from __future__ import annotations

from torch import Tensor

from geounet.errors import GeounetError
from geounet.geometry.tangent import project_tangent
from geounet.hierarchy.base import Hierarchy


def restrict_vectors(hierarchy: Hierarchy, x: Tensor, level: int, tangent: bool = False) -> Tensor:
    """Restrict vector fields ``x [..., N_level, 3C]`` to ``level - 1``; ``tangent=True`` on the
    unit sphere projects the result onto the coarse tangent planes."""
    coarse = hierarchy.restrict(_check_vectors(x), level)
    return tangent_part(hierarchy, coarse, level - 1) if tangent else coarse


def prolong_vectors(hierarchy: Hierarchy, x: Tensor, level: int, tangent: bool = False) -> Tensor:
    """Prolong vector fields ``x [..., N_level, 3C]`` to ``level + 1``; ``tangent=True`` on the
    unit sphere projects the result onto the fine tangent planes."""
    fine = hierarchy.prolong(_check_vectors(x), level)
    return tangent_part(hierarchy, fine, level + 1) if tangent else fine


def sphere_normals(hierarchy: Hierarchy, level: int) -> Tensor:
    """``[N_level, 3]``: the unit outward normals of a hierarchy on the sphere, its nodes' positions
    normalised (the node positions must be points of a sphere centred at the origin)."""
    positions = hierarchy.graph(level).positions
    if positions is None or positions.shape[-1] != 3:
        raise GeounetError(f"{hierarchy.kind} has no 3-D node positions on level {level}; tangent vector fields "
                           "need a hierarchy on the sphere (e.g. HealpixHaarHierarchy)")
    return positions / positions.norm(dim=-1, keepdim=True)


def tangent_part(hierarchy: Hierarchy, x: Tensor, level: int) -> Tensor:
    """The part of the vector fields ``x [..., N_level, 3C]`` tangent to the sphere at each node."""
    vectors = _check_vectors(x).unflatten(-1, (-1, 3))  # [..., N, C, 3]
    normals = sphere_normals(hierarchy, level).to(x)[:, None, :]  # [N, 1, 3]
    return project_tangent(vectors, normals).flatten(-2)


def _check_vectors(x: Tensor) -> Tensor:
    if x.dim() < 2 or x.shape[-1] % 3:
        raise GeounetError(f"vector fields are laid out [..., nodes, 3 * vectors], got shape {tuple(x.shape)}")
    return x
