"""Face-image layouts of HEALPix maps, checked against geography and against DLWP's own mapping."""

import healpy as hp
import numpy as np
import pytest
import torch

from geounet.geometry.healpix import (
    FACE_LAYOUTS,
    ORDERINGS,
    convert_ordering,
    face_node_of_nest,
    from_nest,
    is_face_layout,
    nest_of_face,
    nest_of_ring,
    nside_of,
    ring_of_nest,
    to_nest,
)

NSIDE = 16


def dlwp_face_image(nest_map: np.ndarray, nside: int) -> np.ndarray:
    """DLWP-HEALPix's NEST -> [face, height, width] mapping, written from its algorithm.

    DLWP splits the in-face part of each NEST index into its bits, reads ``y`` from the
    odd and ``x`` from the even bit positions, writes the value at ``[f, x, y]`` and then
    flips both in-face axes, so that index ``[0, 0]`` holds the north corner.
    """
    image = np.zeros((12, nside, nside), dtype=nest_map.dtype)
    bits = 2 * (nside.bit_length() - 1)
    for p, value in enumerate(nest_map):
        f, local = divmod(p, nside * nside)
        digits = format(local, "b").zfill(bits)[::-1]  # least significant bit first
        x = int(digits[0::2][::-1] or "0", 2)
        y = int(digits[1::2][::-1] or "0", 2)
        image[f, x, y] = value
    return image[:, ::-1, ::-1]


def smooth_field(nside: int) -> np.ndarray:
    """A smooth function of latitude and longitude at the NEST pixel centres, ``[12 nside²]``."""
    lon, lat = np.deg2rad(hp.pix2ang(nside, np.arange(12 * nside**2), nest=True, lonlat=True))
    return np.cos(lat) * np.cos(lon - 0.7) + 0.5 * np.sin(2 * lat) + 0.3 * np.cos(lat) ** 2 * np.sin(2 * lon)


def centres(nside: int) -> torch.Tensor:
    """Unit vectors of the NEST pixel centres, ``[12 nside², 3]``."""
    return torch.from_numpy(np.stack(hp.pix2vec(nside, np.arange(12 * nside**2), nest=True), axis=-1))


def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Great-circle angle between unit vectors ``[..., 3]``."""
    return torch.arccos((a * b).sum(-1).clamp(max=1.0))


def edge_strips(image: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The 24 shared edges of the 12 faces of a ``[12, n, n, ...]`` image in the DLWP layout.

    Each entry pairs the ``n`` pixels along one side of an edge with the ``n`` pixels
    facing them on the other side. Equatorial face ``4 + k`` touches north faces ``k``
    (above) and ``k - 1`` (left) and south faces ``8 + k`` (right) and ``8 + k - 1``
    (below) without turning; two north (south) faces meet at a quarter turn.
    """
    strips = []
    for k in range(4):
        east, west = (k + 1) % 4, (k + 3) % 4
        strips += [
            (image[k, -1, :], image[4 + k, 0, :]),  # north k above equatorial 4+k
            (image[west, :, -1], image[4 + k, :, 0]),  # north k-1 left of equatorial 4+k
            (image[4 + k, :, -1], image[8 + k, :, 0]),  # south 8+k right of equatorial 4+k
            (image[4 + k, -1, :], image[8 + west, 0, :]),  # south 8+k-1 below equatorial 4+k
            (image[k, 0, :], image[east, :, 0]),  # north k and north k+1 around the pole
            (image[8 + k, :, -1], image[8 + east, -1, :]),  # south 8+k and 8+k+1 around the pole
        ]
    return strips


@pytest.mark.parametrize("layout", sorted(FACE_LAYOUTS))
def test_face_node_of_nest_inverts_nest_of_face(layout):
    nest = nest_of_face(4, layout).reshape(-1)  # [N]: face node -> NEST pixel
    assert torch.equal(face_node_of_nest(4, layout)[nest], torch.arange(12 * 16))
    assert torch.equal(nest[face_node_of_nest(4, layout)], torch.arange(12 * 16))


