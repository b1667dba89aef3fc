"""Neural part separation for automatic instrumentation (Dong et al., ISMIR 2021, "Arranger").

Automatic instrumentation is cast as per-note part classification: the notes of a multitrack
piece are downmixed into one sequence sorted by (onset, pitch) and a sequence model labels each
note with the part it came from. Online models (``lstm``, a causal ``transformer_decoder``) see
only the notes up to the current one, so they can arrange live input; offline models (``bilstm``,
``transformer_encoder``) see the whole sequence.

Input features of note i of a sequence (a training crop, an evaluation window or a whole song)
whose first onset lies in beat b0, so ``origin = b0 * RESOLUTION`` (crops are shift-invariant in
beats while positions inside the beat keep their metrical meaning):

- ``pitch``: MIDI pitch + 1 (0 is padding), a learned 16-d embedding shared with the pitch hints.
- ``frequency``: 440 * 2 ** ((pitch - 69) / 12) divided by that of pitch 127, a scalar in (0, 1].
- ``duration``: in steps, clipped to ``MAX_DURATION`` (8 beats), a learned 16-d embedding.
- ``time``: (onset - origin) in beats divided by ``TIME_SCALE``, a scalar.
- ``beat``: whole beats since the origin, a fixed sinusoidal 16-d encoding (any length works).
- ``position``: onset step within the beat (0..23), a learned 16-d embedding.
- ``entry``: per part a one-hot of (before, at, after) the part's first note, i.e. the part's
  first note is marked with its label and every other note says whether that part has entered;
  all zeros when entry hints are unknown.
- ``pitch_hint``: per part its mean pitch + 1 (0 for a part without notes) through the pitch
  embedding, the same for every note of the sequence.

Hints come from the labels of the whole song (:func:`hints_from_labels`). Without labels (a
user's single-track keyboard MIDI) entry hints are absent and pitch hints are the training set's
per-part mean pitches stored in the config; training drops the hints of a crop to exactly that
with probability ``hint_dropout``, so one model serves both cases.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.checkpoints import load_model_dir, save_model_dir, seed_everything
from models.training import FitResult, LoopConfig, default_device, fit, model_device

RESOLUTION = 24  # steps per quarter of the part-labelled notes


@dataclass(frozen=True)
class PartSong:
    """One song's notes with their part labels, the unit every part-separation model and baseline reads."""


    dataset: str
    song: str
    split: str
    scheme: str
    part_names: tuple[str, ...]  # the scheme's labels, index = label
    onset: np.ndarray  # int64, sorted by (onset, pitch), at RESOLUTION
    duration: np.ndarray
    pitch: np.ndarray
    label: np.ndarray


ONLINE = ("lstm", "transformer_decoder")
OFFLINE = ("bilstm", "transformer_encoder")
ARCHS = (*ONLINE, *OFFLINE)
IGNORE_INDEX = -100
MAX_DURATION = 8 * RESOLUTION
TIME_SCALE = 64.0  # beats; keeps the time scalar near the unit range over a crop
EMBED_DIM = 16
NEVER = np.iinfo(np.int64).max // 4
"""Entry index of a part without notes: it never enters, so every note is "before" its entry."""


@dataclass(frozen=True)
class Hints:
    """Song-level side information; indices are note indices into the sequence they go with."""

    entry: np.ndarray | None  # (n_parts,) index of each part's first note, NEVER for a part without notes
    pitch: np.ndarray | None  # (n_parts,) mean pitch of each part, NaN for a part without notes


