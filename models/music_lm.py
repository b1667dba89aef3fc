"""Event-sequence language models of the MusPy cross-dataset generalizability experiment.

Dong et al. (ISMIR 2020) train RNN, LSTM, GRU and Transformer language models on the
MusPy event representation of each dataset and compare their perplexities on every other
dataset. This module holds the models, the crop sampler that streams songs, the
deterministic evaluation and a resumable training loop; logging goes through a callback
so the loop knows nothing about the tracking backend.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.checkpoints import (
    load_model_dir,
    read_model_config,
    save_model_dir,
    seed_everything,
)
from models.training import FitResult, LoopConfig, default_device, fit

IGNORE_INDEX = -100
"""Right padding of crops shorter than ``seq_len + 1``; ``cross_entropy`` skips these targets."""

RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
ARCHS = (*RECURRENT, "transformer")


@dataclass
class LMConfig:
    arch: str = "lstm"  # "rnn" | "lstm" | "gru" | "transformer"
    vocab_size: int = 357
    embedding_dim: int = 128
    hidden_dim: int = 128
    num_layers: int = 2
    num_heads: int = 4  # transformer only
    dropout: float = 0.5
    seq_len: int = 64
    batch_size: int = 16
    lr: float = 1e-3
    max_steps: int = 20_000
    eval_every: int = 500
    checkpoint_every: int = 500
    patience: int = 10  # early stopping, in evaluations without improvement of val loss
    seed: int = 0


class RecurrentLM(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_dim)
        self.rnn = RECURRENT[cfg.arch](
            cfg.embedding_dim, cfg.hidden_dim, cfg.num_layers, batch_first=True, dropout=cfg.dropout
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden_dim, cfg.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.rnn(self.dropout(self.embedding(tokens)))
        return self.head(self.dropout(hidden))


class TransformerLM(nn.Module):
    """Causal Transformer; ``embedding_dim`` is the model width, ``hidden_dim`` the feed-forward width.

    Positions are learned for ``seq_len`` steps, the crop length it is trained on.
    """

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_dim)
        self.positions = nn.Embedding(cfg.seq_len, cfg.embedding_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.embedding_dim, cfg.num_heads, cfg.hidden_dim, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.embedding_dim)
        self.head = nn.Linear(cfg.embedding_dim, cfg.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        positions = torch.arange(length, device=tokens.device)
        x = self.dropout(self.embedding(tokens) + self.positions(positions))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
        return self.head(self.norm(self.encoder(x, mask=mask, is_causal=True)))


def build_model(cfg: LMConfig) -> nn.Module:
    """A language model mapping tokens (B, T) to next-token logits (B, T, vocab_size)."""
    if cfg.arch in RECURRENT:
        return RecurrentLM(cfg)
    if cfg.arch == "transformer":
        return TransformerLM(cfg)
    raise ValueError(f"unknown arch {cfg.arch!r}; expected one of {ARCHS}")


def _cycle(factory: Callable[[], Iterable[np.ndarray]], name: str) -> Iterator[np.ndarray]:
    """Endless songs of at least 2 tokens, calling ``factory`` again each time it runs dry."""
    while True:
        usable = 0
        for seq in factory():
            seq = np.asarray(seq)
            if len(seq) >= 2:
                usable += 1
                yield seq
        if not usable:
            raise ValueError(f"{name} yields no sequence of at least 2 tokens")


def _shuffled(stream: Iterator[np.ndarray], size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Approximate shuffle of an endless stream holding at most ``size`` songs in memory."""
    buffer = list(itertools.islice(stream, size))
    for item in stream:
        i = int(rng.integers(size))
        yield buffer[i]
        buffer[i] = item


