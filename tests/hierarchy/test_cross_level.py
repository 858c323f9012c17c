"""Cross-level properties on every hierarchy kind: adjointness of restrict and prolong, and the
coarse-output consistency of a Multi-ResNet, y_j(x) = y_j(P_j x).

**Adjointness.** The restriction P_i : V_i -> V_{i-1} is the mass-orthogonal projection onto the
coarse space written in its coordinates, so it is the adjoint of the inclusion ι:

    <P x, c>_{M_{i-1}} = <x, ι c>_{M_i}        for all x in V_i, c in V_{i-1}.

It holds to round-off (tolerance 1e-10 relative to ‖x‖ ‖ι c‖) on Haar spaces and eigenbases,
where P is built from the same mass as the inner products. On the spherical-harmonic hierarchy
the finest level is HEALPix pixels and P is a quadrature transform, which is not exactly the
pixel-mass adjoint of synthesis; with ``projection="pixel"`` (Jacobi-refined analysis) the gap
is measured here below 2e-2 and stated as the tolerance.

**Consistency.** A Multi-ResNet's skip at level j is P_j ... P_{I-1} lift(x); the coarse
evaluation sees lift(P x). They agree when P(W x + b 1) = W P x + b, i.e. with no lift bias or
with P 1 = 1 (``reproduces_constants``): the test checks both directions, including that a
biased lift breaks it on the zero-Dirichlet eigenbasis (P 1 != 1).
"""

from __future__ import annotations

import pytest
import torch
import trimesh

from geounet.geometry.mesh import Mesh
from geounet.hierarchy import (
    ClusterHierarchy,
    HealpixHaarHierarchy,
    HealpixSHHierarchy,
    MeshSpectralHierarchy,
    SquareHaarHierarchy,
    SubdivisionHierarchy,
    TriangleHierarchy,
)
from geounet.models import build_unet
from geounet.nn.staged import StagedUNet


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOUNET_CACHE", str(tmp_path / "cache"))


def _sphere(subdivisions: int) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    return Mesh(ico.vertices, ico.faces)


def _disc() -> Mesh:
    from skfem import MeshTri

    fem = MeshTri.init_circle(3)
    return Mesh(fem.p.T, fem.t.T)


#: one small hierarchy of every kind, with the adjointness tolerance its construction allows
KINDS = {
    "square": (lambda: SquareHaarHierarchy(16, 3, periodic=True), 1e-10),
    "healpix_haar": (lambda: HealpixHaarHierarchy(4, 3), 1e-10),
    "healpix_sh": (lambda: HealpixSHHierarchy(8, 3), 2e-2),
    "triangle": (lambda: TriangleHierarchy(3), 1e-10),
    "subdivision": (lambda: SubdivisionHierarchy(_sphere(0), 3), 1e-10),
    "clusters": (lambda: ClusterHierarchy(_sphere(3), 3), 1e-10),
    "spectral_neumann": (lambda: MeshSpectralHierarchy(_sphere(2), [1, 4, 9]), 1e-10),
    "spectral_dirichlet": (lambda: MeshSpectralHierarchy(_disc(), [3, 10, 20], boundary="dirichlet"), 1e-10),
}


def _random(hierarchy, level: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, hierarchy.num_nodes(level), 3, generator=generator, dtype=torch.float64)  # [B, N, C]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_restriction_is_the_adjoint_of_the_inclusion(kind):
    build, tol = KINDS[kind]
    hierarchy = build()
    for level in range(1, hierarchy.num_levels):
        x, c = _random(hierarchy, level, 0), _random(hierarchy, level - 1, 1)
        lhs = hierarchy.inner(hierarchy.restrict(x, level), c, level - 1)  # <P x, c>_{M_{i-1}}
        prolonged = hierarchy.prolong(c, level - 1)
        rhs = hierarchy.inner(x, prolonged, level)  # <x, ι c>_{M_i}
        scale = (hierarchy.inner(x, x, level) * hierarchy.inner(prolonged, prolonged, level)).sqrt()
        assert ((lhs - rhs).abs() / scale).max() <= tol, f"{kind} level {level}"


def _staged_multiresnet(hierarchy, lift_bias: bool) -> StagedUNet:
    torch.manual_seed(0)
    unet = build_unet(hierarchy, 2, 1, variant="multiresnet", width=4, lift_bias=lift_bias)
    staged = StagedUNet(unet).double()
    if lift_bias:
        with torch.no_grad():
            unet.lift.bias.fill_(0.5)  # a bias far from 0, so P 1 != 1 shows
    return staged


def _consistency_gap(hierarchy, staged: StagedUNet) -> float:
    """max_j ‖y_j(x) - y_j(P_j x)‖ / ‖y_j(x)‖ over the coarse levels j."""
    generator = torch.Generator().manual_seed(2)
    finest = hierarchy.finest_level
    x = torch.randn(2, hierarchy.num_nodes(finest), 2, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        fine = staged(x, hierarchy)
        gaps = [(staged(hierarchy.project(x, finest, j), hierarchy, stage=j)[j] - fine[j]).norm() / fine[j].norm()
                for j in range(finest)]
    return max(gaps).item()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_multiresnet_coarse_outputs_are_consistent(kind):
    """Without a lift bias y_j(x) = y_j(P_j x) on every kind (float64 round-off); with one, exactly
    where restriction reproduces constants, and not on the zero-Dirichlet eigenbasis."""
    hierarchy = KINDS[kind][0]()
    assert _consistency_gap(hierarchy, _staged_multiresnet(hierarchy, lift_bias=False)) < 1e-10
    biased = _consistency_gap(hierarchy, _staged_multiresnet(hierarchy, lift_bias=True))
    if hierarchy.reproduces_constants:
        assert biased < 1e-10
    else:
        assert biased > 1e-2  # negative control: the bias's coarse image b P 1 differs from b