@dataclass
class PartSepConfig:
    arch: str = "lstm"  # one of ARCHS
    n_parts: int = 4
    use_entry_hints: bool = True
    use_pitch_hints: bool = True
    hint_dropout: float = 0.25  # probability that a training crop sees no entry hints and the training pitch means
    pitch_means: tuple[float | None, ...] | None = None  # per-part training-set mean pitch (None: part unseen)
    d_model: int = 128  # LSTM width (split over both directions for bilstm) or transformer width
    n_layers: int = 3
    n_heads: int = 8
    d_ff: int = 256
    dropout: float = 0.2
    crop_len: int = 500
    max_len: int = 2000  # evaluation and inference window, in notes
    batch_size: int = 16
    lr: float = 1e-3
    transpose_low: int = -5
    transpose_high: int = 6
    max_steps: int = 50_000
    eval_every: int = 500
    checkpoint_every: int = 500
    patience: int = 5
    seed: int = 0


PROFILES = {
    "paper": PartSepConfig(),
    "smoke": PartSepConfig(
        d_model=16, n_layers=1, n_heads=2, d_ff=32, crop_len=32, max_len=64, batch_size=4,
        max_steps=30, eval_every=10, checkpoint_every=10, patience=3,
    ),
}  # fmt: skip


def _mean_pitch(pitch: np.ndarray, label: np.ndarray, n_parts: int) -> np.ndarray:
    """Mean pitch per part, NaN for a part without notes."""
    counts = np.bincount(label, minlength=n_parts)
    sums = np.bincount(label, weights=pitch.astype(np.float64), minlength=n_parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def part_pitch_means(songs: Sequence[PartSong], n_parts: int) -> tuple[float | None, ...]:
    """Mean pitch of every part over all notes of ``songs`` (None for a part without notes)."""
    means = _mean_pitch(np.concatenate([s.pitch for s in songs]), np.concatenate([s.label for s in songs]), n_parts)
    return tuple(None if np.isnan(m) else float(m) for m in means)


def configure(cfg: PartSepConfig, train_songs: Sequence[PartSong]) -> PartSepConfig:
    """``cfg`` with ``n_parts`` and ``pitch_means`` taken from the training songs."""
    schemes = {s.part_names for s in train_songs}
    if len(schemes) != 1:
        raise ValueError(f"training songs must share one part scheme, got {len(schemes)}")
    n_parts = len(schemes.pop())
    return replace(cfg, n_parts=n_parts, pitch_means=part_pitch_means(train_songs, n_parts))


def hints_from_labels(onset: np.ndarray, pitch: np.ndarray, label: np.ndarray, n_parts: int) -> Hints:
    """Entry (earliest note, lowest index on ties) and mean pitch of every part."""
    order = np.lexsort((np.arange(len(onset)), onset))
    entry = np.full(n_parts, NEVER, dtype=np.int64)
    first = order[np.unique(label[order], return_index=True)[1]]
    entry[label[first]] = first
    return Hints(entry=entry, pitch=_mean_pitch(pitch, label, n_parts))


def _resolve(hints: Hints | None, cfg: PartSepConfig) -> Hints:
    """Fill unknown pitch hints with the training-set means: what inference without labels sees."""
    entry = hints.entry if hints is not None else None
    pitch = hints.pitch if hints is not None else None
    if pitch is None and cfg.pitch_means is not None:
        pitch = np.array([np.nan if m is None else m for m in cfg.pitch_means], dtype=np.float64)
    return Hints(entry=entry, pitch=pitch)


def _shift(hints: Hints, start: int, semitones: int) -> Hints:
    """Hints of the window starting at note ``start`` of a song transposed by ``semitones``."""
    entry = None if hints.entry is None else np.where(hints.entry == NEVER, NEVER, hints.entry - start)
    pitch = None if hints.pitch is None else hints.pitch + semitones
    return Hints(entry=entry, pitch=pitch)


def features(
    onset: np.ndarray, duration: np.ndarray, pitch: np.ndarray, hints: Hints | None, n_parts: int
) -> dict[str, np.ndarray]:
    """Model inputs of one sequence (see the module docstring); per-note arrays have length n."""
    onset = np.asarray(onset, dtype=np.int64)
    pitch = np.asarray(pitch, dtype=np.int64)
    n = len(onset)
    origin = (int(onset.min()) // RESOLUTION) * RESOLUTION if n else 0
    relative = onset - origin
    entry = np.zeros((n, n_parts, 3), dtype=np.float32)
    if hints is not None and hints.entry is not None:
        state = np.sign(np.arange(n)[:, None] - hints.entry[None, :]) + 1  # 0 before, 1 at, 2 after
        np.put_along_axis(entry, state[..., None], 1.0, axis=-1)
    pitch_hint = np.zeros(n_parts, dtype=np.int64)
    if hints is not None and hints.pitch is not None:
        known = ~np.isnan(hints.pitch)
        pitch_hint[known] = np.clip(np.rint(hints.pitch[known]), 0, 127).astype(np.int64) + 1
    return {
        "pitch": pitch + 1,
        "frequency": (2.0 ** ((pitch - 127) / 12)).astype(np.float32),
        "duration": np.clip(np.asarray(duration, dtype=np.int64), 0, MAX_DURATION),
        "time": (relative / (RESOLUTION * TIME_SCALE)).astype(np.float32),
        "beat": relative // RESOLUTION,
        "position": relative % RESOLUTION,
        "entry": entry.reshape(n, n_parts * 3),
        "pitch_hint": pitch_hint,
    }


def collate(items: Sequence[tuple[dict[str, np.ndarray], np.ndarray | None]]) -> dict[str, torch.Tensor]:
    """Right-pad sequences into a batch; ``length`` holds the true lengths, padded labels are IGNORE_INDEX."""
    lengths = [len(f["pitch"]) for f, _ in items]
    width = max(lengths)
    batch: dict[str, torch.Tensor] = {"length": torch.tensor(lengths, dtype=torch.long)}
    for key, value in items[0][0].items():
        if key == "pitch_hint":
            batch[key] = torch.from_numpy(np.stack([f[key] for f, _ in items]))
            continue
        out = np.zeros((len(items), width, *value.shape[1:]), dtype=value.dtype)
        for row, (f, _) in enumerate(items):
            out[row, : len(f[key])] = f[key]
        batch[key] = torch.from_numpy(out)
    if items[0][1] is not None:
        labels = np.full((len(items), width), IGNORE_INDEX, dtype=np.int64)
        for row, (_, label) in enumerate(items):
            labels[row, : len(label)] = label
        batch["label"] = torch.from_numpy(labels)
    return batch


def transpositions(pitch: np.ndarray, low: int, high: int) -> np.ndarray:
    """The shifts in low..high that keep every pitch inside 0..127."""
    shifts = np.arange(low, high + 1)
    if len(pitch) == 0:
        return shifts
    return shifts[(pitch.min() + shifts >= 0) & (pitch.max() + shifts <= 127)]


def crop_batches(songs: Sequence[PartSong], cfg: PartSepConfig, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless deterministic batches of random ``crop_len``-note crops of random songs.

    Each crop is transposed by a random shift in transpose_low..transpose_high among those that
    keep its pitches in 0..127 (pitch hints move with it) and, with probability ``hint_dropout``,
    loses its entry hints and gets the training-set pitch means instead of its own.
    """
    songs = [s for s in songs if len(s.pitch)]
    if not songs:
        raise ValueError("no training song has notes")
    song_hints = [hints_from_labels(s.onset, s.pitch, s.label, cfg.n_parts) for s in songs]
    no_hints = _resolve(None, cfg)
    rng = np.random.default_rng(seed)
    while True:
        items = []
        for _ in range(cfg.batch_size):
            i = int(rng.integers(len(songs)))
            song = songs[i]
            start = int(rng.integers(len(song.pitch) - cfg.crop_len + 1)) if len(song.pitch) > cfg.crop_len else 0
            window = slice(start, start + cfg.crop_len)
            pitch = song.pitch[window]
            semitones = int(rng.choice(transpositions(pitch, cfg.transpose_low, cfg.transpose_high)))
            drop = rng.random() < cfg.hint_dropout
            hints = no_hints if drop else _shift(song_hints[i], start, semitones)
            feats = features(song.onset[window], song.duration[window], pitch + semitones, hints, cfg.n_parts)
            items.append((feats, song.label[window]))
        yield collate(items)


def sinusoid(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sinusoidal encoding (..., dim) of real values x (...,), as in Vaswani et al. (2017)."""
    rates = torch.exp(-math.log(10_000.0) * torch.arange(0, dim, 2, device=x.device) / dim)
    angles = x.float()[..., None] * rates
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class NoteEmbedding(nn.Module):
    """Concatenated per-note features (B, T, out_dim)."""

    def __init__(self, cfg: PartSepConfig):
        super().__init__()
        self.cfg = cfg
        self.pitch = nn.Embedding(129, EMBED_DIM)
        self.duration = nn.Embedding(MAX_DURATION + 1, EMBED_DIM)
        self.position = nn.Embedding(RESOLUTION, EMBED_DIM)
        self.out_dim = 4 * EMBED_DIM + 2
        self.out_dim += 3 * cfg.n_parts if cfg.use_entry_hints else 0
        self.out_dim += EMBED_DIM * cfg.n_parts if cfg.use_pitch_hints else 0

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [
            self.pitch(batch["pitch"]),
            self.duration(batch["duration"]),
            sinusoid(batch["beat"], EMBED_DIM),
            self.position(batch["position"]),
            batch["time"][..., None],
            batch["frequency"][..., None],
        ]
        if self.cfg.use_entry_hints:
            parts.append(batch["entry"])
        if self.cfg.use_pitch_hints:
            hint = self.pitch(batch["pitch_hint"]).flatten(1)  # (B, n_parts * EMBED_DIM)
            parts.append(hint[:, None, :].expand(-1, batch["pitch"].shape[1], -1))
        return torch.cat(parts, dim=-1)


def _reverse_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) gather index reversing each row's first ``length`` steps and keeping its padding in place."""
    steps = torch.arange(width, device=lengths.device)[None, :]
    lengths = lengths[:, None]
    return torch.where(steps < lengths, lengths - 1 - steps, steps)


def _gather_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))


