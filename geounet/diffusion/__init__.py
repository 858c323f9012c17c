"""Diffusion models on any hierarchy: schedules, white noise, the denoising loss, samplers, EMA."""

from geounet.diffusion.denoiser import Denoiser
from geounet.diffusion.ema import EMA
from geounet.diffusion.embedding import NoiseLevelEmbedding
from geounet.diffusion.loss import denoising_loss
from geounet.diffusion.noise import noise_std, white_noise
from geounet.diffusion.samplers import SAMPLERS, sample
from geounet.diffusion.schedules import EDM, SCHEDULES, Schedule, VPCosine, make_schedule

__all__ = [
    "EDM",
    "EMA",
    "SAMPLERS",
    "SCHEDULES",
    "Denoiser",
    "NoiseLevelEmbedding",
    "Schedule",
    "VPCosine",
    "denoising_loss",
    "make_schedule",
    "noise_std",
    "sample",
    "white_noise",
]
