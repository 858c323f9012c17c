"""Operators on HEALPix face images against their NEST twins: KernelConv and the 3 x 3 stencil."""

import healpy as hp
import numpy as np
import pytest
import torch

from geounet.errors import GeounetError
from geounet.geometry.healpix import NEIGHBOUR_OFFSETS
from geounet.hierarchy import (
    HealpixFaceHierarchy,
    HealpixHaarHierarchy,
    SquareHaarHierarchy,
    face_nodes_from_nest,
    nest_from_face_nodes,
)
from geounet.models.unet import build_unet
from geounet.nn.healpix_face import FaceKernelConv, HealpixConv3x3, HealpixConv3x3Factory
from geounet.nn.message_passing import KernelConv


def _values_and_gradients(op, x, hierarchy, weights):
    """``op(x, hierarchy)`` and the gradients of ``<op(x), weights>`` for x and every parameter."""
    x = x.clone().requires_grad_()
    op.zero_grad()
    out = op(x, hierarchy)
    (out * weights).sum().backward()
    return out.detach(), x.grad, {name: p.grad.clone() for name, p in op.named_parameters()}


def _check_twins(nest_op, face_op, nside, cin, cout):
    """Equal outputs and gradients (float64) on a NEST and a face hierarchy, after reordering."""
    face_op.load_state_dict(nest_op.state_dict())
    nest_h, face_h = HealpixHaarHierarchy(nside, 1), HealpixFaceHierarchy(nside, 1)
    x = torch.randn(2, 12 * nside * nside, cin, dtype=torch.float64)
    weights = torch.randn(2, 12 * nside * nside, cout, dtype=torch.float64)
    out, grad_x, grads = _values_and_gradients(nest_op, x, nest_h, weights)
    face_out, face_grad_x, face_grads = _values_and_gradients(face_op, face_nodes_from_nest(x), face_h,
                                                              face_nodes_from_nest(weights))
    torch.testing.assert_close(nest_from_face_nodes(face_out), out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(nest_from_face_nodes(face_grad_x), grad_x, rtol=1e-12, atol=1e-12)
    for name, grad in grads.items():
        torch.testing.assert_close(face_grads[name], grad, rtol=1e-12, atol=1e-12)


class FaceImagePath(FaceKernelConv):
    """FaceKernelConv taking its face-image path also when not compiled."""

    def forward(self, x, hierarchy):
        return self.face_forward(x, hierarchy, hierarchy.healpix_face_nside(self.level))


@pytest.mark.parametrize("nside", [1, 2, 8])
@pytest.mark.parametrize("cin,cout", [(3, 5), (6, 2)])
@pytest.mark.parametrize("face_type", [FaceKernelConv, FaceImagePath])
def test_face_kernel_conv_equals_kernel_conv_on_nest(nside, cin, cout, face_type):
    """Both of KernelConv's linear-kernel paths (aggregate first, C_out > C_in; mix first, C_out <= C_in)
    against the face-image realisation and the eager face path (the sparse product on the renumbered
    graph), forward and gradients, every face edge and corner included (nside 1: every pixel is a corner)."""
    torch.manual_seed(0)
    nest_op = KernelConv(0, cin, cout, 3).double()
    face_op = face_type(0, cin, cout, 3).double()
    _check_twins(nest_op, face_op, nside, cin, cout)


@pytest.mark.parametrize("nside", [1, 2, 8])
def test_conv3x3_on_face_images_equals_its_nest_stencil(nside):
    torch.manual_seed(0)
    nest_op, face_op = HealpixConv3x3(0, 3, 4).double(), HealpixConv3x3(0, 3, 4).double()
    _check_twins(nest_op, face_op, nside, 3, 4)


def test_conv3x3_reads_healpy_neighbours_at_the_kernel_positions_of_their_image_offsets():
    """An independent reference: y_t = b + W[1, 1] x_t + sum over healpy's neighbours n_k(t) of
    W[1 - dx_k, 1 - dy_k] x_{n_k(t)} (absent neighbours skipped), on NEST; a kernel with
    transposed positions (a negative control) differs."""
    torch.manual_seed(0)
    nside = 4
    op = HealpixConv3x3(0, 2, 3).double()
    x = torch.randn(1, 12 * nside * nside, 2, dtype=torch.float64)
    neighbours = torch.from_numpy(hp.get_all_neighbours(nside, np.arange(12 * nside * nside), nest=True).T.copy())
    weight, bias = op.conv.weight.detach(), op.conv.bias.detach()  # [3, 2, 3, 3]

    def reference(w):
        out = x[0] @ w[:, :, 1, 1].T + bias
        for k, (dx, dy) in enumerate(NEIGHBOUR_OFFSETS):
            present = neighbours[:, k] >= 0
            out[present] += x[0, neighbours[present, k]] @ w[:, :, 1 - dx, 1 - dy].T
        return out

    with torch.no_grad():
        face = op(face_nodes_from_nest(x), HealpixFaceHierarchy(nside, 1))
    torch.testing.assert_close(nest_from_face_nodes(face)[0], reference(weight), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(nest_from_face_nodes(face)[0], reference(weight.transpose(2, 3)))


def test_conv3x3_commutes_with_the_90_degree_rotations_about_the_polar_axis():
    torch.manual_seed(0)
    h = HealpixFaceHierarchy(4, 1)
    op = HealpixConv3x3(0, 2, 2).double()
    perm = h.node_symmetries()["rotate_90"]
    x = torch.randn(1, h.num_nodes(0), 2, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(op(x[:, perm], h), op(x, h)[:, perm], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("operator", ["message_passing", "conv3x3"])
def test_a_nest_models_weights_give_the_face_model_the_same_function(operator):
    torch.manual_seed(0)
    nest_h, face_h = HealpixHaarHierarchy(8, 3), HealpixFaceHierarchy(8, 3)
    nest_model = build_unet(nest_h, 2, 3, width=4, operator=operator).double()
    face_model = build_unet(face_h, 2, 3, width=4, operator=operator).double()
    face_model.load_state_dict(nest_model.state_dict())  # strict: the same names and shapes
    x = torch.randn(2, nest_h.num_nodes(2), 2, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(nest_from_face_nodes(face_model(face_nodes_from_nest(x), face_h)),
                                   nest_model(x, nest_h), rtol=1e-12, atol=1e-12)
    with pytest.raises(GeounetError, match="load this one's state_dict.*face_nodes_from_nest"):
        face_model(x, nest_h)
    with pytest.raises(GeounetError, match="nest_from_face_nodes"):
        nest_model(x, face_h)


def test_face_models_use_the_face_operators():
    face_h = HealpixFaceHierarchy(4, 2)
    kinds = {type(m) for m in build_unet(face_h, 1, 1, width=4).modules()}
    assert FaceKernelConv in kinds
    kinds = {type(m) for m in build_unet(face_h, 1, 1, width=4, operator="conv3x3").modules()}
    assert HealpixConv3x3 in kinds and FaceKernelConv not in kinds
    assert FaceKernelConv not in {type(m) for m in build_unet(HealpixHaarHierarchy(4, 2), 1, 1, width=4).modules()}


def test_conv3x3_needs_healpix_levels():
    with pytest.raises(GeounetError, match="conv3x3"):
        HealpixConv3x3Factory(SquareHaarHierarchy(8, 2))
    with pytest.raises(GeounetError, match="unknown operator"):
        build_unet(HealpixFaceHierarchy(4, 2), 1, 1, operator="conv")


@pytest.mark.parametrize("operator", ["message_passing", "conv3x3"])
def test_bf16_autocast_on_cpu_stays_within_two_percent_of_float32(operator):
    """The face-path U-Net under bf16 autocast (8 significant bits: unit round-off 2**-9) runs
    and its output differs from float32 by at most 2 % relative (L2) on a random input."""
    torch.manual_seed(0)
    h = HealpixFaceHierarchy(8, 3)
    model = build_unet(h, 2, 3, width=8, operator=operator)
    x = torch.randn(2, h.num_nodes(2), 2)
    with torch.no_grad():
        expected = model(x, h)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, h)
    assert low.dtype == torch.bfloat16
    error = float((low.float() - expected).norm() / expected.norm())
    assert error < 0.02, error



@pytest.mark.parametrize("operator", ["message_passing", "conv3x3"])
def test_face_unet_compiles_in_one_graph_with_channels_last_convolutions(operator):
    """torch.compile(fullgraph=True) captures the whole face-path U-Net (one graph, no break),
    gives the eager values and gradients, and every convolution in the captured graph reads
    and writes channels-last images: no layout conversion between the features and conv2d."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    h = HealpixFaceHierarchy(8, 3)
    model = build_unet(h, 2, 1, width=4, operator=operator)
    x = torch.randn(2, h.num_nodes(2), 2)
    expected = model(x, h)
    expected.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    graphs = []

    def capture(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    model.zero_grad()
    out = torch.compile(model, fullgraph=True, backend=capture)(x, h)
    out.square().sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for p, grad in zip(model.parameters(), grads, strict=True):
        torch.testing.assert_close(p.grad, grad, rtol=1e-5, atol=1e-5)
    assert len(graphs) == 1
    convolutions = [node for node in graphs[0].graph.nodes if node.op == "call_function" and "conv" in str(node.target)]
    assert len(convolutions) == (6 if operator == "conv3x3" else 0)  # 2 per residual branch: bottleneck, 2 decoders
    for node in convolutions:
        for value in (node.args[0].meta["example_value"], node.meta["example_value"]):
            assert value.is_contiguous(memory_format=torch.channels_last), node
    assert not [node for node in graphs[0].graph.nodes if "contiguous" in str(node.target)]
