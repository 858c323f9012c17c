"""Hierarchies are data: a moved copy never changes the original, and memo entries follow the dtype."""

import pickle

import pytest
import torch
import trimesh

from geounet.geometry.mesh import Mesh
from geounet.hierarchy import (
    ClusterHierarchy,
    HealpixHaarHierarchy,
    HealpixSHHierarchy,
    MeshSpectralHierarchy,
    SquareHaarHierarchy,
    TriangleHierarchy,
    batch_hierarchies,
    finest_levels,
)
from geounet.models import build_unet
from geounet.testing import check_data


def _mesh(subdivisions: int) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    return Mesh(ico.vertices, ico.faces)


CASES = {
    "healpix_sh": lambda: HealpixSHHierarchy(4, 2),
    "healpix_sh_spectral": lambda: HealpixSHHierarchy(4, 3, projection="spectral"),
    "healpix_haar": lambda: HealpixHaarHierarchy(4, 3),
    "square": lambda: SquareHaarHierarchy(8, 3),
    "triangle": lambda: TriangleHierarchy(3),
    "clusters": lambda: ClusterHierarchy(_mesh(1), 3),
    "mesh_spectral": lambda: MeshSpectralHierarchy(_mesh(1), [4, 9, 16], use_cache=False),
    "finest_of_healpix_sh": lambda: finest_levels(HealpixSHHierarchy(8, 3), 2),
    "batched_clusters": lambda: batch_hierarchies([ClusterHierarchy(_mesh(1), 2), ClusterHierarchy(_mesh(2), 2)]),
}


def _use(hierarchy, dtype: torch.dtype) -> None:
    """Run a U-Net and every restrict / prolong on ``hierarchy`` (features in ``dtype``)."""
    torch.manual_seed(0)
    model = build_unet(hierarchy, 2, 1, width=2, variant="residual").to(dtype)
    model(torch.randn(1, hierarchy.num_nodes(hierarchy.finest_level), 2, dtype=dtype), hierarchy)
    for level in range(1, hierarchy.num_levels):
        hierarchy.restrict(torch.randn(1, hierarchy.num_nodes(level), 2, dtype=dtype), level)
        hierarchy.prolong(torch.randn(1, hierarchy.num_nodes(level - 1), 2, dtype=dtype), level - 1)


@pytest.mark.parametrize("case", CASES)
def test_using_a_float32_copy_leaves_the_original_pickle_unchanged(case):
    hierarchy = CASES[case]()
    before = pickle.dumps(hierarchy.materialize())
    single = hierarchy.to(dtype=torch.float32)
    _use(single, torch.float32)
    assert pickle.dumps(hierarchy) == before, "using the float32 copy changed the original"
    check_data(hierarchy)


@pytest.mark.cuda
@pytest.mark.parametrize("case", ["healpix_sh", "clusters", "batched_clusters"])
def test_using_a_cuda_copy_leaves_the_original_on_the_cpu(case):
    hierarchy = CASES[case]()
    before = pickle.dumps(hierarchy.materialize())
    _use(hierarchy.to("cuda"), torch.float64)
    _use(hierarchy.to("cuda", torch.float32), torch.float32)
    assert pickle.dumps(hierarchy) == before, "using the CUDA copy changed the original"


def test_memo_entries_do_not_outlive_a_dtype_change():
    hierarchy = SquareHaarHierarchy(4, 2)
    builds = []

    def build():
        builds.append(hierarchy.dtype)
        return torch.ones(3, dtype=torch.float64)

    key = ("ones", torch.float64)
    assert hierarchy.cached(key, 0, build).dtype == torch.float64
    single = hierarchy.to(dtype=torch.float32)
    assert single.cached(key, 0, build).dtype == torch.float64, "a float64 key served a float32 tensor"
    assert len(builds) == 2, "the float32 copy reused the float64 copy's memo entry"
    moved = hierarchy.to("meta")  # a device move keeps the dtype, and so the memo (moved)
    assert moved.cached(key, 0, build).device.type == "meta" and len(builds) == 2


def test_memo_of_a_model_run_is_rebuilt_in_the_new_dtype():
    """A float64 forward memoises prepared graphs keyed by float64; the float32 copy must not inherit them."""
    hierarchy = HealpixHaarHierarchy(4, 2)
    _use(hierarchy, torch.float64)
    single = hierarchy.to(dtype=torch.float32)
    assert not single.__dict__.get("_memo"), "memo entries crossed a dtype change"
    _use(single, torch.float32)
    memo = single.__dict__["_memo"]
    floating = [v for value in memo.values() for v in _tensors(value) if v.is_floating_point()]
    assert floating and all(v.dtype == torch.float32 for v in floating)


def _tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for v in vars(value).values() for t in _tensors(v)] if hasattr(value, "__dict__") else []
