"""Deep Performer (Dong et al., ICASSP 2022): score-to-audio violin synthesis.

Two models turn a score into a log-mel spectrogram (``models.mel``) that a vocoder inverts:

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from models.checkpoints import (
    load_model_dir,
    read_model_config,
    save_model_dir,
    seed_everything,
)
from models.mel import HOP, N_MELS, SAMPLE_RATE
from models.training import FitResult, LoopConfig, default_device, fit, model_device

FRAME_RATE = SAMPLE_RATE / HOP  # frames per second
TIME_SCALE = 16.0  # beats; keeps onset features near the unit range over a clip
SECONDS_SCALE = 5.0  # the clip length
ALIGN_SCALE = 8.0  # frames (~0.13 s): the unit of the alignment model's residual and training loss
KINDS = ("synthesis", "alignment")


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


@dataclass
class DeepPerformerConfig:
    d_model: int = 128
    n_heads: int = 2
    d_ff: int = 512
    encoder_layers: int = 3
    decoder_layers: int = 6
    align_layers: int = 3
    dropout: float = 0.1
    n_performers: int = 17  # the violinists of the Bach Violin Dataset
    n_mels: int = N_MELS
    crop_frames: int = 313  # 5 s; also the inference window
    batch_size: int = 16
    lr: float = 1e-3  # peak of the warm-up then inverse-square-root schedule
    warmup_steps: int = 4000
    max_steps: int = 100_000
    eval_every: int = 1000
    checkpoint_every: int = 1000
    patience: int = 10
    seed: int = 0
    use_notewise_pe: bool = True
    use_performer: bool = True


PROFILES = {
    "paper": DeepPerformerConfig(),
    "smoke": DeepPerformerConfig(
        d_model=16, n_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1, align_layers=1, n_performers=4,
        crop_frames=64, batch_size=4, lr=3e-3, warmup_steps=5, max_steps=30, eval_every=10, checkpoint_every=10,
        patience=3,
    ),
}  # fmt: skip


def _select(clip: Clip, notes: np.ndarray | slice) -> Clip:
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
    clip = _select(clip, (clip.offset_frame > start) & (clip.onset_frame < start + length))
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


def _kind(model: nn.Module) -> str:
    return "synthesis" if isinstance(model, SynthesisModel) else "alignment"


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _mel_errors(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of squared log-mel errors over the valid frames, and the number of values summed."""
    batch = _to(batch, model_device(model))
    error = (model(batch).float() - batch["mel"]) ** 2 * batch["frame_mask"][..., None]
    return error.sum(), batch["frame_mask"].sum() * batch["mel"].shape[-1]


def _synthesis_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    total, count = _mel_errors(model, batch)
    return total / count


def _alignment_errors(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_notes, 2) onset and duration errors in frames of the real notes of a batch."""
    batch = _to(batch, model_device(model))
    target = torch.stack(
        [batch["onset_frame"] - batch["onset_frame"][:, :1], batch["offset_frame"] - batch["onset_frame"]], -1
    )
    return (model(batch) - target.float())[batch["note_mask"]], batch["note_mask"].sum()


def _alignment_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    errors, _ = _alignment_errors(model, batch)
    return ((errors / ALIGN_SCALE) ** 2).mean()


def _eval_batches(clips: Sequence[Clip], cfg: DeepPerformerConfig) -> Iterator[dict[str, torch.Tensor]]:
    """Whole clips in order, uncropped."""
    for start in range(0, len(clips), cfg.batch_size):
        yield collate(clips[start : start + cfg.batch_size])


@torch.no_grad()
def mel_mse(model: nn.Module, cfg: DeepPerformerConfig, clips: Sequence[Clip]) -> float:
    """Mean squared log-mel error over all valid frames of ``clips`` (Table 5.1's metric).

    The synthesis model gets the clips' aligned note frames, so the metric measures it alone.
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in _eval_batches(clips, cfg):
        error, n = _mel_errors(model, batch)
        total, count = total + error.item(), count + int(n)
    model.train(was_training)
    return total / count


@torch.no_grad()
def alignment_metrics(model: nn.Module, cfg: DeepPerformerConfig, clips: Sequence[Clip]) -> dict[str, float]:
    """``val_loss``: MSE in frames² over the onsets and durations of all notes of ``clips``;
    ``val_onset_mae_ms`` and ``val_duration_mae_ms``: mean absolute errors in milliseconds."""
    was_training = model.training
    model.eval()
    errors = torch.cat([_alignment_errors(model, batch)[0].cpu() for batch in _eval_batches(clips, cfg)])
    model.train(was_training)
    mae_ms = errors.abs().mean(0) * 1000.0 / FRAME_RATE
    return {
        "val_loss": (errors**2).mean().item(),
        "val_onset_mae_ms": mae_ms[0].item(),
        "val_duration_mae_ms": mae_ms[1].item(),
    }


def _check(cfg: DeepPerformerConfig, clips: Sequence[Clip]) -> None:
    if any(c.mel.shape[1] != cfg.n_mels for c in clips):
        raise ValueError(f"every clip's mel must have cfg.n_mels={cfg.n_mels} bins")
    if any(not 0 <= c.performer < cfg.n_performers for c in clips):
        raise ValueError(f"performer IDs must lie in 0..{cfg.n_performers - 1} (cfg.n_performers)")


def train(
    kind: str,
    cfg: DeepPerformerConfig,
    train_clips: Sequence[Clip],
    valid_clips: Sequence[Clip],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | str | None = None,
    progress: bool = False,
) -> tuple[nn.Module, FitResult]:
    """Train the ``synthesis`` (log-mel MSE) or ``alignment`` (MSE in frames) model with Adam, a warm-up
    and inverse-square-root schedule and early stopping on its validation loss; resumes from
    ``ckpt_dir/last.pt`` and returns the best weights."""
    if not valid_clips:
        raise ValueError("no validation clips")
    _check(cfg, [*train_clips, *valid_clips])
    seed_everything(cfg.seed)
    model = build_model(cfg, kind).to(device or default_device())
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9)
    warmup = max(cfg.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, (warmup / (s + 1)) ** 0.5))
    if kind == "synthesis":
        step_loss, validate = _synthesis_loss, lambda m: {"val_loss": mel_mse(m, cfg, valid_clips)}
    else:
        step_loss, validate = _alignment_loss, lambda m: alignment_metrics(m, cfg, valid_clips)
    result = fit(
        model,
        optimizer,
        clip_batches(train_clips, cfg, seed=cfg.seed),
        step_loss,
        validate,
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience),
        log,
        scheduler=scheduler,
        progress=progress,
        desc=f"deep performer {kind}",
    )
    return model, result



