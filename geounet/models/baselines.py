"""Baselines under the geounet model API: ``model(x [B, N, C_in], hierarchy) -> [B, N, C_out]``.

Like the U-Nets they hold only parameters and take the geometry with every call.

- :class:`GraphUNetBaseline`: PyTorch Geometric's ``GraphUNet`` (Gao & Ji 2019, gPool /
  gUnpool with GCN layers) on the finest graph of a hierarchy.
- :class:`ChebUNet`: a DeepSphere-style U-Net (Defferrard et al. 2020): PyG ``ChebConv``
  (K = 3) on each level's graph, pooled and unpooled by the hierarchy's restrict /
  prolong (on HEALPix NEST: the mean over the 4 children and repetition).
- :class:`FlatResNet`: residual message-passing blocks at the finest level only, no
  hierarchy: the ablation of the multiresolution structure.
- :class:`SFNOBaseline`: torch-harmonics' ``SphericalFourierNeuralOperator`` on an
  equiangular latitude-longitude grid (node layout of that grid; for HEALPix pixels in
  and out, regridded both ways, use :class:`geounet.models.sfno_healpix.SFNOHealpix`).
- :class:`DLWPHealpixUNet`: NVIDIA physicsnemo's DLWP-HEALPix ``HEALPixUNet`` (Karlbauer
  et al. 2024): 3x3 convolutions on the 12 face images with HEALPix padding, average
  pooling and transposed-convolution upsampling (optional extra ``geounet[dlwp]``).

Every constructor takes a ``width`` so :func:`geounet.models.sizing.size_to_parameters` can
match parameter counts.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch_geometric.nn import ChebConv, GraphUNet

from geounet.errors import GeounetError
from geounet.geometry.healpix import from_nest, to_nest
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.finest import finest_levels
from geounet.nn.blocks import ResidualBlock
from geounet.nn.inputs import check_model_input
from geounet.nn.message_passing import MessagePassingFactory
from geounet.nn.norm import NodeGroupNorm
from geounet.nn.unet import geometry_for


def _check_input(model: nn.Module, x: Tensor, num_nodes: int, channels: int) -> None:
    dtype = next(model.parameters()).dtype
    check_model_input(x, num_nodes, channels, dtype, type(model).__name__)


def healpix_model_grid(hierarchy: object, model: str) -> tuple[int, str]:
    """``(nside, layout)`` of ``hierarchy``'s finest level, for a model tied to one HEALPix grid:
    layout ``"nest"`` when its nodes are the NEST pixels (e.g. ``HealpixHaarHierarchy``), ``"face"``
    when they are the flattened ``"face"`` images of :mod:`geounet.geometry.healpix`
    (``HealpixFaceHierarchy``, node ``f n² + h n + w`` = pixel ``(h, w)`` of face ``f``);
    GeounetError naming ``model`` when the hierarchy is not HEALPix."""
    if isinstance(hierarchy, Hierarchy):
        level = hierarchy.finest_level
        if (nside := hierarchy.healpix_nside(level)) is not None:
            return nside, "nest"
        if (nside := hierarchy.healpix_face_nside(level)) is not None:
            return nside, "face"
    raise GeounetError(f"{model} needs a HEALPix hierarchy (its finest level HEALPix pixels in NEST order, e.g. "
                       f"HealpixHaarHierarchy, or in the face layout, HealpixFaceHierarchy), got a "
                       f"{type(hierarchy).__name__}")


def check_healpix_call(model: str, nside: int, layout: str, hierarchy: Hierarchy | None) -> None:
    """A model built for ``nside`` pixels in ``layout`` order refuses a ``hierarchy`` (when one is
    passed) of another size or node order: its outputs would be silently permuted."""
    num_pixels = 12 * nside**2
    if hierarchy is None:
        return
    if hierarchy.num_nodes(hierarchy.finest_level) != num_pixels:
        raise GeounetError(f"this {model} runs at nside {nside}; the hierarchy's finest level has "
                           f"{hierarchy.num_nodes(hierarchy.finest_level)} pixels, not {num_pixels}")
    called_layout = healpix_model_grid(hierarchy, model)[1]
    if called_layout != layout:
        raise GeounetError(f"this {model} was built for pixels in {layout!r} order; the hierarchy's are in "
                           f"{called_layout!r} order: build the model on a hierarchy of the data's node order")


class GraphUNetBaseline(nn.Module):
    """PyG ``GraphUNet`` on the finest level graph of ``hierarchy``.

    ``GraphUNet`` takes one graph, so a batch is run as its disjoint union: B copies of
    the graph with node offsets b N and a ``batch`` vector, which makes top-k pooling
    select nodes per sample. Its pooled graphs depend on the data (top-k), so it has no
    fixed multiresolution structure and ``torch.compile`` graph-breaks around the pools.
    It runs in float32 even under autocast: its ``augment_adj`` sparse-CSR product has no
    bfloat16 kernel on the CPU.

    Args:
        width: hidden channels of every GCN layer.
        depth: number of gPool / gUnpool stages.
    """

    def __init__(self, hierarchy: Hierarchy, in_channels: int, out_channels: int, width: int = 32,
                 depth: int = 3, pool_ratio: float = 0.5):
        super().__init__()
        self.kind = hierarchy.kind
        self.in_channels = in_channels
        self.unet = GraphUNet(in_channels, width, out_channels, depth, pool_ratios=pool_ratio)

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:  # [B, N, C_in]
        finest = geometry_for(self, hierarchy, self.kind, 1)
        num_nodes = finest.num_nodes(0)
        _check_input(self, x, num_nodes, self.in_channels)
        batch = x.shape[0]
        offsets = torch.arange(batch, device=x.device) * num_nodes  # [B]
        graph_edges = finest.graph(0).edge_index  # [2, E]
        edge_index = (graph_edges[:, None, :] + offsets[None, :, None]).reshape(2, -1)  # [2, B E]
        sample = torch.arange(batch, device=x.device).repeat_interleave(num_nodes)  # [B N]
        flat = x.reshape(batch * num_nodes, -1)  # [B N, C_in]
        with torch.autocast(x.device.type, enabled=False):
            out = self.unet(flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat, edge_index, sample)
        return out.view(batch, num_nodes, -1)  # [B, N, C_out]


class _ChebStage(nn.Module):
    """Two (ChebConv -> GroupNorm -> GELU) layers on one level of the hierarchy it is given."""

    def __init__(self, level: int, in_channels: int, out_channels: int, K: int):
        super().__init__()
        self.level = level
        self.convs = nn.ModuleList([ChebConv(in_channels, out_channels, K), ChebConv(out_channels, out_channels, K)])
        self.norms = nn.ModuleList([NodeGroupNorm(1, out_channels) for _ in range(2)])
        self.act = nn.GELU()

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:  # [B, N, C_in]
        edge_index = hierarchy.graph(self.level).edge_index
        components = hierarchy.components(self.level)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = self.act(norm(conv(x, edge_index), components))
        return x  # [B, N, C_out]


class ChebUNet(nn.Module):
    """A DeepSphere-style U-Net: Chebyshev graph convolutions and hierarchical pooling.

    On levels I..1 (the ``depth`` finest levels of ``hierarchy``) an encoder stage of two
    ``ChebConv(K)`` layers (Chebyshev polynomials of the symmetric normalised Laplacian
    of the level graph, unit edge weights) is followed by ``restrict``; the coarsest level
    holds the bottleneck stage; each decoder stage ``prolong``s, concatenates the skip and
    applies two more ``ChebConv`` layers. Channels are ``width * 2**(I - i)`` capped at
    ``max_mult * width``. On HEALPix NEST, restrict / prolong are the mean over the 4
    children and repetition (DeepSphere's pooling).
    """

    def __init__(self, hierarchy: Hierarchy, in_channels: int, out_channels: int, width: int = 32,
                 depth: int = 4, K: int = 3, max_mult: int = 8):
        super().__init__()
        if not isinstance(depth, int) or not 1 <= depth <= hierarchy.num_levels:
            raise GeounetError(f"depth must be an int in [1, {hierarchy.num_levels}] for {hierarchy!r}, got {depth!r}")
        self.kind = hierarchy.kind
        self.num_levels = depth
        finest = depth - 1
        self.in_channels = in_channels
        channels = [width * min(2 ** (finest - i), max_mult) for i in range(finest + 1)]
        self.lift = nn.Linear(in_channels, width)
        self.encoders = nn.ModuleList(
            _ChebStage(i, width if i == finest else channels[i + 1], channels[i], K) for i in range(finest, 0, -1)
        )
        self.bottleneck = _ChebStage(0, channels[1] if finest else width, channels[0], K)
        self.decoders = nn.ModuleList(
            _ChebStage(i, channels[i - 1] + channels[i], channels[i], K) for i in range(1, finest + 1)
        )
        self.head = nn.Linear(channels[finest], out_channels)

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:  # [B, N_I, C_in]
        levels = geometry_for(self, hierarchy, self.kind, self.num_levels)
        finest = levels.finest_level
        _check_input(self, x, levels.num_nodes(finest), self.in_channels)
        h, skips = self.lift(x), []
        for level, stage in zip(range(finest, 0, -1), self.encoders, strict=True):
            h = stage(h, levels)  # [B, N_level, C_level]
            skips.append(h)
            h = levels.restrict(h, level)
        h = self.bottleneck(h, levels)  # [B, N_0, C_0]
        for level, stage in zip(range(1, finest + 1), self.decoders, strict=True):
            h = stage(torch.cat([levels.prolong(h, level - 1), skips.pop()], dim=-1), levels)
        return self.head(h)  # [B, N_I, C_out]


class FlatResNet(nn.Module):
    """Residual message-passing blocks at the finest level only (no hierarchy).

    ``lift -> num_blocks x (h + R(h)) -> head`` with the same residual branches and
    :class:`~geounet.nn.message_passing.MessagePassingFactory` operators as the U-Nets.
    """

    def __init__(self, hierarchy: Hierarchy, in_channels: int, out_channels: int, width: int = 32,
                 num_blocks: int = 4, factory: MessagePassingFactory | None = None):
        super().__init__()
        finest = finest_levels(hierarchy, 1)  # level 0 of this view is the finest level
        factory = factory or MessagePassingFactory(finest)
        self.kind = hierarchy.kind
        self.lift = nn.Linear(in_channels, width)
        self.blocks = nn.ModuleList(ResidualBlock(factory, 0, width) for _ in range(num_blocks))
        self.head = nn.Linear(width, out_channels)

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:  # [B, N, C_in]
        finest = geometry_for(self, hierarchy, self.kind, 1)
        _check_input(self, x, finest.num_nodes(0), self.lift.in_features)
        h = self.lift(x)
        for block in self.blocks:
            h = block(h, finest)
        return self.head(h)  # [B, N, C_out]


def equiangular_shape(num_points: int) -> tuple[int, int]:
    """``(nlat, 2 nlat)``, the equiangular grid with about ``num_points`` points."""
    nlat = max(2, round(math.sqrt(num_points / 2)))
    return nlat, 2 * nlat


class SFNOBaseline(nn.Module):
    """torch-harmonics' Spherical Fourier Neural Operator (Bonev et al. 2023) in node layout.

    Runs on torch-harmonics' ``"equiangular"`` grid of ``nlat x nlon`` points (latitudes
    from the north pole to the south pole, both included, longitudes from 0 eastwards);
    nodes are that grid flattened row-major, ``N = nlat * nlon``, so ``[B, N, C]`` features
    are ``[B, C, nlat, nlon]`` images. Other settings are the library's defaults
    (``scale_factor=3`` spectral down-sampling, linear variant, MLPs in every block).

    Args:
        width: SFNO ``embed_dim``.
    """

    def __init__(self, nlat: int, nlon: int, in_channels: int, out_channels: int, width: int = 32,
                 num_layers: int = 4, scale_factor: int = 3):
        super().__init__()
        from torch_harmonics.examples.models import SphericalFourierNeuralOperator

        self.nlat, self.nlon, self.in_channels = nlat, nlon, in_channels
        self.sfno = SphericalFourierNeuralOperator(
            img_size=(nlat, nlon), grid="equiangular", scale_factor=scale_factor, in_chans=in_channels,
            out_chans=out_channels, embed_dim=width, num_layers=num_layers,
        )

    def forward(self, x: Tensor, hierarchy: Hierarchy | None = None) -> Tensor:  # [B, N, C_in]
        """``hierarchy`` is accepted for the common model signature and not used: the SFNO runs
        on its own fixed lat-lon grid."""
        _check_input(self, x, self.nlat * self.nlon, self.in_channels)
        image = x.transpose(1, 2).reshape(x.shape[0], -1, self.nlat, self.nlon)  # [B, C, nlat, nlon]
        return self.sfno(image).flatten(2).transpose(1, 2)  # [B, N, C_out]


#: physicsnemo's convolution blocks a :class:`DLWPHealpixUNet` can be built from
DLWP_BLOCKS = ("basic", "convnext")


def _physicsnemo_unet(in_channels: int, out_channels: int, channels: list[int], block: str,
                      layers_per_level: int) -> nn.Module:
    """physicsnemo's ``HEALPixUNet`` built from its Hydra configs: per level either
    ``layers_per_level`` padded 3x3 convolutions with CappedGELU (``block="basic"``; cap 10,
    DLWP's activation) or one modified ConvNeXt block (``"convnext"``: x -> skip(x) + 1x1(g(3x3(g(3x3 x))))
    with 4x the level's channels inside, g the CappedGELU, skip a 1x1 convolution where the
    channels change), 2x2 average pooling down, a 2x2 stride-2 transposed convolution up, and a
    1x1 convolution head; one input and one output time step, no constants or decoder inputs."""
    try:
        from physicsnemo.models.dlwp_healpix import HEALPixUNet
    except ImportError as error:
        raise GeounetError(f"DLWPHealpixUNet needs NVIDIA physicsnemo ({error}); install it with "
                           "pip install 'geounet[dlwp]'") from None
    blocks = "physicsnemo.models.dlwp_healpix.layers"
    activation = {"_target_": "physicsnemo.nn.CappedGELU", "cap_value": 10}
    conv = {"basic": {"_target_": f"{blocks}.BasicConvBlock", "kernel_size": 3, "activation": activation},
            "convnext": {"_target_": f"{blocks}.ConvNeXtBlock", "kernel_size": 3, "upscale_factor": 4,
                         "activation": activation}}[block]
    depth = len(channels)
    # the encoder and decoder instantiate their blocks themselves, once per level; a ConvNeXt block
    # ignores n_layers
    encoder = {
        "_target_": f"{blocks}.UNetEncoder", "_recursive_": False, "conv_block": conv, "n_channels": channels,
        "n_layers": [layers_per_level] * depth,
        "down_sampling_block": {"_target_": "physicsnemo.nn.HEALPixAvgPool", "pooling": 2},
    }
    decoder = {
        "_target_": f"{blocks}.UNetDecoder", "_recursive_": False, "conv_block": conv, "n_channels": channels[::-1],
        "n_layers": [layers_per_level] * depth,
        "up_sampling_block": {"_target_": f"{blocks}.TransposedConvUpsample", "upsampling": 2,
                              "activation": activation},
        "output_layer": {"_target_": f"{blocks}.BasicConvBlock", "kernel_size": 1, "n_layers": 1},
    }
    return HEALPixUNet(encoder=encoder, decoder=decoder,
                       input_channels=in_channels, output_channels=out_channels, n_constants=0,
                       decoder_input_channels=0, input_time_dim=1, output_time_dim=1)


class DLWPHealpixUNet(nn.Module):
    """NVIDIA physicsnemo's DLWP-HEALPix U-Net on geounet's HEALPix pixels.

    physicsnemo's ``HEALPixUNet`` takes ``[B, F=12, T, C, H, W]`` face images in the
    ``"face"`` layout of :mod:`geounet.geometry.healpix` (DLWP's, ``"face_n_cw"``) and pads
    every face with its neighbours' pixels before each 3x3 convolution. On NEST pixels the
    wrapper is a pure reordering on both sides,

        y = to_nest(HEALPixUNet(from_nest(x, "face"))),

    and on a face-ordered hierarchy (``HealpixFaceHierarchy``) a reshape, with one time step
    in and out. Level ``i`` (finest first) has ``width * 2**i`` channels; ``depth`` levels
    need ``nside`` divisible by ``2**(depth - 1)`` (the coarsest faces are
    ``nside / 2**(depth - 1)`` pixels wide).

    Args:
        hierarchy: a HEALPix hierarchy; its finest level's nside is the model's.
        width: channels of the finest level.
        block: ``"basic"``: ``layers_per_level`` (default 2) plain 3x3 convolutions per level in
            the encoder and the decoder; ``"convnext"``: one residual ConvNeXt block per level, the
            block of Karlbauer et al.'s DLWP-HEALPix models (``layers_per_level`` does not apply).
    """

    def __init__(self, hierarchy: Hierarchy, in_channels: int, out_channels: int, width: int = 13,
                 depth: int = 4, block: str = "basic", layers_per_level: int | None = None):
        super().__init__()
        nside, self.layout = healpix_model_grid(hierarchy, "DLWPHealpixUNet")
        if not isinstance(depth, int) or depth < 1 or nside % 2 ** (depth - 1):
            raise GeounetError(f"DLWPHealpixUNet depth {depth!r} needs nside divisible by 2**(depth - 1); nside is "
                               f"{nside}: choose depth <= {nside.bit_length()}")
        if block not in DLWP_BLOCKS:
            raise GeounetError(f"DLWPHealpixUNet block must be one of {DLWP_BLOCKS}, got {block!r}")
        if block == "convnext" and layers_per_level is not None:
            raise GeounetError("DLWPHealpixUNet layers_per_level sets the basic block's convolutions; a ConvNeXt "
                               "block has its own two: leave layers_per_level out with block='convnext'")
        self.nside, self.num_pixels, self.in_channels = nside, 12 * nside**2, in_channels
        self.unet = _physicsnemo_unet(in_channels, out_channels, [width * 2**i for i in range(depth)], block,
                                      2 if layers_per_level is None else layers_per_level)

    def forward(self, x: Tensor, hierarchy: Hierarchy | None = None) -> Tensor:  # [B, N, C_in]
        """``hierarchy``, when given, must have the model's nside (the faces' size is fixed)."""
        check_healpix_call("DLWPHealpixUNet", self.nside, self.layout, hierarchy)
        _check_input(self, x, self.num_pixels, self.in_channels)
        if self.layout == "face":
            faces = x.reshape(x.shape[0], 12, self.nside, self.nside, x.shape[-1])  # [B, 12, n, n, C_in]
        else:
            faces = from_nest(x, "face", channels_last=True)  # [B, 12, n, n, C_in]
        out = self.unet([faces.permute(0, 1, 4, 2, 3).unsqueeze(2)])  # [B, 12, T=1, C_out, n, n]
        out = out.squeeze(2).permute(0, 1, 3, 4, 2)  # [B, 12, n, n, C_out]
        if self.layout == "face":
            return out.reshape(x.shape[0], self.num_pixels, -1)  # [B, N, C_out]
        return to_nest(out, "face", channels_last=True)  # [B, N, C_out]
