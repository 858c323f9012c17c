"""torch.compile and torch.export of message-passing U-Nets that take their geometry as an input.

The fast tests trace every hierarchy kind with ``fullgraph=True`` (no graph break) through
the ``aot_eager`` backend, which runs the captured forward and backward graphs without
generating code, count graph breaks with ``torch._dynamo.explain`` on a fresh hierarchy
prepared by :func:`prepare_geometry`, and export every kind with the geometry bound; the
slow test compiles C++ with Inductor.
"""

import pytest
import torch
import trimesh

from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.hierarchy import (
    ClusterHierarchy,
    HealpixFaceHierarchy,
    HealpixHaarHierarchy,
    HealpixSHHierarchy,
    MeshSpectralHierarchy,
    SquareHaarHierarchy,
    SubdivisionHierarchy,
    TriangleHierarchy,
    batch_hierarchies,
)
from geounet.inference import compile_unet, export, export_onnx, prepare_geometry
from geounet.models.unet import build_unet


def _sphere() -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=1)
    return Mesh(ico.vertices, ico.faces)


KINDS = {
    "square": lambda: SquareHaarHierarchy(8, 2, periodic=True),
    "healpix": lambda: HealpixHaarHierarchy(4, 2),
    "healpix_face": lambda: HealpixFaceHierarchy(4, 2),
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


@pytest.mark.parametrize("kind", KINDS)
def test_a_prepared_fresh_hierarchy_traces_with_at_most_two_graph_breaks(kind):
    """After prepare_geometry, tracing only reads tensors: no geometry is built in the graph."""
    torch._dynamo.reset()
    hierarchy = KINDS[kind]()
    model = build_unet(hierarchy, 2, 1, width=4)
    x = torch.randn(2, hierarchy.num_nodes(hierarchy.finest_level), 2)
    prepare_geometry(model, hierarchy)
    explanation = torch._dynamo.explain(model)(x, hierarchy)
    assert explanation.graph_break_count <= 2, [b.reason for b in explanation.break_reasons]


def test_compile_unet_matches_eager_and_is_called_with_the_hierarchy():
    torch._dynamo.reset()
    hierarchy = HealpixHaarHierarchy(4, 2)
    torch.manual_seed(0)
    model = build_unet(hierarchy, 2, 1, width=4).double()
    x = torch.randn(2, hierarchy.num_nodes(hierarchy.finest_level), 2, dtype=torch.float64)
    expected, grads = _forward_backward(model, x, hierarchy)
    compiled = compile_unet(model, hierarchy, fullgraph=True, backend="aot_eager")
    out, compiled_grads = _forward_backward(compiled, x, hierarchy)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    for grad, compiled_grad in zip(grads, compiled_grads, strict=True):
        torch.testing.assert_close(compiled_grad, grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_exported_program_gives_the_models_values_and_gradients(kind):
    """The exported module (geometry bound as constants, standard operators only: the gather
    formulation of the sparse products) equals the eager model with and without gradients,
    for the parameters and for the input."""
    torch.manual_seed(0)
    hierarchy = KINDS[kind]()
    model = build_unet(hierarchy, 2, 1, width=4).double()
    x = torch.randn(2, hierarchy.num_nodes(hierarchy.finest_level), 2, dtype=torch.float64)
    program = export(model, hierarchy, x)
    assert "csr_product" not in str(program.graph)
    module = program.module()
    with torch.no_grad():
        torch.testing.assert_close(module(x), model(x, hierarchy), rtol=1e-12, atol=1e-12)
    x_eager, x_exported = x.clone().requires_grad_(), x.clone().requires_grad_()
    weights = torch.randn(2, x.shape[1], 1, dtype=torch.float64)
    (model(x_eager, hierarchy) * weights).sum().backward()
    (module(x_exported) * weights).sum().backward()
    torch.testing.assert_close(x_exported.grad, x_eager.grad, rtol=1e-10, atol=1e-12)
    exported = dict(module.named_parameters())
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(exported[f"model.{name}"].grad, parameter.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["healpix", "cluster_batch"])
def test_onnx_model_matches_the_model_under_onnxruntime(kind, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra (in dev) is not installed")
    torch.manual_seed(0)
    hierarchy = KINDS[kind]()
    model = build_unet(hierarchy, 2, 1, width=4)
    x = torch.randn(3, hierarchy.num_nodes(hierarchy.finest_level), 2)
    path = export_onnx(model, hierarchy, x, tmp_path / "unet.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    other = torch.randn_like(x)  # not the example: the program holds no values of its input
    (output,) = session.run(None, {"x": other.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(output), model(other, hierarchy), rtol=0, atol=1e-5)


def test_onnx_export_refuses_an_existing_file_and_writes_only_a_checked_model(tmp_path):
    pytest.importorskip("onnxruntime", reason="the onnx extra (in dev) is not installed")
    hierarchy = HealpixHaarHierarchy(2, 2)
    model = build_unet(hierarchy, 2, 1, width=4)
    x = torch.randn(1, hierarchy.num_nodes(hierarchy.finest_level), 2)
    path = tmp_path / "unet.onnx"
    path.write_bytes(b"an older export")
    with pytest.raises(GeounetError, match="unet.onnx exists; call with overwrite=True to replace it"):
        export_onnx(model, hierarchy, x, path)
    with pytest.raises(GeounetError, match="differs from the model by .* nothing written"):
        export_onnx(model, hierarchy, x, path, tolerance=-1.0, overwrite=True)  # no model passes: a negative control
    assert path.read_bytes() == b"an older export" and sorted(p.name for p in tmp_path.iterdir()) == ["unet.onnx"]
    with pytest.raises(GeounetError, match=r"it must end in \.onnx"):
        export_onnx(model, hierarchy, x, tmp_path / "unet.pt")
    export_onnx(model, hierarchy, x, path, overwrite=True)
    assert path.read_bytes()[:2] != b"an"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unet.onnx"]  # the weights inside it, no sidecar


def test_export_rejects_a_hierarchy_of_another_kind():
    model = build_unet(HealpixHaarHierarchy(4, 2), 2, 1, width=4)
    square = SquareHaarHierarchy(8, 2)
    with pytest.raises(GeounetError, match="built for HealpixHaarHierarchy"):
        export(model, square, torch.randn(1, 64, 2))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["table", "pyg"])
def test_inductor_compiled_multiresnet_matches_eager_forward_and_backward(backend):
    torch._dynamo.reset()
    _check_compiled(SquareHaarHierarchy(8, 2, periodic=True), backend, "inductor", 1e-4)


def test_compiling_one_architecture_at_several_sizes_keeps_one_graph():
    """Once Dynamo has seen a U-Net at two sizes it would trace the levels' ints symbolically and
    break on naming a level's module (``str(level)``); compile_unet keeps sizes static, so every
    size compiles in one graph (negative control: with ``dynamic=None`` one of these sizes breaks)."""

    def compiled_error(nside: int, num_levels: int, **options) -> float:
        hierarchy = HealpixHaarHierarchy(nside, num_levels)
        model = build_unet(hierarchy, 2, 2, width=4)
        x = torch.randn(2, hierarchy.num_nodes(num_levels - 1), 2)
        compiled = compile_unet(model, hierarchy, fullgraph=True, **options)
        return (compiled(x, hierarchy) - model(x, hierarchy)).abs().max().item()

    sizes = ((8, 3), (16, 3), (4, 2), (8, 2))
    torch._dynamo.reset()
    for nside, num_levels in sizes:
        assert compiled_error(nside, num_levels) < 1e-5
    torch._dynamo.reset()
    with pytest.raises(torch._dynamo.exc.Unsupported):
        for nside, num_levels in sizes:
            compiled_error(nside, num_levels, dynamic=None)
    torch._dynamo.reset()
