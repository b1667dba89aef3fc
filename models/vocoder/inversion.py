"""Log-mel to audio by Griffin-Lim or a trained generator, and the resynthesis error that compares them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import librosa
import numpy as np
import torch
from torch import nn

from models.mel import PERFORMANCE, MelSpec, log_mel
from models.training import model_device


class SpecMismatch(ValueError):
    """A vocoder asked to invert mels of a spec other than the one it was trained on."""


def _describe(spec: MelSpec) -> str:
    return f"{spec.n_mels}-band hop-{spec.hop} n_fft-{spec.n_fft}"


def griffin_lim(log_mel: np.ndarray, spec: MelSpec = PERFORMANCE, n_iter: int = 64) -> np.ndarray:
    """Float32 audio of ``(len(log_mel) - 1) * spec.hop`` samples, whose log-mel has ``len(log_mel)`` frames.

    The linear magnitude is the non-negative least-squares inverse of the same filterbank; the
    phase comes from ``n_iter`` Griffin-Lim iterations from a fixed random start (reproducible).
    """
    log_mel = np.asarray(log_mel, dtype=np.float32)
    magnitude = librosa.feature.inverse.mel_to_stft(
        np.exp(log_mel.T), sr=spec.sample_rate, n_fft=spec.n_fft, power=1.0
    )
    audio = librosa.griffinlim(
        magnitude, n_iter=n_iter, hop_length=spec.hop, win_length=spec.win, n_fft=spec.n_fft,
        length=(len(log_mel) - 1) * spec.hop, random_state=0,
    )  # fmt: skip
    return audio.astype(np.float32)


@torch.no_grad()
def hifigan_vocode(generator: nn.Module, log_mel: np.ndarray) -> np.ndarray:
    """Float32 audio of ``len(log_mel) * hop`` samples from a (frames, n_mels) log-mel of the generator's spec."""
    was_training = generator.training
    generator.eval()
    mel = torch.from_numpy(np.asarray(log_mel, dtype=np.float32).T.copy())[None].to(model_device(generator))
    audio = generator(mel)[0, 0].float().cpu().numpy()
    generator.train(was_training)
    return audio


def resynthesis_l1(
    audio: Sequence[np.ndarray], inverse: Callable[[np.ndarray], np.ndarray], spec: MelSpec = PERFORMANCE
) -> float:
    """Mean absolute ``spec`` log-mel error of the clips re-synthesised by ``inverse`` from their own
    log-mels: the one yardstick for HiFi-GAN and Griffin-Lim alike."""
    errors = []
    for clip in audio:
        target = log_mel(clip, spec)
        restored = np.zeros(len(clip), np.float32)
        out = inverse(target)[: len(clip)]
        restored[: len(out)] = out
        errors.append(np.abs(log_mel(restored, spec) - target).ravel())
    return float(np.concatenate(errors).mean())


def validate(generator: nn.Module, audio: Sequence[np.ndarray]) -> dict[str, float]:
    """``val_mel_l1``: :func:`resynthesis_l1` of the generator on its spec, in float32 even under the
    training loop's bf16 autocast, since a registered generator vocodes in float32."""
    with torch.autocast(model_device(generator).type, enabled=False):
        return {"val_mel_l1": resynthesis_l1(audio, lambda mel: hifigan_vocode(generator, mel), generator.spec)}


def invert(log_mel: np.ndarray, vocoder: nn.Module | None = None, spec: MelSpec = PERFORMANCE) -> np.ndarray:
    """Audio of a (frames, n_mels) ``spec`` log-mel: the HiFi-GAN ``vocoder`` when given, Griffin-Lim otherwise.

    Either way ``(frames - 1) * spec.hop`` samples, the length whose log-mel has ``frames`` frames.
    """
    if vocoder is None:
        return griffin_lim(log_mel, spec)
    if vocoder.spec != spec:
        raise SpecMismatch(f"the vocoder inverts {_describe(vocoder.spec)} mels, not {_describe(spec)}: "
                           "provide a vocoder trained on this mel spec")  # fmt: skip
    return hifigan_vocode(vocoder, log_mel)[: (len(log_mel) - 1) * spec.hop]
