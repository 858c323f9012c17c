import healpy
import numpy as np
import pytest
import torch

from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.models.baselines import ChebUNet, FlatResNet, GraphUNetBaseline, SFNOBaseline, equiangular_shape
from geounet.models.sizing import count_parameters, size_to_parameters
from geounet.models.unet import build_unet

HEALPIX = HealpixHaarHierarchy(8, 4)
N = HEALPIX.num_nodes(3)


def graph_models(width=8):
    return {
        "multiresnet": build_unet(HEALPIX, 2, 3, width=width),
        "cheb_unet": ChebUNet(HEALPIX, 2, 3, width=width),
        "graph_unet": GraphUNetBaseline(HEALPIX, 2, 3, width=width),
        "flat_resnet": FlatResNet(HEALPIX, 2, 3, width=width),
    }


def test_every_baseline_maps_node_features_and_backpropagates():
    torch.manual_seed(0)
    nlat, nlon = equiangular_shape(N)
    models = {**graph_models(), "sfno": SFNOBaseline(nlat, nlon, 2, 3, width=8)}
    for name, model in models.items():
        n = nlat * nlon if name == "sfno" else N
        x = torch.randn(2, n, 2, requires_grad=True)
        out = model(x, HEALPIX)
        assert out.shape == (2, n, 3), name
        out.square().mean().backward()
        assert x.grad.abs().sum() > 0, name
        with pytest.raises(ValueError, match=rf"expects input of shape \[batch, {n}, 2\]"):
            model(torch.randn(2, n + 1, 2), HEALPIX)
        with pytest.raises(ValueError, match="NaN/Inf"):
            model(torch.full((1, n, 2), float("nan")), HEALPIX)


def test_batched_forward_equals_per_sample_forward():
    """The disjoint-union batch of GraphUNet (and every per-sample model) is sample-independent."""
    torch.manual_seed(0)
    x = torch.randn(3, N, 2, dtype=torch.float64)
    for name, model in graph_models().items():
        model = model.double()
        batched = model(x, HEALPIX)
        for b in range(3):
            torch.testing.assert_close(batched[b : b + 1], model(x[b : b + 1], HEALPIX), msg=name)


def test_cheb_unet_pools_by_nest_child_means():
    """DeepSphere pooling: the input of the coarse stage is the mean over the 4 NEST children."""
    model = ChebUNet(HEALPIX, 1, 1, width=4, depth=2)
    seen = []
    model.bottleneck.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    model.encoders[0].register_forward_hook(lambda module, args, out: seen.append(out))
    model(torch.randn(1, N, 1), HEALPIX)
    fine, pooled = seen
    torch.testing.assert_close(pooled, fine.view(1, -1, 4, fine.shape[-1]).mean(2))


def test_sfno_wrapper_is_the_library_model_on_the_flattened_grid():
    torch.manual_seed(0)
    model = SFNOBaseline(8, 16, 2, 1, width=4, num_layers=1)
    image = torch.randn(2, 2, 8, 16)
    nodes = image.flatten(2).transpose(1, 2)  # [B, N, C], row-major (lat, lon)
    torch.testing.assert_close(model(nodes), model.sfno(image).flatten(2).transpose(1, 2))
    assert torch.equal(model(nodes, HEALPIX), model(nodes))  # the common signature; the grid is its own
    assert equiangular_shape(12 * 64**2) == (157, 314)  # 2 * 157**2 = 49298 ~ 49152


def test_baselines_size_to_a_matched_parameter_count():
    target = count_parameters(build_unet(HEALPIX, 2, 3, width=16))
    nlat, nlon = equiangular_shape(N)
    builders = {
        "cheb_unet": lambda w: ChebUNet(HEALPIX, 2, 3, width=w),
        "flat_resnet": lambda w: FlatResNet(HEALPIX, 2, 3, width=w),
        "sfno": lambda w: SFNOBaseline(nlat, nlon, 2, 3, width=w, num_layers=2),
        "graph_unet": lambda w: GraphUNetBaseline(HEALPIX, 2, 3, width=w),
    }
    for name, build in builders.items():
        _, model = size_to_parameters(build, target, widths=range(1, 257))
        assert abs(count_parameters(model) - target) < 0.1 * target, name