class LSTMBody(nn.Module):
    """Stacked LSTMs, each followed by layer norm and dropout (Arranger's layout).

    The backward direction of a bidirectional layer reads each sequence reversed within its
    length, so it never reads padding; right padding cannot reach the forward direction. Padded
    tensors are used instead of packed sequences, whose backward pass on the CPU is quadratic in
    the sequence length.
    """

    def __init__(self, cfg: PartSepConfig, in_dim: int):
        super().__init__()
        self.bidirectional = cfg.arch == "bilstm"
        hidden = cfg.d_model // 2 if self.bidirectional else cfg.d_model
        dims = [in_dim] + [cfg.d_model] * (cfg.n_layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in dims)
        if self.bidirectional:
            self.backward_lstms = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in dims)
        self.norms = nn.ModuleList(nn.LayerNorm(cfg.d_model) for _ in dims)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        reverse = _reverse_index(lengths.to(x.device), x.shape[1]) if self.bidirectional else None
        for i, norm in enumerate(self.norms):
            out, _ = self.forward_lstms[i](x)
            if reverse is not None:
                backward, _ = self.backward_lstms[i](_gather_steps(x, reverse))
                out = torch.cat([out, _gather_steps(backward, reverse)], dim=-1)
            x = self.dropout(norm(out))
        return x


