"""Ready-made model configurations and baselines."""

from geounet.models.baselines import ChebUNet, FlatResNet, GraphUNetBaseline, SFNOBaseline
from geounet.models.unet import VARIANTS, build_unet, level_channels
from geounet.models.zoo import count_parameters, message_passing_unet, size_to_parameters

__all__ = [
    "VARIANTS",
    "ChebUNet",
    "FlatResNet",
    "GraphUNetBaseline",
    "SFNOBaseline",
    "build_unet",
    "count_parameters",
    "level_channels",
    "message_passing_unet",
    "size_to_parameters",
]
