"""The decoder's fused Haar prolongation equals the generic prolong + cat + sum."""

import pytest
import torch

from geounet.hierarchy import SquareHaarHierarchy
from geounet.hierarchy.batching import batch_hierarchies
from geounet.hierarchy.finest import finest_levels
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.nn.decoder import ResidualDecoder
from geounet.nn.fused_prolong import prolong_add_, prolong_concat
from geounet.nn.message_passing import MessagePassingFactory


class UnfusedHealpix(HealpixHaarHierarchy):
    """The same spaces, with a prolong the decoder cannot see through: the generic path."""

    def _prolong(self, x, level):
        return super()._prolong(x, level)


class UnfusedSquare(SquareHaarHierarchy):
    def _prolong(self, x, level):
        return super()._prolong(x, level)


GEOMETRIES = {
    "healpix": (lambda: HealpixHaarHierarchy(4, 3), lambda: UnfusedHealpix(4, 3)),
    "square": (lambda: SquareHaarHierarchy(8, 3, periodic=False), lambda: UnfusedSquare(8, 3, periodic=False)),
}


@pytest.mark.parametrize("hierarchy", [HealpixHaarHierarchy(4, 3), SquareHaarHierarchy(8, 4),
                                       finest_levels(HealpixHaarHierarchy(8, 4), 2),
                                       finest_levels(SquareHaarHierarchy(16, 4), 3)], ids=repr)
def test_layout_views_reproduce_prolong_exactly(hierarchy):
    for level in range(hierarchy.num_levels - 1):
        layout = hierarchy.prolong_layout(level)
        coarse = torch.randn(2, hierarchy.num_nodes(level), 3, dtype=torch.float64)
        skip = torch.randn(2, hierarchy.num_nodes(level + 1), 5, dtype=torch.float64)
        up = hierarchy.prolong(coarse, level)
        # bitwise: the fused views copy the same values, and add them with one addition per element
        assert torch.equal(prolong_concat(coarse, skip, layout), torch.cat([up, skip], dim=-1))
        assert torch.equal(prolong_add_(skip[..., :3].clone(), coarse, layout), skip[..., :3] + up)


def test_hierarchies_without_a_prolong_layout_take_the_generic_path():
    assert UnfusedHealpix(4, 2).prolong_layout(0) is None
    assert finest_levels(UnfusedSquare(8, 3), 2).prolong_layout(0) is None
    assert batch_hierarchies([SquareHaarHierarchy(4, 2), SquareHaarHierarchy(8, 2)]).prolong_layout(0) is None


@pytest.mark.parametrize("name", GEOMETRIES)
def test_fused_decoder_equals_generic_decoder_with_gradients(name):
    """Forward values and every gradient (inputs and parameters) of a decoder on a
    hierarchy with the fused path and on the same spaces without it, in float64."""
    fused_h, generic_h = (make() for make in GEOMETRIES[name])
    assert fused_h.prolong_layout(1) is not None and generic_h.prolong_layout(1) is None
    torch.manual_seed(0)
    decoder = ResidualDecoder(MessagePassingFactory(fused_h), 2, 6, 4, 5, extra_blocks=1).double()
    coarse = torch.randn(2, fused_h.num_nodes(1), 6, dtype=torch.float64)
    skip = torch.randn(2, fused_h.num_nodes(2), 4, dtype=torch.float64)
    results = []
    for hierarchy in (fused_h, generic_h):
        decoder.zero_grad()
        inputs = [coarse.clone().requires_grad_(), skip.clone().requires_grad_()]
        out = decoder(*inputs, hierarchy)
        out.backward(torch.sin(torch.arange(out.numel(), dtype=torch.float64)).view_as(out))
        results.append([out] + [x.grad for x in inputs] + [p.grad.clone() for p in decoder.parameters()])
    for fused, generic in zip(*results, strict=True):
        torch.testing.assert_close(fused, generic, rtol=1e-12, atol=1e-12)


def test_fused_decoder_rejects_inputs_on_the_wrong_level():
    h = HealpixHaarHierarchy(4, 3)
    decoder = ResidualDecoder(MessagePassingFactory(h), 2, 6, 4, 5)
    with pytest.raises(ValueError, match="expects \\[batch, 48, channels\\] on level 1"):
        decoder(torch.randn(1, 12, 6), torch.randn(1, 192, 4), h)
