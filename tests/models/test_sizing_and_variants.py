import pytest
import torch

from geounet.hierarchy import SquareHaarHierarchy
from geounet.hierarchy.finest import FinestLevels
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.models.sizing import count_parameters, size_to_parameters
from geounet.models.unet import build_unet
from geounet.nn.message_passing import KernelConv, prepared_graph
from geounet.testing import check_hierarchy


def test_finest_levels_is_a_valid_hierarchy_delegating_to_its_base():
    base = HealpixHaarHierarchy(8, 4)
    view = FinestLevels(base, 2)
    check_hierarchy(view)
    assert [view.num_nodes(i) for i in range(2)] == [base.num_nodes(2), base.num_nodes(3)]
    x = torch.randn(1, base.num_nodes(3), 2, dtype=torch.float64)
    torch.testing.assert_close(view.restrict(x, 1), base.restrict(x, 3))
    with pytest.raises(ValueError, match="depth must be an int in \\[1, 4\\]"):
        FinestLevels(base, 5)


@pytest.mark.parametrize("variant", ["multiresnet", "residual", "multiresnet_matched"])
def test_variants_on_square_and_healpix(variant):
    torch.manual_seed(0)
    for hierarchy in (SquareHaarHierarchy(16, 3, periodic=True), HealpixHaarHierarchy(4, 3)):
        model = build_unet(hierarchy, 2, 3, variant=variant, width=8, depth=3)
        n = hierarchy.num_nodes(hierarchy.finest_level)
        out = model(torch.randn(2, n, 2), hierarchy)
        assert out.shape == (2, n, 3)
        counts = model.parameter_counts()
        assert (counts["encoder"] == 0) == (variant != "residual")
        assert counts["total"] == count_parameters(model)


def test_matched_variant_is_closer_to_the_residual_parameter_count():
    h = HealpixHaarHierarchy(8, 4)
    total = {v: build_unet(h, 1, 1, variant=v, width=16).parameter_counts()["total"]
             for v in ("multiresnet", "residual", "multiresnet_matched")}
    assert abs(total["multiresnet_matched"] - total["residual"]) < abs(total["multiresnet"] - total["residual"])


def test_depth_uses_the_finest_levels_and_backend_is_honoured():
    h = SquareHaarHierarchy(16, 5)
    model = build_unet(h, 1, 1, width=4, depth=2, backend="pyg")
    assert model.num_levels == 2
    convs = [m for m in model.modules() if isinstance(m, KernelConv)]
    assert {m.backend for m in convs} == {"pyg"} and {m.level for m in convs} == {0, 1}
    model(torch.randn(1, 256, 1), h)  # the two finest levels of h: 64 and 256 nodes
    assert prepared_graph(FinestLevels(h, 2), 0, None, "pyg", torch.float32).num_nodes == 64
    assert prepared_graph(h, 3, None, "pyg", torch.float32).neighbours is None  # memoised at h's level 3


def test_size_to_parameters_picks_the_nearest_width():
    h = SquareHaarHierarchy(16, 3)
    width, model = size_to_parameters(lambda w: build_unet(h, 1, 1, width=w), 20_000)
    count = count_parameters(model)
    neighbours = [count_parameters(build_unet(h, 1, 1, width=w)) for w in (width - 1, width + 1)]
    assert all(abs(count - 20_000) <= abs(c - 20_000) for c in neighbours)
    with pytest.raises(ValueError, match="below the target"):
        size_to_parameters(lambda w: torch.nn.Linear(w, 1), 10_000, widths=range(1, 10))


@pytest.mark.parametrize("target", [1, 2, 5_000, 10_100, 1_000_000])
def test_size_to_parameters_never_builds_a_model_far_wider_than_the_answer(target):
    """A square layer (w² + w parameters) sized to ``target``: the same width as the exhaustive
    nearest-count search, and no width above twice the answer is ever built (the widest
    default, 1024, would be for a convolutional U-Net a model of gigabytes)."""
    built = []

    def build(width):
        built.append(width)
        return torch.nn.Linear(width, width)

    width, _ = size_to_parameters(build, target)
    exhaustive = min(range(1, 1025), key=lambda w: (abs(w * w + w - target), w))
    assert width == exhaustive
    assert max(built) <= 2 * width


def _hierarchies():
    """One small hierarchy per available domain."""
    import trimesh

    from geounet.geometry.mesh import Mesh
    from geounet.hierarchy.healpix_sh import HealpixSHHierarchy
    from geounet.hierarchy.mesh_clusters import ClusterHierarchy
    from geounet.hierarchy.triangle import TriangleHierarchy

    sphere = trimesh.creation.icosphere(subdivisions=2)
    return {
        "square": SquareHaarHierarchy(8, 3),
        "healpix": HealpixHaarHierarchy(4, 3),
        "healpix_sh": HealpixSHHierarchy(4, 2),
        "triangle": TriangleHierarchy(3),
        "mesh_clusters": ClusterHierarchy(Mesh(sphere.vertices, sphere.faces), 3),
    }


def test_table_and_pyg_agree_on_every_domain_and_models_run():
    """Both backends give the same operator on each level graph of every hierarchy."""
    torch.manual_seed(0)
    for name, hierarchy in _hierarchies().items():
        for level in range(hierarchy.num_levels):
            n, features = hierarchy.num_nodes(level), hierarchy.num_edge_features(level)
            table = KernelConv(level, 3, 4, features, backend="table").double()
            pyg = KernelConv(level, 3, 4, features, backend="pyg").double()
            pyg.load_state_dict(table.state_dict())
            x = torch.randn(2, n, 3, dtype=torch.float64)
            torch.testing.assert_close(table(x, hierarchy), pyg(x, hierarchy), rtol=1e-10, atol=1e-10,
                                       msg=f"{name} level {level}")
        n = hierarchy.num_nodes(hierarchy.finest_level)
        out = build_unet(hierarchy, 1, 2, width=4)(torch.randn(2, n, 1), hierarchy)
        assert out.shape == (2, n, 2) and torch.isfinite(out).all(), name
