"""The audio front end: STFT magnitudes resampled to a log-frequency axis, and masks brought back.

65,535-sample clips at 16 kHz, STFT with a 1024-sample Hann window and hop 256 (513 x 256 bins),
magnitudes resampled along frequency from 513 linear bins to 256 log-spaced bins. The resampling
is Sound of Pixels' ``grid_sample`` warp written as a fixed linear interpolation matrix: warped
row r reads linear bin 512 * (21 ** (r / 255) - 1) / 20, and its inverse (linear bin f reads
warped row 255 * log(1 + 20 f / 512) / log 21) brings masks back. Interpolation rows sum to one,
so an all-ones mask stays all ones in both domains.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

N_FFT = 1024
HOP = 256
N_LINEAR = N_FFT // 2 + 1
N_WARPED = 256
LOG_EPS = 1e-10  # Sound of Pixels' floor under the log magnitude


def _interpolation(positions: np.ndarray, n_in: int) -> np.ndarray:
    """(len(positions), n_in) matrix of linear interpolation at fractional input indices."""
    low = np.clip(np.floor(positions).astype(np.int64), 0, n_in - 2)
    frac = positions - low
    matrix = np.zeros((len(positions), n_in), dtype=np.float64)
    rows = np.arange(len(positions))
    matrix[rows, low] = 1 - frac
    matrix[rows, low + 1] += frac
    return matrix


@lru_cache(maxsize=8)
def _warp_matrices(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (256, 513) and inverse (513, 256) log-frequency warps (see the module docstring)."""
    forward = (N_LINEAR - 1) * (21.0 ** (np.arange(N_WARPED) / (N_WARPED - 1)) - 1) / 20
    inverse = (N_WARPED - 1) * np.log1p(20 * np.arange(N_LINEAR) / (N_LINEAR - 1)) / np.log(21)
    return tuple(
        torch.from_numpy(_interpolation(p, n).astype(np.float32)).to(device)
        for p, n in ((forward, N_LINEAR), (inverse, N_WARPED))
    )


def stft(audio: torch.Tensor) -> torch.Tensor:
    """Complex spectrogram (..., 513, frames) of (..., samples)."""
    shape = audio.shape
    window = torch.hann_window(N_FFT, device=audio.device)
    spec = torch.stft(audio.reshape(-1, shape[-1]).float(), N_FFT, HOP, N_FFT, window, return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    shape = spec.shape
    window = torch.hann_window(N_FFT, device=spec.device)
    audio = torch.istft(spec.reshape(-1, *shape[-2:]), N_FFT, HOP, N_FFT, window, length=length)
    return audio.reshape(*shape[:-2], length)


def warp(linear: torch.Tensor) -> torch.Tensor:
    """(..., 513, T) -> (..., 256, T) on the log-frequency axis."""
    return torch.einsum("wf,...ft->...wt", _warp_matrices(str(linear.device))[0], linear)


def unwarp(warped: torch.Tensor) -> torch.Tensor:
    """(..., 256, T) -> (..., 513, T): a mask on the warped axis back on the STFT's axis."""
    return torch.einsum("fw,...wt->...ft", _warp_matrices(str(warped.device))[1], warped)


def apply_mask(spec: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
    """Audio of a warped-domain mask applied to a complex mixture spectrogram, keeping its phase."""
    return istft(spec * unwarp(mask), length)
