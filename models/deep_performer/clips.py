"""The aligned excerpts both models learn from, and the padded batches they train and predict on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from models.deep_performer.config import DeepPerformerConfig


@dataclass
class Clip:
    """A 5-second excerpt of a recording with the score notes sounding in it.

    Notes are sorted by onset; beats count from the clip's first note onset, frames from the clip's
    start (``models.mel.HOP`` samples each) and may run past ``len(mel)`` for a note cut by the clip end.
    """

    mel: np.ndarray  # (frames, N_MELS) float32 log-mel of the recording
    pitch: np.ndarray  # (n,) int64 MIDI pitch
    onset_beat: np.ndarray  # (n,) float32 score onset in quarter notes
    duration_beat: np.ndarray  # (n,) float32 score duration in quarter notes
    onset_frame: np.ndarray  # (n,) int64 aligned start in the recording
    offset_frame: np.ndarray  # (n,) int64 aligned end in the recording (exclusive)
    performer: int  # index into the performer vocabulary
    qpm: float  # the tempo the score renders at to last as long as the recording


def select_notes(clip: Clip, notes: np.ndarray | slice) -> Clip:
    return replace(
        clip,
        pitch=clip.pitch[notes],
        onset_beat=clip.onset_beat[notes],
        duration_beat=clip.duration_beat[notes],
        onset_frame=clip.onset_frame[notes],
        offset_frame=clip.offset_frame[notes],
    )


def crop(clip: Clip, start: int, length: int) -> Clip:
    """Frames ``start:start + length`` of ``clip`` with the notes sounding in them (frames shifted)."""
    clip = select_notes(clip, (clip.offset_frame > start) & (clip.onset_frame < start + length))
    shifted = {"onset_frame": clip.onset_frame - start, "offset_frame": clip.offset_frame - start}
    return replace(clip, mel=clip.mel[start : start + length], **shifted)


def collate(clips: Sequence[Clip]) -> dict[str, torch.Tensor]:
    """Right-pad notes and frames into a batch with ``note_mask`` and ``frame_mask``.

    Beats are re-referenced to each clip's first note, as the models expect. A clip without
    notes still gets one (masked) note slot, so every tensor has a note axis.
    """
    width = max(1, *(len(c.pitch) for c in clips))
    frames = max(len(c.mel) for c in clips)
    b = len(clips)
    out = {
        "pitch": np.zeros((b, width), np.int64),
        "onset_beat": np.zeros((b, width), np.float32),
        "duration_beat": np.zeros((b, width), np.float32),
        "onset_frame": np.zeros((b, width), np.int64),
        "offset_frame": np.zeros((b, width), np.int64),
        "note_mask": np.zeros((b, width), bool),
        "mel": np.zeros((b, frames, clips[0].mel.shape[1]), np.float32),
        "frame_mask": np.zeros((b, frames), bool),
    }
    for row, c in enumerate(clips):
        n = len(c.pitch)
        out["pitch"][row, :n] = c.pitch
        out["onset_beat"][row, :n] = c.onset_beat - (c.onset_beat[0] if n else 0.0)
        out["duration_beat"][row, :n] = c.duration_beat
        out["onset_frame"][row, :n] = c.onset_frame
        out["offset_frame"][row, :n] = c.offset_frame
        out["note_mask"][row, :n] = True
        out["mel"][row, : len(c.mel)] = c.mel
        out["frame_mask"][row, : len(c.mel)] = True
    batch = {k: torch.from_numpy(v) for k, v in out.items()}
    batch["qpm"] = torch.tensor([c.qpm for c in clips], dtype=torch.float32)
    batch["performer"] = torch.tensor([c.performer for c in clips], dtype=torch.long)
    return batch


def clip_batches(clips: Sequence[Clip], cfg: DeepPerformerConfig, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless deterministic batches of random ``crop_frames`` crops of random clips.

    No pitch-shift augmentation: the targets are audio, which would not move with the score.
    """
    if not clips:
        raise ValueError("no training clips")
    rng = np.random.default_rng(seed)
    while True:
        items = []
        for i in rng.integers(len(clips), size=cfg.batch_size):
            clip = clips[int(i)]
            start = int(rng.integers(len(clip.mel) - cfg.crop_frames + 1)) if len(clip.mel) > cfg.crop_frames else 0
            items.append(crop(clip, start, cfg.crop_frames))
        yield collate(items)


