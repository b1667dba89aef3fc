"""Multitrack Music Transformer (Dong et al., ICASSP 2023): model, training and generation.

A decoder-only Transformer reads one MMT event per step (the sum of six field embeddings and a
learned position embedding) and predicts all six fields of the next event with six heads, so a
whole note costs one step instead of four or five tokens. Attention keeps a per-layer key/value
cache, which makes each generated event cost one token's work instead of the whole prefix's.
Generation samples top-k per field under the constraints that keep every sequence valid
(see :func:`generate_many`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from models.checkpoints import (
    load_model_dir,
    read_model_config,
    save_model_dir,
    seed_everything,
)
from models.mmt_encoding import (
    FIELD_SIZES,
    FIELDS,
    MAX_BEAT,
    MAX_SEQ_LEN,
    TYPE_END,
    TYPE_INSTRUMENT,
    TYPE_NOTE,
    TYPE_START,
    TYPE_START_NOTES,
)
from models.training import FitResult, LoopConfig, default_device, fit, model_device

IGNORE_INDEX = -100
BEAT, POSITION, PITCH, DURATION, INSTRUMENT = range(1, 6)  # column of each field in a code row


@dataclass
class MMTConfig:
    """The published MMT setup; ``max_beat`` is the training window in beats (at most MAX_BEAT).

    Learning rate: linear warm-up from ``lr / warmup_steps`` to ``lr`` over ``warmup_steps``, then
    linear decay to ``final_lr_fraction * lr`` at ``decay_end_step``, constant after that (MMT:
    5,000 warm-up steps, 0.1 × 5e-4 from step 100,000 on).
    """

    dim: int = 512
    layers: int = 6
    heads: int = 8
    dropout: float = 0.2
    max_seq_len: int = MAX_SEQ_LEN
    max_beat: int = MAX_BEAT
    batch_size: int = 8
    lr: float = 5e-4
    warmup_steps: int = 5_000
    decay_end_step: int = 100_000
    final_lr_fraction: float = 0.1
    pitch_shift_min: int = -5  # semitones, inclusive
    pitch_shift_max: int = 6
    max_steps: int = 200_000
    eval_every: int = 1_000
    checkpoint_every: int = 1_000
    patience: int = 20
    grad_clip: float = 1.0
    seed: int = 0


PROFILES = {
    "paper": MMTConfig(),
    "smoke": MMTConfig(
        dim=64,
        layers=2,
        heads=4,
        dropout=0.1,
        max_seq_len=256,
        max_beat=64,
        batch_size=4,
        lr=1e-3,
        warmup_steps=5,
        decay_end_step=40,
        max_steps=40,
        eval_every=10,
        checkpoint_every=10,
        patience=5,
    ),
}


def lr_multiplier(step: int, cfg: MMTConfig) -> float:
    """Factor on ``cfg.lr`` after ``step`` optimizer steps (warm-up, linear decay, then flat)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if step >= cfg.decay_end_step:
        return cfg.final_lr_fraction
    progress = (step - cfg.warmup_steps) / (cfg.decay_end_step - cfg.warmup_steps)
    return 1.0 - (1.0 - cfg.final_lr_fraction) * progress


# ---------------------------------------------------------------------------------------------
# Model


@dataclass
class LayerCache:
    """Keys and values (batch, heads, max_seq_len, head_dim) of the rows one layer has seen."""

    keys: torch.Tensor | None = None
    values: torch.Tensor | None = None
    length: int = 0

    def extend(self, k: torch.Tensor, v: torch.Tensor, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new rows' keys and values and return those of every row so far."""
        if self.keys is None:  # allocated once, in the dtype attention runs in (bf16 under autocast)
            shape = (k.shape[0], k.shape[1], capacity, k.shape[3])
            self.keys = k.new_empty(shape)
            self.values = v.new_empty(shape)
        end = self.length + k.shape[2]
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, capacity: int):
        super().__init__()
        self.heads, self.dropout, self.capacity = heads, dropout, capacity
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cache: LayerCache | None) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        start = 0
        if cache is not None:
            start = cache.length
            k, v = cache.extend(k, v, self.capacity)
        mask = None
        if length > 1 and start > 0:  # new rows see the cached ones and the earlier new ones
            mask = torch.ones(length, start + length, dtype=torch.bool, device=x.device).tril(start)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=length > 1 and start == 0,
        )
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    """Pre-norm Transformer decoder block (attention, then a GELU feed-forward of width 4 × dim)."""

    def __init__(self, cfg: MMTConfig):
        super().__init__()
        self.attn_norm = nn.LayerNorm(cfg.dim)
        self.attn = SelfAttention(cfg.dim, cfg.heads, cfg.dropout, cfg.max_seq_len)
        self.ff_norm = nn.LayerNorm(cfg.dim)
        self.ff = nn.Sequential(
            nn.Linear(cfg.dim, 4 * cfg.dim), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(4 * cfg.dim, cfg.dim)
        )

    def forward(self, x: torch.Tensor, cache: LayerCache | None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cache)
        return x + self.ff(self.ff_norm(x))