def _crop(seq: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    out = np.full(length, IGNORE_INDEX, dtype=np.int64)
    start = int(rng.integers(len(seq) - length + 1)) if len(seq) > length else 0
    window = seq[start : start + length]
    out[: len(window)] = window
    return out


def crop_batches(
    sources: Sequence[Callable[[], Iterable[np.ndarray]]],
    seq_len: int,
    batch_size: int,
    seed: int,
    stratified: bool = False,
    shuffle_buffer: int = 1024,
) -> Iterator[torch.Tensor]:
    """Endless LongTensor batches (batch_size, seq_len + 1) of random crops, one crop per song drawn.

    Each source is a factory re-called whenever its songs run out, so songs are streamed
    (e.g. from Parquet shards) and only ``shuffle_buffer`` of them per stream are held.
    Songs shorter than 2 tokens are skipped; songs shorter than ``seq_len + 1`` are padded
    on the right with ``IGNORE_INDEX`` (-100), which the loss ignores as a target.
    ``stratified=False`` chains the sources, so datasets contribute in proportion to their
    number of songs; ``stratified=True`` draws each crop's source uniformly (the paper's
    stratified sampling), giving small datasets equal weight.
    """
    rng = np.random.default_rng(seed)
    if stratified:
        streams = [_shuffled(_cycle(f, f"source {i}"), shuffle_buffer, rng) for i, f in enumerate(sources)]
        songs = (next(streams[int(rng.integers(len(streams)))]) for _ in itertools.count())
    else:

        def chained() -> Iterator[np.ndarray]:
            return itertools.chain.from_iterable(f() for f in sources)

        songs = _shuffled(_cycle(chained, "every source"), shuffle_buffer, rng)
    while True:
        crops = [_crop(next(songs), seq_len + 1, rng) for _ in range(batch_size)]
        yield torch.from_numpy(np.stack(crops))


def _nll(model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL (float32) and the number of predicted tokens of a crop batch.

    Padded inputs become token 0: padding is only on the right and the models are causal,
    so they only influence predictions whose targets are padding too.
    """
    inputs, targets = batch[:, :-1].clamp(min=0), batch[:, 1:]
    logits = model(inputs).float()
    loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return loss, (targets != IGNORE_INDEX).sum()


def _windows(sequences: Iterable[np.ndarray], seq_len: int) -> Iterator[np.ndarray]:
    """Windows of seq_len + 1 tokens at stride seq_len: every token after the first is a target exactly once."""
    for seq in sequences:
        seq = np.asarray(seq)
        for start in range(0, len(seq) - 1, seq_len):
            window = np.full(seq_len + 1, IGNORE_INDEX, dtype=np.int64)
            part = seq[start : start + seq_len + 1]
            window[: len(part)] = part
            yield window


@torch.no_grad()
def evaluate(
    model: nn.Module, sequences: Iterable[np.ndarray], seq_len: int, device: torch.device | str, batch_size: int = 64
) -> dict[str, float]:
    """Mean NLL per token (nats), its perplexity and the token count, in float32 without dropout."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    windows = _windows(sequences, seq_len)
    while chunk := list(itertools.islice(windows, batch_size)):
        loss, n = _nll(model, torch.from_numpy(np.stack(chunk)).to(device))
        total += loss.item()
        count += int(n)
    model.train(was_training)
    if not count:
        raise ValueError("no validation sequence has at least 2 tokens")
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": count}


def train(
    cfg: LMConfig,
    batches: Iterator[torch.Tensor],
    val_sequences: Callable[[], Iterable[np.ndarray]],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[nn.Module, FitResult]:
    """Train with Adam and early stopping on the validation loss through :func:`models.training.fit`.

    ``batches`` must be a deterministic stream (e.g. ``crop_batches`` with the same seed) so
    that a resumed run skips exactly the batches it already trained on.
    """
    device = device or default_device()
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def step_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        loss_sum, count = _nll(model, batch.to(device))
        return loss_sum / count

    def validate(model: nn.Module) -> dict[str, float]:
        val = evaluate(model, val_sequences(), cfg.seq_len, device)
        return {"val_loss": val["loss"], "val_perplexity": val["perplexity"]}

    loop = LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience)
    result = fit(model, optimizer, batches, step_loss, validate, ckpt_dir, loop, log, progress=progress, desc=f"{cfg.arch} LM")
    return model, result


def save_model(model: nn.Module, cfg: LMConfig, out_dir: str) -> None:
    save_model_dir(out_dir, model, asdict(cfg))


def load_model(out_dir: str, device: torch.device | str | None = None) -> tuple[nn.Module, LMConfig]:
    """Rebuild a model saved by :func:`save_model`, in eval mode on ``device``."""
    cfg = LMConfig(**read_model_config(out_dir))
    return load_model_dir(out_dir, build_model(cfg), device or default_device()), cfg