class TransformerBody(nn.Module):
    """Pre-norm Transformer blocks over projected features plus a sinusoidal note-index encoding."""

    def __init__(self, cfg: PartSepConfig, in_dim: int):
        super().__init__()
        self.causal = cfg.arch == "transformer_decoder"
        self.d_model = cfg.d_model
        self.project = nn.Linear(in_dim, cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, batch_first=True, norm_first=True
        )
        layer.self_attn.dropout = 0.0  # Arranger drops attention outputs, not attention weights
        self.blocks = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        width = x.shape[1]
        index = torch.arange(width, device=x.device)
        x = self.dropout(self.project(x) + sinusoid(index, self.d_model))
        padding = index[None, :] >= lengths.to(x.device)[:, None]
        mask = torch.triu(torch.ones(width, width, dtype=torch.bool, device=x.device), 1) if self.causal else None
        return self.norm(self.blocks(x, mask=mask, src_key_padding_mask=padding, is_causal=self.causal))


class PartSeparator(nn.Module):
    """Per-note part logits (B, T, n_parts) from a feature batch (see :func:`collate`)."""

    def __init__(self, cfg: PartSepConfig):
        super().__init__()
        self.embed = NoteEmbedding(cfg)
        body = LSTMBody if cfg.arch in ("lstm", "bilstm") else TransformerBody
        self.body = body(cfg, self.embed.out_dim)
        self.head = nn.Linear(cfg.d_model, cfg.n_parts)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.body(self.embed(batch), batch["length"]))


