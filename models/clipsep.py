"""Text-queried sound separation learned from unlabeled videos (Dong et al., ICLR 2023, "CLIPSep").

CLIPSep trains on mixtures of two video soundtracks, each queried with the CLIP image embedding
of its own video; since CLIP puts images and text in one space, a text embedding can query the
trained model. The audio side follows Sound of Pixels (Zhao et al., ECCV 2018):

- Front end: 65,535-sample clips at 16 kHz, STFT with a 1024-sample Hann window and hop 256
  (513 x 256 bins), magnitudes resampled along frequency from 513 linear bins to 256 log-spaced
  bins. The resampling is Sound of Pixels' ``grid_sample`` warp written as a fixed linear
  interpolation matrix: warped row r reads linear bin 512 * (21 ** (r / 255) - 1) / 20, and its
  inverse (linear bin f reads warped row 255 * log(1 + 20 f / 512) / log 21) brings masks back.
  Interpolation rows sum to one, so an all-ones mask stays all ones in both domains.
- Network: a 7-level U-Net over the log magnitude yields K = 32 feature maps F_k; a query gives
  K weights w_k and the mask is sigmoid(sum_k a_k w_k F_k + b) with learnable a (K,) and b.
  The query is the mean of the CLIP embeddings of 3 frames, L2-normalised (CLIP compares
  normalised embeddings; normalising makes image and text queries the same scale), through a
  linear projection to K weights.
- Loss: weighted binary cross-entropy against binary masks (source magnitude >= every other
  source's, on the warped spectrogram) with weight clip(log(1 + |mixture|), 1e-3, 10).
- Noise invariant training (``method="nit"``): two extra learnable query vectors give
  query-independent noise masks N_1, N_2. With query masks Q_1, Q_2 of the two sources and
  targets M_1, M_2 the paper's loss is L_NIT = min(sum_i WBCE(M_i, Q_i + N_i),
  sum_i WBCE(M_i, Q_i + N_(3-i))) (sums clipped to [0, 1]), chosen per mixture, plus
  lambda * L_REG with L_REG = max(0, sum_i mean(N_i) - gamma), mean over all TF bins of a
  mixture: noise heads may together claim at most a gamma share of the spectrogram before
  they are penalised (gamma = 0.25, lambda = 0.1). At test time only the query mask is used.
- PIT baseline (``method="pit"``): the same U-Net with two learned, query-free output heads,
  trained with the permutation-invariant version of the same loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import museval
import numpy as np
import torch
from torch import nn

from models.checkpoints import (
    load_model_dir,
    read_model_config,
    save_model_dir,
    seed_everything,
)
from models.training import FitResult, LoopConfig, default_device, fit, model_device

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 65_535
N_FFT = 1024
HOP = 256
N_LINEAR = N_FFT // 2 + 1
N_WARPED = 256
EMBED_DIM = 512
LEVELS = 7
LOG_EPS = 1e-10  # Sound of Pixels' floor under the log magnitude
WEIGHT_RANGE = (1e-3, 10.0)
METHODS = ("clipsep", "nit", "pit")


@dataclass
class Source:
    """One training or test clip: mono 16 kHz audio and its CLIP query, (512,) or per-frame (n, 512)."""

    audio: np.ndarray
    query: np.ndarray
    label: str | None = None


@dataclass
class CLIPSepConfig:
    """Defaults are the paper's settings where it states them; ``batch_size`` and the schedule
    (linear warm-up over ``warmup_steps``, then linear decay to zero at ``max_steps``) are assumed."""

    method: str = "nit"  # one of METHODS
    ngf: int = 64  # U-Net width of the first level (Sound of Pixels); doubles per level up to 8 * ngf
    n_masks: int = 32  # K
    n_noise: int = 2
    noise_threshold: float = 0.25  # gamma
    noise_weight: float = 0.1  # lambda
    gain_db: float = 6.0  # training mixtures scale each source by a uniform gain in +-gain_db
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 5_000
    max_steps: int = 200_000
    eval_every: int = 5_000
    checkpoint_every: int = 5_000
    patience: int = 10
    n_val_mixtures: int = 256
    seed: int = 0


PROFILES = {
    "paper": CLIPSepConfig(),
    "smoke": CLIPSepConfig(
        ngf=4, n_masks=8, batch_size=4, lr=3e-3, warmup_steps=5, max_steps=150, eval_every=50, checkpoint_every=50,
        patience=5, n_val_mixtures=8,
    ),
    # the demo's synthetic instrument set on a 2-core CPU: minutes, not days
    "demo": CLIPSepConfig(
        ngf=8, n_masks=16, batch_size=8, lr=3e-3, warmup_steps=20, max_steps=600, eval_every=150, checkpoint_every=150,
        patience=4, n_val_mixtures=16,
    ),
}  # fmt: skip


def query_vector(query: np.ndarray) -> np.ndarray:
    """The (512,) L2-normalised mean of per-frame CLIP embeddings (or of one embedding)."""
    q = np.asarray(query, dtype=np.float32).reshape(-1, EMBED_DIM).mean(0)
    return q / max(float(np.linalg.norm(q)), 1e-8)


# ---------------------------------------------------------------------------------------------
# Front end


def _interpolation(positions: np.ndarray, n_in: int) -> np.ndarray:
    """(len(positions), n_in) matrix of linear interpolation at fractional input indices."""
    low = np.clip(np.floor(positions).astype(np.int64), 0, n_in - 2)
    frac = positions - low
    matrix = np.zeros((len(positions), n_in), dtype=np.float64)
    rows = np.arange(len(positions))
    matrix[rows, low] = 1 - frac
    matrix[rows, low + 1] += frac
    return matrix


@lru_cache(maxsize=8)
def _warp_matrices(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward (256, 513) and inverse (513, 256) log-frequency warps (see the module docstring)."""
    forward = (N_LINEAR - 1) * (21.0 ** (np.arange(N_WARPED) / (N_WARPED - 1)) - 1) / 20
    inverse = (N_WARPED - 1) * np.log1p(20 * np.arange(N_LINEAR) / (N_LINEAR - 1)) / np.log(21)
    return tuple(
        torch.from_numpy(_interpolation(p, n).astype(np.float32)).to(device)
        for p, n in ((forward, N_LINEAR), (inverse, N_WARPED))
    )


