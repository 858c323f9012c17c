"""The HEALPix grid as plain data: sizes, orderings, pixel centres, neighbour tables.

HEALPix (Górski et al. 2005) splits the sphere into 12 base faces, each an
``nside x nside`` grid of equal-area pixels (area ``4π / (12 nside²)``). geounet
requires ``nside = 2**k`` and stores data in **NEST** order internally: pixel

    p = f * nside² + interleave(x, y),

where ``f`` is the base face (0-3 around the north pole, 4-7 on the equator, 8-11
around the south pole, each row eastwards from longitude 0), ``(x, y)`` the pixel's
face coordinates as returned by ``healpy.pix2xyf`` and ``interleave`` puts the bits of
``x`` in the even and those of ``y`` in the odd bit positions. Each face is a curved
square with one corner pointing north (N), one south (S), one east (E) and one west
(W); with ``n = nside``, its corner pixels are

    S = (0, 0),   E = (n-1, 0),   N = (n-1, n-1),   W = (0, n-1),

so ``x`` grows from S towards E (along the south-east edge) and ``y`` from S towards W
(along the south-west edge). The 4 children of NEST pixel ``p`` at ``2 * nside`` are
``4p .. 4p + 3``.

Orderings are always named explicitly, never guessed:

- ``"nest"``: ``[..., 12 nside²]`` in NEST order;
- ``"ring"``: ``[..., 12 nside²]`` in RING order (iso-latitude rings, north to south);
- face images ``[..., 12, nside, nside]``, ``image[..., f, h, w]`` with row ``h`` and
  column ``w``. A face layout is fixed by the corner at ``image[f, 0, 0]`` and its
  handedness: for ``"face_<corner>_ccw"`` (corner ``s``, ``e``, ``n`` or ``w``) the
  columns run from that corner to the next corner counter-clockwise in the cycle
  S -> E -> N -> W -> S (counter-clockwise as seen from outside the sphere) and the
  rows to the previous one; ``"face_<corner>_cw"`` swaps the two. So in a ``ccw``
  layout the direction of growing ``w`` turned by +90° (seen from outside) is the
  direction of growing ``h``, in a ``cw`` layout by -90°. The face order is NEST's.
- ``"face"`` is ``"face_n_cw"``, the layout of DLWP-HEALPix, physicsnemo and
  earth2grid's ``HEALPIX_PAD_XY``:

      image[f, h, w] = map[f n² + interleave(n-1-h, n-1-w)],  i.e. h = n-1-x, w = n-1-y;

  ``[0, 0]`` is the north corner, ``h`` runs from N to W along the north-west edge and
  ``w`` from N to E along the north-east edge, ``[n-1, n-1]`` is the south corner.
  Shown as a picture (row 0 on top) it is the face seen from outside the sphere with N
  top left, E top right, W bottom left and S bottom right, so the faces tile the
  plane without mirroring: the bottom row of north face ``k`` continues into the top
  row of equatorial face ``4 + k``, and the last column of face ``4 + k`` into the
  first column of south face ``8 + k``.
- ``"face_s_ccw"`` (``image[f, y, x]``, geounet's ``"face"`` before this convention was
  fixed, and earth2grid's default ``XY()``) is ``"face"`` reflected across each face's
  anti-diagonal: ``face_s_ccw[f, h, w] = face[f, n-1-w, n-1-h]``. earth2grid's
  ``XY(origin=S|N, clockwise=c)`` is ``"face_s|n_cw|ccw"``; its E and W origins do not
  name the geographic corner in every release, so check which corner such a file
  holds at ``[0, 0]`` (from its stored pixel latitudes and longitudes) before choosing
  ``"face_e_*"`` or ``"face_w_*"``.

With ``channels_last=True`` every layout carries one more trailing channel axis, as
in geounet's ``[batch, num_nodes, channels]`` features.
"""

from __future__ import annotations

import functools
import itertools
import math

import healpy
import numpy as np
import torch
from torch import Tensor

from geounet.errors import GeounetError

