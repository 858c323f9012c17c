import healpy as hp
import numpy as np
import pytest
import torch

from geounet.geometry.healpix import (
    convert_ordering,
    deinterleave,
    from_nest,
    interleave,
    nest_of_face,
    nside_from_npix,
    nside_of,
    to_nest,
)


@pytest.mark.parametrize("nside", [1, 2, 16])
def test_ring_matches_healpy_reorder(nside):
    x = torch.randn(3, 12 * nside**2, dtype=torch.float64)
    ring = from_nest(x, "ring")
    for b in range(3):
        assert np.array_equal(ring[b].numpy(), hp.reorder(x[b].numpy(), n2r=True))
    assert torch.equal(to_nest(ring, "ring"), x)
    idx = torch.arange(12 * nside**2)
    assert np.array_equal(from_nest(idx, "ring").numpy(), hp.ring2nest(nside, idx.numpy()))


def test_channels_last_features():
    x = torch.randn(2, 192, 5)  # [B, N, C] in NEST
    ring = from_nest(x, "ring", channels_last=True)
    assert torch.equal(ring[:, :, 3], from_nest(x[:, :, 3], "ring"))
    face = from_nest(x, "face", channels_last=True)
    assert face.shape == (2, 12, 4, 4, 5)
    assert torch.equal(to_nest(face, "face", channels_last=True), x)
    assert torch.equal(convert_ordering(ring, "ring", "face", channels_last=True), face)


def test_face_s_ccw_layout_axes_against_pix2xyf():
    """'face_s_ccw' image[..., f, y, x] holds NEST pixel xyf2pix(x, y, f): row = y, column = x."""
    nside = 8
    nest = torch.arange(12 * nside**2)
    image = from_nest(nest, "face_s_ccw")  # [12, 8, 8]
    for x, y, f in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (5, 2, 7), (7, 7, 11), (3, 6, 4)]:
        assert int(image[f, y, x]) == hp.xyf2pix(nside, x, y, f, nest=True)
    x, y, f = hp.pix2xyf(nside, nest.numpy(), nest=True)
    assert np.array_equal(image.numpy()[f, y, x], nest.numpy())
    assert torch.equal(nest_of_face(nside, "face_s_ccw"), image)


def test_interleave_round_trip():
    x = torch.randint(0, 2**20, (1000,))
    y = torch.randint(0, 2**20, (1000,))
    ix, iy = deinterleave(interleave(x, y))
    assert torch.equal(ix, x) and torch.equal(iy, y)
    assert int(interleave(torch.tensor(1), torch.tensor(0))) == 1
    assert int(interleave(torch.tensor(0), torch.tensor(1))) == 2


@pytest.mark.parametrize("count", [0, 11, 100, 12 * 9, 12 * 36, 3072 + 1])
def test_pixel_count_matching_no_nside(count):
    with pytest.raises(ValueError, match=f"{count} pixels is not a HEALPix map"):
        nside_from_npix(count)


def test_bad_orderings_and_shapes():
    with pytest.raises(ValueError, match="unknown HEALPix ordering 'xy'"):
        to_nest(torch.zeros(48), "xy")
    with pytest.raises(ValueError, match="unknown HEALPix ordering"):
        from_nest(torch.zeros(48), "RING")
    with pytest.raises(ValueError, match=r"laid out \[\.\.\., 12, nside, nside\]"):
        to_nest(torch.zeros(6, 4, 4), "face")
    with pytest.raises(ValueError, match="nside must be a power of two"):
        to_nest(torch.zeros(12, 3, 3), "face")
    with pytest.raises(ValueError, match="not a HEALPix map"):
        to_nest(torch.zeros(2, 50), "ring")
    assert nside_of(torch.zeros(4, 768, 2), "nest", channels_last=True) == 8