@torch.no_grad()
def predict(model: nn.Module, cfg: DeepPerformerConfig, clips: Sequence[Clip]) -> list[np.ndarray]:
    """Float32 output of each clip (a log-mel with the clip's own note frames, or note timings), padded to
    its batch's widths: trim to ``len(clip.mel)`` or ``len(clip.pitch)``. Leaves ``model`` in eval mode."""
    model.eval()
    device = model_device(model)
    return [
        out
        for start in range(0, len(clips), cfg.batch_size)
        for out in model(_to(collate(clips[start : start + cfg.batch_size]), device)).float().cpu().numpy()
    ]


@torch.no_grad()
def align(alignment: nn.Module, cfg: DeepPerformerConfig, score: Clip) -> tuple[np.ndarray, np.ndarray]:
    """Predicted (onset_frame, offset_frame) of the notes of a non-empty ``score`` (sorted by onset;
    its mel and frames are ignored), the first onset at frame 0, every note at least one frame long.

    Notes are grouped into windows spanning ``crop_frames`` at the tempo prior, each predicted on
    its own and anchored at its first note's prior onset, so timing deviations never accumulate
    over a movement.
    """
    n = len(score.pitch)
    prior = (score.onset_beat - score.onset_beat[0]) * frames_per_beat(score.qpm)
    window = (prior // cfg.crop_frames).astype(np.int64)
    firsts = np.flatnonzero(np.r_[True, window[1:] != window[:-1]])
    windows = [_select(score, slice(a, b)) for a, b in zip(firsts, np.r_[firsts[1:], n])]
    timing = np.concatenate([t[: len(w.pitch)] for t, w in zip(predict(alignment, cfg, windows), windows)])
    onset = np.rint(np.repeat(prior[firsts], np.diff(np.r_[firsts, n])) + timing[:, 0]).astype(np.int64)
    onset -= onset.min()
    return onset, onset + np.maximum(np.rint(timing[:, 1]), 1).astype(np.int64)


@torch.no_grad()
def synthesize(
    synthesis: nn.Module,
    alignment: nn.Module,
    cfg: DeepPerformerConfig,
    pitch: np.ndarray,
    onset_beat: np.ndarray,
    duration_beat: np.ndarray,
    performer: int,
    qpm: float,
) -> np.ndarray:
    """Log-mel (frames, n_mels) of a score of any length played by ``performer`` at ``qpm``.

    Timing comes from :func:`align`. The frames are synthesized in ``crop_frames`` windows
    overlapping by a quarter and cross-faded with linear ramps over the overlap; a note cut by
    a window edge keeps its true extent, so its note-wise position runs on across windows.
    """
    order = np.lexsort((pitch, onset_beat))
    if not len(order):
        return np.zeros((0, cfg.n_mels), np.float32)
    unaligned = np.zeros(len(order), np.int64)
    score = Clip(
        mel=np.zeros((1, cfg.n_mels), np.float32),
        pitch=np.asarray(pitch, np.int64)[order],
        onset_beat=np.asarray(onset_beat, np.float32)[order],
        duration_beat=np.asarray(duration_beat, np.float32)[order],
        onset_frame=unaligned,
        offset_frame=unaligned,
        performer=int(performer),
        qpm=float(qpm),
    )
    onset, offset = align(alignment, cfg, score)
    total = int(offset.max())
    score = replace(score, mel=np.zeros((total, cfg.n_mels), np.float32), onset_frame=onset, offset_frame=offset)
    overlap = cfg.crop_frames // 4
    starts = range(0, max(total - overlap, 1), cfg.crop_frames - overlap)
    windows = [crop(score, start, cfg.crop_frames) for start in starts]
    mel = np.zeros((total, cfg.n_mels), np.float32)
    weight = np.zeros((total, 1), np.float32)
    for start, out in zip(starts, predict(synthesis, cfg, windows)):
        length = min(cfg.crop_frames, total - start)
        ramp = np.minimum(np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1)) / (overlap + 1), 1.0)
        mel[start : start + length] += ramp[:, None] * out[:length]
        weight[start : start + length] += ramp[:, None]
    return mel / weight


def save_model(model: nn.Module, cfg: DeepPerformerConfig, out_dir: str) -> None:
    """The registered layout, with the model's ``kind`` in its config."""
    save_model_dir(out_dir, model, {"kind": _kind(model), **asdict(cfg)})


def load_model(out_dir: str, device: torch.device | str | None = None) -> tuple[nn.Module, DeepPerformerConfig]:
    """Rebuild a model saved by :func:`save_model` (either kind), in eval mode on ``device``."""
    fields = read_model_config(out_dir)
    kind = fields.pop("kind")
    cfg = DeepPerformerConfig(**fields)
    return load_model_dir(out_dir, build_model(cfg, kind), device or default_device()), cfg