#: Face corners in counter-clockwise order (seen from outside the sphere) and their
#: face coordinates (x, y) in units of ``nside - 1``.
FACE_CORNERS = {"s": (0, 0), "e": (1, 0), "n": (1, 1), "w": (0, 1)}

#: Face-image layouts: name -> (corner at ``image[f, 0, 0]``, clockwise).
FACE_LAYOUTS = {
    "face": ("n", True),
    **{f"face_{corner}_{turn}": (corner, turn == "cw") for corner in FACE_CORNERS for turn in ("ccw", "cw")},
}

#: every ordering name :func:`convert_ordering` takes: NEST, RING and the face layouts
ORDERINGS = ("nest", "ring", *FACE_LAYOUTS)

#: healpy.get_all_neighbours order and the matching face-coordinate offsets (dx, dy).
NEIGHBOUR_NAMES = ("SW", "W", "NW", "N", "NE", "E", "SE", "S")
#: the face-coordinate offsets (dx, dy) of the neighbours in :data:`NEIGHBOUR_NAMES` order
NEIGHBOUR_OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))

# Bit masks of the x (even) and y (odd) bits of an interleaved in-face index.
_X_BITS = 0x5555555555555555
_Y_BITS = 0x2AAAAAAAAAAAAAAA  # odd bits below bit 63 (int64-safe; nside <= 2**29)


def validate_nside(nside: int) -> int:
    """Return ``nside`` if it is an int and a power of two, else raise a ValueError naming the fix."""
    if isinstance(nside, bool) or not isinstance(nside, (int, np.integer)):
        raise GeounetError(f"nside must be an int (a power of two: 1, 2, 4, ...), got {type(nside).__name__} {nside!r}")
    if nside < 1 or nside & (nside - 1):
        raise GeounetError(
            f"nside must be a power of two (1, 2, 4, ..., 1024, ...), got {nside!r}; "
            "NEST ordering and the Haar hierarchy need nside = 2**k"
        )
    if nside > 2**29:
        raise GeounetError(f"nside must be at most 2**29 (HEALPix's limit), got {nside}")
    return int(nside)


def npix(nside: int) -> int:
    """Number of pixels ``12 nside²``."""
    return 12 * validate_nside(nside) ** 2


