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

from torch import Tensor, nn

from geounet.hierarchy.base import Hierarchy, LevelGraph
from geounet.models.unet import build_unet
from geounet.nn.message_passing import MessagePassingFactory
from geounet.nn.unet import UNet


class FinestLevels(Hierarchy):
    """The ``num_levels`` finest levels of ``base`` as a hierarchy of their own.

    Level ``i`` here is level ``i + base.num_levels - num_levels`` of ``base``; restrict,
    prolong, mass, graphs and components are delegated, so all invariants carry over.
    """

    def __init__(self, base: Hierarchy, num_levels: int):
        if not isinstance(num_levels, int) or not 1 <= num_levels <= base.num_levels:
            raise ValueError(
                f"depth must be an int in [1, {base.num_levels}] for {base!r}, got {num_levels!r}"
            )
        self.base = base
        self.offset = base.num_levels - num_levels
        self._num_levels = num_levels
        self.reproduces_constants = base.reproduces_constants
        self.preserves_integrals = base.preserves_integrals

    def __repr__(self) -> str:
        return f"FinestLevels({self.base!r}, num_levels={self.num_levels})"

    @property
    def num_levels(self) -> int:
        return self._num_levels

    def num_nodes(self, level: int) -> int:
        self._check_level(level)
        return self.base.num_nodes(level + self.offset)

    def mass(self, level: int) -> Tensor:
        self._check_level(level)
        return self.base.mass(level + self.offset)

    def graph(self, level: int) -> LevelGraph:
        self._check_level(level)
        return self.base.graph(level + self.offset)

    def components(self, level: int) -> list[int]:
        self._check_level(level)
        return self.base.components(level + self.offset)

    def _restrict(self, x: Tensor, level: int) -> Tensor:
        return self.base.restrict(x, level + self.offset)

    def _prolong(self, x: Tensor, level: int) -> Tensor:
        return self.base.prolong(x, level + self.offset)


def finest_levels(hierarchy: Hierarchy, depth: int) -> Hierarchy:
    """The ``depth`` finest levels of ``hierarchy``: the hierarchy itself when that is all of
    them (so models and constraints built on it share one object), else a :class:`FinestLevels`."""
    return hierarchy if depth == hierarchy.num_levels else FinestLevels(hierarchy, depth)


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
        depth: number of levels to use, the finest ones of ``hierarchy`` (None: all).
        blocks: extra residual blocks per decoder beyond its merge branch.
        factory: reuse an existing factory (its cached graphs), e.g. when building many
            models on one hierarchy; ``backend``/``kernel``/... are then ignored.
            It must have been built on ``hierarchy`` itself.

    ``model.parameter_counts()`` reports lift / encoder / bottleneck / decoder / head.
    """
    levels = hierarchy if depth is None else finest_levels(hierarchy, depth)
    if factory is None:
        factory = MessagePassingFactory(
            levels, backend=backend, kernel=kernel, num_kernels=num_kernels, kernel_hidden=kernel_hidden,
            edge_features=edge_features,
        )
    elif factory.hierarchy is not levels:
        raise ValueError(
            "factory was built on a different hierarchy; with depth, build it on "
            "FinestLevels(hierarchy, depth) and pass that FinestLevels as hierarchy without depth"
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
