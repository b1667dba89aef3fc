"""VGGish (Hershey et al., ICASSP 2017), the audio embedding the Fréchet audio distance is measured in.

A port rather than a dependency: the FAD packages on PyPI need torchaudio or torchvision and fetch
their weights from the network on first use, and neither is available here. The network is the
TensorFlow release's as torchvggish ports it, with torchvggish's state-dict keys, so its released
``vggish-10086976.pth`` loads as it is. The 128-d output is the raw embedding FAD reads: no PCA,
no quantisation, and no ReLU after the last layer (the TensorFlow release dropped it; FAD
implementations that load torchvggish remove it too).

The input framing ports ``vggish_input``/``mel_features`` line for line in numpy: 25 ms periodic
Hann frames every 10 ms, the magnitude of a 512-point FFT, 64 HTK mel bands from 125 to 7500 Hz
with ``mel_features``' own filterbank (not librosa's Slaney one), ``log(mel + 0.01)``, cut into
non-overlapping 0.96 s examples of 96 frames.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.checkpoints import UnsafeModelFile, safe_load
from models.training import default_device, model_device

SAMPLE_RATE = 16_000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT = 512  # the power of two at or above the window
N_BANDS = 64
LOW_HZ, HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s
EMBED_DIM = 128
MIN_SAMPLES = WINDOW + (EXAMPLE_FRAMES - 1) * HOP  # the shortest audio giving one whole example
WEIGHTS_FILE = "vggish-10086976.pth"


class VGGishWeightsMissing(FileNotFoundError):
    """The VGGish weights file is absent or not a state dict of this network."""


def frame(data: np.ndarray, window: int, hop: int) -> np.ndarray:
    """(n, window, ...) strided view of whole frames of ``data`` along its first axis (``mel_features.frame``)."""
    n = 1 + (data.shape[0] - window) // hop
    shape = (n, window) + data.shape[1:]
    strides = (data.strides[0] * hop,) + data.strides
    return np.lib.stride_tricks.as_strided(data, shape=shape, strides=strides, writeable=False)


def periodic_hann(length: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi / length * np.arange(length))


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as ``mel_features`` defines it."""
    return 1127.0 * np.log(1.0 + np.asarray(hertz) / 700.0)


def mel_matrix(
    n_bands: int = N_BANDS, n_bins: int = FFT // 2 + 1, sample_rate: int = SAMPLE_RATE,
    low_hz: float = LOW_HZ, high_hz: float = HIGH_HZ,
) -> np.ndarray:
    """(n_bins, n_bands) triangular weights in mel, unnormalised, DC bin zeroed (``spectrogram_to_mel_matrix``)."""
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2, n_bins))
    edges = np.linspace(hertz_to_mel(low_hz), hertz_to_mel(high_hz), n_bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


_MEL = mel_matrix()


def log_mel(audio16k: np.ndarray) -> np.ndarray:
    """(frames, 64) float64 ``log(mel + 0.01)`` of whole 25 ms frames of 16 kHz audio."""
    frames = frame(np.asarray(audio16k, dtype=np.float64), WINDOW, HOP)
    magnitude = np.abs(np.fft.rfft(frames * periodic_hann(WINDOW), FFT))
    return np.log(magnitude @ _MEL + LOG_OFFSET)


def vggish_examples(audio16k: np.ndarray) -> np.ndarray:
    """(n, 96, 64) float32 log-mel examples of mono 16 kHz audio; shorter than one example is zero-padded to one."""
    audio = np.asarray(audio16k, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"VGGish reads mono audio, got shape {audio.shape}")
    if len(audio) < MIN_SAMPLES:
        audio = np.pad(audio, (0, MIN_SAMPLES - len(audio)))
    return frame(log_mel(audio), EXAMPLE_FRAMES, EXAMPLE_FRAMES).astype(np.float32)


class VGGish(nn.Module):
    """VGG-A on (n, 1, 96, 64) log-mel examples; flattens channels-last as TensorFlow does, so fc weights match."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if width == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = width
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, EMBED_DIM),
        )  # fmt: skip

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """(n, 128) embeddings of (n, 96, 64) examples."""
        maps = self.features(examples.unsqueeze(1))  # (n, 512, 6, 4)
        return self.embeddings(maps.permute(0, 2, 3, 1).flatten(1))


def _missing(path: Path, why: str) -> VGGishWeightsMissing:
    return VGGishWeightsMissing(
        f"VGGish weights {path} {why}: provide torchvggish's release {WEIGHTS_FILE} (or a state dict with its "
        "keys features.*, embeddings.*) at that path, or configure the path of the VGGish weights file"
    )


def load_vggish(path: str | os.PathLike, device: str | torch.device | None = None) -> VGGish:
    """VGGish with the weights of ``path`` (``torch.load(weights_only=True)``), in eval mode on ``device``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise _missing(path, "not found")
    model = VGGish()
    try:
        model.load_state_dict(safe_load(path))
    except (UnsafeModelFile, RuntimeError, EOFError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise _missing(path, f"could not be loaded ({reason})") from error
    return model.to(device or default_device()).eval().requires_grad_(False)


@torch.no_grad()
def vggish_embed(model: VGGish, clips: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """(N, 128) float32 embeddings of every example of every clip (16 kHz mono), in order."""
    examples = [vggish_examples(clip) for clip in clips]
    stacked = np.concatenate(examples) if examples else np.zeros((0, EXAMPLE_FRAMES, N_BANDS), np.float32)
    device = model_device(model)
    out = np.empty((len(stacked), EMBED_DIM), dtype=np.float32)
    for start in range(0, len(stacked), batch_size):
        batch = torch.from_numpy(stacked[start : start + batch_size]).to(device)
        out[start : start + len(batch)] = model(batch).float().cpu().numpy()
    return out