def test_face_is_dlwps_layout():
    nest = np.arange(12 * NSIDE**2)
    expected = dlwp_face_image(nest, NSIDE)
    assert np.array_equal(from_nest(torch.from_numpy(nest), "face").numpy(), expected)
    assert np.array_equal(nest_of_face(NSIDE).numpy(), expected)
    # DLWP stores the pixel latitudes and longitudes with the same mapping.
    lon, lat = hp.pix2ang(NSIDE, nest, nest=True, lonlat=True)
    file_lat = dlwp_face_image(lat, NSIDE)
    assert np.array_equal(to_nest(torch.from_numpy(file_lat.copy()), "face").numpy(), lat)
    assert np.array_equal(from_nest(torch.from_numpy(lon), "face").numpy(), dlwp_face_image(lon, NSIDE))


def test_face_is_geounets_previous_layout_reflected_across_the_anti_diagonal():
    """The issue's relation file[f, h, w] = old[f, n-1-w, n-1-h], and its count of moved pixels."""
    n = 32
    old = torch.randn(3, 12, n, n)
    new = convert_ordering(old, "face_s_ccw", "face")
    h, w = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    assert torch.equal(new, old[..., n - 1 - w, n - 1 - h])
    index = torch.arange(12 * n * n)
    moved = (from_nest(index, "face") != from_nest(index, "face_s_ccw")).sum().item()
    assert moved == 11904  # all but the 12 n pixels on the anti-diagonals


@pytest.mark.parametrize("layout", list(FACE_LAYOUTS))
def test_smooth_field_is_smooth_inside_every_face(layout):
    image = from_nest(torch.from_numpy(smooth_field(NSIDE)), layout)  # [12, n, n]
    steps = torch.cat([image.diff(dim=1).abs().reshape(-1), image.diff(dim=2).abs().reshape(-1)])
    # |grad g| <= 2 and neighbouring centres are at most ~1.2 / nside apart.
    assert steps.max() < 2.5 / NSIDE
    shuffled = image.reshape(12, -1)[:, torch.randperm(NSIDE * NSIDE, generator=torch.Generator().manual_seed(0))]
    assert shuffled.reshape(image.shape).diff(dim=2).abs().max() > 5 / NSIDE  # the bound can fail


def test_face_layout_continues_across_every_face_edge():
    """Pixels paired across the 24 base-face edges are neighbours, and the smooth field stays smooth."""
    positions = from_nest(centres(NSIDE), "face", channels_last=True)  # [12, n, n, 3]
    rows, cols = positions, positions.transpose(1, 2)
    inside_step = max(angle(rows[:, 1:], rows[:, :-1]).max(), angle(cols[:, 1:], cols[:, :-1]).max())
    for side_a, side_b in edge_strips(positions):
        assert angle(side_a, side_b).max() <= inside_step  # one pixel step, as inside a face
    field = from_nest(torch.from_numpy(smooth_field(NSIDE)), "face")
    inside = field.diff(dim=2).abs().max()
    across = max((a - b).abs().max() for a, b in edge_strips(field))
    assert across < 1.5 * inside
    # geounet's previous layout does not tile this way: the same pairing tears the map apart.
    previous = from_nest(centres(NSIDE), "face_s_ccw", channels_last=True)
    assert max(angle(a, b).max() for a, b in edge_strips(previous)) > 10 * inside_step


@pytest.mark.parametrize("layout", list(FACE_LAYOUTS))
def test_layout_origin_corner_and_handedness(layout):
    """``[0, 0]`` is the named corner; columns turned by +90° (seen from outside) give rows iff ccw."""
    corner, clockwise = FACE_LAYOUTS[layout]
    n = NSIDE
    image = from_nest(centres(n), layout, channels_last=True)  # [12, n, n, 3]
    face_centres = image.mean(dim=(1, 2))  # [12, 3]
    for f in range(12):
        corners = image[f, [0, 0, -1, -1], [0, -1, 0, -1]]  # [4, 3]
        z = corners[:, 2]
        east = torch.linalg.cross(face_centres[f].expand(4, 3), corners)[:, 2]  # > 0 east of the centre
        named = {"n": z.argmax(), "s": z.argmin()}
        sides = [i for i in range(4) if i not in (int(named["n"]), int(named["s"]))]
        named["e"] = max(sides, key=lambda i: east[i])
        named["w"] = min(sides, key=lambda i: east[i])
        assert int(named[corner]) == 0, (layout, f)
        origin, along_w, along_h = image[f, 0, 0], image[f, 0, 1], image[f, 1, 0]
        turn = torch.dot(torch.linalg.cross(along_w - origin, along_h - origin), origin)
        assert (turn < 0) == clockwise, (layout, f)


