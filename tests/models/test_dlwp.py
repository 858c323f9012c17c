"""physicsnemo's DLWP-HEALPix U-Net as a geounet baseline (the ``dlwp`` extra; skipped without it).

The face layout is checked against physicsnemo's own ``HEALPixPadding``: a map of NEST
pixel indices, laid out by geounet's ``"face"`` layout and padded by physicsnemo, must
put next to every face pixel only pixels that healpy calls its neighbours.
"""

import healpy
import numpy as np
import pytest
import torch

from geounet.configs import resolve
from geounet.experiment.config import load_config
from geounet.experiment.runner import build_model
from geounet.geometry.healpix import from_nest, to_nest
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.hierarchy.healpix_face import HealpixFaceHierarchy, face_nodes_from_nest, nest_from_face_nodes
from geounet.models.baselines import DLWPHealpixUNet
from geounet.models.sizing import count_parameters
from geounet.tasks import task_structure

physicsnemo = pytest.importorskip("physicsnemo", reason="the dlwp extra (physicsnemo) is not installed")


def _padding_misplacements(nside: int, layout: str) -> int:
    """Padded cells of physicsnemo's 1-pixel HEALPix padding that are not healpy neighbours of
    every face pixel they touch (3x3 stencils), for NEST indices laid out by ``layout``."""
    from physicsnemo.nn import HEALPixPadding

    index = torch.arange(12 * nside**2, dtype=torch.float64)
    faces = from_nest(index, layout)  # [12, n, n]
    padded = HEALPixPadding(padding=1)(faces[:, None])[:, 0].numpy()  # [12, n + 2, n + 2]
    neighbours = healpy.get_all_neighbours(nside, np.arange(12 * nside**2), nest=True).T  # [N, 8]
    misplaced = 0
    for face in range(12):
        for row in range(nside + 2):
            for col in range(nside + 2):
                if 1 <= row <= nside and 1 <= col <= nside:
                    continue  # the face itself
                value = padded[face, row, col]
                if value != round(value):
                    continue  # a corner with no pixel: physicsnemo averages its two neighbours
                rows = range(max(row - 1, 1), min(row + 1, nside) + 1)
                cols = range(max(col - 1, 1), min(col + 1, nside) + 1)
                touched = [int(padded[face, r, c]) for r in rows for c in cols]
                misplaced += any(int(value) not in neighbours[p] for p in touched)
    return misplaced


@pytest.mark.parametrize("nside", [2, 4, 8])
def test_face_layout_is_the_one_physicsnemo_pads(nside):
    assert _padding_misplacements(nside, "face") == 0
    assert _padding_misplacements(nside, "face_s_ccw") > 0  # negative control: another in-face layout


class _Identity(torch.nn.Module):
    """Stands in for physicsnemo's U-Net: returns (and keeps) the prognostic input it is given.
    Its one parameter only gives the wrapper's input check a dtype."""

    def __init__(self):
        super().__init__()
        self.dtype_reference = torch.nn.Parameter(torch.zeros(()))

    def forward(self, inputs):
        self.seen = inputs[0]
        return inputs[0]


def test_wrapper_is_a_pure_reordering_both_ways():
    """With physicsnemo's U-Net replaced by the identity on its [B, F, T, C, H, W] input, the
    wrapper returns its input exactly: the NEST -> face -> NEST round trip loses nothing."""
    hierarchy = HealpixHaarHierarchy(8, 2)
    model = DLWPHealpixUNet(hierarchy, 3, 3, width=2, depth=2)
    model.unet = _Identity()
    x = torch.randn(2, 768, 3)
    assert torch.equal(model(x, hierarchy), x)
    assert model.unet.seen.shape == (2, 12, 1, 3, 8, 8)
    assert torch.equal(model.unet.seen[:, :, 0], from_nest(x, "face", channels_last=True).permute(0, 1, 4, 2, 3))
    assert torch.equal(to_nest(from_nest(x, "face", channels_last=True), "face", channels_last=True), x)


def test_on_face_ordered_pixels_the_wrapper_is_a_reshape():
    """On a HealpixFaceHierarchy the nodes already are the flattened face images: physicsnemo
    sees them unchanged and the model is the NEST model reordered on both sides; a hierarchy of
    the other node order is refused at the call."""
    torch.manual_seed(0)
    face_hierarchy, nest_hierarchy = HealpixFaceHierarchy(8, 2), HealpixHaarHierarchy(8, 2)
    identity = DLWPHealpixUNet(face_hierarchy, 3, 3, width=2, depth=2)
    identity.unet = _Identity()
    x = torch.randn(2, 768, 3)
    assert torch.equal(identity(x, face_hierarchy), x)
    assert torch.equal(identity.unet.seen[:, :, 0], x.reshape(2, 12, 8, 8, 3).permute(0, 1, 4, 2, 3))
    nest_model = DLWPHealpixUNet(nest_hierarchy, 3, 2, width=2, depth=2)
    face_model = DLWPHealpixUNet(face_hierarchy, 3, 2, width=2, depth=2)
    face_model.load_state_dict(nest_model.state_dict())
    expected = face_nodes_from_nest(nest_model(nest_from_face_nodes(x), nest_hierarchy))
    torch.testing.assert_close(face_model(x, face_hierarchy), expected)
    with pytest.raises(ValueError, match="built for pixels in 'face' order; the hierarchy's are in 'nest' order"):
        face_model(x, nest_hierarchy)


