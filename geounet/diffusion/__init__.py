"""Diffusion models on any hierarchy: schedules, white noise, the denoising loss, samplers, EMA,
staged (coarse-to-fine) denoisers, and metrics of samples against data. A library: training
runs through :func:`geounet.train.loop.fit` (:mod:`geounet.experiment.diffusion`,
:mod:`geounet.train.staged`)."""

from geounet.diffusion.denoiser import Denoiser
from geounet.diffusion.ema import EMA
from geounet.diffusion.embedding import NoiseLevelEmbedding
from geounet.diffusion.loss import denoising_loss
from geounet.diffusion.noise import noise_std, white_noise
from geounet.diffusion.sample_metrics import band_energies, compare_samples, mmd2, sliced_wasserstein, spectrum_error
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
    "band_energies",
    "compare_samples",
    "denoising_loss",
    "make_schedule",
    "mmd2",
    "noise_std",
    "sample",
    "sliced_wasserstein",
    "spectrum_error",
    "stage_time_ranges",
    "staged_sample",
    "white_noise",
]