def nside_from_npix(num_pixels: int) -> int:
    """The nside with ``12 nside² = num_pixels``; ValueError when no power-of-two nside fits."""
    nside = math.isqrt(max(int(num_pixels), 0) // 12)
    if num_pixels < 12 or 12 * nside * nside != num_pixels or nside & (nside - 1):
        raise GeounetError(
            f"{num_pixels} pixels is not a HEALPix map with power-of-two nside "
            "(expected 12 * nside**2 = 12, 48, 192, 768, ...); check which axis holds the "
            "pixels and that the map is complete"
        )
    return nside


def _check_ordering(ordering: str) -> str:
    if ordering not in ORDERINGS:
        raise GeounetError(f"unknown HEALPix ordering {ordering!r}; choose one of {ORDERINGS}")
    return ordering


# ---------------------------------------------------------------------- bit interleaving


def interleave(x: Tensor, y: Tensor) -> Tensor:
    """In-face NEST index with the bits of ``x`` at even and of ``y`` at odd positions."""
    return _spread_bits(x) | (_spread_bits(y) << 1)


def deinterleave(index: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`interleave`: ``(x, y)`` of an in-face NEST index."""
    return _compact_bits(index), _compact_bits(index >> 1)


def _spread_bits(v: Tensor) -> Tensor:
    """Insert a zero bit above every bit of ``v`` (< 2**31): ``b_k -> b_{2k}``."""
    v = v.to(torch.int64)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                        (2, 0x3333333333333333), (1, 0x5555555555555555)):
        v = (v | (v << shift)) & mask
    return v


def _compact_bits(v: Tensor) -> Tensor:
    """Keep the even bits of ``v`` and pack them: ``b_{2k} -> b_k``."""
    v = v.to(torch.int64) & 0x5555555555555555
    for shift, mask in ((1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F), (4, 0x00FF00FF00FF00FF),
                        (8, 0x0000FFFF0000FFFF), (16, 0x00000000FFFFFFFF)):
        v = (v | (v >> shift)) & mask
    return v


# ---------------------------------------------------------------------- orderings


# The orderings' index tables are cached by the private functions, whose tensors are only
# read (indexed with) in this module; the public ones hand out a copy of their own.


def nest_of_ring(nside: int) -> Tensor:
    """``nest_of_ring[r]`` = NEST index of RING pixel ``r``, ``[12 nside²]`` int64."""
    return _nest_of_ring(nside).clone()


def ring_of_nest(nside: int) -> Tensor:
    """``ring_of_nest[p]`` = RING index of NEST pixel ``p``, ``[12 nside²]`` int64."""
    return _ring_of_nest(nside).clone()


@functools.lru_cache(maxsize=8)
def _nest_of_ring(nside: int) -> Tensor:
    return torch.from_numpy(healpy.ring2nest(nside, np.arange(npix(nside)))).to(torch.int64)


@functools.lru_cache(maxsize=8)
def _ring_of_nest(nside: int) -> Tensor:
    return torch.argsort(_nest_of_ring(nside))


def is_face_layout(ordering: str) -> bool:
    """Whether ``ordering`` names a face-image layout ``[..., 12, nside, nside]``."""
    return _check_ordering(ordering) in FACE_LAYOUTS


def nest_of_face(nside: int, layout: str = "face") -> Tensor:
    """``nest_of_face[f, h, w]`` = NEST index of pixel ``(h, w)`` of face image ``f``, ``[12, n, n]``.

    With origin corner ``c`` and the corners ``a`` (columns) and ``b`` (rows) next to it
    (see the module docstring), the pixel has face coordinates
    ``(x, y) = (n-1) c + w (a - c) + h (b - c)``.
    """
    return _nest_of_face(nside, layout).clone()


def face_node_of_nest(nside: int, layout: str = "face") -> Tensor:
    """The inverse of :func:`nest_of_face`: ``face_node_of_nest[p]`` = position ``f n² + h n + w``
    of NEST pixel ``p`` in the flattened face images, ``[12 n²]``."""
    return _face_node_of_nest(nside, layout).clone()


@functools.lru_cache(maxsize=16)
def _face_node_of_nest(nside: int, layout: str) -> Tensor:
    return torch.argsort(_nest_of_face(nside, layout).reshape(-1))


@functools.lru_cache(maxsize=16)
def _nest_of_face(nside: int, layout: str) -> Tensor:
    if not is_face_layout(layout):
        raise GeounetError(f"{layout!r} is not a face layout; choose one of {tuple(FACE_LAYOUTS)}")
    corner, clockwise = FACE_LAYOUTS[layout]
    cycle = list(FACE_CORNERS)
    k = cycle.index(corner)
    towards_next, towards_previous = cycle[(k + 1) % 4], cycle[(k - 1) % 4]
    col_end, row_end = (towards_previous, towards_next) if clockwise else (towards_next, towards_previous)
    origin, col_end, row_end = (torch.tensor(FACE_CORNERS[c]) for c in (corner, col_end, row_end))
    h, w = torch.meshgrid(torch.arange(nside), torch.arange(nside), indexing="ij")
    xy = (nside - 1) * origin + w[..., None] * (col_end - origin) + h[..., None] * (row_end - origin)  # [n, n, 2]
    faces = torch.arange(12)[:, None, None] * nside * nside
    return faces + interleave(xy[..., 0], xy[..., 1])[None]


def _pixel_axes(ordering: str) -> int:
    return 3 if is_face_layout(ordering) else 1


def nside_of(x: Tensor, ordering: str, channels_last: bool = False) -> int:
    """The nside of map ``x`` in ``ordering``; ValueError naming both when they do not fit."""
    if not isinstance(x, Tensor):
        raise GeounetError(f"HEALPix maps are torch tensors, got {type(x).__module__}.{type(x).__name__}; convert "
                           "it first (torch.from_numpy(x) for a NumPy array)")
    offset = 1 if channels_last else 0
    face = is_face_layout(ordering)
    layout = "[..., 12, nside, nside" if face else "[..., 12 * nside**2"
    layout += ", channels]" if channels_last else "]"
    wrong = f"a {ordering!r} map must be laid out {layout}, got shape {tuple(x.shape)}"
    pixel_axes = x.shape[: x.dim() - offset]
    hint = ""
    if not face and len(pixel_axes) >= 3 and pixel_axes[-3] == 12 and pixel_axes[-2] == pixel_axes[-1]:
        hint = "; its trailing axes look like face images: pass a face layout such as 'face'"
    elif face and len(pixel_axes) >= 1 and pixel_axes[-1] >= 12 and pixel_axes[-1] % 12 == 0:
        hint = "; its last axis looks like a flat map: pass 'nest' or 'ring'"
    if len(pixel_axes) < _pixel_axes(ordering):
        raise GeounetError(wrong + hint)
    if not face:
        try:
            return nside_from_npix(pixel_axes[-1])
        except ValueError as error:
            raise GeounetError(f"{wrong} ({error}){hint}") from None
    faces, rows, cols = pixel_axes[-3:]
    if faces != 12 or rows != cols:
        raise GeounetError(wrong + hint)
    return validate_nside(rows)


def to_nest(x: Tensor, ordering: str, channels_last: bool = False) -> Tensor:
    """Reorder map(s) ``x`` from ``ordering`` to NEST ``[..., N(, C)]``.

    ``x`` is ``[..., N]`` for "nest"/"ring" and ``[..., 12, nside, nside]`` for a face
    layout, each followed by a channel axis when ``channels_last``.
    """
    nside = nside_of(x, ordering, channels_last)
    offset = 1 if channels_last else 0
    if is_face_layout(ordering):
        lead = x.shape[: x.dim() - 3 - offset]
        flat = x.reshape(*lead, npix(nside), *x.shape[x.dim() - offset:])  # face images row-major
        index = _face_node_of_nest(nside, ordering).to(x.device)
        return flat.index_select(flat.dim() - 1 - offset, index)
    if ordering == "ring":
        return x.index_select(x.dim() - 1 - offset, _ring_of_nest(nside).to(x.device))
    return x


def from_nest(x: Tensor, ordering: str, channels_last: bool = False) -> Tensor:
    """Reorder NEST map(s) ``x`` ``[..., N(, C)]`` to ``ordering`` (inverse of :func:`to_nest`)."""
    _check_ordering(ordering)
    nside = nside_of(x, "nest", channels_last)
    offset = 1 if channels_last else 0
    axis = x.dim() - 1 - offset
    if is_face_layout(ordering):
        out = x.index_select(axis, _nest_of_face(nside, ordering).reshape(-1).to(x.device))
        return out.reshape(*x.shape[:axis], 12, nside, nside, *x.shape[axis + 1:])
    if ordering == "ring":
        return x.index_select(axis, _nest_of_ring(nside).to(x.device))
    return x


def convert_ordering(x: Tensor, source: str, target: str, channels_last: bool = False) -> Tensor:
    """Reorder ``x`` from ordering ``source`` to ``target`` (each in :data:`ORDERINGS`)."""
    _check_ordering(target)
    return from_nest(to_nest(x, source, channels_last), target, channels_last)


# ---------------------------------------------------------------------- geometry


def pixel_area(nside: int) -> float:
    """Area of every pixel on the unit sphere, ``4π / (12 nside²)``."""
    return 4.0 * math.pi / npix(nside)


def pixel_vectors(nside: int) -> Tensor:
    """Unit vectors of the pixel centres in NEST order, ``[12 nside², 3]`` float64."""
    vec = healpy.pix2vec(nside, np.arange(npix(nside)), nest=True)
    return torch.from_numpy(np.stack(vec, axis=1)).to(torch.float64)


#: The corners (S, E, N, W) of every base face as vertices of the base polyhedron: "N" / "S"
#: the poles, ("n", k) / ("s", k) the points at z = ±2/3, longitude 90° k, and ("e", k) the
#: equator at longitude 45° + 90° k (k mod 4). North face k spans longitudes 90° k .. 90° (k+1)
#: with its S corner on the equator; equatorial face 4 + k is centred on the equator at
#: longitude 90° k; south face 8 + k mirrors north face k.
_FACE_VERTICES = tuple(
    [(("e", k), ("n", (k + 1) % 4), "N", ("n", k)) for k in range(4)]
    + [(("s", k), ("e", k), ("n", k), ("e", (k - 1) % 4)) for k in range(4)]
    + [("S", ("s", (k + 1) % 4), ("e", k), ("s", k)) for k in range(4)]
)
_CORNER_ORDER = ("s", "e", "n", "w")  # the order of _FACE_VERTICES' columns, FACE_CORNERS' keys


def _rotation_between(d: tuple[int, int], d_new: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The rotation by a multiple of 90° taking the axis-aligned vector ``d`` to ``d_new``."""
    rotation = ((1, 0), (0, 1))
    for _ in range(4):
        if _apply(rotation, d, (0, 0)) == tuple(d_new):
            return rotation
        rotation = ((-rotation[1][0], -rotation[1][1]), (rotation[0][0], rotation[0][1]))  # turn by +90°
    raise AssertionError(f"no rotation takes {d} to {d_new}: the face gluing is inconsistent")


def _apply(rotation, point, shift):
    return tuple(rotation[i][0] * point[0] + rotation[i][1] * point[1] + shift[i] for i in range(2))


@functools.lru_cache(maxsize=1)
def _face_gluing() -> tuple[Tensor, Tensor, Tensor]:
    """How a step off a base face continues on the face it lands on.

    In continuous face coordinates ``p = (x, y) / nside`` (face = [0, 1]², corners at
    :data:`FACE_CORNERS`), a point just outside face ``f`` in region ``(xo, yo)`` (each
    -1 below, 0 inside, +1 above [0, 1]) lies on face ``g`` at ``R p + s``, a rotation by
    a multiple of 90° (all faces are oriented alike, so the gluing keeps orientation) and a
    shift. Across an edge, ``(R, s)`` takes the edge's two corners to the same two vertices
    of ``g``; across a corner where 4 faces meet, it is the composition of two edge steps;
    where only 3 faces meet (the 8 vertices at z = ±2/3), there is no face: ``g = -1``.

    Returns ``face [12, 9]`` (-1: none), ``rotation [12, 9, 2, 2]`` and ``shift [12, 9, 2]``
    (int64), indexed by face and region ``3 (xo + 1) + (yo + 1)`` (4 = on the face itself).
    """
    corner_at = {name: FACE_CORNERS[name] for name in _CORNER_ORDER}
    position = [dict(zip(face, (corner_at[c] for c in _CORNER_ORDER), strict=True)) for face in _FACE_VERTICES]
    faces_at: dict = {}
    for f, face in enumerate(_FACE_VERTICES):
        for vertex in face:
            faces_at.setdefault(vertex, []).append(f)

    def region_corners(f: int, xo: int, yo: int) -> list:
        """The vertices of face ``f`` on the side of region ``(xo, yo)``."""
        return [v for v, (cx, cy) in position[f].items() if (xo == 0 or cx == (xo > 0)) and (yo == 0 or cy == (yo > 0))]

    def edge_step(f: int, xo: int, yo: int):
        a, b = region_corners(f, xo, yo)
        (g,) = (g for g in faces_at[a] if g != f and b in position[g])
        pa, pb, qa, qb = position[f][a], position[f][b], position[g][a], position[g][b]
        rotation = _rotation_between((pb[0] - pa[0], pb[1] - pa[1]), (qb[0] - qa[0], qb[1] - qa[1]))
        turned = _apply(rotation, pa, (0, 0))
        return g, rotation, (qa[0] - turned[0], qa[1] - turned[1])

    def region(point) -> tuple[int, int]:
        return tuple(int(c > 1) - int(c < 0) for c in point)

    identity = ((1, 0), (0, 1))
    face = torch.empty(12, 9, dtype=torch.int64)
    rotation = torch.empty(12, 9, 2, 2, dtype=torch.int64)
    shift = torch.zeros(12, 9, 2, dtype=torch.int64)
    for f, xo, yo in itertools.product(range(12), (-1, 0, 1), (-1, 0, 1)):
        index = 3 * (xo + 1) + (yo + 1)
        if xo == 0 and yo == 0:
            g, rot, s = f, identity, (0, 0)
        elif xo == 0 or yo == 0:
            g, rot, s = edge_step(f, xo, yo)
        else:
            (vertex,) = region_corners(f, xo, yo)
            if len(faces_at[vertex]) == 3:
                g, rot, s = -1, identity, (0, 0)
            else:  # step across the x edge, then across the edge the point is still beyond
                g1, rot1, s1 = edge_step(f, xo, 0)
                corner = position[f][vertex]
                beyond = _apply(rot1, (corner[0] + 0.25 * xo, corner[1] + 0.25 * yo), s1)
                g, rot2, s2 = edge_step(g1, *region(beyond))
                rot = tuple(tuple(sum(rot2[i][k] * rot1[k][j] for k in range(2)) for j in range(2)) for i in range(2))
                s = _apply(rot2, s1, s2)
        face[f, index], rotation[f, index], shift[f, index] = g, torch.tensor(rot), torch.tensor(s)
    return face, rotation, shift


def _neighbours_of(pixels: Tensor, nside: int) -> Tensor:
    """``[P, 8]`` neighbours (NEST, -1 where absent) of NEST ``pixels [P]``, any pixel on any face:
    the pixels one step ``(dx, dy)`` of :data:`NEIGHBOUR_OFFSETS` away (:func:`_glued_pixels`)."""
    area = nside * nside
    face, local = pixels // area, pixels % area
    x, y = deinterleave(local)
    offsets = torch.tensor(NEIGHBOUR_OFFSETS, dtype=torch.int64)  # [8, 2]
    step_x, step_y = x[:, None] + offsets[:, 0], y[:, None] + offsets[:, 1]  # [P, 8]
    return _glued_pixels(face[:, None].expand_as(step_x), step_x, step_y, nside)


def _glued_pixels(face: Tensor, x: Tensor, y: Tensor, nside: int) -> Tensor:
    """NEST index (-1 where there is no pixel) of the pixel at face coordinates ``(x, y)`` of
    base face ``face``, each coordinate in ``[-nside, 2 nside)``: one off the face lies on the
    face ``_face_gluing`` continues it onto, applied to doubled pixel centres
    ``2 (x, y) + 1`` so the rotation about the face centre stays in integers. Beyond one of the
    8 vertices where three faces meet there is no pixel. All arguments broadcast alike.
    """
    xo = (x >= nside).long() - (x < 0).long()
    yo = (y >= nside).long() - (y < 0).long()
    region = 3 * (xo + 1) + (yo + 1)
    glued_face, rotation, shift = (t[face, region] for t in _face_gluing())
    doubled_x, doubled_y = 2 * x + 1, 2 * y + 1
    new_x, new_y = (
        (rotation[..., i, 0] * doubled_x + rotation[..., i, 1] * doubled_y + 2 * nside * shift[..., i] - 1) // 2
        for i in range(2)
    )
    out = glued_face * nside * nside + interleave(new_x, new_y)
    return torch.where(glued_face >= 0, out, -1)


def face_padding_index(nside: int, pad: int) -> Tensor:
    """Where HEALPix neighbour padding of ``"face"`` images reads each pixel, ``[12, n + 2p, n + 2p]``.

    Entry ``[f, p + h, p + w]`` is the node ``g n² + h' n + w'`` of the flattened ``"face"``
    layout (``image[g, h', w']``) found at row ``h`` and column ``w`` of face ``f`` continued
    across its edges, for ``-p <= h, w < n + p``: inside the face the pixel itself, beyond an
    edge the adjacent face's pixel in that face's orientation (the faces are glued without
    mirroring, ``_face_gluing``), beyond a corner where four faces meet the diagonal
    face's pixel. Beyond the 8 vertices where only three faces meet (z = ±2/3) the ``p x p``
    corner block has no pixel: -1 there. With ``p = 1`` the 8 padded pixels around
    ``image[f, h, w]`` are its :func:`neighbour_table` entries: the one at offset
    ``(dh, dw)`` is its neighbour at face offset ``(dx, dy) = (-dh, -dw)``.

    Args:
        pad: the padding width p, ``1 <= p <= nside`` (the padding reads one face per side).
    """
    validate_nside(nside)
    if isinstance(pad, bool) or not isinstance(pad, int) or not 1 <= pad <= nside:
        raise GeounetError(f"pad must be an int from 1 to nside = {nside} (padding reads one adjacent face per "
                           f"side), got {pad!r}")
    rows = torch.arange(-pad, nside + pad)
    h, w = torch.meshgrid(rows, rows, indexing="ij")  # [n + 2p, n + 2p]
    face = torch.arange(12)[:, None, None]
    nest = _glued_pixels(face, (nside - 1 - h)[None], (nside - 1 - w)[None], nside)  # "face": x = n-1-h, y = n-1-w
    return torch.where(nest >= 0, face_node_of_nest(nside)[nest.clamp(min=0)], -1)


def neighbour_table(nside: int, dtype: torch.dtype = torch.int64) -> Tensor:
    """The 8 neighbours of every NEST pixel, ``[12 nside², 8]``, -1 where absent.

    Columns follow ``healpy.get_all_neighbours``: SW, W, NW, N, NE, E, SE, S, i.e. face
    offsets (dx, dy) of :data:`NEIGHBOUR_OFFSETS`, and the table equals healpy's. It is
    pure arithmetic on NEST indices. Off the face border a step of ±1 in x is a
    carry-propagating add on the even bits of the interleaved index (and likewise for y
    on the odd bits), the same for all 12 faces, so it is computed once for one face and
    offset by ``f * nside²``; the ``~48 nside`` border pixels step onto the neighbouring
    faces by the gluing rules of ``_face_gluing``. Where three base faces meet (the 8
    vertices at z = ±2/3) the 3 pixels at the vertex have only 7 neighbours; their missing
    entry is -1, as in healpy. ``dtype`` int32 halves the table (nside <= 8192).
    """
    validate_nside(nside)
    if dtype == torch.int32 and npix(nside) > 2**31 - 1:
        raise GeounetError(f"nside {nside} has more pixels than int32 can index; use dtype=torch.int64")
    area = nside * nside
    local = torch.arange(area, dtype=torch.int64)  # in-face NEST index
    xbits, ybits = local & _X_BITS, local & _Y_BITS
    # x + 1: fill the y bits with ones so the carry skips them; x - 1: borrow likewise.
    step_x = {-1: (xbits - 1) & _X_BITS, 0: xbits, 1: ((xbits | _Y_BITS) + 1) & _X_BITS}
    step_y = {-1: (ybits - 2) & _Y_BITS, 0: ybits, 1: ((ybits | _X_BITS) + 2) & _Y_BITS}
    face_table = torch.stack([(step_x[dx] | step_y[dy]).to(dtype) for dx, dy in NEIGHBOUR_OFFSETS], dim=1)
    del xbits, ybits, step_x, step_y
    faces = torch.arange(12, dtype=dtype)[:, None, None] * area
    table = (face_table[None] + faces).reshape(12 * area, 8)  # wrong on face borders
    x, y = deinterleave(local)
    border_local = ((x == 0) | (y == 0) | (x == nside - 1) | (y == nside - 1)).nonzero().squeeze(1)
    border = (border_local[None] + faces[:, :, 0].long()).reshape(-1)
    table[border] = _neighbours_of(border, nside).to(dtype)
    return table


def edge_geometry(targets: Tensor, positions: Tensor, neighbours: Tensor, mask: Tensor) -> Tensor:
    """Geometric features of the edges neighbour -> target, ``[M, K, 3]`` in ``targets``' dtype.

    For target centre ``t`` (``targets [M, 3]``; colatitude θ, longitude φ) with local
    frame ``e = (-sin φ, cos φ, 0)`` (east) and ``n = (-cos θ cos φ, -cos θ sin φ, sin θ)``
    (north), and source centre ``s = positions[neighbours[m, k]]``, the features are

        (e · s, n · s, 2 asin(|s - t| / 2)),

    the orthogonal projection of ``s - t`` onto the tangent plane at ``t`` in (east,
    north) components (``e · t = n · t = 0``) and the great-circle distance (the chord
    form is accurate for the short edges of fine grids). Masked entries are zero. The
    loop over the K columns keeps temporaries at ``[M, 3]``.
    """
    x, y, z = targets.unbind(-1)  # [M] each
    rho = torch.sqrt(x * x + y * y)  # sin θ > 0: no HEALPix centre lies on a pole
    cos_phi, sin_phi = x / rho, y / rho
    attr = targets.new_zeros(*neighbours.shape, 3)  # [M, K, 3]
    for k in range(neighbours.shape[1]):
        source = positions[neighbours[:, k].clamp(min=0)]  # [M, 3]
        sx, sy, sz = source.unbind(-1)
        attr[:, k, 0] = cos_phi * sy - sin_phi * sx
        attr[:, k, 1] = rho * sz - z * (cos_phi * sx + sin_phi * sy)
        chord = (source - targets).norm(dim=-1)
        attr[:, k, 2] = 2.0 * torch.asin((0.5 * chord).clamp(max=1.0))
    return attr.mul_(mask[..., None])


def neighbour_geometry(nside: int, positions: Tensor, neighbours: Tensor, mask: Tensor) -> Tensor:
    """:func:`edge_geometry` of the whole NEST grid, ``[12 nside², K, 3]`` in ``positions``' dtype.

    The HEALPix grid is invariant under the rotation φ -> φ + π/2, which maps face
    ``f`` to the next face of its row (0-3 north, 4-7 equatorial, 8-11 south) with the
    same in-face index and turns the (east, north) frame with it, so the features only
    depend on the row: they are computed on faces 0, 4, 8 and repeated (to round-off,
    checked against the direct computation in the tests).
    """
    area = nside * nside
    rows = torch.cat([torch.arange(f * area, (f + 1) * area, device=positions.device) for f in (0, 4, 8)])
    attr = edge_geometry(positions[rows], positions, neighbours[rows], mask[rows])  # [3 area, K, 3]
    return attr.view(3, 1, area, *attr.shape[1:]).expand(3, 4, area, *attr.shape[1:]).reshape(12 * area,
                                                                                               *attr.shape[1:])


def missing_neighbours(nside: int) -> tuple[Tensor, Tensor]:
    """``(pixels, slots)``, each ``[24]`` int64: the absent entries of :func:`neighbour_table`.

    Only corner pixels of the base faces can lack a neighbour: the 3 at each of the 8
    vertices where three faces meet miss the diagonal one (at nside 1, where every pixel
    is a whole face, each pixel misses 2). Found without building the table.
    """
    area = nside * nside
    corner = interleave(torch.tensor([0, nside - 1, nside - 1, 0]), torch.tensor([0, 0, nside - 1, nside - 1]))
    pixels = (torch.arange(12)[:, None] * area + corner).reshape(-1).unique()  # [48] (12 at nside 1)
    rows, slots = (_neighbours_of(pixels, nside) < 0).nonzero().unbind(1)
    return pixels[rows], slots
