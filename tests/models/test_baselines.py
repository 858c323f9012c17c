import pytest
import torch

from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.models.baselines import ChebUNet, FlatResNet, GraphUNetBaseline, SFNOBaseline, equiangular_shape
from geounet.models.zoo import count_parameters, message_passing_unet, size_to_parameters

HEALPIX = HealpixHaarHierarchy(8, 4)
N = HEALPIX.num_nodes(3)


def graph_models(width=8):
    return {
        "multiresnet": message_passing_unet(HEALPIX, 2, 3, width=width),
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
        out = model(x)
        assert out.shape == (2, n, 3), name
        out.square().mean().backward()
        assert x.grad.abs().sum() > 0, name
        with pytest.raises(ValueError, match="expect"):
            model(torch.randn(2, n + 1, 2))


def test_batched_forward_equals_per_sample_forward():
    """The disjoint-union batch of GraphUNet (and every per-sample model) is sample-independent."""
    torch.manual_seed(0)
    x = torch.randn(3, N, 2, dtype=torch.float64)
    for name, model in graph_models().items():
        model = model.double()
        batched = model(x)
        for b in range(3):
            torch.testing.assert_close(batched[b : b + 1], model(x[b : b + 1]), msg=name)


def test_cheb_unet_pools_by_nest_child_means():
    """DeepSphere pooling: the skip at level i-1 is the mean over the 4 NEST children."""
    model = ChebUNet(HEALPIX, 1, 1, width=4, depth=2)
    fine = torch.randn(1, N, 1)
    pooled = model.hierarchy.restrict(fine, 1)
    torch.testing.assert_close(pooled, fine.view(1, -1, 4, 1).mean(2))


def test_sfno_wrapper_is_the_library_model_on_the_flattened_grid():
    torch.manual_seed(0)
    model = SFNOBaseline(8, 16, 2, 1, width=4, num_layers=1)
    image = torch.randn(2, 2, 8, 16)
    nodes = image.flatten(2).transpose(1, 2)  # [B, N, C], row-major (lat, lon)
    torch.testing.assert_close(model(nodes), model.sfno(image).flatten(2).transpose(1, 2))
    assert equiangular_shape(12 * 64**2) == (157, 314)  # 2 * 157**2 = 49298 ~ 49152


def test_baselines_size_to_a_matched_parameter_count():
    target = count_parameters(message_passing_unet(HEALPIX, 2, 3, width=16))
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
        expected = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
        assert torch.isfinite(low).all(), name
        error = (low.float() - expected).norm() / expected.norm()
        assert error < 0.05, f"{name}: relative bf16 error {error:.3f}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_forward_matches_cpu():
    torch.manual_seed(0)
    x = torch.randn(2, N, 2, dtype=torch.float64)
    for name, model in graph_models().items():
        if name == "graph_unet":  # top-k ties may break differently across devices
            continue
        model = model.double()
        expected = model(x)
        torch.testing.assert_close(model.cuda()(x.cuda()).cpu(), expected, msg=name)
