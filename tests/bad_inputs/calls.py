"""Library calls of the bad-input corpus (cases.toml entries with ``call = "<name>"``): each takes a
scratch folder and must raise a one-line GeounetError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import trimesh
from trimesh.exchange.binvox import export_binvox

from geounet.data.meshes import load_mesh
from geounet.experiment.diffusion import read_config
from geounet.geometry.healpix import to_nest
from geounet.geometry.mesh import Mesh
from geounet.hierarchy import ClusterHierarchy, TriangleHierarchy
from geounet.models import build_unet


def to_nest_numpy(folder: Path) -> None:
    to_nest(np.zeros(12 * 4**2), "ring")


def binvox_file(folder: Path) -> None:
    path = folder / "box.binvox"
    path.write_bytes(export_binvox(trimesh.creation.box().voxelized(0.25)))
    load_mesh(path)


def cluster_model_on_2d_points(folder: Path) -> None:
    sphere = trimesh.creation.icosphere(2)
    on_3d = ClusterHierarchy(Mesh(sphere.vertices, sphere.faces), num_levels=2)
    grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0), indexing="ij"), axis=-1).reshape(-1, 2)  # [100, 2]
    corners = (np.arange(9)[:, None] * 10 + np.arange(9)[None]).reshape(-1)
    faces = np.concatenate([np.stack([corners, corners + 10, corners + 1], 1),
                            np.stack([corners + 1, corners + 10, corners + 11], 1)])
    on_2d = ClusterHierarchy(Mesh(grid, faces), num_levels=2)
    model = build_unet(on_3d, 1, 1, width=4)
    model(torch.randn(1, on_2d.num_nodes(on_2d.finest_level), 1), on_2d)


def unet_output_overflow(folder: Path) -> None:
    h = TriangleHierarchy(num_levels=3)
    model = build_unet(h, 2, 1, width=4)
    model(1e30 * torch.randn(2, h.num_nodes(h.finest_level), 2, generator=torch.Generator().manual_seed(0)), h)


def ema_sigma_rel_too_wide(folder: Path) -> None:
    read_config({"task": {"name": "triangle_poisson"}, "diffusion": {"ema": "power", "ema_sigma_rel": 0.5}})


CALLS = {f.__name__: f for f in (to_nest_numpy, binvox_file, cluster_model_on_2d_points, unet_output_overflow,
                                  ema_sigma_rel_too_wide)}
