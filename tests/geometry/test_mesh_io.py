from pathlib import Path

import meshio
import numpy as np
import pytest

from geounet.data.meshes import load_mesh
from geounet.geometry.mesh_repair import MeshRepairWarning

ASSETS = Path(__file__).resolve().parents[2] / "meshes"
EXPECTED = {  # name: (faces, boundary edges, area or None)
    "icosphere_2.obj": (320, 0, None),
    "torus.ply": (1536, 0, None),
    "capsule.stl": (1152, 0, None),
    "annulus.vtu": (1536, 128, None),
    "plate_with_holes.msh": (1784, None, None),
    "l_shape.off": (384, 64, 0.75),
    "perturbed_sphere_3.obj": (1280, 0, None),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_assets_load_cleanly(name, recwarn):
    mesh = load_mesh(ASSETS / name)
    faces, boundary, area = EXPECTED[name]
    assert mesh.num_faces == faces
    if boundary is not None:
        assert len(mesh.boundary_edges) == boundary
    if area is not None:
        np.testing.assert_allclose(mesh.area, area)
    assert not [w for w in recwarn if issubclass(w.category, MeshRepairWarning)]


def test_quads_and_duplicates_from_meshio_are_repaired_with_a_warning(tmp_path):
    points = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 0.0]])
    path = tmp_path / "quad.vtu"
    meshio.write(path, meshio.Mesh(points, [("quad", np.array([[0, 1, 2, 3]])), ("triangle", np.array([[1, 4, 2]]))]))
    with pytest.warns(MeshRepairWarning, match="fan-triangulated 1 faces with 4 corners"):
        mesh = load_mesh(path)
    assert mesh.num_faces == 2
    with pytest.raises(ValueError, match=r"\[F, 3\] \(triangles\)"):
        load_mesh(path, repair=False)


def test_volume_meshes_and_missing_files_are_rejected(tmp_path):
    path = tmp_path / "tet.vtu"
    meshio.write(path, meshio.Mesh(np.eye(4, 3), [("tetra", np.array([[0, 1, 2, 3]]))]))
    with pytest.raises(ValueError, match="tetra"):
        load_mesh(path)
    with pytest.raises(FileNotFoundError):
        load_mesh(tmp_path / "nothing.obj")
