import pytest
import torch
import torch.nn.functional as F

from geounet.hierarchy import SquareHaarHierarchy
from geounet.models import build_unet
from geounet.nn import MultiResolutionEncoder, SquareConvFactory, UNet


def _geometry(size=16, levels=3):
    return SquareHaarHierarchy(size, levels, periodic=True)


def _model(variant, size=16, levels=3, width=8, **kwargs):
    return build_unet(_geometry(size, levels), 2, 1, SquareConvFactory(), variant=variant, width=width, **kwargs)


def test_multiresnet_encoder_has_zero_parameters():
    counts = _model("multiresnet").parameter_counts()
    assert counts["encoder"] == 0
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert _model("residual").parameter_counts()["encoder"] > 0


def test_matched_variant_spends_saved_parameters_in_decoder():
    residual = _model("residual", width=16, levels=4, size=32).parameter_counts()
    matched = _model("multiresnet_matched", width=16, levels=4, size=32).parameter_counts()
    plain = _model("multiresnet", width=16, levels=4, size=32).parameter_counts()
    assert matched["encoder"] == 0
    assert matched["decoder"] > plain["decoder"]
    assert abs(matched["total"] - residual["total"]) < abs(plain["total"] - residual["total"])


def test_multiresnet_skips_are_average_pooled_input():
    """With E_i = id the skip reaching decoder i is exactly P_i(lift(x)), bitwise avg_pool2d."""
    model = _model("multiresnet", size=16, levels=3)
    skips = {}
    for level, decoder in model.decoders.items():
        decoder.register_forward_hook(lambda m, args, out, level=level: skips.__setitem__(int(level), args[1]))
    x = torch.randn(2, 256, 2)
    model(x, _geometry(16, 3))
    lifted = model.lift(x).reshape(2, 16, 16, -1).permute(0, 3, 1, 2)
    expected = F.avg_pool2d(lifted, 2).permute(0, 2, 3, 1).reshape(2, 64, -1)
    # bitwise: the same ops (lift, then avg_pool2d of the same 4 values in order) on the same input
    assert torch.equal(skips[1], expected)
    assert torch.equal(skips[2], model.lift(x))


def test_standalone_encoder_pyramid():
    h = SquareHaarHierarchy(8, 4)
    encoder = MultiResolutionEncoder()
    assert sum(p.numel() for p in encoder.parameters()) == 0
    image = torch.randn(2, 3, 8, 8)
    pyramid = encoder(image.permute(0, 2, 3, 1).reshape(2, 64, 3), h)
    assert [p.shape[1] for p in pyramid] == [1, 4, 16, 64]
    for level, k in ((0, 8), (1, 4), (2, 2)):
        side = 8 // k
        pooled = F.avg_pool2d(image, k).permute(0, 2, 3, 1).reshape(2, side * side, 3)
        torch.testing.assert_close(pyramid[level], pooled)


def test_recursion_matches_hand_unrolled_multiresnet():
    """U_2(v) = D_2(D_1(U_0(P_0 v), P_1 v), v) for a Multi-ResNet."""
    model = _model("multiresnet", levels=3).double()
    h = _geometry(16, 3)
    x = torch.randn(2, 256, 2, dtype=torch.float64)
    v = model.lift(x)
    p1 = h.restrict(v, 2)
    p0 = h.restrict(p1, 1)
    unrolled = model.decoders["2"](model.decoders["1"](model.bottleneck(p0, h), p1, h), v, h)
    torch.testing.assert_close(model(x, h), model.head(unrolled))


def test_decoder_is_residual_around_the_inclusion():
    """With the residual branch zeroed, D_i(w, v) = ι(L w): the U-Net is preconditioned by U_{i-1}."""
    model = _model("multiresnet", levels=2).double()
    decoder = model.decoders["1"]
    torch.nn.init.zeros_(decoder.merge.op2.conv.weight)
    torch.nn.init.zeros_(decoder.merge.op2.conv.bias)
    h = _geometry(16, 2)
    coarse = torch.randn(1, 64, decoder.channel_map.in_features, dtype=torch.float64)
    skip = torch.randn(1, 256, 8, dtype=torch.float64)
    expected = h.prolong(decoder.channel_map(coarse), 0)
    torch.testing.assert_close(decoder(coarse, skip, h), expected)


def test_zeroed_residuals_give_the_prolonged_bottleneck():
    """Preconditioning (the paper's Thm. 2 setting): with every decoder's residual branch
    zeroed, U_I(v) = ι_{I-1} L_I ... ι_0 L_1 U_0(P_0 v), the bottleneck prolonged to the finest level."""
    model = _model("multiresnet", levels=3).double()
    h = _geometry(16, 3)
    for decoder in model.decoders.values():
        torch.nn.init.zeros_(decoder.merge.op2.conv.weight)
        torch.nn.init.zeros_(decoder.merge.op2.conv.bias)
    x = torch.randn(2, 256, 2, dtype=torch.float64)
    w = model.bottleneck(h.project(model.lift(x), 2, 0), h)
    for level in (1, 2):
        w = h.prolong(model.decoders[str(level)].channel_map(w), level - 1)
    torch.testing.assert_close(model(x, h), model.head(w))


