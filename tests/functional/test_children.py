"""Haar restriction / prolongation on block layouts: values, adjoint backward passes, gradcheck."""

import pytest
import torch

from geounet.functional.children import child_mean, child_repeat, sum_children
from geounet.nn.fused_prolong import prolong_add_, prolong_concat

# (fine block view, child axes): HEALPix NEST [B, M, 4, C]; HEALPix face images [B, 12, m, 2, m, 2, C]
LAYOUTS = {"nest": ((2, 6, 4, 3), (2,)), "face": ((2, 12, 2, 2, 2, 2, 3), (3, 5))}


@pytest.mark.parametrize("name", LAYOUTS)
def test_sum_children_is_the_sum_over_the_child_axes(name):
    shape, dims = LAYOUTS[name]
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(sum_children(x, dims), x.sum(dims, keepdim=True), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("name", LAYOUTS)
def test_child_mean_and_repeat_are_the_haar_projection_and_inclusion_with_adjoint_backwards(name):
    shape, dims = LAYOUTS[name]
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    mean = child_mean(x, dims)
    torch.testing.assert_close(mean, x.mean(dims, keepdim=True), rtol=1e-14, atol=1e-14)
    repeated = child_repeat(mean, shape)
    torch.testing.assert_close(repeated, mean.expand(shape), rtol=0, atol=0)
    assert repeated.is_contiguous()
    # R ι = id and ι R is a projection (idempotent)
    torch.testing.assert_close(child_mean(repeated, dims), mean, rtol=1e-14, atol=1e-14)
    # the backward passes against autograd through mean / expand
    grad = torch.randn(shape, dtype=torch.float64)
    got = torch.autograd.grad(child_repeat(child_mean(x, dims), shape), x, grad)[0]
    want = torch.autograd.grad(x.mean(dims, keepdim=True).expand(shape), x, grad)[0]
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-14)
    assert torch.autograd.gradcheck(lambda t: child_mean(t, dims), (x,))
    coarse = x.detach().mean(dims, keepdim=True).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: child_repeat(t, shape), (coarse,))


@pytest.mark.parametrize("layout", [((6, 1), (6, 4)), ((12, 2, 1, 2, 1), (12, 2, 2, 2, 2))], ids=["nest", "face"])
def test_fused_prolong_backward_passes_pass_gradcheck(layout):
    fine_nodes = torch.Size(layout[1]).numel()
    coarse = torch.randn(2, torch.Size(layout[0]).numel(), 3, dtype=torch.float64, requires_grad=True)
    fine = torch.randn(2, fine_nodes, 2, dtype=torch.float64, requires_grad=True)
    branch = torch.randn(2, fine_nodes, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c, f: prolong_concat(c, f, layout), (coarse, fine))
    # in place on a fresh tensor, as the decoder calls it on a branch output
    assert torch.autograd.gradcheck(lambda b, c: prolong_add_(b * 1.0, c, layout), (branch, coarse))
