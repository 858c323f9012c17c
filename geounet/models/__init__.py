"""Ready-made model configurations and baselines."""

from geounet.models.baselines import ChebUNet, FlatResNet, GraphUNetBaseline, SFNOBaseline
from geounet.models.constrained import ConstrainedUNet
from geounet.models.equivariant import EquivariantUNet, build_equivariant_unet
from geounet.models.sizing import count_parameters, size_to_parameters
from geounet.models.unet import VARIANTS, build_unet, level_channels

__all__ = [
    "VARIANTS",
    "ChebUNet",
    "ConstrainedUNet",
    "EquivariantUNet",
    "FlatResNet",
    "GraphUNetBaseline",
    "SFNOBaseline",
    "build_equivariant_unet",
    "build_unet",
    "count_parameters",
    "level_channels",
    "size_to_parameters",
]