def build_model(cfg: PartSepConfig) -> PartSeparator:
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown arch {cfg.arch!r}; expected one of {ARCHS}")
    return PartSeparator(cfg)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v if k == "length" else v.to(device, non_blocking=True) for k, v in batch.items()}


def _loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over the real notes of a batch, in float32."""
    batch = _to(batch, model_device(model))
    logits = model(batch).float()
    return F.cross_entropy(logits.flatten(0, 1), batch["label"].flatten(), ignore_index=IGNORE_INDEX)


@torch.no_grad()
def _song_logits(
    model: nn.Module,
    cfg: PartSepConfig,
    songs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, Hints | None]],
) -> list[np.ndarray]:
    """Float32 logits (n, n_parts) of each (onset, duration, pitch, hints) song, in eval mode.

    Songs are cut into consecutive ``max_len``-note windows, each an independent sequence with
    its own origin and shifted hints (no window sees a later one); windows of similar length
    are batched together.
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    windows = []  # (song, start, features)
    for s, (onset, duration, pitch, hints) in enumerate(songs):
        hints = _resolve(hints, cfg)
        for start in range(0, len(pitch), cfg.max_len):
            w = slice(start, start + cfg.max_len)
            feats = features(onset[w], duration[w], pitch[w], _shift(hints, start, 0), cfg.n_parts)
            windows.append((s, start, feats))
    out = [np.zeros((len(song[2]), cfg.n_parts), dtype=np.float32) for song in songs]
    order = sorted(range(len(windows)), key=lambda i: len(windows[i][2]["pitch"]))
    for b in range(0, len(order), cfg.batch_size):
        chunk = [windows[i] for i in order[b : b + cfg.batch_size]]
        logits = model(_to(collate([(f, None) for _, _, f in chunk]), device)).float().cpu().numpy()
        for row, (s, start, feats) in enumerate(chunk):
            out[s][start : start + len(feats["pitch"])] = logits[row, : len(feats["pitch"])]
    model.train(was_training)
    return out


def predict(
    model: nn.Module,
    cfg: PartSepConfig,
    onset: np.ndarray,
    duration: np.ndarray,
    pitch: np.ndarray,
    hints: Hints | None = None,
) -> np.ndarray:
    """Part label of every note of one song sorted by (onset, pitch), of any length.

    Without ``hints`` (or without their pitch part) the training-set pitch means stand in.
    """
    if len(pitch) == 0:
        return np.zeros(0, dtype=np.int64)
    logits = _song_logits(model, cfg, [(np.asarray(onset), np.asarray(duration), np.asarray(pitch), hints)])[0]
    return logits.argmax(-1).astype(np.int64)


