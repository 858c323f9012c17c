"""Coherent-vortex masks of shallow-water states by the Okubo-Weiss criterion.

The Okubo-Weiss parameter of a horizontal flow (u east, v north) is

    W = s_n² + s_s² - ω²,   s_n = ∂_x u - ∂_y v,  s_s = ∂_x v + ∂_y u,  ω = ∂_x v - ∂_y u,

strain squared minus vorticity squared: W < 0 where rotation dominates strain (vortex
cores), W > 0 in the strain-dominated flow between them. On the sphere of radius a the
derivatives are the covariant ones in the local east / north frame,

    ∂_x u = (∂_λ u) / (a cos φ) - v tan φ / a,   ∂_x v = (∂_λ v) / (a cos φ) + u tan φ / a,
    ∂_y u = (∂_φ u) / a,                          ∂_y v = (∂_φ v) / a,

(so that ∂_x u + ∂_y v and ∂_x v - ∂_y u are the spherical divergence and vorticity),
taken by centred finite differences on the solver's equiangular lat-lon grid (periodic
in longitude, second order in latitude). The two pole rows, where 1 / cos φ is singular,
get W = 0 (no event).

Labels on HEALPix (W and the solver's spectral vorticity ζ regridded there)::

    vortex    W < -k σ_W,       σ_W the standard deviation of W over the sphere (per map;
                                HEALPix pixels have equal areas),
    class 1   cyclonic:         vortex and ζ sin φ > 0 (rotating with the planet),
    class 2   anticyclonic:     vortex and ζ sin φ < 0,
    class 0   background:       anything else, and every connected region (8-neighbour
                                HEALPix graph, one class) of fewer than ``min_pixels`` pixels.

Labels therefore depend on second derivatives of the flow, which a model that sees only the
height field must infer from its neighbourhood (in geostrophic balance, ζ ≈ g ∇²h / f):
no threshold of h at a pixel recovers them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from geounet.errors import GeounetError
from geounet.geometry.healpix import neighbour_table

#: label of each class
CLASSES = ("background", "cyclonic", "anticyclonic")


def velocity_gradient(u: np.ndarray, v: np.ndarray, lat: np.ndarray, lon: np.ndarray, radius: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(∂_x u, ∂_y u, ∂_x v, ∂_y v)``, each ``[..., H, W]`` (s⁻¹), of winds ``u, v [..., H, W]``
    (m s⁻¹) on a global lat-lon grid (``lat`` degrees, any monotonic order, with or without the
    poles; ``lon`` equally spaced degrees covering the circle) of a sphere of ``radius`` metres
    (module docstring; zero on pole rows)."""
    phi = np.radians(np.asarray(lat, dtype=np.float64))  # [H]
    spacing = np.radians(360.0 / len(lon))
    at_pole = np.isclose(np.abs(phi), np.pi / 2)  # [H]
    cos = np.where(at_pole, 1.0, np.cos(phi))[:, None]  # [H, 1]
    tan = np.where(at_pole, 0.0, np.tan(phi))[:, None]

    def d_lambda(f: np.ndarray) -> np.ndarray:
        return (np.roll(f, -1, axis=-1) - np.roll(f, 1, axis=-1)) / (2 * spacing)

    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    gradient = (d_lambda(u) / (radius * cos) - v * tan / radius, np.gradient(u, phi, axis=-2) / radius,
                d_lambda(v) / (radius * cos) + u * tan / radius, np.gradient(v, phi, axis=-2) / radius)
    for part in gradient:
        part[..., at_pole, :] = 0.0
    return gradient


def okubo_weiss(u: np.ndarray, v: np.ndarray, lat: np.ndarray, lon: np.ndarray, radius: float) -> np.ndarray:
    """W ``[..., H, W]`` (s⁻²) of winds ``u, v [..., H, W]`` (:func:`velocity_gradient`'s grid)."""
    ux, uy, vx, vy = velocity_gradient(u, v, lat, lon, radius)
    return (ux - vy) ** 2 + (vx + uy) ** 2 - (vx - uy) ** 2


def vortex_core(w: np.ndarray, threshold: float) -> np.ndarray:
    """``[..., N]`` bool: W < -threshold σ_W, σ_W per map over its pixels (equal areas)."""
    return w < -threshold * w.std(axis=-1, keepdims=True)


def vortex_labels(w: np.ndarray, vorticity: np.ndarray, sin_lat: np.ndarray, threshold: float,
                  min_pixels: int) -> np.ndarray:
    """Class labels ``[S, N]`` int64 (:data:`CLASSES`) of HEALPix NEST maps ``w, vorticity [S, N]``
    with pixel-centre ``sin_lat [N]`` (module docstring)."""
    if threshold <= 0 or min_pixels < 1:
        raise GeounetError(f"the vortex threshold must be positive and min_pixels >= 1, got {threshold}, "
                           f"{min_pixels}")
    rotation = np.sign(vorticity * sin_lat)  # [S, N]: +1 cyclonic, -1 anticyclonic
    labels = np.where(vortex_core(w, threshold), np.where(rotation > 0, 1, np.where(rotation < 0, 2, 0)), 0)
    neighbours = neighbour_table(int(round(np.sqrt(w.shape[-1] / 12)))).numpy()  # [N, 8], -1 where absent
    return np.stack([_without_small_regions(map_labels, neighbours, min_pixels) for map_labels in labels])


def _without_small_regions(labels: np.ndarray, neighbours: np.ndarray, min_pixels: int) -> np.ndarray:
    """``labels [N]`` with every same-class connected region of fewer than ``min_pixels`` pixels set to 0."""
    source = np.repeat(np.arange(len(labels)), neighbours.shape[1])
    target = neighbours.reshape(-1)
    keep = (target >= 0) & (labels[source] > 0)
    keep[keep] &= labels[source[keep]] == labels[target[keep]]
    graph = sp.coo_matrix((np.ones(keep.sum()), (source[keep], target[keep])), shape=(len(labels),) * 2)
    _, region = connected_components(graph, directed=False)
    sizes = np.bincount(region)
    return np.where(sizes[region] >= min_pixels, labels, 0)
