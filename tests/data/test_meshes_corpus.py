"""A corpus of real-world mesh defects, each file written here by the project's own code,
each with its expected outcome: loads (with so many faces, boundary edges, non-manifold
edges and components), warns with a merge count, or raises a ValueError naming the file."""

from __future__ import annotations

import bz2
import tarfile
import warnings
import zipfile
from pathlib import Path

import meshio
import numpy as np
import pytest
import trimesh

from geounet.data.meshes import load_mesh
from geounet.geometry.mesh_repair import MeshRepairWarning
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy
from geounet.testing import check_hierarchy


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOUNET_CACHE", str(tmp_path / "cache"))


def _write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """OBJ with every coordinate to full precision (17 digits)."""
    lines = [f"v {x:.17g} {y:.17g} {z:.17g}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


def _sphere():
    return trimesh.creation.icosphere(2)  # 162 vertices, 320 faces


def _cad_part(path: Path) -> None:
    """A closed part exported face by face, each copy of a vertex off by ~1e-16."""
    box = trimesh.creation.box(extents=(3.0, 2.0, 1.0)).subdivide()
    corners = box.vertices[box.faces].reshape(-1, 3)
    corners = corners + 1e-16 * np.random.default_rng(0).standard_normal(corners.shape)
    _write_obj(path, corners, np.arange(len(corners)).reshape(-1, 3))


def _scaled_cad_part(path: Path) -> None:
    """The same at micrometre scale: welding must be relative to the size."""
    box = trimesh.creation.box(extents=(3e-6, 2e-6, 1e-6)).subdivide()
    corners = box.vertices[box.faces].reshape(-1, 3)
    corners = corners * (1 + 1e-15 * np.random.default_rng(1).standard_normal(corners.shape))
    _write_obj(path, corners, np.arange(len(corners)).reshape(-1, 3))


def _three_fins(path: Path) -> None:
    vertices = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 0.5], [-1, 0, 0.5], [0, 1, 0.5]])
    _write_obj(path, vertices, np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]]))


def _boxes_sharing_an_edge(path: Path) -> None:
    first, second = trimesh.creation.box(), trimesh.creation.box()
    second.apply_translation([1.0, 1.0, 0.0])
    trimesh.util.concatenate([first, second]).export(path)


def _sphere_with_a_fin(path: Path) -> None:
    """A scan-like defect: one triangle glued to a closed surface along an edge."""
    sphere = _sphere()
    a, b = sphere.edges_unique[0]
    tip = 1.5 * (sphere.vertices[a] + sphere.vertices[b])
    vertices = np.concatenate([sphere.vertices, tip[None]])
    _write_obj(path, vertices, np.concatenate([sphere.faces, [[a, b, len(sphere.vertices)]]]))


def _soup(path: Path) -> None:
    """30 separate triangles: nothing to weld."""
    rng = np.random.default_rng(2)
    corners = (rng.random((30, 1, 3)) * 10 + rng.random((30, 3, 3))).reshape(-1, 3)
    _write_obj(path, corners, np.arange(90).reshape(-1, 3))


def _unwelded_sphere(path: Path) -> None:
    sphere = _sphere()
    corners = sphere.vertices[sphere.faces].reshape(-1, 3)
    _write_obj(path, corners, np.arange(len(corners)).reshape(-1, 3))


def _archive(kind: str):
    def write(path: Path) -> None:
        inner = path.parent / "inner.obj"
        _sphere().export(inner)
        if kind == "zip":
            with zipfile.ZipFile(path, "w") as archive:
                archive.write(inner, "sphere.obj")
        elif kind == "bz2":  # one compressed file
            path.write_bytes(bz2.compress(inner.read_bytes()))
        else:  # a tar archive, compressed by "gz" or "bz2"
            with tarfile.open(path, f"w:{kind.removeprefix('tar.')}") as archive:
                archive.add(inner, "sphere.obj")

    return write


def _zip_of_two_spheres(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for shift in (0.0, 3.0):
            sphere = _sphere()
            sphere.apply_translation([shift, 0.0, 0.0])
            archive.writestr(f"sphere_{shift:g}.obj", sphere.export(file_type="obj"))


def _zip_without_a_mesh(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "no mesh in here")


def _truncated(suffix: str, keep: float):
    def write(path: Path) -> None:
        sphere = _sphere()
        whole = path.parent / f"whole{suffix}"
        options = {"file_format": "gmsh22", "binary": False} if suffix == ".msh" else {}
        meshio.write(whole, meshio.Mesh(sphere.vertices, [("triangle", sphere.faces)]), **options)
        data = whole.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return write


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 4)