def test_old_and_new_names():
    assert FACE_LAYOUTS["face"] == FACE_LAYOUTS["face_n_cw"] == ("n", True)
    assert torch.equal(nest_of_face(4, "face"), nest_of_face(4, "face_n_cw"))
    x, y, f = hp.pix2xyf(4, np.arange(192), nest=True)
    assert np.array_equal(nest_of_face(4, "face_s_ccw").numpy()[f, y, x], np.arange(192))  # image[f, y, x]
    assert [o for o in ORDERINGS if not is_face_layout(o)] == ["nest", "ring"]
    assert len({nest_of_face(4, o).reshape(-1).numpy().tobytes() for o in FACE_LAYOUTS}) == 8  # 'face' is an alias


@pytest.mark.parametrize("ordering", ORDERINGS)
@pytest.mark.parametrize("nside", [1, 2, 8])
def test_round_trips(ordering, nside):
    x = torch.randn(2, 3, 12 * nside**2)
    out = from_nest(x, ordering)
    assert torch.equal(to_nest(out, ordering), x)
    assert torch.equal(from_nest(to_nest(out, ordering), ordering), out)
    assert nside_of(out, ordering) == nside
    features = torch.randn(2, 12 * nside**2, 5)  # [B, N, C]
    laid_out = from_nest(features, ordering, channels_last=True)
    assert torch.equal(to_nest(laid_out, ordering, channels_last=True), features)
    assert torch.equal(laid_out[..., 4], from_nest(features[..., 4], ordering))
    for other in ("ring", "face_w_cw"):
        assert torch.equal(convert_ordering(convert_ordering(out, ordering, other), other, ordering), out)


def test_shape_that_does_not_match_the_ordering_names_both():
    with pytest.raises(ValueError, match=r"'nest' map must be laid out \[\.\.\., 12 \* nside\*\*2\], got shape "
                                         r"\(2, 12, 4, 4\).*pass a face layout such as 'face'"):
        to_nest(torch.zeros(2, 12, 4, 4), "nest")
    with pytest.raises(ValueError, match=r"'face' map must be laid out \[\.\.\., 12, nside, nside\], got shape "
                                         r"\(3, 192\).*pass 'nest' or 'ring'"):
        to_nest(torch.zeros(3, 192), "face")
    with pytest.raises(ValueError, match=r"'face_e_ccw' map .*nside, channels\], got shape \(12, 4, 5, 2\)"):
        to_nest(torch.zeros(12, 4, 5, 2), "face_e_ccw", channels_last=True)
    with pytest.raises(ValueError, match=r"'ring' map .*got shape \(50,\) \(50 pixels is not a HEALPix map"):
        to_nest(torch.zeros(50), "ring")
    with pytest.raises(ValueError, match="unknown HEALPix ordering 'face_ne_cw'; choose one of"):
        from_nest(torch.zeros(48), "face_ne_cw")
    with pytest.raises(ValueError, match="'ring' is not a face layout"):
        nest_of_face(4, "ring")


def test_ordering_tables_are_copies_of_the_cached_ones():
    """Index tables are cached; changing a returned one must not change later conversions."""
    x = torch.arange(768.0)
    expected = {ordering: from_nest(x, ordering) for ordering in ("ring", "face")}
    for table in (nest_of_ring(8), ring_of_nest(8), nest_of_face(8, "face")):
        table.zero_()
    for ordering, values in expected.items():
        assert torch.equal(from_nest(x, ordering), values) and torch.equal(to_nest(values, ordering), x)
    assert torch.equal(nest_of_ring(8)[ring_of_nest(8)], torch.arange(768))
