"""Ready-made model configurations."""

from geounet.models.unet import VARIANTS, build_unet, level_channels

__all__ = ["VARIANTS", "build_unet", "level_channels"]
