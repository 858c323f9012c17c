"""The triangle Poisson task on the paper's Haar triangle hierarchy (cell averages)."""

import numpy as np
import pytest
import torch

from geounet.datagen.fem import load_or_generate_triangle_poisson, reference_triangle_mesh
from geounet.hierarchy import TriangleHierarchy
from geounet.tasks.triangle_poisson import Config, fem_face_of_cell, haar_hierarchy, prepare


def tiny(tmp_path, **overrides) -> Config:
    values = dict(mesh_level=3, hierarchy="haar", constrained=False, num_train=4, num_test=2,
                  cache_dir=str(tmp_path / "data"))
    return Config(**{**values, **overrides})


@pytest.mark.parametrize("level", [2, 4])
def test_fem_faces_are_the_subdivision_cells(level):
    hierarchy = TriangleHierarchy(num_levels=2, coarsest_depth=level - 1)
    match = fem_face_of_cell(hierarchy, level)
    assert sorted(match) == list(range(4**level))
    # cell averages of a linear function are its values at the cell centroids
    vertices, faces = reference_triangle_mesh(level)
    linear = vertices @ np.array([1.0, -2.0]) + 0.5  # [V]
    centroids = hierarchy.mesh.vertices[hierarchy.mesh.faces][..., :2].mean(axis=1)  # [F, 2], address order
    np.testing.assert_allclose(linear[faces[match]].mean(axis=1), centroids @ np.array([1.0, -2.0]) + 0.5,
                               atol=1e-12)


def test_haar_data_are_cell_averages_that_keep_the_integral(tmp_path):
    config = tiny(tmp_path)
    task = prepare(config, num_levels=3)
    hierarchy = task.structure.hierarchy
    assert isinstance(hierarchy, TriangleHierarchy) and hierarchy.num_nodes(2) == 4**3
    raw = load_or_generate_triangle_poisson(config.cache_dir, 4, config.seed, level=3,
                                            length_scale=config.length_scale)
    vertices, faces = reference_triangle_mesh(3)
    area = 0.5 / 4**3
    # ∫ u of the P1 interpolant = Σ_faces |T| mean(u at its 3 vertices), so the averages keep it
    exact = area * raw["u_vertex"][:, faces].mean(axis=-1).sum(axis=-1)  # [S]
    targets = task.train.targets[..., 0].double()  # [S, F] / u_scale
    mass = hierarchy.mass(2)
    ratio = (targets @ mass) / torch.from_numpy(exact)
    torch.testing.assert_close(ratio, ratio[0].expand_as(ratio), rtol=1e-5, atol=0)  # one common scale
    # restricting the finest averages gives the averages over the coarser cells
    coarse = hierarchy.restrict(targets[..., None], 2)[..., 0]
    torch.testing.assert_close(coarse @ hierarchy.mass(1), targets @ mass, rtol=1e-6, atol=1e-9)


def test_haar_cannot_encode_the_boundary_condition(tmp_path):
    with pytest.raises(ValueError, match="task.constrained = true needs task.hierarchy = 'spectral'"):
        tiny(tmp_path, constrained=True).validate()
    with pytest.raises(ValueError, match="task.hierarchy must be one of"):
        tiny(tmp_path, hierarchy="wavelet").validate()
    with pytest.raises(ValueError, match="needs task.mesh_level >= 4"):
        haar_hierarchy(tiny(tmp_path), num_levels=5)


@pytest.mark.parametrize("architecture", ["unet", "cheb_unet", "flat_resnet", "graph_unet"])
def test_every_model_is_wrapped_by_the_boundary_constraint(architecture):
    from geounet.experiment.config import load_config
    from geounet.experiment.runner import build_model, parameter_counts
    from geounet.tasks import task_structure

    cfg = load_config(None, ["task.name='triangle_poisson'", "task.mesh_level=4", "task.band_limits=[4, 12, 24]",
                             f"model.architecture='{architecture}'", "model.width=4"])
    structure = task_structure(cfg.task, cfg.model.num_levels)
    model = build_model(cfg, structure)
    hierarchy = structure.hierarchy
    out = model(torch.randn(2, hierarchy.num_nodes(hierarchy.finest_level), 1), hierarchy)  # [2, V, 1]
    on_boundary = hierarchy.boundary_mask(hierarchy.finest_level)
    # exact zeros: the constraint multiplies the boundary nodes by 0
    assert on_boundary.sum() == 3 * 2**4 and out[:, on_boundary].abs().max() == 0
    assert out[:, ~on_boundary].abs().max() > 0
    assert parameter_counts(model)["total"] == sum(p.numel() for p in model.parameters())
