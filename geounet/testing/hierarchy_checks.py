"""Property checks every :class:`~geounet.hierarchy.Hierarchy` must pass.

Each check raises ``AssertionError`` with the level and the size of the violation.
They run in float64 on random signals; ``check_hierarchy`` runs them all.

The invariants:
  1. nestedness: restrict(prolong(x)) == x;
  2. Q = prolong ∘ restrict is an orthogonal projection in the mass inner product:
     Q Q = Q and <Q x, y> = <x, Q y>;
  3. constants are reproduced and integrals preserved (where the spaces allow);
  4. float64 gradcheck through restrict and prolong;
  5. the same result on CUDA as on the CPU (when a GPU is available);
  6. hierarchies are data: they pickle and move to another dtype / device with ``.to``, and
     using the moved copy leaves the original unchanged;

  plus graph sanity: edge indices in range, no self-loops, symmetric edge sets.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from geounet.hierarchy.base import Hierarchy

DEFAULT_TOL = 1e-10


def _random(hierarchy: Hierarchy, level: int, channels: int, seed: int, device="cpu") -> Tensor:
    generator = torch.Generator().manual_seed(seed + 7919 * level)
    x = torch.randn(2, hierarchy.num_nodes(level), channels, generator=generator, dtype=torch.float64)
    return x.to(device)  # [2, N, C]


def _assert_close(actual: Tensor, expected: Tensor, tol: float, what: str) -> None:
    error = (actual - expected).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    assert error <= tol * scale, f"{what}: max deviation {error:.3e} > {tol:.1e} (scale {scale:.2e})"


def check_nestedness(hierarchy: Hierarchy, tol: float = DEFAULT_TOL, seed: int = 0) -> None:
    """restrict(prolong(x)) == x on every level: V_i ⊂ V_{i+1}, and P is a left inverse of ι."""
    for level in range(hierarchy.num_levels - 1):
        x = _random(hierarchy, level, 3, seed)
        roundtrip = hierarchy.restrict(hierarchy.prolong(x, level), level + 1)
        _assert_close(roundtrip, x, tol, f"restrict(prolong(x)) != x at level {level}")


def check_orthogonal_projection(hierarchy: Hierarchy, tol: float = DEFAULT_TOL, seed: int = 0) -> None:
    """Q = prolong ∘ restrict is idempotent and self-adjoint in the mass inner product."""
    for level in range(1, hierarchy.num_levels):

        def project(v: Tensor, level: int = level) -> Tensor:
            return hierarchy.prolong(hierarchy.restrict(v, level), level - 1)

        x = _random(hierarchy, level, 3, seed)
        y = _random(hierarchy, level, 3, seed + 1)
        qx = project(x)
        _assert_close(project(qx), qx, tol, f"Q is not idempotent at level {level}")
        lhs = hierarchy.inner(qx, y, level)
        rhs = hierarchy.inner(x, project(y), level)
        _assert_close(lhs, rhs, tol, f"Q is not self-adjoint in the mass inner product at level {level}")
        # Orthogonality of the residual: <x - Qx, Qy> = 0.
        residual = hierarchy.inner(x - qx, project(y), level)
        _assert_close(residual, torch.zeros_like(residual), tol, f"x - Qx is not orthogonal to V_{level - 1}")


def check_constants_and_integrals(hierarchy: Hierarchy, tol: float = DEFAULT_TOL, seed: int = 0) -> None:
    """Constants map to constants; integrals are preserved by restriction (where declared)."""
    for level in range(1, hierarchy.num_levels):
        if hierarchy.reproduces_constants:
            ones_fine = torch.ones(1, hierarchy.num_nodes(level), 1, dtype=torch.float64)
            ones_coarse = torch.ones(1, hierarchy.num_nodes(level - 1), 1, dtype=torch.float64)
            _assert_close(hierarchy.restrict(ones_fine, level), ones_coarse, tol, f"restrict(1) != 1 at level {level}")
            _assert_close(
                hierarchy.prolong(ones_coarse, level - 1), ones_fine, tol, f"prolong(1) != 1 at level {level - 1}"
            )
        if hierarchy.preserves_integrals:
            x = _random(hierarchy, level, 2, seed)
            fine = hierarchy.integrate(x, level)
            coarse = hierarchy.integrate(hierarchy.restrict(x, level), level - 1)
            _assert_close(coarse, fine, tol, f"restriction changes the integral at level {level}")


def check_mass(hierarchy: Hierarchy, tol: float = DEFAULT_TOL) -> None:
    """Masses are positive float64 and every level measures the same total."""
    total = hierarchy.mass(hierarchy.finest_level).sum()
    for level in range(hierarchy.num_levels):
        mass = hierarchy.mass(level)
        assert mass.dtype == torch.float64, f"mass({level}) must be float64, got {mass.dtype}"
        assert mass.shape == (hierarchy.num_nodes(level),), f"mass({level}) has shape {tuple(mass.shape)}"
        assert (mass > 0).all(), f"mass({level}) has non-positive entries"
        _assert_close(mass.sum(), total, tol, f"level {level} measures a different total than the finest")


def check_graphs(hierarchy: Hierarchy) -> None:
    """Edge indices in range, no self-loops, every edge present in both directions."""
    for level in range(hierarchy.num_levels):
        graph = hierarchy.graph(level)
        n = hierarchy.num_nodes(level)
        ei = graph.edge_index
        assert ei.dtype == torch.int64 and ei.dim() == 2 and ei.shape[0] == 2, f"bad edge_index at level {level}"
        assert graph.edge_attr.shape[0] == ei.shape[1], f"edge_attr rows != edges at level {level}"
        if ei.numel():
            assert int(ei.min()) >= 0 and int(ei.max()) < n, f"edge index out of range at level {level}"
            assert not (ei[0] == ei[1]).any(), f"self-loop at level {level}"
            forward = set(map(tuple, ei.t().tolist()))
            assert forward == {(t, s) for s, t in forward}, f"edge set is not symmetric at level {level}"
        if graph.neighbours is not None:
            assert graph.neighbours.shape[0] == n, f"neighbour table rows != nodes at level {level}"
            assert graph.neighbour_mask is not None and graph.neighbour_mask.shape == graph.neighbours.shape
            assert int(graph.neighbour_mask.sum()) == graph.num_edges, (
                f"neighbour table and edge_index disagree on the edge count at level {level}"
            )


def check_gradients(hierarchy: Hierarchy, max_nodes: int = 4096) -> None:
    """float64 gradcheck through restrict and prolong (levels up to ``max_nodes`` nodes)."""
    for level in range(1, hierarchy.num_levels):
        if hierarchy.num_nodes(level) > max_nodes:
            break
        x = _random(hierarchy, level, 1, 0)[:1].requires_grad_(True)
        restrict = functools.partial(hierarchy.restrict, level=level)
        assert torch.autograd.gradcheck(restrict, (x,)), f"restrict gradcheck, level {level}"
        c = _random(hierarchy, level - 1, 1, 0)[:1].requires_grad_(True)
        prolong = functools.partial(hierarchy.prolong, level=level - 1)
        assert torch.autograd.gradcheck(prolong, (c,)), f"prolong gradcheck, level {level - 1}"


def check_data(hierarchy: Hierarchy, tol: float = DEFAULT_TOL) -> None:
    """The hierarchy is data: it pickles, ``.to(dtype)`` gives the same operators in that dtype,
    and using the copy never changes the original (its pickle is the same bytes before and after)."""
    import pickle

    inputs = {level: _random(hierarchy, level, 2, 0) for level in range(1, hierarchy.num_levels)}
    restricted = {level: hierarchy.restrict(x, level) for level, x in inputs.items()}
    before = pickle.dumps(hierarchy.materialize())
    copy = pickle.loads(before)
    single = hierarchy.to(dtype=torch.float32)
    assert single.dtype == torch.float32 and hierarchy.dtype == torch.float64, ".to() must copy, not modify"
    for level, x in inputs.items():
        expected = restricted[level]
        _assert_close(copy.restrict(x, level), expected, tol, f"unpickled, restrict differs at level {level}")
        _assert_close(single.restrict(x.float(), level).double(), expected, 1e-5,
                      f"the float32 hierarchy restricts differently, level {level}")
        single.prolong(single.restrict(x.float(), level), level - 1)
        single.graph(level)
    assert pickle.dumps(hierarchy) == before, "using the float32 copy changed the original hierarchy"


def check_device_consistency(hierarchy: Hierarchy, device: str = "cuda", tol: float = 1e-12) -> None:
    """restrict / prolong give the same result on ``device`` (the hierarchy moved with ``.to``)
    as on the CPU."""
    moved = hierarchy.to(device)
    for level in range(1, hierarchy.num_levels):
        x = _random(hierarchy, level, 2, 0)
        c = _random(hierarchy, level - 1, 2, 0)
        on_device = moved.restrict(x.to(device), level)
        assert on_device.device.type == torch.device(device).type, "restrict left the input's device"
        _assert_close(
            on_device.cpu(), hierarchy.restrict(x, level), tol, f"restrict differs on {device}, level {level}"
        )
        _assert_close(
            moved.prolong(c.to(device), level - 1).cpu(),
            hierarchy.prolong(c, level - 1),
            tol,
            f"prolong differs on {device}, level {level - 1}",
        )


def check_hierarchy(hierarchy: Hierarchy, tol: float = DEFAULT_TOL, gradcheck_max_nodes: int = 4096) -> None:
    """Run every invariant check; CUDA consistency too when a GPU is available."""
    check_mass(hierarchy, tol)
    check_nestedness(hierarchy, tol)
    check_orthogonal_projection(hierarchy, tol)
    check_constants_and_integrals(hierarchy, tol)
    check_graphs(hierarchy)
    check_gradients(hierarchy, gradcheck_max_nodes)
    check_data(hierarchy, tol)
    if torch.cuda.is_available():
        check_device_consistency(hierarchy)