class MMT(nn.Module):
    """Maps codes (batch, length, 6) to six logit tensors (batch, length, FIELD_SIZES[f])."""

    def __init__(self, cfg: MMTConfig):
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"dim {cfg.dim} is not a multiple of heads {cfg.heads}")
        self.cfg = cfg
        self.embeddings = nn.ModuleList(nn.Embedding(size, cfg.dim) for size in FIELD_SIZES)
        self.positions = nn.Embedding(cfg.max_seq_len, cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.heads = nn.ModuleList(nn.Linear(cfg.dim, size) for size in FIELD_SIZES)
        self.apply(_init_weights)

    def new_cache(self) -> list[LayerCache]:
        return [LayerCache() for _ in self.blocks]

    def forward(self, codes: torch.Tensor, cache: list[LayerCache] | None = None) -> list[torch.Tensor]:
        """Logits for the rows of ``codes``; with ``cache`` they continue the rows it has seen."""
        start = cache[0].length if cache is not None else 0
        end = start + codes.shape[1]
        if end > self.cfg.max_seq_len:
            raise ValueError(f"{end} rows exceed max_seq_len {self.cfg.max_seq_len}")
        x = sum(emb(codes[..., i]) for i, emb in enumerate(self.embeddings))
        x = self.dropout(x + self.positions(torch.arange(start, end, device=codes.device)))
        for i, block in enumerate(self.blocks):
            x = block(x, cache[i] if cache is not None else None)
        x = self.norm(x)
        return [head(x) for head in self.heads]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def field_losses(model: MMT, codes: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-event cross-entropy per field (float32, shape (6,)) and the number of targets.

    Padding is on the right and attention is causal, so padded rows only feed predictions whose
    targets are padding, which the loss skips.
    """
    logits = model(codes[:, :-1])
    targets = codes[:, 1:].masked_fill(~mask[:, 1:, None], IGNORE_INDEX)
    sums = torch.stack(
        [
            F.cross_entropy(out.float().flatten(0, 1), targets[..., i].flatten(), reduction="sum")
            for i, out in enumerate(logits)
        ]
    )
    return sums, mask[:, 1:].sum()


def loss(model: MMT, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """MMT's objective: the sum over the six fields of the mean cross-entropy per target event."""
    device = model_device(model)
    sums, count = field_losses(model, batch["codes"].to(device), batch["mask"].to(device))
    return sums.sum() / count


@torch.no_grad()
def evaluate(model: MMT, batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, float]:
    """``val_loss`` (as :func:`loss`, over every target of ``batches``) and ``val_<field>_loss``."""
    device = model_device(model)
    total, count = torch.zeros(len(FIELDS), device=device), 0
    for batch in batches:
        sums, n = field_losses(model, batch["codes"].to(device), batch["mask"].to(device))
        total += sums
        count += int(n)
    if not count:
        raise ValueError("no validation targets")
    per_field = (total / count).tolist()
    return {"val_loss": sum(per_field)} | {f"val_{f}_loss": v for f, v in zip(FIELDS, per_field)}


# ---------------------------------------------------------------------------------------------
# Data


def _end_row() -> np.ndarray:
    row = np.zeros((1, len(FIELDS)), dtype=np.int64)
    row[0, 0] = TYPE_END
    return row


def window(
    codes: np.ndarray, max_beat: int, max_seq_len: int, rng: np.random.Generator | None = None, pitch_shift: int = 0
) -> np.ndarray:
    """The song's header and its notes in a ``max_beat``-beat window, re-based to beat 0.

    The window starts at a random beat drawn by ``rng`` (the first beat without one). Pitches are
    shifted by ``pitch_shift`` semitones, dropping notes that leave 0..127; instrument events stay.
    The result ends with end-of-song and is cut to ``max_seq_len`` rows, keeping that last row.
    """
    codes = np.asarray(codes, dtype=np.int64)
    header = codes[codes[:, 0] < TYPE_NOTE]
    notes = codes[codes[:, 0] == TYPE_NOTE]
    beats = notes[:, BEAT] - 1
    span = int(beats.max()) + 1 if len(notes) else 0
    start = int(rng.integers(span - max_beat + 1)) if rng is not None and span > max_beat else 0
    notes = notes[(beats >= start) & (beats < start + max_beat)]
    notes[:, BEAT] -= start
    notes[:, PITCH] += pitch_shift
    notes = notes[(notes[:, PITCH] >= 1) & (notes[:, PITCH] <= 128)]
    seq = np.concatenate([header, notes, _end_row()])
    if len(seq) > max_seq_len:
        seq = np.concatenate([seq[: max_seq_len - 1], seq[-1:]])
    return seq


def collate(seqs: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
    """Right-pad code arrays with zeros to one length; ``mask`` marks the real rows."""
    length = max(len(s) for s in seqs)
    codes = np.zeros((len(seqs), length, len(FIELDS)), dtype=np.int64)
    mask = np.zeros((len(seqs), length), dtype=bool)
    for i, seq in enumerate(seqs):
        codes[i, : len(seq)] = seq
        mask[i, : len(seq)] = True
    return {"codes": torch.from_numpy(codes), "mask": torch.from_numpy(mask)}


def make_batches(sequences: Sequence[np.ndarray], cfg: MMTConfig, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless training batches: songs in a fresh random order each pass, a random window of each
    and a random pitch shift in [pitch_shift_min, pitch_shift_max]; the same ``seed`` gives the
    same stream, which resuming relies on."""
    if not sequences:
        raise ValueError("no training sequences")
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while True:
        batch = []
        for _ in range(cfg.batch_size):
            if not order:
                order = rng.permutation(len(sequences)).tolist()
            shift = int(rng.integers(cfg.pitch_shift_min, cfg.pitch_shift_max + 1))
            batch.append(window(sequences[order.pop()], cfg.max_beat, cfg.max_seq_len, rng, shift))
        yield collate(batch)


def val_batches(sequences: Sequence[np.ndarray], cfg: MMTConfig) -> list[dict[str, torch.Tensor]]:
    """Validation batches: every song once, its first window, no augmentation."""
    windows = [window(seq, cfg.max_beat, cfg.max_seq_len) for seq in sequences]
    return [collate(windows[i : i + cfg.batch_size]) for i in range(0, len(windows), cfg.batch_size)]


# ---------------------------------------------------------------------------------------------
# Training and persistence


def train(
    cfg: MMTConfig,
    train_seqs: Sequence[np.ndarray],
    val_seqs: Sequence[np.ndarray],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | str | None = None,
    progress: bool = False,
) -> tuple[MMT, FitResult]:
    """Train with Adam and the warm-up/decay schedule, early stopping on ``val_loss``.

    Resumes from ``ckpt_dir/last.pt`` when it exists; the model returned carries the best weights.
    """
    device = torch.device(device) if device is not None else default_device()
    seed_everything(cfg.seed)
    model = MMT(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(step, cfg))
    val = val_batches(val_seqs, cfg)
    result = fit(
        model,
        optimizer,
        make_batches(train_seqs, cfg, cfg.seed),
        loss,
        lambda m: evaluate(m, val),
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience, cfg.grad_clip),
        log,
        scheduler=scheduler,
        monitor="val_loss",
        progress=progress,
        desc="MMT",
    )
    return model, result


def save_model(model: MMT, cfg: MMTConfig, out_dir: str | Path) -> None:
    save_model_dir(out_dir, model, asdict(cfg))


def load_model(out_dir: str | Path, device: torch.device | str | None = None) -> tuple[MMT, MMTConfig]:
    """Rebuild a model written by :func:`save_model`, in eval mode on ``device``."""
    cfg = MMTConfig(**read_model_config(out_dir))
    return load_model_dir(out_dir, MMT(cfg), device if device is not None else default_device()), cfg


# ---------------------------------------------------------------------------------------------
# Generation


def unconditioned_prompt() -> np.ndarray:
    """Start-of-song only: the model chooses the instruments and the notes."""
    prompt = np.zeros((1, len(FIELDS)), dtype=np.int64)
    prompt[0, 0] = TYPE_START
    return prompt


def instrument_prompt(codes: np.ndarray) -> np.ndarray:
    """Start-of-song, the song's instrument events and start-of-notes (instrument-informed mode)."""
    codes = np.asarray(codes, dtype=np.int64)
    return codes[codes[:, 0] < TYPE_NOTE].copy()


def continuation_prompt(codes: np.ndarray, n_beats: int) -> np.ndarray:
    """The song's header and its notes before beat ``n_beats`` (n-beat continuation mode)."""
    codes = np.asarray(codes, dtype=np.int64)
    keep = (codes[:, 0] < TYPE_NOTE) | ((codes[:, 0] == TYPE_NOTE) & (codes[:, BEAT] - 1 < n_beats))
    return codes[keep].copy()


def _top_k(
    logits: torch.Tensor, allowed: torch.Tensor, fraction: float, temperature: float, generator: torch.Generator
) -> torch.Tensor:
    """One value per row among ``allowed``: top-k sampling with k = ceil(fraction × vocabulary),
    or the most likely value when ``temperature`` is 0. A row that allows nothing draws from every
    value; callers discard such draws (e.g. a new instrument when all are declared)."""
    allowed = allowed | ~allowed.any(-1, keepdim=True)
    logits = logits.float().masked_fill(~allowed, -math.inf)
    if temperature == 0:
        return logits.argmax(-1)
    k = max(1, math.ceil(fraction * logits.shape[-1]))
    kth = logits.topk(k, dim=-1).values[:, -1:]
    probs = F.softmax(logits.masked_fill(logits < kth, -math.inf) / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _Constraints:
    """What each sample of a batch may emit next, given the rows it has so far.

    The rules keep every sequence valid and in the encoding's canonical form: event types never go
    back (instruments only right after start-of-song, notes only after start-of-notes, start-of-song
    never again); instrument events are distinct and ascending; a song declares at least one
    instrument when there is room; a note uses a declared instrument; note onsets (beat, then
    position within the beat) never decrease; and start-of-notes and end-of-song are forced when
    only the rows to close the song remain before ``max_len``.
    """

    def __init__(self, prompt: torch.Tensor, batch: int):
        self.prev_type = prompt[-1, 0].repeat(batch)
        instruments = torch.zeros(FIELD_SIZES[INSTRUMENT], dtype=torch.bool, device=prompt.device)
        instruments[prompt[prompt[:, 0] == TYPE_INSTRUMENT, INSTRUMENT]] = True
        self.declared = instruments.repeat(batch, 1)
        notes = prompt[prompt[:, 0] == TYPE_NOTE]
        last_note = notes[-1] if len(notes) else torch.zeros_like(prompt[0])
        self.last_note = last_note.repeat(batch, 1)
        self.codes = [torch.arange(size, device=prompt.device) for size in FIELD_SIZES]

    def next_rows(
        self, logits: list[torch.Tensor], remaining: int, fraction: float, temperature: float, gen: torch.Generator
    ) -> torch.Tensor:
        """Sample the next row (batch, 6) from the last-step ``logits`` and record it."""
        batch, device, codes = len(self.prev_type), self.prev_type.device, self.codes
        highest = torch.where(self.declared, codes[INSTRUMENT], 0).amax(-1)
        header = self.prev_type <= TYPE_INSTRUMENT
        has_instrument = self.declared.any(-1)
        types = torch.zeros(batch, FIELD_SIZES[0], dtype=torch.bool, device=device)
        types[:, TYPE_INSTRUMENT] = header & (highest < FIELD_SIZES[INSTRUMENT] - 1) & (remaining > 2)
        types[:, TYPE_START_NOTES] = header & (has_instrument | (remaining <= 2))
        types[:, TYPE_NOTE] = ~header & has_instrument & (remaining > 1)
        types[:, TYPE_END] = ~header
        kind = _top_k(logits[0], types, fraction, temperature, gen)

        def draw(field: int, allowed: torch.Tensor) -> torch.Tensor:
            return _top_k(logits[field], allowed, fraction, temperature, gen)

        new_instrument = draw(INSTRUMENT, codes[INSTRUMENT] > highest[:, None])
        last_beat, last_position = self.last_note[:, BEAT, None], self.last_note[:, POSITION, None]
        beat = draw(BEAT, codes[BEAT] >= last_beat.clamp(min=1))
        floor = torch.where(beat[:, None] == last_beat, last_position, 1)
        note = torch.stack(
            [
                torch.full_like(beat, TYPE_NOTE),
                beat,
                draw(POSITION, codes[POSITION] >= floor),
                draw(PITCH, codes[PITCH] >= 1),
                draw(DURATION, codes[DURATION] >= 1),
                draw(INSTRUMENT, self.declared & (codes[INSTRUMENT] >= 1)),
            ],
            dim=1,
        )

        rows = torch.zeros(batch, len(FIELDS), dtype=torch.long, device=device)
        rows[:, 0] = kind
        is_instrument, is_note = kind == TYPE_INSTRUMENT, kind == TYPE_NOTE
        rows[:, INSTRUMENT] = torch.where(is_instrument, new_instrument, 0)
        rows[is_note] = note[is_note]
        self.declared[is_instrument, new_instrument[is_instrument]] = True
        self.last_note[is_note] = note[is_note]
        self.prev_type = kind
        return rows


@torch.no_grad()
def generate_many(
    model: MMT,
    prompt: np.ndarray,
    max_len: int,
    num_samples: int,
    *,
    temperature: float = 1.0,
    top_k_fraction: float = 0.1,
    use_cache: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> list[np.ndarray]:
    """``num_samples`` continuations of ``prompt`` (t, 6), generated as one batch.

    Each field is sampled top-k (k = ceil(top_k_fraction × its vocabulary), MMT's 0.1) at
    ``temperature`` (0: greedy) under the rules of :class:`_Constraints`, so every returned array
    (prompt included) ends with end-of-song, is at most ``max_len`` rows long (at most the model's
    ``max_seq_len``) and passes ``models.mmt_encoding.validate``. ``use_cache=False`` recomputes
    the whole prefix each step; it gives the same sequences and serves as the reference.
    ``device``: where to run (the model is moved there); default, where the model is.
    ``progress`` shows a bar over the generated rows.
    """
    prompt = np.asarray(prompt, dtype=np.int64).reshape(-1, len(FIELDS))
    if len(prompt) == 0 or prompt[0, 0] != TYPE_START:
        raise ValueError("a prompt starts with the start-of-song row")
    if prompt[-1, 0] == TYPE_END:
        return [prompt.copy() for _ in range(num_samples)]
    closing = 2 if prompt[-1, 0] <= TYPE_INSTRUMENT else 1
    if not len(prompt) + closing <= max_len <= model.cfg.max_seq_len:
        raise ValueError(f"max_len {max_len} leaves no room after {len(prompt)} prompt rows or exceeds max_seq_len")
    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.to(device).eval()
    seq = torch.zeros(num_samples, max_len, len(FIELDS), dtype=torch.long, device=device)
    seq[:, : len(prompt)] = torch.from_numpy(prompt).to(device)
    rules = _Constraints(seq[0, : len(prompt)], num_samples)
    generator = torch.Generator(device).manual_seed(seed)
    cache = model.new_cache() if use_cache else None
    done = torch.zeros(num_samples, dtype=torch.bool, device=device)
    length = len(prompt)
    bar = tqdm(total=max_len, initial=length, disable=not progress, desc="generate", unit="event")
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        while length < max_len and not done.all():
            if cache is not None:
                logits = model(seq[:, cache[0].length : length], cache)
            else:
                logits = model(seq[:, :length])
            rows = rules.next_rows(
                [out[:, -1] for out in logits], max_len - length, top_k_fraction, temperature, generator
            )
            seq[:, length] = torch.where(done[:, None], 0, rows)
            done |= rows[:, 0] == TYPE_END
            length += 1
            bar.update()
    bar.close()
    model.train(was_training)
    out = seq[:, :length].cpu().numpy()
    return [s[: int(np.argmax(s[:, 0] == TYPE_END)) + 1] for s in out]


def generate(
    model: MMT,
    prompt: np.ndarray,
    max_len: int,
    *,
    temperature: float = 1.0,
    top_k_fraction: float = 0.1,
    use_cache: bool = True,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> np.ndarray:
    """One continuation of ``prompt``; see :func:`generate_many`."""
    return generate_many(
        model,
        prompt,
        max_len,
        1,
        temperature=temperature,
        top_k_fraction=top_k_fraction,
        use_cache=use_cache,
        seed=seed,
        device=device,
        progress=progress,
    )[0]
