"""The log-mel spectrograms Baton's audio models read and write.

A :class:`MelSpec` names one analysis; every function takes the spec, so that a mel a model
predicts is exactly what its vocoder was trained to invert. ``PERFORMANCE`` is the Deep
Performer's (its clip shards, the synthesis model's targets and its vocoder's inputs);
``CLIPSONIC`` is CLIPSonic's (thesis §7.A: 64 bands, hop 512, n_fft 2048). The module constants
are ``PERFORMANCE``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import librosa
import numpy as np
import torch


@dataclass(frozen=True)
class MelSpec:
    sample_rate: int
    n_fft: int
    hop: int
    win: int
    n_mels: int
    floor: float = 1e-5


PERFORMANCE = MelSpec(sample_rate=16_000, n_fft=1024, hop=256, win=1024, n_mels=80)
CLIPSONIC = MelSpec(sample_rate=16_000, n_fft=2048, hop=512, win=2048, n_mels=64)
SPECS = {"performance": PERFORMANCE, "clipsonic": CLIPSONIC}

SAMPLE_RATE = PERFORMANCE.sample_rate
N_FFT = PERFORMANCE.n_fft
HOP = PERFORMANCE.hop
WIN = PERFORMANCE.win
N_MELS = PERFORMANCE.n_mels
FLOOR = PERFORMANCE.floor


@lru_cache(maxsize=4)
def mel_basis(spec: MelSpec = PERFORMANCE) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney-normalised mel filterbank up to the Nyquist frequency."""
    return librosa.filters.mel(sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels)


@lru_cache(maxsize=4)
def _mel_basis_tensor(spec: MelSpec) -> torch.Tensor:
    return torch.from_numpy(mel_basis(spec)).double()


def log_mel(audio: np.ndarray, spec: MelSpec = PERFORMANCE) -> np.ndarray:
    """(frames, n_mels) float32 log of the mel-filtered STFT magnitude, floored at ``spec.floor``;
    frame ``t`` is centred on sample ``t * spec.hop``."""
    audio = np.asarray(audio, dtype=np.float32)
    magnitude = np.abs(librosa.stft(audio, n_fft=spec.n_fft, hop_length=spec.hop, win_length=spec.win))
    return np.log(np.maximum(mel_basis(spec) @ magnitude, spec.floor)).T.astype(np.float32)


def log_mel_torch(audio: torch.Tensor, spec: MelSpec = PERFORMANCE) -> torch.Tensor:
    """:func:`log_mel` of a (batch, samples) or (samples,) tensor as (batch, frames, n_mels) float32.

    Differentiable and on the audio's device, for losses on generated audio. It pads and windows
    like ``librosa.stft`` (zeros, periodic Hann) and runs in float64: float32 FFT rounding, about
    1e-7 of the loudest bin, is visible in the log of quiet bins near the floor.
    """
    audio = audio.double().reshape(-1, audio.shape[-1])
    window = torch.hann_window(spec.win, dtype=torch.float64, device=audio.device)
    stft = torch.stft(audio, spec.n_fft, spec.hop, spec.win, window, center=True, pad_mode="constant", return_complex=True)
    mel = _mel_basis_tensor(spec).to(audio.device) @ stft.abs()
    return torch.log(mel.clamp_min(spec.floor)).transpose(1, 2).float()