def stft(audio: torch.Tensor) -> torch.Tensor:
    """Complex spectrogram (..., 513, frames) of (..., samples)."""
    shape = audio.shape
    window = torch.hann_window(N_FFT, device=audio.device)
    spec = torch.stft(audio.reshape(-1, shape[-1]).float(), N_FFT, HOP, N_FFT, window, return_complex=True)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    shape = spec.shape
    window = torch.hann_window(N_FFT, device=spec.device)
    audio = torch.istft(spec.reshape(-1, *shape[-2:]), N_FFT, HOP, N_FFT, window, length=length)
    return audio.reshape(*shape[:-2], length)


def warp(linear: torch.Tensor) -> torch.Tensor:
    """(..., 513, T) -> (..., 256, T) on the log-frequency axis."""
    return torch.einsum("wf,...ft->...wt", _warp_matrices(str(linear.device))[0], linear)


def unwarp(warped: torch.Tensor) -> torch.Tensor:
    """(..., 256, T) -> (..., 513, T): a mask on the warped axis back on the STFT's axis."""
    return torch.einsum("fw,...wt->...ft", _warp_matrices(str(warped.device))[1], warped)


def apply_mask(spec: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
    """Audio of a warped-domain mask applied to a complex mixture spectrogram, keeping its phase."""
    return istft(spec * unwarp(mask), length)


def binary_masks(source_mags: torch.Tensor) -> torch.Tensor:
    """(B, S, F, T) targets: 1 where a source is at least as loud as every other source."""
    n = source_mags.shape[1]
    index = torch.arange(n, device=source_mags.device)
    others = torch.stack([source_mags[:, index != i].amax(1) for i in range(n)], dim=1)
    return (source_mags >= others).float()


# ---------------------------------------------------------------------------------------------
# Model


class UNet(nn.Module):
    """Sound of Pixels' 7-level U-Net: stride-2 conv-BN-LeakyReLU down, transposed conv-BN-ReLU up
    with skip connections, a linear last layer with ``n_out`` feature maps at input resolution.
    Both input sides must be multiples of 2 ** 7."""

    def __init__(self, ngf: int, n_out: int):
        super().__init__()
        chans = [ngf * min(2**i, 8) for i in range(LEVELS)]
        self.norm = nn.BatchNorm2d(1)
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c, 4, 2, 1), nn.BatchNorm2d(c), nn.LeakyReLU(0.2))
            for c_in, c in zip([1, *chans[:-1]], chans)
        )
        self.up = nn.ModuleList()
        for i in reversed(range(LEVELS)):
            c_in = chans[i] * (1 if i == LEVELS - 1 else 2)
            if i:
                self.up.append(nn.Sequential(nn.ConvTranspose2d(c_in, chans[i - 1], 4, 2, 1), nn.BatchNorm2d(chans[i - 1]), nn.ReLU()))
            else:
                self.up.append(nn.ConvTranspose2d(c_in, n_out, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        x = self.norm(x)
        for down in self.down:
            x = down(x)
            skips.append(x)
        x = skips.pop()
        for i, up in enumerate(self.up):
            x = up(torch.cat([x, skips.pop()], 1) if i else x)
        return x


class CLIPSep(nn.Module):
    """U-Net features mixed into masks by query weights (``method`` "clipsep" or "nit") and by
    learned query-free heads (NIT's noise heads, or PIT's two outputs)."""

    def __init__(self, cfg: CLIPSepConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.n_masks
        self.unet = UNet(cfg.ngf, k)
        self.query = nn.Linear(EMBED_DIM, k) if cfg.method != "pit" else None
        n_free = {"clipsep": 0, "nit": cfg.n_noise, "pit": 2}[cfg.method]
        self.heads = nn.Parameter(torch.randn(n_free, k) / k**0.5)
        self.scale = nn.Parameter(torch.ones(k))
        self.bias = nn.Parameter(torch.zeros(1))

    def features(self, log_mag: torch.Tensor) -> torch.Tensor:
        """(B, K, 256, T) feature maps of a (B, 256, T) warped log magnitude."""
        return self.unet(log_mag[:, None])

    def masks(self, features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(B, H, 256, T) masks in [0, 1] from per-mask weights (B, H, K)."""
        logits = torch.einsum("bhk,bkft->bhft", weights * self.scale, features) + self.bias
        return torch.sigmoid(logits.float())

    def forward(self, log_mag: torch.Tensor, queries: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``query``: masks (B, Q, 256, T) for normalised queries (B, Q, 512); ``free``: (B, H, 256, T)."""
        feats = self.features(log_mag)
        out = {"free": self.masks(feats, self.heads.expand(len(feats), -1, -1))}
        if queries is not None and self.query is not None:
            out["query"] = self.masks(feats, self.query(queries))
        return out


def build_model(cfg: CLIPSepConfig) -> CLIPSep:
    if cfg.method not in METHODS:
        raise ValueError(f"unknown method {cfg.method!r}; expected one of {METHODS}")
    return CLIPSep(cfg)


# ---------------------------------------------------------------------------------------------
# Losses


def wbce(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted binary cross-entropy per mixture and mask, (B, S), each a mean over TF bins."""
    p = pred.float().clamp(1e-7, 1 - 1e-7)
    bce = -(target * p.log() + (1 - target) * (1 - p).log())
    return (weight * bce).mean((-2, -1))


def assignment_losses(candidates: Sequence[torch.Tensor], target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, P) summed WBCE of each candidate mask set (B, S, F, T); the loss takes the per-row min."""
    return torch.stack([wbce(c, target, weight).sum(1) for c in candidates], dim=1)


def nit_candidates(query: torch.Tensor, noise: torch.Tensor) -> list[torch.Tensor]:
    """The two ways to add two noise masks to two query masks, clipped to [0, 1]."""
    return [(query + noise).clamp(0, 1), (query + noise.flip(1)).clamp(0, 1)]


def noise_regularizer(noise: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B,) L_REG = max(0, sum_i mean(N_i) - gamma) of noise masks (B, n_noise, F, T)."""
    return (noise.mean((-2, -1)).sum(1) - threshold).clamp(min=0)


def objective(model: CLIPSep, mixture: torch.Tensor, sources: torch.Tensor, queries: torch.Tensor) -> dict[str, torch.Tensor]:
    """Training loss ``loss`` (per ``model.cfg.method``) and the plain query-mask loss ``query_loss``
    of mixtures (B, N), their sources (B, 2, N) and normalised queries (B, 2, 512)."""
    cfg = model.cfg
    with torch.autocast(mixture.device.type, enabled=False):  # masks and weights need float32 magnitudes
        mag = warp(stft(mixture).abs())
        target = binary_masks(warp(stft(sources).abs()))
    weight = torch.log1p(mag).clamp(*WEIGHT_RANGE)[:, None]
    out = model(torch.log(mag + LOG_EPS), queries)
    if cfg.method == "pit":
        loss = assignment_losses([out["free"], out["free"].flip(1)], target, weight).amin(1).mean()
        return {"loss": loss}
    query_loss = wbce(out["query"], target, weight).sum(1).mean()
    if cfg.method == "clipsep":
        return {"loss": query_loss, "query_loss": query_loss}
    nit = assignment_losses(nit_candidates(out["query"], out["free"]), target, weight).amin(1)
    reg = noise_regularizer(out["free"], cfg.noise_threshold)
    return {"loss": (nit + cfg.noise_weight * reg).mean(), "query_loss": query_loss, "noise_reg": reg.mean()}


# ---------------------------------------------------------------------------------------------
# Data


@dataclass
class Mixture:
    """A two-source mixture with everything needed to train on it or score a separation of it."""

    audio: np.ndarray  # (N,) the sum of the scaled sources
    sources: np.ndarray  # (2, N) the scaled sources
    queries: np.ndarray  # (2, 512) normalised queries
    indices: tuple[int, int]


def _clip(audio: np.ndarray) -> np.ndarray:
    """``audio`` cut or zero-padded to one clip, so every mixture has the same length."""
    out = np.zeros(CLIP_SAMPLES, dtype=np.float32)
    audio = np.asarray(audio, dtype=np.float32)[:CLIP_SAMPLES]
    out[: len(audio)] = audio
    return out


def _mix(sources: Sequence[Source], rng: np.random.Generator, gain_db: float) -> Mixture:
    """Two sources (of different labels where labels are known) each scaled by a random gain."""
    first = int(rng.integers(len(sources)))
    label = sources[first].label
    others = [j for j, s in enumerate(sources) if j != first and (label is None or s.label != label)]
    if not others:
        raise ValueError("need at least two sources with different labels")
    pair = (first, others[int(rng.integers(len(others)))])
    gains = 10 ** (rng.uniform(-gain_db, gain_db, size=2) / 20) if gain_db else np.ones(2)
    audio = np.stack([_clip(sources[i].audio) for i in pair])
    scaled = (audio * gains[:, None]).astype(np.float32)
    queries = np.stack([query_vector(sources[i].query) for i in pair])
    return Mixture(scaled.sum(0), scaled, queries, pair)


def deterministic_mixtures(sources: Sequence[Source], n: int, seed: int, gain_db: float = 0.0) -> list[Mixture]:
    """The MUSIC+ style evaluation set: mixture i draws its two sources (and gains) from an rng
    seeded with (seed, i) alone, so every mixture is reproducible without drawing the others."""
    return [_mix(sources, np.random.default_rng([seed, i]), gain_db) for i in range(n)]


def _stack(mixtures: Sequence[Mixture]) -> dict[str, torch.Tensor]:
    return {
        "mixture": torch.from_numpy(np.stack([m.audio for m in mixtures])),
        "sources": torch.from_numpy(np.stack([m.sources for m in mixtures])),
        "queries": torch.from_numpy(np.stack([m.queries for m in mixtures])),
    }


def mixture_batches(sources: Sequence[Source], cfg: CLIPSepConfig, seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless deterministic batches of two-source mixtures with random gains."""
    rng = np.random.default_rng(seed)
    while True:
        yield _stack([_mix(sources, rng, cfg.gain_db) for _ in range(cfg.batch_size)])


# ---------------------------------------------------------------------------------------------
# Training


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def lr_multiplier(step: int, cfg: CLIPSepConfig) -> float:
    """Linear warm-up to ``cfg.lr`` over ``warmup_steps``, then linear decay to zero at ``max_steps``."""
    warmup = max(cfg.warmup_steps, 1)
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (cfg.max_steps - step) / max(cfg.max_steps - warmup, 1))


@torch.no_grad()
def validate(model: CLIPSep, mixtures: Sequence[Mixture]) -> dict[str, float]:
    """Mean of each :func:`objective` term over fixed mixtures; ``val_loss`` is the training loss."""
    device = model_device(model)
    totals: dict[str, float] = {}
    for b in range(0, len(mixtures), model.cfg.batch_size):
        chunk = mixtures[b : b + model.cfg.batch_size]
        batch = _to(_stack(chunk), device)
        for key, value in objective(model, batch["mixture"], batch["sources"], batch["queries"]).items():
            totals[key] = totals.get(key, 0.0) + value.item() * len(chunk)
    return {f"val_{k}": v / len(mixtures) for k, v in totals.items()}


def train(
    cfg: CLIPSepConfig,
    train_sources: Sequence[Source],
    val_sources: Sequence[Source],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    device: torch.device | None = None,
    progress: bool = False,
) -> tuple[CLIPSep, FitResult]:
    """Train with Adam and early stopping on ``val_loss`` over fixed validation mixtures.

    Resumes from ``ckpt_dir/last.pt`` when present; the returned model carries the best weights.
    """
    seed_everything(cfg.seed)
    model = build_model(cfg).to(device or default_device())
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(step, cfg))
    val_mixtures = deterministic_mixtures(val_sources, cfg.n_val_mixtures, cfg.seed)

    def step_loss(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = _to(batch, model_device(m))
        return objective(m, batch["mixture"], batch["sources"], batch["queries"])["loss"]

    result = fit(
        model,
        optimizer,
        mixture_batches(train_sources, cfg, seed=cfg.seed),
        step_loss,
        lambda m: validate(m, val_mixtures),
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience),
        log,
        scheduler=scheduler,
        progress=progress,
        desc=f"clipsep ({cfg.method})",
    )
    return model, result


# ---------------------------------------------------------------------------------------------
# Inference and evaluation


@torch.no_grad()
def _separate(model: CLIPSep, mixture: np.ndarray, query: np.ndarray | None) -> np.ndarray:
    """(H, n) audio of the query mask (H = 1) or of the free heads, for a mixture of any length n.

    Inputs longer than a clip are cut into clip-long windows at half-clip hops (the last one
    zero-padded); window outputs are Hann-weighted, summed and divided by the summed weights,
    so every sample is a convex mix of the windows covering it. Shorter inputs are zero-padded.
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    mixture = np.asarray(mixture, dtype=np.float32)
    n = len(mixture)
    hop = CLIP_SAMPLES // 2
    starts = list(range(0, max(n - CLIP_SAMPLES, 0) + hop, hop)) if n > CLIP_SAMPLES else [0]
    padded = np.zeros(starts[-1] + CLIP_SAMPLES, dtype=np.float32)
    padded[:n] = mixture
    windows = torch.from_numpy(np.stack([padded[s : s + CLIP_SAMPLES] for s in starts])).to(device)
    spec = stft(windows)
    log_mag = torch.log(warp(spec.abs()) + LOG_EPS)
    if query is None:
        masks = model(log_mag)["free"]
    else:
        q = torch.from_numpy(query_vector(query)).to(device).expand(len(starts), 1, -1)
        masks = model(log_mag, q)["query"]
    audio = apply_mask(spec[:, None], masks, CLIP_SAMPLES).cpu().numpy().astype(np.float64)
    fade = np.hanning(CLIP_SAMPLES + 2)[1:-1] if len(starts) > 1 else np.ones(CLIP_SAMPLES)
    out = np.zeros((audio.shape[1], len(padded)))
    total = np.zeros(len(padded))
    for i, s in enumerate(starts):
        out[:, s : s + CLIP_SAMPLES] += audio[i] * fade
        total[s : s + CLIP_SAMPLES] += fade
    model.train(was_training)
    return (out / total)[:, :n].astype(np.float32)


def separate(model: CLIPSep, mixture: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Audio of the source a CLIP query (image or text, (512,) or (n, 512)) asks for."""
    if model.cfg.method == "pit":
        raise ValueError("a PIT model takes no query; use separate_pit")
    return _separate(model, mixture, query)[0]


def separate_pit(model: CLIPSep, mixture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two outputs of a PIT model, in no particular order."""
    if model.cfg.method != "pit":
        raise ValueError("separate_pit needs a model trained with method='pit'")
    a, b = _separate(model, mixture, None)
    return a, b


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """BSS Eval v4 SDR (museval) over the whole clip as one window; museval rejects a silent estimate."""
    n = len(reference)
    ref = np.asarray(reference, dtype=np.float64)[None, :, None]
    est = np.asarray(estimate, dtype=np.float64)[None, :n, None]
    return float(museval.metrics.bss_eval(ref, est, window=n, hop=n)[0][0, 0])


def sdri(reference: np.ndarray, estimate: np.ndarray, mixture: np.ndarray) -> float:
    """SDR improvement of an estimate over the unprocessed mixture."""
    return sdr(reference, estimate) - sdr(reference, mixture)


def _summary(prefix: str, values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    sem = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {f"{prefix}_mean": float(v.mean()), f"{prefix}_sem": sem, f"{prefix}_median": float(np.median(v))}


def evaluate(
    model: CLIPSep, sources_test: Sequence[Source], n_mixtures: int, seed: int, pit_model: CLIPSep | None = None
) -> dict[str, float]:
    """SDR and SDRi (mean, SEM, median) over both sources of each of ``n_mixtures``
    :func:`deterministic_mixtures`: the query separation, the mixture itself (its SDRi is 0 by
    definition, so only its SDR is reported) and, given ``pit_model``, PIT's outputs assigned to
    the references by the permutation with the higher mean SDR."""
    scores: dict[str, list[float]] = {k: [] for k in ("query_sdr", "query_sdri", "mixture_sdr", "pit_sdr", "pit_sdri")}
    for mix in deterministic_mixtures(sources_test, n_mixtures, seed):
        mixture_sdr = [sdr(ref, mix.audio) for ref in mix.sources]
        scores["mixture_sdr"] += mixture_sdr
        for ref, query, base in zip(mix.sources, mix.queries, mixture_sdr):
            scores["query_sdr"].append(sdr(ref, separate(model, mix.audio, query)))
            scores["query_sdri"].append(scores["query_sdr"][-1] - base)
        if pit_model is not None:
            a, b = separate_pit(pit_model, mix.audio)
            options = [[sdr(mix.sources[0], x), sdr(mix.sources[1], y)] for x, y in ((a, b), (b, a))]
            best = max(options, key=np.mean)
            scores["pit_sdr"] += best
            scores["pit_sdri"] += [s - base for s, base in zip(best, mixture_sdr)]
    result = {"n_mixtures": float(n_mixtures)}
    for key, values in scores.items():
        if values:
            result |= _summary(key, values)
    return result


def save_model(model: CLIPSep, cfg: CLIPSepConfig, out_dir: str) -> None:
    save_model_dir(out_dir, model, asdict(cfg))


def load_model(out_dir: str, device: torch.device | str | None = None) -> tuple[CLIPSep, CLIPSepConfig]:
    """Rebuild a model saved by :func:`save_model`, in eval mode on ``device``."""
    cfg = CLIPSepConfig(**read_model_config(out_dir))
    return load_model_dir(out_dir, build_model(cfg), device or default_device()), cfg