def test_bf16_autocast_on_cpu():
    torch.manual_seed(0)
    x = torch.randn(2, N, 2)
    for name, model in graph_models().items():
        expected = model(x, HEALPIX)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, HEALPIX)
        assert torch.isfinite(low).all(), name
        error = (low.float() - expected).norm() / expected.norm()
        assert error < 0.05, f"{name}: relative bf16 error {error:.3f}"


@pytest.mark.cuda
def test_cuda_forward_matches_cpu():
    torch.manual_seed(0)
    x = torch.randn(2, N, 2, dtype=torch.float64)
    for name, model in graph_models().items():
        if name == "graph_unet":  # top-k ties may break differently across devices
            continue
        model = model.double()
        expected = model(x, HEALPIX)
        torch.testing.assert_close(model.cuda()(x.cuda(), HEALPIX.to("cuda")).cpu(), expected, msg=name)


# ---------------------------------------------------------------------- SFNO on HEALPix pixels


def test_sfno_healpix_grid_is_the_shallow_water_solver_grid():
    from geounet.datagen.shallow_water import make_solver
    from geounet.models.sfno_healpix import equiangular_grid

    solver = make_solver(16, 32, 60.0)
    lat, lon = equiangular_grid(16, 32)
    np.testing.assert_allclose(lat, np.degrees(solver.lats.numpy()), atol=1e-12)
    np.testing.assert_allclose(lon, np.degrees(solver.lons.numpy()), atol=1e-12)


def test_sfno_healpix_maps_pixels_to_pixels_and_backpropagates():
    from geounet.models.sfno_healpix import SFNOHealpix

    torch.manual_seed(0)
    model = SFNOHealpix(HEALPIX, 2, 3, width=4, num_layers=1)
    assert (model.nside, model.to_latlon.shape) == (8, (16 * 32, N))  # default grid 2 nside x 4 nside
    assert not any("to_" in key for key in model.state_dict())  # operators are rebuilt, not saved
    x = torch.randn(2, N, 2, requires_grad=True)
    out = model(x, HEALPIX)
    assert out.shape == (2, N, 3)
    out.square().mean().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
    for bad in (torch.randn(2, N + 1, 2), torch.randn(2, N, 3), torch.randn(N, 2)):
        with pytest.raises(ValueError, match=r"SFNOHealpix expects input of shape \[batch, 768, 2\]"):
            model(bad)
    with pytest.raises(ValueError, match="runs at nside 8"):
        model(x, HealpixHaarHierarchy(4, 1))
    with pytest.raises(ValueError, match="needs a HEALPix hierarchy"):
        SFNOHealpix(object(), 2, 3)


def test_sfno_healpix_on_face_ordered_pixels_is_the_nest_model_reordered():
    """Built on a HealpixFaceHierarchy, the model is the NEST model with the pixel axis permuted
    on both sides (same weights): y_face = face(SFNO_nest(nest(x_face))); a hierarchy of the
    other node order is refused at the call (its outputs would be silently permuted)."""
    from geounet.hierarchy.healpix_face import HealpixFaceHierarchy, face_nodes_from_nest, nest_from_face_nodes
    from geounet.models.sfno_healpix import SFNOHealpix

    torch.manual_seed(0)
    face_hierarchy = HealpixFaceHierarchy(8, 2)
    nest_model = SFNOHealpix(HEALPIX, 2, 3, width=4, num_layers=1).double()
    face_model = SFNOHealpix(face_hierarchy, 2, 3, width=4, num_layers=1).double()
    face_model.load_state_dict(nest_model.state_dict())
    assert (face_model.nside, face_model.layout, nest_model.layout) == (8, "face", "nest")
    x_face = torch.randn(2, N, 2, dtype=torch.float64)
    expected = face_nodes_from_nest(nest_model(nest_from_face_nodes(x_face), HEALPIX))
    torch.testing.assert_close(face_model(x_face, face_hierarchy), expected)
    assert not torch.allclose(nest_model(x_face), expected)  # negative control: the order matters
    with pytest.raises(ValueError, match="built for pixels in 'face' order; the hierarchy's are in 'nest' order"):
        face_model(x_face, HEALPIX)
    with pytest.raises(ValueError, match="built for pixels in 'nest' order; the hierarchy's are in 'face' order"):
        nest_model(x_face, face_hierarchy)


