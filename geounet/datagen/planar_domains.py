"""Random planar domains with holes, meshed by Shewchuk's Triangle.

A :class:`PlanarDomain` is a simple polygon (the outline, counter-clockwise) with
non-overlapping polygonal holes strictly inside it. :func:`random_planar_domain` draws
one from a numpy ``Generator``:

* the outline is star-shaped about its centre, either a polygon with 5-12 vertices at
  jittered angles and random radii, or a smooth outline
  r(θ) = 1 + Σ_{m=2}^{5} (a_m cos mθ + b_m sin mθ) sampled at 32 angles; it is then
  stretched by a random aspect ratio and scaled so its bounding box fits [0, 1]²
  (longest side 1);
* ``holes[0]`` to ``holes[1]`` holes, circles (16-gons) or star polygons with 5-8 vertices,
  placed by rejection so that each hole's enclosing disc keeps a distance ``margin``
  from the outline and from every other hole.

Every coordinate is rounded to a multiple of 2^-``GRID_BITS`` (about 1e-6 of the domain's size) as
soon as it is drawn. NumPy's ``sin``, ``cos`` and ``exp`` may differ in the last bit between CPUs
(vectorised implementations for some instruction sets), and Triangle turns a last-bit change of the
outline into another mesh; on the grid the coordinates have the same bits on every CPU.

:func:`triangulate_domain` meshes a domain with Triangle's constrained conforming
Delaunay triangulation (minimum angle 30°, maximum triangle area ``max_area``): the
polygon boundary is kept exactly at every resolution (Triangle only splits boundary
segments), so meshes with different ``max_area`` discretise the same domain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import triangle

from geounet.errors import GeounetError

MIN_ANGLE_DEGREES = 30
#: coordinates are multiples of 2^-GRID_BITS (module docstring): a last-bit difference moves one
#: only when it lies within ~1e-16 of a midpoint between grid values, a chance of ~1e-10 each
GRID_BITS = 20
#: Mean triangle area of Triangle's 30° quality meshes as a fraction of the area bound
#: (measured: 0.63 on disc and annulus meshes from 100 to 2000 faces).
MEAN_AREA_FRACTION = 0.63


@dataclass(frozen=True, eq=False)
class PlanarDomain:
    """A polygon with polygonal holes.

    Attributes:
        outline: ``[N, 2]`` vertices of the outer boundary, counter-clockwise.
        holes: one ``[M_h, 2]`` array per hole (clockwise), each strictly inside the outline.
        hole_points: ``[H, 2]`` one point inside each hole (Triangle's hole seeds).
    """

    outline: np.ndarray
    holes: tuple[np.ndarray, ...]
    hole_points: np.ndarray

    @property
    def num_holes(self) -> int:
        return len(self.holes)

    @property
    def area(self) -> float:
        """Outline area minus hole areas (the holes are disjoint and inside the outline)."""
        return polygon_area(self.outline) + sum(polygon_area(h) for h in self.holes)


def polygon_area(polygon: np.ndarray) -> float:
    """Signed area of a closed polygon ``[N, 2]`` (shoelace; positive when counter-clockwise)."""
    x, y = polygon[:, 0], polygon[:, 1]
    # fsum, not a BLAS dot: correctly rounded, so the area (and the Triangle area bound made
    # from it) has the same bits on every CPU; BLAS kernels sum in a CPU-dependent order
    return 0.5 * math.fsum(x * np.roll(y, -1) - np.roll(x, -1) * y)


def on_grid(points: np.ndarray) -> np.ndarray:
    """``points`` rounded to the nearest multiples of 2^-``GRID_BITS`` (exact: powers of two)."""
    scale = 2.0**GRID_BITS
    return np.round(points * scale) / scale


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd ray casting: mask ``[P]`` of ``points [P, 2]`` inside ``polygon [N, 2]``."""
    a, b = polygon, np.roll(polygon, -1, axis=0)  # edges a -> b, [N, 2]
    px, py = points[:, None, 0], points[:, None, 1]  # [P, 1]
    straddles = (a[:, 1] > py) != (b[:, 1] > py)  # [P, N]
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return (straddles & (px < x_cross)).sum(axis=1) % 2 == 1


def _distance_to_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distance ``[P]`` from ``points [P, 2]`` to the edges of ``polygon [N, 2]``."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    ab = b - a  # [N, 2]
    t = np.clip(((points[:, None] - a) * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)  # [P, N]
    nearest = a + t[..., None] * ab  # [P, N, 2]
    return np.linalg.norm(points[:, None] - nearest, axis=-1).min(axis=1)


def _star_polygon(rng: np.random.Generator, num_vertices: int, min_radius: float) -> np.ndarray:
    """Star-shaped polygon about 0, counter-clockwise: jittered angles, radii in [min_radius, 1]."""
    jitter = rng.uniform(-0.3, 0.3, num_vertices)
    theta = rng.uniform(0, 2 * np.pi) + 2 * np.pi * (np.arange(num_vertices) + jitter) / num_vertices
    radius = rng.uniform(min_radius, 1.0, num_vertices)
    return radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)


def _smooth_outline(rng: np.random.Generator, num_points: int = 32) -> np.ndarray:
    """r(θ) = 1 + Σ_{m=2}^{5} (a_m cos mθ + b_m sin mθ), a_m, b_m ~ N(0, (0.3/m)²), sampled at
    ``num_points`` angles; the deviation is shrunk where needed so that min r ≥ 0.4 max r."""
    theta = 2 * np.pi * np.arange(num_points) / num_points
    modes = np.arange(2, 6)
    coef = rng.normal(0.0, 0.3 / modes[:, None], (len(modes), 2))  # [M, 2]
    # Summed mode by mode in a fixed order, not by a BLAS product, whose rounding depends on the
    # CPU's kernel: Triangle's refinement turns last-bit changes of the outline into other meshes.
    deviation = np.zeros(num_points)
    for m, (a, b) in zip(modes, coef, strict=True):
        deviation = deviation + a * np.cos(m * theta) + b * np.sin(m * theta)
    # 1 + s d with s = 1 unless that breaks min r >= 0.4 max r: s (0.4 max d - min d) <= 0.6.
    spread = 0.4 * deviation.max() - deviation.min()
    deviation *= min(1.0, 0.6 / spread) if spread > 0 else 1.0
    radius = 1.0 + deviation
    return radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)


