"""Permutation equivariance on meshes: relabelling a mesh's vertices and faces relabels the
U-Net's output the same way, y(π x; π M) = π y(x; M).

Message passing sums over neighbours with edge features computed from geometry (positions,
areas), never from indices, and the mesh hierarchies derive their levels from the geometry
and the connectivity, so a relabelled mesh must give the relabelled answer up to float64
round-off (1e-10: sums over the same neighbours in another order). Finest-level nodes of the
two hierarchies are matched by their positions (face centroids).

Scope: subdivision hierarchies (levels from the coarse mesh by subdivision). Cluster
hierarchies are left out: their greedy matching visits faces in index order (seeded), so a
relabelled mesh can get other clusters, another hierarchy of the same kind. Eigenbasis
hierarchies are equivariant only up to the sign / rotation of eigenvectors in their coefficient
levels, not node for node.
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from geounet.geometry.mesh import Mesh
from geounet.hierarchy import SubdivisionHierarchy
from geounet.models import build_unet


def _relabelled(mesh: Mesh, seed: int) -> Mesh:
    """The same surface with vertices and faces in a random order and each face's vertex list
    rotated cyclically (orientation kept)."""
    rng = np.random.default_rng(seed)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    new_of_old = rng.permutation(len(vertices))
    moved = np.empty_like(vertices)
    moved[new_of_old] = vertices
    faces = new_of_old[faces][rng.permutation(len(faces))]
    shift = rng.integers(0, 3, len(faces))
    faces = np.stack([np.roll(face, s) for face, s in zip(faces, shift, strict=True)])
    return Mesh(moved, faces)


def _finest_positions(hierarchy) -> np.ndarray:
    return hierarchy.graph(hierarchy.finest_level).positions.numpy()


def test_subdivision_unet_is_permutation_equivariant():
    ico = trimesh.creation.icosahedron()
    mesh = Mesh(ico.vertices, ico.faces)
    original, relabelled = SubdivisionHierarchy(mesh, 3), SubdivisionHierarchy(_relabelled(mesh, 0), 3)
    distance, match = cKDTree(_finest_positions(original)).query(_finest_positions(relabelled))
    assert distance.max() < 1e-12 and len(np.unique(match)) == len(match)  # node k of relabelled = match[k]
    assert not np.array_equal(match, np.arange(len(match)))  # the relabelling did move nodes

    torch.manual_seed(0)
    model = build_unet(original, 2, 1, variant="residual", width=4).double()
    x = torch.randn(2, original.num_nodes(original.finest_level), 2, dtype=torch.float64)
    match = torch.from_numpy(match)
    with torch.no_grad():
        y, y_relabelled = model(x, original), model(x[:, match], relabelled)
    torch.testing.assert_close(y_relabelled, y[:, match], rtol=0, atol=1e-10)
