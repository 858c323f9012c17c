"""Ready-made U-Net configurations: the paper's three variants on any hierarchy.

- ``"multiresnet"``: E_i = id (zero encoder parameters), residual decoders.
- ``"residual"``: learned residual encoders E_i : V_i -> V_i, residual decoders.
- ``"multiresnet_matched"``: E_i = id, and the parameters a residual encoder would have
  used at level i are spent on extra residual blocks in decoder D_i ("Multi-ResNet,
  saved params added in dec." in the paper's Table 1).

The learned encoder keeps ``width`` channels on every level by default (a small encoder,
about 5 % of the parameters). ``encoder_channel_mult`` widens it per level as the
official code's encoder does (github.com/FabianFalck/unet-design, commit 4f65b2a,
pdearena/pdearena/modules/twod_unet.py: channels doubling per coarser level, about half the
parameters); ``"multiresnet_matched"`` then matches that larger encoder's budget.
``zero_init`` starts every residual branch at zero (:func:`zero_init_residuals`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.finest import finest_levels
from geounet.models.equivariant import build_equivariant_unet
from geounet.nn.blocks import OperatorFactory, ResidualBlock, ResidualBranch, set_checkpointing
from geounet.nn.decoder import Bottleneck, ResidualDecoder
from geounet.nn.encoder import IdentityEncoder, ResidualEncoder
from geounet.nn.equivariant_conv import EquivariantFactory
from geounet.nn.healpix_face import FaceKernelConvFactory, HealpixConv3x3Factory
from geounet.nn.message_passing import MessagePassingFactory
from geounet.nn.unet import UNet

#: the U-Net variants :func:`build_unet` builds (its ``variant`` argument)
VARIANTS = ("multiresnet", "residual", "multiresnet_matched")
#: the spatial operators build_unet makes when no factory is given
OPERATORS = ("message_passing", "conv3x3")


def level_channels(num_levels: int, width: int, channel_mult: Sequence[int] | None) -> list[int]:
    """Decoder width per level, finest last: ``width * channel_mult[I - i]``.

    ``channel_mult`` lists multipliers from the finest level down; it defaults to
    doubling per level up to 4x, and its last entry repeats for deeper hierarchies.
    """
    mult = list(channel_mult) if channel_mult else [1, 2, 4]
    if any(m < 1 for m in mult):
        raise GeounetError(f"channel_mult entries must be positive integers, got {mult}")
    return [width * mult[min(num_levels - 1 - i, len(mult) - 1)] for i in range(num_levels)]


def build_unet(
    hierarchy: Hierarchy,
    in_channels: int,
    out_channels: int,
    factory: OperatorFactory | None = None,
    *,
    variant: str = "multiresnet",
    width: int = 32,
    depth: int | None = None,
    channel_mult: Sequence[int] | None = None,
    decoder_blocks: int = 0,
    encoder_blocks: int = 1,
    encoder_channel_mult: Sequence[int] | None = None,
    bottleneck_blocks: int = 1,
    cond_dim: int | None = None,
    zero_init: bool = False,
    lift_bias: bool = True,
    checkpoint: bool = False,
    backend: str = "auto",
    kernel: str = "linear",
    num_kernels: int = 4,
    kernel_hidden: int = 16,
    edge_features: Sequence[int] | None = None,
    operator: str = "message_passing",
) -> UNet:
    """Build one of the paper's U-Net variants for hierarchies of ``hierarchy``'s kind.

    ``hierarchy`` is read only for its kind and number of levels (and ``factory`` for its
    edge-feature widths); the model holds no geometry and is called ``model(x, h)`` with
    any hierarchy of that kind (e.g. ``hierarchy`` itself, another mesh, a batch of meshes).

    Args:
        factory: makes the spatial operator of each level (the only geometric part); an
            :class:`~geounet.nn.equivariant_conv.EquivariantFactory` selects the rotation-equivariant
            family (:func:`~geounet.models.equivariant.build_equivariant_unet`; ``in_channels`` /
            ``out_channels`` may then be :class:`~geounet.functional.fields.FieldSpec`); None:
            the one ``operator`` names (:func:`operator_factory`).
        operator: ``"message_passing"`` (default): continuous-kernel message passing
            (:class:`~geounet.nn.message_passing.MessagePassingFactory` with ``backend``,
            ``kernel``, ``num_kernels``, ``kernel_hidden`` and ``edge_features``, which
            are ignored when a factory is given), on face-ordered HEALPix levels realised
            on padded face images (:class:`~geounet.nn.healpix_face.FaceKernelConv`);
            ``"conv3x3"``: a dense 3 x 3 convolution on HEALPix levels, NEST or face order
            (:class:`~geounet.nn.healpix_face.HealpixConv3x3`).
        depth: number of levels, the finest ones of the hierarchy the model is called
            with (None: all of ``hierarchy``'s).
        variant: one of :data:`VARIANTS`.
        width: channels of the encoder spaces V_i and of the finest decoder.
        decoder_blocks: extra residual blocks per decoder, beyond its merge branch.
        encoder_blocks: residual blocks per learned encoder (``"residual"``), and the
            number whose parameters ``"multiresnet_matched"`` moves into the decoder.
        encoder_channel_mult: channels of the learned encoder per level, as multiples of
            ``width`` listed from the finest level down (the last entry repeats, as in
            ``channel_mult``). None or ``[1]``: ``width`` on every level. E.g. ``[1, 2, 4]``
            doubles them per coarser level like the paper's code: E_i then opens with a
            channel change (:class:`~geounet.nn.encoder.ChannelChange`) applied after the
            restriction, the skips and the bottleneck input get wider, and
            ``"multiresnet_matched"`` moves all of that into its decoders. Not for
            ``"multiresnet"``, which has no learned encoder to widen.
        zero_init: zero the last operator of every residual branch, so the U-Net starts as
            its prolonged bottleneck path (:func:`zero_init_residuals`).
        lift_bias: give the pointwise lift a bias. Without one the lift commutes with every
            restriction, also on spaces without the constant (P 1 != 1, e.g. a zero-Dirichlet
            eigenbasis), so a Multi-ResNet's coarse outputs satisfy y_j(x) = y_j(P_j x) there too.
        checkpoint: recompute every residual branch in the backward pass instead of keeping
            its activations (:func:`~geounet.nn.blocks.set_checkpointing`): same numbers,
            less memory, one more forward pass of the branches.
    """
    if depth is not None:
        hierarchy = finest_levels(hierarchy, depth)
    if isinstance(factory, EquivariantFactory):
        return _equivariant_unet(hierarchy, in_channels, out_channels, factory, variant, width, decoder_blocks,
                                 bottleneck_blocks, cond_dim)
    if factory is None:
        factory = operator_factory(hierarchy, operator, backend=backend, kernel=kernel, num_kernels=num_kernels,
                                   kernel_hidden=kernel_hidden, edge_features=edge_features)
    if factory.kind != hierarchy.kind:
        raise GeounetError(f"factory makes operators for {factory.kind} hierarchies, not {hierarchy.kind}")
    if variant not in VARIANTS:
        raise GeounetError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("width", width)):
        if not isinstance(value, int) or value < 1:
            raise GeounetError(f"{name} must be a positive int, got {value!r}")
    if variant == "multiresnet" and any(m != 1 for m in encoder_channel_mult or [1]):
        raise GeounetError(f"encoder_channel_mult {list(encoder_channel_mult)} widens a learned encoder, but variant "
                         "'multiresnet' has none; use 'residual' or 'multiresnet_matched', or drop the option")
    levels = range(1, hierarchy.num_levels)
    channels = level_channels(hierarchy.num_levels, width, channel_mult)
    encoder_channels = level_channels(hierarchy.num_levels, width, encoder_channel_mult or [1])

    def learned_encoder(i: int) -> ResidualEncoder:
        # E_i reads the lift on the finest level, else the restriction of E_{i+1}'s output
        source = width if i == hierarchy.finest_level else encoder_channels[i + 1]
        return ResidualEncoder(factory, i, encoder_channels[i], encoder_blocks, cond_dim, in_channels=source)

    def wider_skip_parameters(i: int) -> int:
        # what the learned encoder's skip width adds to D_i's merge (and at level 1 to the bottleneck's input map)
        counts = []
        for skip in (encoder_channels[i], width):
            with torch.device("meta"):  # counted without memory or draws from the global RNG
                decoder = ResidualDecoder(factory, i, channels[i - 1], skip, channels[i], 0, cond_dim)
                bottleneck = Bottleneck(factory, skip, channels[0], 0, cond_dim) if i == 1 else nn.Identity()
            counts.append(_count(decoder) + _count(bottleneck))
        return counts[0] - counts[1]

    learned = variant == "residual"
    encoders: dict[int, nn.Module] = {i: learned_encoder(i) if learned else IdentityEncoder() for i in levels}
    skips = {i: encoder_channels[i] if learned else width for i in levels}
    extra_blocks = {i: decoder_blocks for i in levels}
    if variant == "multiresnet_matched":
        # Spend what the residual variant has beyond the Multi-ResNet at each level (its
        # encoder E_i, and the wider skip into D_i) on extra decoder blocks, rounding to
        # the nearest whole block and carrying the remainder from coarse to fine (error
        # diffusion), so the totals match to within half a finest-level block.
        carry = 0.0
        for i in levels:
            budget = carry + _count(learned_encoder(i)) + wider_skip_parameters(i)
            cost = _count(ResidualBlock(factory, i, channels[i], cond_dim))
            added = max(0, round(budget / cost))
            extra_blocks[i] += added
            carry = budget - added * cost

    decoders = {
        i: ResidualDecoder(factory, i, channels[i - 1], skips[i], channels[i], extra_blocks[i], cond_dim)
        for i in levels
    }
    unet = UNet(
        hierarchy.kind,
        hierarchy.num_levels,
        lift=nn.Linear(in_channels, width, bias=lift_bias),
        encoders=encoders,
        bottleneck=Bottleneck(factory, skips.get(1, width), channels[0], bottleneck_blocks, cond_dim),
        decoders=decoders,
        head=nn.Linear(channels[-1], out_channels),
    )
    set_checkpointing(unet, checkpoint)
    return zero_init_residuals(unet) if zero_init else unet


def _equivariant_unet(hierarchy: Hierarchy, in_channels, out_channels, factory: EquivariantFactory, variant: str,
                      width: int, decoder_blocks: int, bottleneck_blocks: int, cond_dim: int | None) -> UNet:
    """The equivariant family's Multi-ResNet (:mod:`geounet.models.equivariant`): ``in_channels`` /
    ``out_channels`` are FieldSpecs or scalar counts; the options it has no equivariant form of are refused."""
    if variant != "multiresnet" or cond_dim is not None:
        raise GeounetError(f"the equivariant family builds the Multi-ResNet without conditioning; got variant "
                           f"{variant!r}, cond_dim {cond_dim!r}: use variant='multiresnet', cond_dim=None")
    return build_equivariant_unet(hierarchy, in_channels, out_channels, factory, width=width,
                                  decoder_blocks=decoder_blocks, bottleneck_blocks=bottleneck_blocks)


def operator_factory(hierarchy: Hierarchy, operator: str = "message_passing", **options) -> OperatorFactory:
    """The :class:`~geounet.nn.blocks.OperatorFactory` of ``operator`` (one of :data:`OPERATORS`) for
    ``hierarchy``'s kind; ``options`` go to the message-passing factory. Hierarchies whose levels
    are HEALPix face images (``healpix_face_nside``) get the face-image realisation of message
    passing, with the parameters of the NEST one."""
    if operator not in OPERATORS:
        raise GeounetError(f"unknown operator {operator!r}; choose one of {OPERATORS}")
    if operator == "conv3x3":
        return HealpixConv3x3Factory(hierarchy)
    if all(hierarchy.healpix_face_nside(level) is not None for level in range(hierarchy.num_levels)):
        return FaceKernelConvFactory(hierarchy, **options)
    return MessagePassingFactory(hierarchy, **options)


@torch.no_grad()
def zero_init_residuals(model: nn.Module) -> nn.Module:
    """Zero the last operator of every residual branch in ``model``, in place; returns it.

    Every residual block ``h + R(h)`` then starts as the identity and every decoder as
    ``D_i(w, v) = ι(L_i w)`` (its merge branch is zero), so a U-Net starts as its
    prolonged bottleneck path

        U(x) = head ι L_I ... ι L_1 U_0( P_0 E_1 ... P_{I-1} E_I lift(x) ),

    with E_i = id for constant-width encoders (a linear map of x when the bottleneck's
    blocks are zeroed too), and E_i = its channel change for widened ones. This is the
    preconditioned start of the paper's §2.3: each resolution begins as the coarser
    U-Net prolonged, and learns only the residual. Gradients still reach every branch
    through the zeroed operator, whose input is not zero.
    """
    for module in model.modules():
        if isinstance(module, ResidualBranch):
            for parameter in module.op2.parameters():
                parameter.zero_()
    return model


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