def test_issue_configuration_has_the_matched_parameter_count():
    """Channels [13, 26, 52, 104], two 3x3 convolutions per level, 3 -> 3 channels: every
    convolution counted by hand (weights + biases), transposed 2x2 upsamplings, 1x1 head."""
    conv = lambda c_in, c_out, k=3: c_in * c_out * k * k + c_out  # noqa: E731
    c = [13, 26, 52, 104]
    encoder = conv(3, c[0]) + conv(c[0], c[0]) + sum(conv(c[i - 1], c[i]) + conv(c[i], c[i]) for i in range(1, 4))
    decoder = conv(c[3], c[3]) + conv(c[3], c[2])
    decoder += sum(conv(c[i], c[i], 2) + conv(2 * c[i], c[i]) + conv(c[i], c[i - 1] if i else c[0]) for i in range(3))
    head = conv(c[0], 3, 1)
    model = DLWPHealpixUNet(HealpixHaarHierarchy(32, 4), 3, 3, width=13)
    assert count_parameters(model) == encoder + decoder + head


def test_convnext_configuration_counts_its_residual_blocks():
    """Channels [4, 8, 16, 32]; per level one ConvNeXt block x -> skip(x) + 1x1(3x3(3x3 x)) with
    4x the level's channels inside and a 1x1 skip where the channels change; the decoder's
    blocks read the skip-concatenated 2c channels. Counted by hand (weights + biases)."""
    conv = lambda c_in, c_out, k=3: c_in * c_out * k * k + c_out  # noqa: E731

    def convnext(c_in, latent, c_out):
        skip = conv(c_in, c_out, 1) if c_in != c_out else 0
        return skip + conv(c_in, 4 * latent) + conv(4 * latent, 4 * latent) + conv(4 * latent, c_out, 1)

    c = [4, 8, 16, 32]
    encoder = convnext(3, c[0], c[0]) + sum(convnext(c[i - 1], c[i], c[i]) for i in range(1, 4))
    decoder = convnext(c[3], c[3], c[2])
    decoder += sum(conv(c[i], c[i], 2) + convnext(2 * c[i], c[i], c[i - 1] if i else c[0]) for i in range(3))
    head = conv(c[0], 3, 1)
    model = DLWPHealpixUNet(HealpixHaarHierarchy(32, 4), 3, 3, width=4, block="convnext")
    assert count_parameters(model) == encoder + decoder + head


@pytest.mark.parametrize(("block", "convnext_blocks", "basic_blocks"), [("basic", 0, 9), ("convnext", 8, 1)])
def test_the_config_key_picks_the_block(block, convnext_blocks, basic_blocks):
    """``model.dlwp_block`` reaches the model the trainer builds: one block of that kind on each of
    the 4 encoder and 4 decoder levels, plus the 1x1 head, a basic block in both."""
    from physicsnemo.models.dlwp_healpix.layers import BasicConvBlock, ConvNeXtBlock

    cfg = load_config(resolve("shallow_water_face"), ["model.architecture='dlwp'", f"model.dlwp_block='{block}'",
                                                      "task.nside=8", "model.width=4"])
    model = build_model(cfg, task_structure(cfg.task, cfg.model.num_levels))
    assert sum(isinstance(m, ConvNeXtBlock) for m in model.modules()) == convnext_blocks
    assert sum(isinstance(m, BasicConvBlock) for m in model.modules()) == basic_blocks


@pytest.mark.parametrize("block", ["basic", "convnext"])
def test_forward_backward_and_learns_a_neighbourhood_average(block):
    """Fits y = mean of x over each pixel and its 8 (or 7) healpy neighbours, a local operator
    the padded 3x3 convolutions can represent; the loss must fall well below its start."""
    torch.manual_seed(0)
    nside = 8
    hierarchy = HealpixHaarHierarchy(nside, 2)
    neighbours = healpy.get_all_neighbours(nside, np.arange(12 * nside**2), nest=True).T  # [N, 8], -1: none
    stencil = torch.from_numpy(np.concatenate([np.arange(12 * nside**2)[:, None], neighbours], axis=1))  # [N, 9]
    valid = (stencil >= 0).double()

    def target(x):  # [B, N, 1]
        gathered = x[:, stencil.clamp(min=0), 0] * valid  # [B, N, 9]
        return (gathered.sum(-1) / valid.sum(-1))[..., None].float()

    model = DLWPHealpixUNet(hierarchy, 1, 1, width=8, depth=2, block=block)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = torch.randn(16, 12 * nside**2, 1)
    labels = target(data.double())
    losses = []
    for _ in range(150):
        optimiser.zero_grad()
        loss = (model(data, hierarchy) - labels).square().mean()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert losses[-1] < 0.1 * losses[0]


def test_refuses_a_mismatched_hierarchy_and_too_many_levels():
    hierarchy = HealpixHaarHierarchy(8, 2)
    model = DLWPHealpixUNet(hierarchy, 1, 1, width=2, depth=2)
    with pytest.raises(ValueError, match="runs at nside 8; the hierarchy's finest level has 3072 pixels"):
        model(torch.randn(1, 768, 1), HealpixHaarHierarchy(16, 2))
    with pytest.raises(ValueError, match=r"expects input of shape \[batch, 768, 1\]"):
        model(torch.randn(1, 767, 1))
    with pytest.raises(ValueError, match="depth 5 needs nside divisible by 2\\*\\*\\(depth - 1\\); nside is 8"):
        DLWPHealpixUNet(hierarchy, 1, 1, depth=5)
    with pytest.raises(ValueError, match=r"block must be one of \('basic', 'convnext'\), got 'convnet'"):
        DLWPHealpixUNet(hierarchy, 1, 1, block="convnet")
    with pytest.raises(ValueError, match="a ConvNeXt block has its own two: leave layers_per_level out"):
        DLWPHealpixUNet(hierarchy, 1, 1, block="convnext", layers_per_level=3)