@pytest.mark.parametrize("variant", ["multiresnet", "residual", "multiresnet_matched"])
def test_gradcheck_float64(variant):
    model = _model(variant, size=4, levels=2, width=2).double()
    h = _geometry(4, 2)
    x = torch.randn(1, 16, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: model(x, h), (x,))


def test_conditioning_changes_output_and_is_required():
    h = SquareHaarHierarchy(8, 2, periodic=True)
    model = build_unet(h, 1, 1, SquareConvFactory(), width=4, cond_dim=3)
    x = torch.randn(2, 64, 1)
    a = model(x, h, torch.zeros(2, 3))
    torch.nn.init.normal_(model.decoders["1"].merge.film.weight)
    assert not torch.allclose(a, model(x, h, torch.ones(2, 3)))
    with pytest.raises(ValueError, match="needs a cond tensor"):
        model(x, h)


def test_bad_inputs_raise_clear_errors():
    model = _model("multiresnet")
    h = _geometry(16, 3)
    with pytest.raises(ValueError, match=r"expects input of shape \[batch, 256, 2\]"):
        model(torch.randn(1, 256, 3), h)
    with pytest.raises(ValueError, match="unknown variant"):
        _model("pyramid")
    with pytest.raises(ValueError, match="must be given for exactly the levels"):
        UNet("SquareHaarHierarchy", 2, torch.nn.Linear(1, 1), {}, torch.nn.Identity(), {}, torch.nn.Linear(1, 1))
    with pytest.raises(TypeError, match="torch.from_numpy"):
        model(torch.randn(1, 256, 2).numpy(), h)
    with pytest.raises(TypeError, match=r"x.to\(torch.float32\)"):
        model(torch.randn(1, 256, 2, dtype=torch.float64), h)
    with pytest.raises(ValueError, match="only 3; build the hierarchy with at least"):
        _model("multiresnet", levels=4)(torch.randn(1, 256, 2), h)
    from geounet.hierarchy import HealpixHaarHierarchy
    with pytest.raises(ValueError, match="built for SquareHaarHierarchy hierarchies, got a HealpixHaarHierarchy"):
        model(torch.randn(1, 768, 2), HealpixHaarHierarchy(8, 3))
    with pytest.raises(TypeError, match=r"model\(x, hierarchy\)"):
        model(torch.randn(1, 256, 2), None)


def test_nonfinite_inputs_raise_with_their_count_or_warn_once():
    model = _model("multiresnet")
    h = _geometry(16, 3)
    x = torch.randn(2, 256, 2)
    x[1, 17, 0] = float("nan")
    x[1, 20, 1] = float("inf")
    with pytest.raises(ValueError, match=r"2 NaN/Inf value\(s\) \(first: sample 1, node 17, channel 0\)"):
        model(x, h)
    model.nonfinite = "warn"
    with pytest.warns(UserWarning, match="2 NaN/Inf"):
        model(x, h)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(x, h)  # warned once already


def test_nonfinite_outputs_of_finite_inputs_raise_or_warn_once():
    model = _model("multiresnet")
    h = _geometry(16, 3)
    x = torch.randn(2, 256, 2)
    assert torch.isfinite(model(x * 1e15, h)).all()  # large but representable: passes (negative control)
    with pytest.raises(FloatingPointError, match=r"UNet output holds 512 NaN/Inf value\(s\) from a finite input "
                                                 r"\(largest \|input\| .*e\+30\).*standardise the input"):
        model(x * 1e30, h)
    model.nonfinite = "warn"
    with pytest.warns(UserWarning, match="UNet output holds"):
        model(x * 1e30, h)


def test_state_dict_holds_no_geometry_and_one_model_runs_on_other_grids():
    """Parameters only: the same weights run on 16 x 16 and 32 x 32 grids (a deeper hierarchy
    is used through its finest levels), and no state_dict entry scales with the grid."""
    model = _model("multiresnet", size=16, levels=3)
    assert not list(model.buffers())
    sizes = {name: value.numel() for name, value in model.state_dict().items()}
    bigger = _model("multiresnet", size=64, levels=3)
    assert sizes == {name: value.numel() for name, value in bigger.state_dict().items()}
    assert model(torch.randn(1, 32 * 32, 2), _geometry(32, 4)).shape == (1, 1024, 1)


def test_model_learns_to_smooth():
    """A small Multi-ResNet learns a fixed linear smoothing map (loss drops 10x)."""
    torch.manual_seed(0)
    model = _model("multiresnet", size=16, levels=3, width=8)
    h = _geometry(16, 3)
    x = torch.randn(16, 256, 2)
    image = x[..., :1].reshape(16, 16, 16, 1).permute(0, 3, 1, 2)
    target = F.avg_pool2d(F.pad(image, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    target = target.permute(0, 2, 3, 1).reshape(16, 256, 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(100):
        loss = F.mse_loss(model(x, h), target)
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < first / 10