def test_sfno_healpix_regrid_round_trip_is_exact_for_constants_and_second_order_for_smooth_fields():
    """R_h R_l x = x for constants (convex weights); for a smooth field the error is O(h²):
    about 4 times smaller per doubling of nside (grids 2 nside x 4 nside)."""
    from geounet.models.sfno_healpix import SFNOHealpix, _node_matmul

    errors = []
    for nside in (8, 16):
        model = SFNOHealpix(HealpixHaarHierarchy(nside, 1), 1, 1, width=2, num_layers=1).double()
        ones = torch.ones(1, 12 * nside**2, 1, dtype=torch.float64)
        torch.testing.assert_close(_node_matmul(model.to_healpix, _node_matmul(model.to_latlon, ones)), ones)
        lon, lat = healpy.pix2ang(nside, np.arange(12 * nside**2), nest=True, lonlat=True)
        lat, lon = np.radians(lat), np.radians(lon)
        smooth = np.sin(lat) + np.cos(lat) ** 2 * np.cos(2 * lon)  # degree <= 2
        x = torch.from_numpy(smooth).reshape(1, -1, 1)
        round_trip = _node_matmul(model.to_healpix, _node_matmul(model.to_latlon, x))
        errors.append(float((round_trip - x).norm() / x.norm()))
    assert errors[0] < 0.03  # 2% at nside 8, 0.12% at nside 32
    assert 3.0 < errors[0] / errors[1] < 5.0, errors


def test_sfno_healpix_is_the_library_sfno_between_the_two_regriddings():
    """y = R_h SFNO(R_l x) against dense copies of the operators, in float64; the sparse
    regridding passes gradcheck (torch-harmonics' SFNO itself is not gradchecked: its float64
    Jacobian disagrees with finite differences already without the regridding)."""
    from geounet.models.sfno_healpix import SFNOHealpix, _node_matmul

    torch.manual_seed(0)
    model = SFNOHealpix(HEALPIX, 2, 3, width=4, num_layers=1).double()
    x = torch.randn(2, N, 2, dtype=torch.float64)
    to_latlon, to_healpix = model.to_latlon.to_dense(), model.to_healpix.to_dense()  # [H W, N], [N, H W]
    torch.testing.assert_close(model(x), to_healpix @ model.sfno(to_latlon @ x))
    small = SFNOHealpix(HealpixHaarHierarchy(2, 1), 1, 1, width=2, num_layers=1)
    probe = torch.randn(2, 48, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: _node_matmul(small.to_latlon, v), (probe,))


@pytest.mark.parametrize("node_order", ["nest", "face"])
def test_sfno_healpix_is_built_for_the_shallow_water_task_at_matched_size(node_order):
    """On either node order of the task (the main job's is "face") the SFNO is built for the
    task's own pixel order."""
    from geounet.experiment.config import load_config
    from geounet.experiment.runner import build_configured_unet, build_model
    from geounet.models.sfno_healpix import SFNOHealpix
    from geounet.tasks import task_structure

    overrides = ["task.name='shallow_water_healpix'", "task.nside=8", "task.nlat=16", "task.nlon=32",
                 f"task.node_order='{node_order}'", "model.num_levels=2", "model.width=4", "model.architecture='sfno'"]
    cfg = load_config(None, overrides)
    structure = task_structure(cfg.task, cfg.model.num_levels)
    model = build_model(cfg, structure)  # wrapped in the task's autoregressive model
    sfno = model.net
    assert isinstance(sfno, SFNOHealpix) and sfno.sfno.nlat == 16 and sfno.sfno.nlon == 32
    assert sfno.layout == node_order
    target = count_parameters(build_configured_unet(cfg, structure))
    assert abs(count_parameters(model) - target) < 0.2 * target


@pytest.mark.cuda
def test_sfno_healpix_cuda_forward_matches_cpu():
    from geounet.models.sfno_healpix import SFNOHealpix

    torch.manual_seed(0)
    model = SFNOHealpix(HEALPIX, 2, 3, width=4, num_layers=1)
    x = torch.randn(2, N, 2)
    expected = model(x, HEALPIX)
    torch.testing.assert_close(model.cuda()(x.cuda(), HEALPIX.to("cuda")).cpu(), expected, rtol=1e-4, atol=1e-4)
