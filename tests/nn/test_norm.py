"""NodeGroupNorm: the group statistics, its closed-form backward, and per-geometry statistics."""

import pytest
import torch

from geounet.nn.norm import NodeGroupNorm


def reference(norm: NodeGroupNorm, x: torch.Tensor) -> torch.Tensor:
    """Group normalisation written out with autograd: [..., N, C]."""
    *lead, n, c = x.shape
    grouped = x.reshape(*lead, n, norm.num_groups, c // norm.num_groups)
    mean = grouped.mean(dim=(-3, -1), keepdim=True)
    var = (grouped - mean).square().mean(dim=(-3, -1), keepdim=True)
    return ((grouped - mean) / torch.sqrt(var + norm.eps)).reshape(x.shape) * norm.weight + norm.bias


def _norm(groups: int, channels: int) -> NodeGroupNorm:
    norm = NodeGroupNorm(groups, channels).double()
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    return norm


@pytest.mark.parametrize("shape", [(3, 20, 8), (20, 8), (2, 3, 20, 8)])
@pytest.mark.parametrize("groups", [1, 4])
def test_matches_the_written_out_normalisation_with_gradients(shape, groups):
    norm = _norm(groups, 8)
    x = (torch.randn(shape, dtype=torch.float64) * 3 + 5).requires_grad_()
    grad = torch.randn(shape, dtype=torch.float64)
    params = [x, norm.weight, norm.bias]
    expected = torch.autograd.grad(reference(norm, x), params, grad)
    out = norm(x)
    torch.testing.assert_close(out, reference(norm, x), rtol=1e-12, atol=1e-12)
    for got, want in zip(torch.autograd.grad(out, params, grad), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x, w, b: norm(x), params)


def test_output_has_zero_mean_and_unit_variance_per_group():
    norm = NodeGroupNorm(2, 6).double()
    out = norm(torch.randn(4, 50, 6, dtype=torch.float64) * 7 - 3).reshape(4, 50, 2, 3)
    torch.testing.assert_close(out.mean(dim=(1, 3)), torch.zeros(4, 2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(out.var(dim=(1, 3), correction=0), torch.ones(4, 2, dtype=torch.float64),
                               atol=1e-4, rtol=0)  # eps = 1e-5 against variance 49


@pytest.mark.parametrize("groups", [1, 2])  # one group: one contiguous sum per sample; two: nodes first
def test_float32_statistics_of_a_large_offset_field_stay_accurate(groups):
    """10^6 values with mean 100 and spread 1: float32 errors at the input's own rounding
    (7.6e-6 = ulp(100) / 2), where a one-pass variance loses 1e-3; the gradients as well."""
    torch.manual_seed(0)
    x = torch.randn(1, 2**18, 4, dtype=torch.float64) + 100
    grad = torch.randn_like(x)
    norm = NodeGroupNorm(groups, 4)
    torch.nn.init.normal_(norm.weight)
    reference_input = x.clone().requires_grad_()
    expected = reference(norm.double(), reference_input)
    expected_grad, = torch.autograd.grad(expected, reference_input, grad)
    single_input = x.float().requires_grad_()
    out = norm.float()(single_input)
    assert (out.double() - expected).abs().max() < 1.5e-5
    got_grad, = torch.autograd.grad(out, single_input, grad.float())
    assert ((got_grad.double() - expected_grad).norm() / expected_grad.norm()) < 2e-7


def test_components_are_normalised_separately():
    norm = _norm(1, 3)
    first, second = torch.randn(2, 10, 3, dtype=torch.float64), torch.randn(2, 6, 3, dtype=torch.float64) * 5 + 2
    joined = norm(torch.cat([first, second], dim=1), components=[10, 6])
    torch.testing.assert_close(joined, torch.cat([norm(first), norm(second)], dim=1), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="hold 15 nodes, got 16 nodes"):
        norm(torch.cat([first, second], dim=1), components=[10, 5])
