"""torch.compile of message-passing U-Nets that take their geometry as an input.

The fast tests trace every hierarchy kind with ``fullgraph=True`` (no graph break) through
the ``aot_eager`` backend, which runs the captured forward and backward graphs without
generating code; the slow test compiles C++ with Inductor.
"""

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
    batch_hierarchies,
)
from geounet.models.unet import build_unet


def _sphere() -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=1)
    return Mesh(ico.vertices, ico.faces)


KINDS = {
    "square": lambda: SquareHaarHierarchy(8, 2, periodic=True),
    "healpix": lambda: HealpixHaarHierarchy(4, 2),
    "healpix_sh": lambda: HealpixSHHierarchy(2, 2),
    "triangle": lambda: TriangleHierarchy(3),
    "subdivision": lambda: SubdivisionHierarchy(_sphere(), 2),
    "clusters": lambda: ClusterHierarchy(_sphere(), 3),
    "spectral": lambda: MeshSpectralHierarchy(_sphere(), [4, 9], use_cache=False),
    "cluster_batch": lambda: batch_hierarchies([ClusterHierarchy(_sphere(), 3, seed=seed) for seed in (0, 1)]),
}


def _forward_backward(model, x, hierarchy):
    model.zero_grad()
    out = model(x, hierarchy)
    out.square().sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


def _check_compiled(hierarchy, backend, compiler, tolerance):
    torch.manual_seed(0)
    model = build_unet(hierarchy, 2, 1, width=4, backend=backend)
    x = torch.randn(2, hierarchy.num_nodes(hierarchy.finest_level), 2)
    expected, grads = _forward_backward(model, x, hierarchy)
    compiled = torch.compile(model, fullgraph=True, backend=compiler)
    out, compiled_grads = _forward_backward(compiled, x, hierarchy)
    torch.testing.assert_close(out, expected, rtol=tolerance, atol=tolerance)
    for grad, compiled_grad in zip(grads, compiled_grads, strict=True):
        torch.testing.assert_close(compiled_grad, grad, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("kind", KINDS)
def test_every_hierarchy_kind_compiles_without_graph_breaks(kind):
    torch._dynamo.reset()
    _check_compiled(KINDS[kind](), "auto", "aot_eager", 1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["table", "pyg"])
def test_inductor_compiled_multiresnet_matches_eager_forward_and_backward(backend):
    torch._dynamo.reset()
    _check_compiled(SquareHaarHierarchy(8, 2, periodic=True), backend, "inductor", 1e-4)