def evaluate(model: nn.Module, cfg: PartSepConfig, songs: Sequence[PartSong], use_hints: bool = True) -> dict:
    """Micro-averaged accuracy and mean cross-entropy over all notes of ``songs``.

    ``use_hints`` gives the model the hints of each song's labels; otherwise it sees no entry
    hints and the training-set pitch means, as on a user's unlabeled input. Also returns the
    concatenated ``labels`` and ``predictions``.
    """
    songs = [s for s in songs if len(s.pitch)]
    if not songs:
        raise ValueError("no evaluation song has notes")
    inputs = [
        (s.onset, s.duration, s.pitch, hints_from_labels(s.onset, s.pitch, s.label, cfg.n_parts) if use_hints else None)
        for s in songs
    ]
    logits = np.concatenate(_song_logits(model, cfg, inputs))
    labels = np.concatenate([s.label for s in songs])
    predictions = logits.argmax(-1)
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    return {
        "accuracy": float((predictions == labels).mean()),
        "loss": loss,
        "n_notes": len(labels),
        "labels": labels,
        "predictions": predictions,
    }


def _hint_modes(cfg: PartSepConfig) -> list[bool]:
    """The hint settings training exposes the model to (True: the song's own hints)."""
    uses_hints = cfg.use_entry_hints or cfg.use_pitch_hints
    modes = [True] if uses_hints and cfg.hint_dropout < 1 else []
    return modes + ([False] if not uses_hints or cfg.hint_dropout > 0 else [])


def validate(model: nn.Module, cfg: PartSepConfig, songs: Sequence[PartSong]) -> dict[str, float]:
    """``val_loss`` (the monitored metric) is the mean loss over the hint settings seen in training.

    Accuracy and loss are reported both with the songs' hints and without them.
    """
    metrics: dict[str, float] = {}
    for use_hints in (True, False):
        result = evaluate(model, cfg, songs, use_hints)
        suffix = "" if use_hints else "_no_hints"
        metrics[f"val_loss{suffix}"] = result["loss"]
        metrics[f"val_accuracy{suffix}"] = result["accuracy"]
    modes = _hint_modes(cfg)
    metrics["val_loss"] = float(np.mean([metrics["val_loss" if m else "val_loss_no_hints"] for m in modes]))
    return metrics


def _check(cfg: PartSepConfig, songs: Sequence[PartSong]) -> None:
    if cfg.use_pitch_hints and cfg.pitch_means is None:
        raise ValueError("pitch hints need cfg.pitch_means; build the config with configure(cfg, train_songs)")
    if any(len(s.part_names) != cfg.n_parts for s in songs):
        raise ValueError(f"every song must have cfg.n_parts={cfg.n_parts} parts")


def train(
    cfg: PartSepConfig,
    train_songs: Sequence[PartSong],
    val_songs: Sequence[PartSong],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[nn.Module, FitResult]:
    """Train with Adam and early stopping on ``val_loss`` (see :func:`validate`).

    Resumes from ``ckpt_dir/last.pt`` when present; the returned model carries the best weights.
    """
    _check(cfg, [*train_songs, *val_songs])
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device or default_device())
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loop = LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience)
    result = fit(
        model,
        optimizer,
        crop_batches(train_songs, cfg, seed=cfg.seed),
        _loss,
        lambda m: validate(m, cfg, val_songs),
        ckpt_dir,
        loop,
        log,
        progress=progress,
        desc=f"{cfg.arch} part separation",
    )
    return model, result


def save_model(model: nn.Module, cfg: PartSepConfig, out_dir: str) -> None:
    save_model_dir(out_dir, model, asdict(cfg))


def load_config(path: str | Path) -> PartSepConfig:
    cfg = PartSepConfig(**json.loads(Path(path).read_text()))
    if cfg.pitch_means is not None:
        cfg.pitch_means = tuple(cfg.pitch_means)  # JSON has no tuples
    return cfg


def load_model(out_dir: str, device: torch.device | str | None = None) -> tuple[nn.Module, PartSepConfig]:
    """Rebuild a model saved by :func:`save_model`, in eval mode on ``device``."""
    cfg = load_config(Path(out_dir) / "config.json")
    return load_model_dir(out_dir, build_model(cfg), device or default_device()), cfg
