"""Diffusion models on any hierarchy: schedules, white noise, the denoising loss, samplers, EMA,
and staged (coarse-to-fine) denoisers. A library: training runs through
:func:`geounet.train.loop.fit` (:mod:`geounet.experiment.diffusion`, :mod:`geounet.train.staged`);
metrics of samples against data are in :mod:`geounet.analysis`."""

from geounet.diffusion.denoiser import Denoiser
from geounet.diffusion.ema import EMA
from geounet.diffusion.embedding import NoiseLevelEmbedding
from geounet.diffusion.loss import denoising_loss
from geounet.diffusion.noise import noise_std, white_noise
from geounet.diffusion.samplers import SAMPLERS, sample
from geounet.diffusion.schedules import EDM, SCHEDULES, Schedule, VPCosine, make_schedule
from geounet.diffusion.staged import StagedDenoiser, stage_time_ranges, staged_sample

__all__ = [
    "EDM",
    "EMA",
    "SAMPLERS",
    "SCHEDULES",
    "Denoiser",
    "NoiseLevelEmbedding",
    "Schedule",
    "StagedDenoiser",
    "VPCosine",
    "denoising_loss",
    "make_schedule",
    "noise_std",
    "sample",
    "stage_time_ranges",
    "staged_sample",
    "white_noise",
]
