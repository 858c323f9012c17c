"""Procedural part shapes: closed genus-0 meshes, their part labels, pose-invariant inputs, split by shape."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from geounet.datagen.part_shapes import PartShapeFamily, pose_invariant_features
from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh


@pytest.fixture(scope="module")
def shapes():
    family = PartShapeFamily(seed=0, num_meshes=12)
    return family, [family.sample(i) for i in range(6)]


def test_shapes_are_closed_genus_zero_manifolds_with_every_part(shapes):
    _, samples = shapes
    for data in samples:
        mesh = Mesh(data["vertices"], data["faces"])
        assert mesh.is_manifold and len(mesh.boundary_edges) == 0
        assert mesh.num_vertices - len(mesh.edges) + mesh.num_faces == 2  # Euler characteristic of a sphere
        assert set(np.unique(data["labels_face"])) == {0, 1, 2}


def test_parts_protrude_legs_furthest(shapes):
    """The body lies innermost on average; the face furthest from the centre is a leg's (the longest parts)."""
    _, samples = shapes
    for data in samples:
        distance, labels = data["inputs_face"][:, 0], data["labels_face"]
        body, leg, head = (distance[labels == c].mean() for c in range(3))
        assert body < min(leg, head)
        assert labels[distance.argmax()] == 1


def test_inputs_do_not_depend_on_the_pose(shapes):
    _, samples = shapes
    data = samples[0]
    moved = Rotation.from_euler("xyz", [0.3, -1.1, 2.0]).apply(data["vertices"]) * 1.7 + np.array([1.0, -2, 3])
    assert np.allclose(pose_invariant_features(moved, data["faces"]), data["inputs_face"], atol=1e-10)


def test_shapes_are_deterministic_and_split_by_shape(shapes):
    family, samples = shapes
    again = family.sample(3)
    assert np.array_equal(again["vertices"], samples[3]["vertices"])
    assert not np.array_equal(family.sample(4)["labels_face"], samples[3]["labels_face"])
    train, test = family.split()
    assert not set(train) & set(test) and len(train) + len(test) == 12
    with pytest.raises(GeounetError, match="subdivisions must lie in"):
        PartShapeFamily(subdivisions=0)
