"""HEALPix neighbour padding indices of face images, against healpy's neighbour tables."""

import healpy as hp
import numpy as np
import pytest
import torch

from geounet.errors import GeounetError
from geounet.functional.healpix_pad import pad_face_images
from geounet.geometry.healpix import NEIGHBOUR_OFFSETS, face_padding_index, neighbour_table, nest_of_face, npix


def _healpy_neighbours(nside: int) -> torch.Tensor:
    """``[N, 8]`` healpy.get_all_neighbours, NEST, -1 where absent."""
    return torch.from_numpy(hp.get_all_neighbours(nside, np.arange(npix(nside)), nest=True).T.copy())


@pytest.mark.parametrize("nside", [1, 2, 4, 8])
def test_the_ring_of_one_holds_every_pixels_healpy_neighbours(nside):
    """For every pixel image[f, h, w] (so every face edge and corner) and every neighbour slot
    (dx, dy): the padded pixel at (h - dx, w - dy) is healpy's neighbour, absent ones -1."""
    index = face_padding_index(nside, 1)  # [12, n + 2, n + 2], face-order nodes
    order = nest_of_face(nside, "face")  # [12, n, n] -> NEST
    flat_order = order.reshape(-1)
    for table in (_healpy_neighbours(nside), neighbour_table(nside)):
        for k, (dx, dy) in enumerate(NEIGHBOUR_OFFSETS):
            padded = index[:, 1 - dx: 1 - dx + nside, 1 - dy: 1 - dy + nside]  # [12, n, n]
            expected = table[order, k]  # NEST, -1 where absent
            got = torch.where(padded >= 0, flat_order[padded.clamp(min=0)], -1)
            assert torch.equal(got, expected), (nside, k)
    assert torch.equal(index[:, 1:-1, 1:-1].reshape(-1), torch.arange(npix(nside)))
    assert int((index < 0).sum()) == 24  # the 8 three-face vertices, 3 faces each


@pytest.mark.parametrize("nside,pad", [(4, 2), (4, 4), (8, 3)])
def test_wider_padding_continues_every_grid_line_straight(nside, pad):
    """Ring r + 1 continues ring r: a padded pixel is the healpy neighbour of the pixel one step
    inwards along its grid line (a diagonal in the corner blocks), opposite to the pixel two
    steps inwards (healpy slot k + 4 mod 8 is opposite to slot k). Checked wherever the three
    pixels exist; beyond the three-face vertices there are exactly the 24 empty p x p blocks."""
    index = face_padding_index(nside, pad)
    order = nest_of_face(nside, "face").reshape(-1)
    nest = torch.where(index >= 0, order[index.clamp(min=0)], -1)  # [12, n + 2p, n + 2p]
    table = _healpy_neighbours(nside)
    size = nside + 2 * pad
    checked = 0
    for f in range(12):
        for h in range(size):
            for w in range(size):
                inward = [int(c < pad) - int(c >= nside + pad) for c in (h, w)]
                if inward == [0, 0]:
                    continue
                step = [s if min(c, size - 1 - c) < pad else 0 for s, c in zip(inward, (h, w), strict=True)]
                far, near, here = (int(nest[f, h + i * step[0], w + i * step[1]]) for i in (2, 1, 0))
                if min(here, near, far) < 0:  # beyond a three-face vertex the padding has no pixel
                    continue
                k = int((table[near] == far).nonzero()[0])
                assert here == int(table[near, (k + 4) % 8]), (f, h, w)
                checked += 1
    assert checked == 12 * (size * size - nside * nside) - 24 * pad * pad  # every padded pixel that exists
    assert int((index < 0).sum()) == 24 * pad * pad  # a p x p block beyond each three-face vertex


def test_pad_must_fit_one_face():
    with pytest.raises(GeounetError, match="pad must be"):
        face_padding_index(4, 5)
    with pytest.raises(GeounetError, match="pad must be"):
        face_padding_index(4, 0)


@pytest.mark.parametrize("pad", [1, 2])
def test_padding_images_reads_the_index_and_puts_zero_beyond_three_face_vertices(pad):
    """pad_face_images on [B * 12, C, n, n] equals reading face_padding_index (zero where -1), keeps
    the images inside, returns channels-last strides, and its gradient sums over every copy."""
    nside, batch, channels = 4, 2, 3
    x = torch.randn(batch, 12, channels, nside, nside, dtype=torch.float64, requires_grad=True)
    padded = pad_face_images(x.reshape(batch * 12, channels, nside, nside), pad)
    size = nside + 2 * pad
    assert padded.shape == (batch * 12, channels, size, size)
    assert padded.is_contiguous(memory_format=torch.channels_last)
    index = face_padding_index(nside, pad).reshape(-1)
    flat = x.permute(0, 2, 1, 3, 4).reshape(batch, channels, -1)  # [B, C, N] face-order nodes
    expected = torch.where(index >= 0, flat[..., index.clamp(min=0)], 0.0).view(batch, channels, 12, size, size)
    assert torch.equal(padded.view(batch, 12, channels, size, size), expected.permute(0, 2, 1, 3, 4))
    weights = torch.randn_like(padded)
    (padded * weights).sum().backward()
    copies = torch.zeros(batch, channels, 12 * nside * nside, dtype=torch.float64)
    w = weights.view(batch, 12, channels, -1).permute(0, 2, 1, 3).reshape(batch, channels, -1)
    copies.index_add_(2, index.clamp(min=0)[index >= 0], w[..., index >= 0])
    torch.testing.assert_close(x.grad.permute(0, 2, 1, 3, 4).reshape(batch, channels, -1), copies)

