"""Analyses of data and trained models: the per-level noise study of diffusion, spectra, and
metrics of generated samples against data (band energies, sliced Wasserstein, MMD)."""

from geounet.analysis.sample_metrics import band_energies, compare_samples, mmd2, sliced_wasserstein, spectrum_error

__all__ = ["band_energies", "compare_samples", "mmd2", "sliced_wasserstein", "spectrum_error"]
