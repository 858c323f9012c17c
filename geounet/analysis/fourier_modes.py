"""How much of a data set on the periodic square one Fourier mode carries.

A field on the n x n torus is x = Σ_k c_k e^{2πi k·x} (``rfft2`` with ``norm="forward"``),
and by Parseval ⟨x²⟩ = Σ_k |c_k|². A real field has c_{-k} = conj(c_k), so the smallest
real subspace one mode spans is the pair ±k (cos and sin of 2π k·x). Its share of the data
set's energy is

    s_k = Σ_samples (|c_k|² + |c_{-k}|²) / Σ_samples Σ_j |c_j|².

If one pair holds most of the targets (or of their change from the inputs) with a phase that
does not vary between samples, a model only has to learn that one mode: every model's error
then sits at the part the pair leaves, and a comparison of models cannot separate them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geounet.errors import GeounetError


def mode_energies(fields: Tensor) -> Tensor:
    """Σ_samples |c_k|² for every wavevector k of ``fields [S, n, n]``: ``[n, n]`` (fftfreq order, axis -2 = k_y)."""
    if fields.dim() != 3 or fields.shape[-1] != fields.shape[-2]:
        raise GeounetError(f"fields must be [samples, n, n] on a square grid, got {list(fields.shape)}")
    coefficients = torch.fft.fft2(fields.to(torch.float64), norm="forward")  # [S, n, n]
    return coefficients.abs().square().sum(dim=0)


def largest_mode_share(fields: Tensor) -> dict:
    """The mode pair ±k holding the largest share s_k of ``fields [S, n, n]``'s energy:
    ``{"share": s_k, "mode": [k_x, k_y]}`` (k in cycles per side, k_y >= 0 representative)."""
    energies = mode_energies(fields)
    total = energies.sum()
    if total == 0:
        raise GeounetError("the fields are identically zero: no mode holds a share of their energy")
    n = energies.shape[-1]
    mirrored = torch.roll(torch.flip(energies, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))  # E_{-k} at k
    self_paired = torch.zeros_like(energies, dtype=torch.bool)  # k = -k: 0 and the Nyquist modes
    for ky in (0, n // 2):
        for kx in (0, n // 2):
            self_paired[ky, kx] = True
    pair = torch.where(self_paired, energies, energies + mirrored) / total
    index = int(pair.argmax())
    frequencies = torch.fft.fftfreq(n, d=1.0 / n)
    ky, kx = int(frequencies[index // n]), int(frequencies[index % n])
    if ky < 0 or (ky == 0 and kx < 0):
        ky, kx = -ky, -kx
    return {"share": float(pair.flatten()[index]), "mode": [kx, ky]}


__all__ = ["largest_mode_share", "mode_energies"]
