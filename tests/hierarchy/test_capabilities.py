"""Hierarchies declare their kind and capabilities; nothing outside geounet/hierarchy/ tests their classes."""

import re
from pathlib import Path

import pytest
import torch
import trimesh

import geounet
from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.hierarchy import (
    ClusterHierarchy,
    HealpixHaarHierarchy,
    HealpixSHHierarchy,
    Hierarchy,
    SquareHaarHierarchy,
    TriangleHierarchy,
    batch_hierarchies,
    finest_levels,
)
from geounet.models import build_unet
from geounet.models.sfno_healpix import SFNOHealpix

PACKAGE = Path(geounet.__file__).parent


def _mesh(subdivisions: int) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    return Mesh(ico.vertices, ico.faces)


def _hierarchy_classes() -> set[str]:
    """Names of every concrete and abstract hierarchy class (the interface ``Hierarchy`` itself
    excepted: checking that an argument is a Hierarchy at all is input validation)."""
    found, todo = set(), [Hierarchy]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("geounet.") and sub.__name__ not in found:
                found.add(sub.__name__)
                todo.append(sub)
    return found


def _class_tests(source: str, names: set[str]) -> list[str]:
    """Lines of ``source`` that test an object's class against a hierarchy class: isinstance /
    issubclass with one, identity or equality with one, ``type(x)`` compared or used to reach
    a method, or a hierarchy class's method taken off the class."""
    alternatives = "|".join(sorted(names))
    patterns = [
        rf"\b(?:isinstance|issubclass)\([^)]*\b(?:{alternatives})\b",
        rf"\b(?:is|is not|==|!=)\s+(?:{alternatives})\b",
        rf"\b(?:{alternatives})\._[A-Za-z]\w*",
        r"\btype\([^()]*\)\s*(?:is|==|!=|in)\b",
        r"\btype\([^()]*\)\._[A-Za-z]\w*",
        r"__class__\s*(?:is|==|!=|in)\b",
    ]
    return [line.strip() for line in source.splitlines() if any(re.search(p, line) for p in patterns)]


def test_the_scan_recognises_class_tests():
    names = _hierarchy_classes()
    assert {"HealpixHaarHierarchy", "SquareHaarHierarchy", "FinestLevels", "BatchedHierarchy"} <= names
    caught = [
        "    while isinstance(hierarchy, FinestLevels):",
        "    return isinstance(hierarchy, (HealpixHaarHierarchy, HealpixSHHierarchy))",
        "    prolong = type(hierarchy)._prolong",
        "    if prolong is SquareHaarHierarchy._prolong:",
        "    if type(hierarchy) is HealpixLevels:",
    ]
    assert all(_class_tests(line, names) for line in caught)
    allowed = ["    if not isinstance(hierarchy, Hierarchy):", "    kind = hierarchy.kind",
               "    hint = type(x).__module__ == 'numpy'", "    f'got {type(value).__name__}'"]
    assert not any(_class_tests(line, names) for line in allowed)


def test_no_class_tests_on_hierarchies_outside_the_hierarchy_package():
    names = _hierarchy_classes()
    offences = [f"{path.relative_to(PACKAGE.parent)}: {line}"
                for path in sorted(PACKAGE.rglob("*.py")) if PACKAGE / "hierarchy" not in path.parents
                for line in _class_tests(path.read_text(), names)]
    assert not offences, "ask the hierarchy for a capability instead of testing its class:\n" + "\n".join(offences)


class MyHealpix(HealpixHaarHierarchy):
    """A user subclass: the same spaces, another class name."""


def test_a_subclass_keeps_its_parents_kind_and_the_model_accepts_it():
    assert HealpixHaarHierarchy.kind == "HealpixHaarHierarchy"  # the string checkpoints record
    parent, child = HealpixHaarHierarchy(4, 2), MyHealpix(4, 2)
    assert child.kind == parent.kind
    torch.manual_seed(0)
    model = build_unet(parent, 2, 1, width=2).double()
    x = torch.randn(1, parent.num_nodes(1), 2, dtype=torch.float64)
    assert torch.equal(model(x, child), model(x, parent))
    assert build_unet(child, 2, 1, width=2).kind == parent.kind


def test_declared_kinds_are_the_former_class_names():
    """Checkpoints record kinds; they keep the values they had when kind was the class name."""
    assert [h.kind for h in (HealpixSHHierarchy(2, 2), SquareHaarHierarchy(4, 2), TriangleHierarchy(2),
                             ClusterHierarchy(_mesh(1), 2))] == \
        ["HealpixSHHierarchy", "SquareHaarHierarchy", "FaceCellHierarchy", "FaceCellHierarchy"]


def test_a_hierarchy_without_a_kind_cannot_be_built():
    class Kindless(Hierarchy):
        num_levels = 1

        def num_nodes(self, level):
            return 1

        def mass(self, level):
            return torch.ones(1)

        def graph(self, level):
            raise NotImplementedError

        def _restrict(self, x, level):
            return x

        def _prolong(self, x, level):
            return x

    with pytest.raises(TypeError, match="kind"):
        Kindless()


def test_space_dimensions():
    sh = HealpixSHHierarchy(8, 3)  # nside 2, 4, 8 with lmax 4, 8, 16
    assert [sh.space_dimension(level) for level in range(3)] == [25, 81, 768]
    assert [finest_levels(sh, 2).space_dimension(level) for level in range(2)] == [81, 768]
    union = batch_hierarchies([SquareHaarHierarchy(4, 2), SquareHaarHierarchy(8, 2)])
    assert [union.space_dimension(level) for level in range(2)] == [4 + 16, 16 + 64]


def test_grid_capabilities_follow_finest_levels_views():
    healpix = finest_levels(HealpixHaarHierarchy(8, 4), 2)
    assert healpix.healpix_nside(0) == 4 and healpix.image_shape(0) is None
    assert healpix.prolong_layout(0) == ((192, 1), (192, 4))
    finest = HealpixHaarHierarchy(8, 1).node_symmetries()["rotate_90"]
    assert torch.equal(healpix.node_symmetries()["rotate_90"], finest)
    square = finest_levels(SquareHaarHierarchy(16, 4), 2)
    assert square.image_shape(1) == (16, 16) and square.healpix_nside(1) is None
    assert square.prolong_layout(0) == ((8, 1, 8, 1), (8, 2, 8, 2))
    mesh = ClusterHierarchy(_mesh(1), 2)
    assert (mesh.healpix_nside(1), mesh.image_shape(1), mesh.prolong_layout(0), mesh.node_symmetries()) == \
        (None, None, None, {})
    assert HealpixSHHierarchy(4, 2).prolong_layout(0) is None  # band-limited interpolation is no broadcast


def test_sfno_asks_for_a_healpix_grid():
    assert SFNOHealpix(HealpixSHHierarchy(4, 2), 1, 1, width=4, num_layers=1).nside == 4
    with pytest.raises(GeounetError, match="needs a HEALPix hierarchy .* got a SquareHaarHierarchy"):
        SFNOHealpix(SquareHaarHierarchy(8, 2), 1, 1)
