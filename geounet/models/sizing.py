"""Ready-made message-passing U-Nets on any hierarchy, and sizing to a parameter budget.

:func:`message_passing_unet` builds one of the paper's three variants
(:data:`geounet.models.unet.VARIANTS`: ``"multiresnet"``, ``"residual"``,
``"multiresnet_matched"``) with :class:`~geounet.nn.message_passing.MessagePassingFactory`
spatial operators, at a requested width and depth (number of levels, taken from the
finest end of the hierarchy). :func:`size_to_parameters` picks the width whose model has
the parameter count closest to a target, for any width -> model builder (the baselines
in :mod:`geounet.models.baselines` included).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.finest import finest_levels
from geounet.models.unet import build_unet
from geounet.nn.message_passing import MessagePassingFactory
from geounet.nn.unet import UNet


def message_passing_unet(
    hierarchy: Hierarchy,
    in_channels: int,
    out_channels: int,
    *,
    variant: str = "multiresnet",
    width: int = 32,
    depth: int | None = None,
    blocks: int = 0,
    channel_mult: Sequence[int] | None = None,
    cond_dim: int | None = None,
    factory: MessagePassingFactory | None = None,
    backend: str = "auto",
    kernel: str = "linear",
    num_kernels: int = 4,
    kernel_hidden: int = 16,
    edge_features: Sequence[int] | None = None,
) -> UNet:
    """A Multi-ResNet / residual U-Net / matched Multi-ResNet with message-passing decoders.

    Args:
        variant: ``"multiresnet"`` (E_i = id), ``"residual"`` (learned residual encoders)
            or ``"multiresnet_matched"`` (E_i = id, the encoder's parameters spent on
            extra decoder blocks).
        width: channels of V_i and of the finest decoder (coarser decoders are wider by
            ``channel_mult``, default 1, 2, 4 from the finest level down).
        depth: number of levels to use, the finest ones of the hierarchy it is called
            with (None: all of ``hierarchy``'s).
        blocks: extra residual blocks per decoder beyond its merge branch.
        factory: an existing factory for ``hierarchy``'s kind; ``backend``/``kernel``/...
            are then ignored.

    ``hierarchy`` is read for its kind and sizes only; call the model ``model(x, h)``.
    ``model.parameter_counts()`` reports lift / encoder / bottleneck / decoder / head.
    """
    levels = hierarchy if depth is None else finest_levels(hierarchy, depth)
    if factory is None:
        factory = MessagePassingFactory(
            levels, backend=backend, kernel=kernel, num_kernels=num_kernels, kernel_hidden=kernel_hidden,
            edge_features=edge_features,
        )
    return build_unet(
        levels, in_channels, out_channels, factory, variant=variant, width=width,
        channel_mult=channel_mult, decoder_blocks=blocks, cond_dim=cond_dim,
    )


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def size_to_parameters(
    build: Callable[[int], nn.Module], target: int, widths: Sequence[int] = range(1, 1025)
) -> tuple[int, nn.Module]:
    """The width (from ``widths``, increasing) whose model's parameter count is nearest ``target``.

    Bisects on the assumption that the count grows with the width (true for every model
    here); returns ``(width, model)``.
    """
    widths = list(widths)
    if target < 1 or not widths:
        raise ValueError(f"need a positive target and at least one width, got {target} and {len(widths)} widths")
    counts: dict[int, int] = {}

    def count(index: int) -> int:
        if index not in counts:
            counts[index] = count_parameters(build(widths[index]))
        return counts[index]

    lo, hi = 0, len(widths) - 1
    if count(hi) < target:
        raise ValueError(f"the widest model ({widths[hi]}) has {count(hi)} parameters, below the target {target}")
    while lo < hi:  # smallest index with count >= target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < target else (lo, mid)
    best = min((i for i in (lo - 1, lo) if i >= 0), key=lambda i: abs(count(i) - target))
    return widths[best], build(widths[best])
