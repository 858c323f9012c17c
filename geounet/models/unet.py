"""Ready-made U-Net configurations: the paper's three variants on any hierarchy.

- ``"multiresnet"``: E_i = id (zero encoder parameters), residual decoders.
- ``"residual"``: learned residual encoders E_i : V_i -> V_i, residual decoders.
- ``"multiresnet_matched"``: E_i = id, and the parameters a residual encoder would have
  used at level i are spent on extra residual blocks in decoder D_i ("Multi-ResNet,
  saved params added in dec." in the paper's Table 1).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.finest import finest_levels
from geounet.nn.blocks import OperatorFactory, ResidualBlock
from geounet.nn.decoder import Bottleneck, ResidualDecoder
from geounet.nn.encoder import IdentityEncoder, ResidualEncoder
from geounet.nn.message_passing import MessagePassingFactory
from geounet.nn.unet import UNet

VARIANTS = ("multiresnet", "residual", "multiresnet_matched")


def level_channels(num_levels: int, width: int, channel_mult: Sequence[int] | None) -> list[int]:
    """Decoder width per level, finest last: ``width * channel_mult[I - i]``.

    ``channel_mult`` lists multipliers from the finest level down; it defaults to
    doubling per level up to 4x, and its last entry repeats for deeper hierarchies.
    """
    mult = list(channel_mult) if channel_mult else [1, 2, 4]
    if any(m < 1 for m in mult):
        raise ValueError(f"channel_mult entries must be positive integers, got {mult}")
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
    bottleneck_blocks: int = 1,
    cond_dim: int | None = None,
    backend: str = "auto",
    kernel: str = "linear",
    num_kernels: int = 4,
    kernel_hidden: int = 16,
    edge_features: Sequence[int] | None = None,
) -> UNet:
    """Build one of the paper's U-Net variants for hierarchies of ``hierarchy``'s kind.

    ``hierarchy`` is read only for its kind and number of levels (and ``factory`` for its
    edge-feature widths); the model holds no geometry and is called ``model(x, h)`` with
    any hierarchy of that kind (e.g. ``hierarchy`` itself, another mesh, a batch of meshes).

    Args:
        factory: makes the spatial operator of each level (the only geometric part);
            None: continuous-kernel message passing
            (:class:`~geounet.nn.message_passing.MessagePassingFactory` with ``backend``,
            ``kernel``, ``num_kernels``, ``kernel_hidden`` and ``edge_features``, which
            are ignored when a factory is given).
        depth: number of levels, the finest ones of the hierarchy the model is called
            with (None: all of ``hierarchy``'s).
        variant: one of :data:`VARIANTS`.
        width: channels of the encoder spaces V_i and of the finest decoder.
        decoder_blocks: extra residual blocks per decoder, beyond its merge branch.
        encoder_blocks: residual blocks per learned encoder (``"residual"``), and the
            number whose parameters ``"multiresnet_matched"`` moves into the decoder.
    """
    if depth is not None:
        hierarchy = finest_levels(hierarchy, depth)
    if factory is None:
        factory = MessagePassingFactory(hierarchy, backend=backend, kernel=kernel, num_kernels=num_kernels,
                                        kernel_hidden=kernel_hidden, edge_features=edge_features)
    if factory.kind != hierarchy.kind:
        raise ValueError(f"factory makes operators for {factory.kind} hierarchies, not {hierarchy.kind}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("width", width)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    levels = range(1, hierarchy.num_levels)
    channels = level_channels(hierarchy.num_levels, width, channel_mult)

    encoders: dict[int, nn.Module] = {
        i: ResidualEncoder(factory, i, width, encoder_blocks, cond_dim) if variant == "residual" else IdentityEncoder()
        for i in levels
    }
    extra_blocks = {i: decoder_blocks for i in levels}
    if variant == "multiresnet_matched":
        # Spend each level's saved encoder parameters on extra decoder blocks, rounding
        # to the nearest whole block and carrying the remainder from coarse to fine
        # (error diffusion), so the totals match to within half a finest-level block.
        carry = 0.0
        for i in levels:
            budget = carry + encoder_blocks * _count(ResidualBlock(factory, i, width, cond_dim))
            cost = _count(ResidualBlock(factory, i, channels[i], cond_dim))
            added = max(0, round(budget / cost))
            extra_blocks[i] += added
            carry = budget - added * cost

    decoders = {
        i: ResidualDecoder(factory, i, channels[i - 1], width, channels[i], extra_blocks[i], cond_dim)
        for i in levels
    }
    return UNet(
        hierarchy.kind,
        hierarchy.num_levels,
        lift=nn.Linear(in_channels, width),
        encoders=encoders,
        bottleneck=Bottleneck(factory, width, channels[0], bottleneck_blocks, cond_dim),
        decoders=decoders,
        head=nn.Linear(channels[-1], out_channels),
    )


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
