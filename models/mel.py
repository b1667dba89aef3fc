"""The log-mel spectrogram every performance model reads and writes (the Deep Performer's).

One definition serves the clip shards, the synthesis model's targets and the vocoders' inputs,
so that a mel the synthesis model predicts is exactly what the vocoder was trained to invert.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import torch

SAMPLE_RATE = 16_000
N_FFT = 1024
HOP = 256
WIN = 1024
N_MELS = 80
FLOOR = 1e-5


def mel_basis() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) Slaney-normalised mel filterbank up to the Nyquist frequency."""
    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)


@lru_cache(maxsize=1)
def _mel_basis_tensor() -> torch.Tensor:
    return torch.from_numpy(mel_basis()).double()


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) float32 log of the mel-filtered STFT magnitude, floored at FLOOR;
    frame ``t`` is centred on sample ``t * HOP``."""
    magnitude = np.abs(librosa.stft(np.asarray(audio, dtype=np.float32), n_fft=N_FFT, hop_length=HOP, win_length=WIN))
    return np.log(np.maximum(mel_basis() @ magnitude, FLOOR)).T.astype(np.float32)


def log_mel_torch(audio: torch.Tensor) -> torch.Tensor:
    """:func:`log_mel` of a (batch, samples) or (samples,) tensor as (batch, frames, N_MELS) float32.

    Differentiable and on the audio's device, for losses on generated audio. It pads and windows
    like ``librosa.stft`` (zeros, periodic Hann) and runs in float64: float32 FFT rounding, about
    1e-7 of the loudest bin, is visible in the log of quiet bins near the floor.
    """
    audio = audio.double().reshape(-1, audio.shape[-1])
    window = torch.hann_window(WIN, dtype=torch.float64, device=audio.device)
    spec = torch.stft(audio, N_FFT, HOP, WIN, window, center=True, pad_mode="constant", return_complex=True)
    mel = _mel_basis_tensor().to(audio.device) @ spec.abs()
    return torch.log(mel.clamp_min(FLOOR)).transpose(1, 2).float()