# name: (writer, outcome). Outcomes: ("loads", faces, boundary edges, non-manifold edges,
# components), ("warns", message pattern, faces, boundary edges), ("raises", pattern).
CORPUS = {
    "cad_part.obj": (_cad_part, ("warns", r"merged 118 vertices into others closer than 1e-09", 48, 0)),
    "cad_part_micrometres.obj": (_scaled_cad_part, ("warns", "merged 118 vertices", 48, 0)),
    "unwelded_sphere.obj": (_unwelded_sphere, ("warns", "merged 798 vertices", 320, 0)),
    "three_fins.obj": (_three_fins, ("loads", 3, 6, 1, 1)),
    "boxes_sharing_an_edge.ply": (_boxes_sharing_an_edge, ("warns", "merged 2 vertices", 24, 0)),
    "sphere_with_a_fin.obj": (_sphere_with_a_fin, ("loads", 321, 2, 1, 1)),
    "soup.obj": (_soup, ("loads", 30, 90, 0, 30)),
    "sphere.zip": (_archive("zip"), ("loads", 320, 0, 0, 1)),
    "sphere.obj.bz2": (_archive("bz2"), ("loads", 320, 0, 0, 1)),
    "sphere.tar.gz": (_archive("tar.gz"), ("loads", 320, 0, 0, 1)),
    "sphere.tgz": (_archive("tar.gz"), ("loads", 320, 0, 0, 1)),
    "sphere.tar.bz2": (_archive("tar.bz2"), ("loads", 320, 0, 0, 1)),
    "two_spheres.zip": (_zip_of_two_spheres, ("loads", 640, 0, 0, 2)),
    "no_mesh.zip": (_zip_without_a_mesh, ("raises", "no_mesh.zip holds no triangle mesh")),
    "truncated.vtu": (_truncated(".vtu", 0.5), ("raises", "meshio cannot read .*truncated.vtu")),
    "truncated.vtk": (_truncated(".vtk", 0.5), ("raises", "meshio cannot read .*truncated.vtk")),
    "header_only.vtk": (_truncated(".vtk", 0.01), ("raises", "meshio cannot read .*header_only.vtk")),
    "truncated.msh": (_truncated(".msh", 0.5), ("raises", "meshio cannot read .*truncated.msh")),
    "garbage.stl": (_garbage, ("raises", "garbage.stl")),
    "garbage.vtu": (_garbage, ("raises", "meshio cannot read .*garbage.vtu")),
    "unknown.format123": (_garbage, ("raises", "unknown.format123")),
}


def _write(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    CORPUS[name][0](path)
    return path


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_outcome(tmp_path, name):
    path = _write(tmp_path, name)
    kind, *expected = CORPUS[name][1]
    if kind == "raises":
        with pytest.raises(ValueError, match=expected[0]):
            load_mesh(path)
        return
    if kind == "warns":
        pattern, faces, boundary = expected
        with pytest.warns(MeshRepairWarning, match=pattern):
            mesh = load_mesh(path)
    else:
        faces, boundary, nonmanifold, components = expected
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mesh = load_mesh(path)
        assert len(mesh.nonmanifold_edges) == nonmanifold
        assert len(np.unique(mesh.face_components)) == components
    assert mesh.num_faces == faces
    assert len(mesh.boundary_edges) == boundary


# trimesh alone does not know .tgz and opens .tar.bz2 as one bz2 file; load_mesh reads both
TRIMESH_READS = [n for n, (_, out) in CORPUS.items() if out[0] != "raises" and not n.endswith(("tgz", "tar.bz2"))]
OPEN = {"three_fins.obj", "boxes_sharing_an_edge.ply", "sphere_with_a_fin.obj", "soup.obj"}  # not watertight


@pytest.mark.parametrize("name", TRIMESH_READS)
def test_what_trimesh_calls_watertight_has_no_boundary(tmp_path, name):
    path = _write(tmp_path, name)
    theirs = trimesh.load(path, force="mesh")  # trimesh's own processing: merge_vertices etc.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeshRepairWarning)
        ours = load_mesh(path)
    assert theirs.is_watertight == (name not in OPEN)
    if theirs.is_watertight:
        assert len(ours.boundary_edges) == 0 and ours.is_manifold
        np.testing.assert_allclose(ours.area, theirs.area, rtol=1e-12)
    else:
        assert len(ours.boundary_edges) > 0 or not ours.is_manifold


def test_non_manifold_meshes_build_clusters_and_spectral_hierarchies(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeshRepairWarning)
        mesh = load_mesh(_write(tmp_path, "sphere_with_a_fin.obj"))
    clusters = ClusterHierarchy(mesh, 3)
    assert clusters.num_nodes(2) == mesh.num_faces and clusters.num_nodes(0) < mesh.num_faces / 8
    spectral = MeshSpectralHierarchy(mesh, [1, 4, 9])  # "auto": the robust Laplacian
    for hierarchy in (clusters, spectral):
        check_hierarchy(hierarchy)
    values = spectral.eigenvalues
    assert values[0] == pytest.approx(0, abs=1e-10) and (np.diff(values) >= -1e-12).all()


def test_a_triangle_soup_stops_the_spectral_builder_with_advice(tmp_path):
    soup = load_mesh(_write(tmp_path, "soup.obj"))
    with pytest.raises(ValueError, match=r"30 connected components.*weld"):
        MeshSpectralHierarchy(soup, [4, 16])
    with pytest.warns(MeshRepairWarning, match="merged 798"):
        welded = load_mesh(_write(tmp_path, "unwelded_sphere.obj"))
    assert MeshSpectralHierarchy(welded, [1, 4, 9]).band_limits == [1, 4, 9]