def _place_disc(rng: np.random.Generator, outline: np.ndarray, centres: list, radii: list,
                hole_radius: tuple[float, float], margin: float, attempts: int) -> tuple[np.ndarray, float] | None:
    """A random disc (centre, radius) inside ``outline`` at distance >= ``margin`` from it and
    from the discs ``(centres, radii)``, or None after ``attempts`` rejected draws."""
    low, high = outline.min(axis=0), outline.max(axis=0)
    for _ in range(attempts):
        centre, radius = rng.uniform(low, high), rng.uniform(*hole_radius)
        if not (_inside(centre[None], outline)[0]
                and _distance_to_polygon(centre[None], outline)[0] >= radius + margin):
            continue
        if all(np.hypot(*(centre - c)) >= radius + r + margin for c, r in zip(centres, radii, strict=True)):
            return centre, radius
    return None


def random_planar_domain(rng: np.random.Generator, holes: tuple[int, int] = (0, 3), margin: float = 0.04,
                         hole_radius: tuple[float, float] = (0.05, 0.12), attempts: int = 200,
                         outline: str = "any") -> PlanarDomain:
    """Draw a random :class:`PlanarDomain` in [0, 1]² (see the module docstring).

    ``outline`` is ``"polygon"``, ``"smooth"`` or ``"any"`` (either, with probability 1/2).

    The number of holes is drawn uniformly from ``holes[0] .. holes[1]``; each gets up to
    ``attempts`` random centres and radii, and a hole that finds no place is not added, so
    ``num_holes`` can be smaller than the number drawn (on these outlines this is rare).
    """
    if not (len(holes) == 2 and all(isinstance(h, int | np.integer) for h in holes) and 0 <= holes[0] <= holes[1]):
        raise GeounetError(f"holes must be a range (min, max) of non-negative integers, got {holes!r}")
    if not (0 < hole_radius[0] <= hole_radius[1] and margin > 0):
        raise GeounetError(f"need 0 < hole_radius[0] <= hole_radius[1] and margin > 0, got {hole_radius}, {margin}")
    if outline not in ("any", "polygon", "smooth"):
        raise GeounetError(f"outline must be 'any', 'polygon' or 'smooth', got {outline!r}")
    polygon = rng.random() < 0.5 if outline == "any" else outline == "polygon"
    outline = _star_polygon(rng, int(rng.integers(5, 13)), min_radius=0.5) if polygon else _smooth_outline(rng)
    aspect = np.exp(rng.uniform(-0.3, 0.3))
    outline = outline * np.array([aspect, 1 / aspect])
    outline = on_grid((outline - outline.min(axis=0)) / np.ptp(outline, axis=0).max())  # bounding box in [0, 1]²

    polygons, centres, radii = [], [], []
    for _ in range(int(rng.integers(holes[0], holes[1] + 1))):
        placed = _place_disc(rng, outline, centres, radii, hole_radius, margin, attempts)
        if placed is None:
            continue
        centre, radius = placed
        if rng.random() < 0.5:
            theta = 2 * np.pi * np.arange(16) / 16
            shape = np.stack([np.cos(theta), np.sin(theta)], axis=1)
        else:
            shape = _star_polygon(rng, int(rng.integers(5, 9)), min_radius=0.5)
        polygons.append(on_grid(centre + radius * shape[::-1]))  # clockwise
        centres.append(centre)
        radii.append(radius)
    hole_points = np.array(centres, dtype=np.float64).reshape(-1, 2)
    return PlanarDomain(outline=outline, holes=tuple(polygons), hole_points=hole_points)


def triangulate_domain(domain: PlanarDomain, max_area: float) -> tuple[np.ndarray, np.ndarray]:
    """Quality mesh of ``domain``: ``vertices [V, 2]`` float64, ``faces [F, 3]`` int64 (counter-clockwise).

    Triangle with switches ``p`` (planar straight-line graph), ``q30`` (no angle below 30°)
    and ``a`` (no triangle larger than ``max_area``); the mean face area is about
    ``MEAN_AREA_FRACTION * max_area``, so F ≈ area / (0.63 max_area).
    """
    if not max_area > 0:
        raise GeounetError(f"max_area must be positive, got {max_area}")
    loops = (domain.outline, *domain.holes)
    vertices = np.concatenate(loops)
    start = np.cumsum([0] + [len(loop) for loop in loops])[:-1]
    segments = np.concatenate([s + np.stack([np.arange(len(loop)), (np.arange(len(loop)) + 1) % len(loop)], 1)
                               for s, loop in zip(start, loops, strict=True)])
    geometry = {"vertices": vertices, "segments": segments}
    if domain.num_holes:
        geometry["holes"] = domain.hole_points
    mesh = triangle.triangulate(geometry, f"pq{MIN_ANGLE_DEGREES}a{max_area:.17g}Q")
    return np.asarray(mesh["vertices"], dtype=np.float64), np.asarray(mesh["triangles"], dtype=np.int64)
