"""Hierarchies saved as plain data and loaded with torch.load(weights_only=True)."""

import numpy as np
import pytest
import torch

from geounet.data.mesh_dataset import Clusters, Eigenbases
from geounet.datagen.mesh_families import DarcyFamily
from geounet.geometry.mesh import Mesh
from geounet.hierarchy import (
    HealpixHaarHierarchy,
    HealpixSHHierarchy,
    SquareHaarHierarchy,
    TriangleHierarchy,
    batch_hierarchies,
    load_hierarchy,
    save_hierarchy,
)
from geounet.models import build_unet


def _mesh(mesh_id=0):
    data = DarcyFamily(num_meshes=3, faces=(150, 300)).sample(mesh_id)
    return Mesh(data["vertices"], data["faces"])


HIERARCHIES = {
    "clusters": lambda: Clusters(3).build(_mesh()),
    "eigenbases": lambda: Eigenbases((4, 16)).build(_mesh()),
    "healpix": lambda: HealpixHaarHierarchy(4, 3),
    "healpix_sh": lambda: HealpixSHHierarchy(4, 2),
    "square": lambda: SquareHaarHierarchy(8, 3),
    "triangle": lambda: TriangleHierarchy(2),
    "union": lambda: batch_hierarchies([Clusters(3).build(_mesh(0)), Clusters(3).build(_mesh(1))]),
}


@pytest.mark.parametrize("name", HIERARCHIES)
def test_a_saved_hierarchy_loads_with_weights_only_and_acts_the_same(name, tmp_path):
    hierarchy = HIERARCHIES[name]()
    path = save_hierarchy(hierarchy, tmp_path / "h.pt")
    payload = torch.load(path, weights_only=True)  # no pickled class: the safe loader reads it
    assert payload["kind"] == hierarchy.kind
    loaded = load_hierarchy(path)
    assert type(loaded) is type(hierarchy) and loaded.kind == hierarchy.kind
    assert loaded.num_levels == hierarchy.num_levels
    generator = torch.Generator().manual_seed(0)
    for level in range(hierarchy.num_levels):
        assert loaded.num_nodes(level) == hierarchy.num_nodes(level)
        torch.testing.assert_close(loaded.mass(level), hierarchy.mass(level), rtol=0, atol=0)
        graph, again = hierarchy.graph(level), loaded.graph(level)
        torch.testing.assert_close(again.edge_index, graph.edge_index, rtol=0, atol=0)
        torch.testing.assert_close(again.edge_attr, graph.edge_attr, rtol=0, atol=0)
        x = torch.randn(2, hierarchy.num_nodes(level), 3, dtype=torch.float64, generator=generator)
        if level > 0:
            torch.testing.assert_close(loaded.restrict(x, level), hierarchy.restrict(x, level), rtol=0, atol=0)
        if level < hierarchy.finest_level:
            torch.testing.assert_close(loaded.prolong(x, level), hierarchy.prolong(x, level), rtol=0, atol=0)
    torch.manual_seed(0)
    model = build_unet(hierarchy, 3, 1, width=4).double()
    x = torch.randn(1, hierarchy.num_nodes(hierarchy.finest_level), 3, dtype=torch.float64)
    torch.testing.assert_close(model(x, loaded), model(x, hierarchy), rtol=0, atol=0)


def test_the_mesh_and_its_arrays_come_back_exactly(tmp_path):
    hierarchy = Eigenbases((4, 16)).build(_mesh())
    loaded = load_hierarchy(save_hierarchy(hierarchy, tmp_path / "h.pt"))
    assert loaded.mesh.content_hash == hierarchy.mesh.content_hash
    np.testing.assert_array_equal(loaded.eigenvalues, hierarchy.eigenvalues)


def test_files_that_are_not_hierarchies_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="not a hierarchy file of save_hierarchy"):
        load_hierarchy(tmp_path / "model.pt")
    forged = {"format": "geounet-hierarchy", "version": 1, "kind": "x",
              "hierarchy": {"__object__": ["os:system", {"__dict__": []}]}}
    torch.save(forged, tmp_path / "forged.pt")
    with pytest.raises(ValueError, match="outside geounet; it is not loaded"):
        load_hierarchy(tmp_path / "forged.pt")
    with pytest.raises(ValueError, match="saves a Hierarchy"):
        save_hierarchy(_mesh(), tmp_path / "mesh.pt")
