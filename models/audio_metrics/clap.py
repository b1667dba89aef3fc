"""CLAP audio and text embeddings (LAION's HTS-AT + RoBERTa), for the CLAP score of text-to-audio output.

The CLAP score of generated audio is the mean cosine similarity between each clip's CLAP audio
embedding and the embedding of the text it was generated from. Weights come only from a local
``save_pretrained`` folder, loaded with ``local_files_only`` (and huggingface_hub's offline flag,
as :mod:`models.clip_embed` does): nothing here downloads.

Audio arrives at 16 kHz and is resampled to the feature extractor's rate (48 kHz) with librosa.
Clips longer than the extractor's window (10 s) are cut to their first window here, so that the
extractor's random crop of long inputs never makes an embedding depend on a random draw.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch
from torch.nn import functional as F
from transformers import ClapModel, ClapProcessor

from models.clip_embed import _hub_offline
from models.training import default_device

SAMPLE_RATE = 16_000
DEFAULT_MODEL = "laion/clap-htsat-unfused"


class ClapWeightsMissing(RuntimeError):
    """The CLAP model or its processor is not in the given folder."""


@dataclass
class ClapBundle:
    model: ClapModel
    feature_extractor: Any  # transformers ClapFeatureExtractor
    tokenizer: Any  # transformers RoBERTa tokenizer
    device: torch.device

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)


def _missing_message(folder: Path, error: Exception) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"CLAP weights could not be loaded from the folder {folder} ({reason}): provide a folder made with "
        f"ClapModel.from_pretrained({DEFAULT_MODEL!r}).save_pretrained(DIR) and "
        f"ClapProcessor.from_pretrained({DEFAULT_MODEL!r}).save_pretrained(DIR), and configure DIR as the CLAP model"
    )


def load_clap(folder: str | os.PathLike, device: str | torch.device | None = None) -> ClapBundle:
    """The CLAP model and processor saved in ``folder``, in eval mode on ``device``; :class:`ClapWeightsMissing`
    when either is absent or unreadable."""
    folder = Path(folder).expanduser().resolve()
    device = torch.device(device) if device is not None else default_device()
    try:
        if not folder.is_dir():
            raise FileNotFoundError("no such folder")
        with _hub_offline():
            model = ClapModel.from_pretrained(folder, local_files_only=True)
            processor = ClapProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ClapWeightsMissing(_missing_message(folder, error)) from error
    model = model.to(device).eval().requires_grad_(False)
    return ClapBundle(model, processor.feature_extractor, processor.tokenizer, device)


def _to_extractor_rate(bundle: ClapBundle, clip: np.ndarray) -> np.ndarray:
    rate = int(bundle.feature_extractor.sampling_rate)
    audio = np.asarray(clip, dtype=np.float32)
    if rate != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=SAMPLE_RATE, target_sr=rate)
    return audio[: int(bundle.feature_extractor.nb_max_samples)]


@torch.no_grad()
def clap_audio_embeds(bundle: ClapBundle, clips16k: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """(n, dim) float32 unit-norm CLAP embeddings of mono 16 kHz clips."""
    out = np.zeros((len(clips16k), bundle.dim), dtype=np.float32)
    for start in range(0, len(clips16k), batch_size):
        audio = [_to_extractor_rate(bundle, clip) for clip in clips16k[start : start + batch_size]]
        inputs = bundle.feature_extractor(
            audio, sampling_rate=bundle.feature_extractor.sampling_rate, return_tensors="pt"
        )
        features = bundle.model.get_audio_features(
            input_features=inputs["input_features"].to(bundle.device), is_longer=inputs["is_longer"].to(bundle.device)
        ).pooler_output
        out[start : start + len(audio)] = F.normalize(features.float(), dim=-1).cpu().numpy()
    return out


@torch.no_grad()
def clap_text_embeds(bundle: ClapBundle, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """(n, dim) float32 unit-norm CLAP embeddings of texts."""
    max_length = int(bundle.model.config.text_config.max_position_embeddings) - 2  # RoBERTa positions start at 2
    out = np.zeros((len(texts), bundle.dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        tokens = bundle.tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        features = bundle.model.get_text_features(
            input_ids=tokens["input_ids"].to(bundle.device), attention_mask=tokens["attention_mask"].to(bundle.device)
        ).pooler_output
        out[start : start + len(batch)] = F.normalize(features.float(), dim=-1).cpu().numpy()
    return out


def clap_score(audio_embeds: np.ndarray, text_embeds: np.ndarray) -> float:
    """Mean cosine similarity of row ``i`` of the audio embeddings with row ``i`` of the text embeddings."""
    a, t = np.asarray(audio_embeds, dtype=np.float64), np.asarray(text_embeds, dtype=np.float64)
    if a.shape != t.shape or a.ndim != 2 or len(a) == 0:
        raise ValueError(f"CLAP score needs matching (n, d) audio and text embeddings, got {a.shape} and {t.shape}")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return float(np.mean(np.sum(a * t, axis=1)))
