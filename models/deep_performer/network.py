"""The Deep Performer's two models and the note encoding they share.

- The **alignment model** (a 3-layer transformer encoder over notes) predicts when each note is
  played: onset and duration in frames. Its inputs are pitch, onset and duration in beats, the
  tempo and the performer. It predicts a residual over the tempo prior (beats at ``qpm``), and
  onsets count from the first note of the sequence, because where a 5-second clip cuts the
  recording is not something a score can predict. Trained with MSE in frames.
- The **synthesis model** (a 3-layer note encoder, a 6-layer frame decoder) predicts the log-mel
  from the score and the note frames (the clip's aligned frames in training, the alignment
  model's at inference). The *polyphonic mixer* gives frame t the sum of the embeddings of the
  notes sounding at t; the *note-wise positional encoding* scales each by (1 + p·w), p in [0, 1]
  the position of t within the note, so the decoder can shape attacks and decays of long notes.
  Trained with MSE on the log-mel.

Both models encode notes the same way: a learned pitch embedding, projected scalar features
(onset and duration in beats and seconds at the tempo, log tempo), a sinusoidal encoding of the
onset in sixteenth notes, and a learned performer embedding. The flags ``use_notewise_pe`` and
``use_performer`` switch the two off for the ablations of the thesis' Table 5.1; without a
performer embedding the models are independent of the performer ID.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.deep_performer.config import FRAME_RATE, DeepPerformerConfig

TIME_SCALE = 16.0  # beats; keeps onset features near the unit range over a clip
SECONDS_SCALE = 5.0  # the clip length
ALIGN_SCALE = 8.0  # frames (~0.13 s): the unit of the alignment model's residual and training loss
KINDS = ("synthesis", "alignment")


def sinusoid(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sinusoidal encoding (..., dim) of real values x (...,), as in Vaswani et al. (2017)."""
    rates = torch.exp(-math.log(10_000.0) * torch.arange(0, dim, 2, device=x.device) / dim)
    angles = x.float()[..., None] * rates
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def frames_per_beat(qpm: torch.Tensor | float) -> torch.Tensor | float:
    return 60.0 / qpm * FRAME_RATE


def polyphonic_mix(
    notes: torch.Tensor,
    onset: torch.Tensor,
    offset: torch.Tensor,
    note_mask: torch.Tensor,
    n_frames: int,
    pe_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, n_frames, d): frame t gets the sum over notes i with onset_i <= t < offset_i of
    ``(1 + p_it * pe_weight) * notes_i`` (just ``notes_i`` without a weight), where
    p_it = (t - onset_i) / (offset_i - onset_i - 1) runs from 0 at a note's first frame to 1 at its last.
    """
    t = torch.arange(n_frames, device=notes.device)[None, :, None]
    on, off = onset[:, None, :], offset[:, None, :]
    cover = ((t >= on) & (t < off) & note_mask[:, None, :]).to(notes.dtype)  # (B, T, N)
    mixed = torch.einsum("btn,bnd->btd", cover, notes)
    if pe_weight is None:
        return mixed
    position = ((t - on) / (off - on - 1).clamp(min=1)).clamp(0, 1).to(notes.dtype)
    return mixed + torch.einsum("btn,bnd->btd", cover * position, notes) * pe_weight


def _blocks(cfg: DeepPerformerConfig, n_layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False)


class NoteEncoder(nn.Module):
    """Transformer encoder over the notes of a batch: (B, N, d_model)."""

    def __init__(self, cfg: DeepPerformerConfig, n_layers: int):
        super().__init__()
        self.d_model = cfg.d_model
        self.pitch = nn.Embedding(128, cfg.d_model)
        self.scalars = nn.Linear(5, cfg.d_model)
        self.performer = nn.Embedding(cfg.n_performers, cfg.d_model) if cfg.use_performer else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = _blocks(cfg, n_layers)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        onset, duration, qpm = batch["onset_beat"], batch["duration_beat"], batch["qpm"][:, None]
        seconds = 60.0 / qpm
        scalars = torch.stack(
            [
                onset / TIME_SCALE,
                duration,
                onset * seconds / SECONDS_SCALE,
                duration * seconds,
                torch.log2(qpm / 120.0).expand_as(onset),
            ],
            dim=-1,
        )
        x = self.pitch(batch["pitch"]) + self.scalars(scalars) + sinusoid(4 * onset, self.d_model)
        if self.performer is not None:
            x = x + self.performer(batch["performer"])[:, None]
        padding = ~batch["note_mask"]
        padding[:, 0] &= batch["note_mask"].any(1)  # a row without notes attends to its empty slot, not to nothing
        return self.blocks(self.dropout(x), src_key_padding_mask=padding)


class SynthesisModel(nn.Module):
    """Log-mel (B, T, n_mels) from notes and their frames.

    Decoder frames carry a sinusoidal frame-index encoding and, when used, the performer
    embedding too, so frames where no note sounds still know the recording they belong to.
    """

    def __init__(self, cfg: DeepPerformerConfig):
        super().__init__()
        self.encoder = NoteEncoder(cfg, cfg.encoder_layers)
        self.pe_weight = nn.Parameter(torch.zeros(cfg.d_model)) if cfg.use_notewise_pe else None
        self.performer = nn.Embedding(cfg.n_performers, cfg.d_model) if cfg.use_performer else None
        self.dropout = nn.Dropout(cfg.dropout)
        self.decoder = _blocks(cfg, cfg.decoder_layers)
        self.head = nn.Linear(cfg.d_model, cfg.n_mels)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        notes = self.encoder(batch)
        n_frames = batch["frame_mask"].shape[1]
        x = polyphonic_mix(
            notes, batch["onset_frame"], batch["offset_frame"], batch["note_mask"], n_frames, self.pe_weight
        )
        x = x + sinusoid(torch.arange(n_frames, device=x.device), x.shape[-1])
        if self.performer is not None:
            x = x + self.performer(batch["performer"])[:, None]
        return self.head(self.decoder(self.dropout(x), src_key_padding_mask=~batch["frame_mask"]))


class AlignmentModel(nn.Module):
    """Onset and duration in frames (B, N, 2), onsets counted from the sequence's first note.

    Each is the tempo prior (beats times frames per beat) plus a learned residual in units of
    ``ALIGN_SCALE`` frames, so an untrained model already plays the score in time.
    """

    def __init__(self, cfg: DeepPerformerConfig):
        super().__init__()
        self.encoder = NoteEncoder(cfg, cfg.align_layers)
        self.head = nn.Linear(cfg.d_model, 2)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        prior = torch.stack([batch["onset_beat"], batch["duration_beat"]], -1)
        prior = prior * frames_per_beat(batch["qpm"])[:, None, None]
        return prior + ALIGN_SCALE * self.head(self.encoder(batch)).float()


def build_model(cfg: DeepPerformerConfig, kind: str) -> nn.Module:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    return SynthesisModel(cfg) if kind == "synthesis" else AlignmentModel(cfg)
