"""The ``[model]`` and ``[train]`` sections of a config, and the checks every section shares.

Every key is checked: unknown keys, wrong types and bad values are rejected with a
message naming the key, never ignored. Whole experiment configs (with a ``[task]``
section, which needs the task registry) are read by :mod:`geounet.experiment.config`.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from geounet.errors import GeounetError
from geounet.models.baselines import DLWP_BLOCKS
from geounet.models.unet import OPERATORS, VARIANTS


class ConfigError(GeounetError):
    """A configuration file or override is invalid."""


#: ``model.architecture``: geounet's U-Net, or a baseline sized to the U-Net's parameter count.
#: ``"dlwp"`` is physicsnemo's DLWP-HEALPix U-Net (the ``dlwp`` extra), on HEALPix tasks only.
ARCHITECTURES = ("unet", "cheb_unet", "graph_unet", "flat_resnet", "sfno", "dlwp")


@dataclass
class ModelConfig:
    """The U-Net (one of the paper's variants at a given width and depth), or a baseline
    with the parameter count of that U-Net.

    ``encoder_channel_mult``: the learned encoder's channels per level as multiples of
    ``width``, finest first, last entry repeating; ``[1]`` (default) keeps ``width`` on
    every level, ``[1, 2, 4]`` doubles them per coarser level like the paper's code
    (variants ``residual`` and ``multiresnet_matched``, which matches its budget; a
    ``multiresnet`` refuses it when built, so one config can list all three variants).
    ``zero_init``: start every residual branch at zero, so the U-Net starts as its
    prolonged bottleneck path.
    ``checkpoint``: activation checkpointing of the residual branches (same numbers,
    less memory, one more forward pass of the branches in training).
    ``operator``: the U-Net's spatial operator on every level (:data:`~geounet.models.unet.OPERATORS`):
    ``"message_passing"`` takes the task's own operator factory (continuous-kernel message
    passing, on face-ordered HEALPix levels realised on face images); ``"conv3x3"`` is the dense
    3 x 3 convolution on HEALPix levels (:class:`~geounet.nn.healpix_face.HealpixConv3x3`), fast on
    face-ordered ones (e.g. the shallow-water task's ``node_order = "face"``). Baselines are sized to
    the U-Net built with it.
    ``dlwp_block``: the convolution block of the ``"dlwp"`` baseline
    (:class:`~geounet.models.baselines.DLWPHealpixUNet`): ``"basic"`` plain 3 x 3 convolutions,
    ``"convnext"`` the residual ConvNeXt block of the DLWP-HEALPix models.
    """

    architecture: str = "unet"
    variant: str = "multiresnet"
    width: int = 16
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 4])
    num_levels: int = 4
    decoder_blocks: int = 0
    encoder_blocks: int = 1
    encoder_channel_mult: list[int] = field(default_factory=lambda: [1])
    bottleneck_blocks: int = 1
    zero_init: bool = False
    checkpoint: bool = False
    operator: str = "message_passing"
    dlwp_block: str = "basic"

    def validate(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"model.architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"model.variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.operator not in OPERATORS:
            raise ConfigError(f"model.operator must be one of {OPERATORS}, got {self.operator!r}")
        if self.dlwp_block not in DLWP_BLOCKS:
            raise ConfigError(f"model.dlwp_block must be one of {DLWP_BLOCKS}, got {self.dlwp_block!r}")
        _positive(self, "width", "num_levels", "encoder_blocks")
        _non_negative(self, "decoder_blocks", "bottleneck_blocks")
        for name in ("channel_mult", "encoder_channel_mult"):
            mult = getattr(self, name)
            if not mult or any(m < 1 for m in mult):
                raise ConfigError(f"model.{name} must be positive integers, got {mult}")


@dataclass
class TrainConfig:
    """Optimisation: AdamW with linear warm-up then cosine decay, as in the paper's PDE runs."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-5
    #: linear warm-up steps; one longer than train.steps ramps over the whole run (train/loop.py, _schedule)
    warmup_steps: int = 50
    min_lr_ratio: float = 1e-3
    grad_clip: float = 1.0
    eval_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0
    device: str = "cpu"
    #: serve every allocation from glibc's heap and keep freed memory during the steps
    #: (geounet.train.memory.freed_memory_retained): no page faults on each step's fresh
    #: activations, at the cost of resident memory between the periodic trims
    retain_freed_memory: bool = False

    def validate(self) -> None:
        _positive(self, "steps", "batch_size", "lr", "eval_every", "checkpoint_every")
        _non_negative(self, "weight_decay", "warmup_steps", "min_lr_ratio", "grad_clip")
        if self.min_lr_ratio > 1:
            raise ConfigError(f"train.min_lr_ratio must be at most 1, got {self.min_lr_ratio}")


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        _finite(cfg, name)
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"{_section(cfg)}.{name} must be positive, got {getattr(cfg, name)}")


def _non_negative(cfg: Any, *names: str) -> None:
    for name in names:
        _finite(cfg, name)
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{_section(cfg)}.{name} must be >= 0, got {getattr(cfg, name)}")


def _finite(cfg: Any, name: str) -> None:
    """TOML spells inf and nan; neither is a learning rate, a step count or a weight."""
    if not math.isfinite(getattr(cfg, name)):
        raise ConfigError(f"{_section(cfg)}.{name} must be a finite number, got {getattr(cfg, name)}")


def _section(cfg: Any) -> str:
    return {ModelConfig: "model", TrainConfig: "train"}.get(type(cfg), "task")


def build_dataclass(cls: type, values: dict[str, Any], section: str) -> Any:
    """Instantiate ``cls`` from ``values``, rejecting unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}; "
            f"valid keys in [{section}] are: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    checked = {key: _check_type(value, hints[key], f"{section}.{key}") for key, value in values.items()}
    instance = cls(**checked)
    if hasattr(instance, "validate"):
        instance.validate()
    return instance


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check_type(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} must be {hint}, got {value!r}")
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{where} must be None, got {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is Any:
        return value
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-3"`` -> (["train", "lr"], 0.001); values are TOML, bare words are strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if len(path) != 2 or not all(path):
        raise ConfigError(f"override key {key!r} must be section.key, e.g. train.steps")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value
