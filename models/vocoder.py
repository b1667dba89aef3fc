"""Inversion of the Deep Performer's log-mel spectrograms to 16 kHz audio.

Griffin-Lim needs no training, so every mel can always be heard. HiFi-GAN V2 (Kong et al.,
NeurIPS 2020) is the trainable alternative for the GPU profile: a generator that upsamples each
mel frame to HOP = 8 * 8 * 2 * 2 samples, trained against multi-period and multi-scale
discriminators with LSGAN, feature-matching and mel L1 losses. Both invert the one log-mel of
:mod:`models.mel`, so a mel the synthesis model predicts is what the vocoder learned to invert.

Framing: ``F`` frames become ``F * HOP`` samples, block ``t`` belonging to frame ``t`` (centred on
sample ``t * HOP``); training feeds a segment's first ``segment // HOP`` frames to get it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm
from tqdm.auto import tqdm

from models.checkpoints import (
    Checkpoint,
    atomic_save,
    capture_rng_state,
    load_model_dir,
    load_weights,
    read_model_config,
    restore_rng_state,
    save_model_dir,
    save_weights,
    seed_everything,
)
from models.mel import HOP, N_FFT, N_MELS, SAMPLE_RATE, WIN, log_mel, log_mel_torch
from models.training import FitResult, default_device, model_device

LRELU_SLOPE = 0.1


@dataclass
class VocoderConfig:
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)  # product must be HOP
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 128
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5),) * 3
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    n_scales: int = 3
    disc_width_divisor: int = 1  # divides every discriminator width; 1 is the paper's
    segment: int = 8192  # training samples per example
    batch_size: int = 16
    lr: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    lr_decay: float = 0.999  # per epoch-equivalent: the steps whose segments add up to the training audio
    fm_weight: float = 2.0
    mel_weight: float = 45.0
    max_steps: int = 2_500_000
    eval_every: int = 1000
    checkpoint_every: int = 5000
    patience: int = 20  # evaluations without a better val_mel_l1 before stopping
    seed: int = 0


PROFILES = {
    "paper": VocoderConfig(),
    "smoke": VocoderConfig(
        upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilations=((1, 3, 5),),
        disc_width_divisor=16, segment=2048, batch_size=2, lr=2e-3, max_steps=30, eval_every=10, checkpoint_every=10,
        patience=3,
    ),
}  # fmt: skip


def griffin_lim(log_mel: np.ndarray, n_iter: int = 64) -> np.ndarray:
    """Float32 audio of ``(len(log_mel) - 1) * HOP`` samples, whose log-mel has ``len(log_mel)`` frames.

    The linear magnitude is the non-negative least-squares inverse of the same filterbank; the
    phase comes from ``n_iter`` Griffin-Lim iterations from a fixed random start (reproducible).
    """
    log_mel = np.asarray(log_mel, dtype=np.float32)
    magnitude = librosa.feature.inverse.mel_to_stft(np.exp(log_mel.T), sr=SAMPLE_RATE, n_fft=N_FFT, power=1.0)
    length = (len(log_mel) - 1) * HOP
    audio = librosa.griffinlim(
        magnitude, n_iter=n_iter, hop_length=HOP, win_length=WIN, n_fft=N_FFT, length=length, random_state=0
    )
    return audio.astype(np.float32)


def _init(conv: nn.Module) -> nn.Module:
    """HiFi-GAN's N(0, 0.01) initialisation, then weight norm."""
    nn.init.normal_(conv.weight, 0.0, 0.01)
    return weight_norm(conv)


class ResBlock(nn.Module):
    """HiFi-GAN's ResBlock1: per dilation a dilated and an undilated conv, each after a leaky ReLU, plus a skip."""

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]):
        super().__init__()
        self.dilated = nn.ModuleList(
            _init(nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)) for d in dilations
        )
        self.plain = nn.ModuleList(
            _init(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.dilated, self.plain):
            x = x + plain(F.leaky_relu(dilated(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class Generator(nn.Module):
    """(batch, N_MELS, frames) log-mel to (batch, 1, frames * HOP) audio in (-1, 1).

    Each transposed convolution halves the width and is followed by a multi-receptive-field
    fusion: the mean of one ResBlock per kernel size.
    """

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        if math.prod(cfg.upsample_rates) != HOP:
            raise ValueError(f"upsample_rates {cfg.upsample_rates} must multiply to HOP={HOP}")
        width = cfg.upsample_initial_channel
        self.pre = weight_norm(nn.Conv1d(N_MELS, width, 7, padding=3))
        self.ups = nn.ModuleList()
        self.mrfs = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            channels = width // 2 ** (i + 1)
            up = nn.ConvTranspose1d(2 * channels, channels, kernel, rate, padding=(kernel - rate) // 2)
            self.ups.append(_init(up))
            blocks = zip(cfg.resblock_kernel_sizes, cfg.resblock_dilations)
            self.mrfs.append(nn.ModuleList(ResBlock(channels, k, d) for k, d in blocks))
        self.post = _init(nn.Conv1d(channels, 1, 7, padding=3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.pre(mel)
        for up, mrf in zip(self.ups, self.mrfs):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = sum(block(x) for block in mrf) / len(mrf)
        return torch.tanh(self.post(F.leaky_relu(x)))  # the original uses the default slope here


Outputs = tuple[list[torch.Tensor], list[list[torch.Tensor]]]
"""Per sub-discriminator: its flattened scores and its feature maps (the scores last)."""


class PeriodDiscriminator(nn.Module):
    """2-D convolutions over the waveform folded into rows of ``period`` samples."""

    def __init__(self, period: int, divisor: int):
        super().__init__()
        self.period = period
        widths = [1] + [c // divisor for c in (32, 128, 512, 1024)]
        convs = [nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)) for a, b in zip(widths, widths[1:])]
        convs.append(nn.Conv2d(widths[-1], widths[-1], (5, 1), padding=(2, 0)))
        self.convs = nn.ModuleList(weight_norm(c) for c in convs)
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = audio[:, None, :]
        if x.shape[-1] % self.period:
            x = F.pad(x, (0, self.period - x.shape[-1] % self.period), "reflect")
        return _score(self.convs, self.post, x.reshape(x.shape[0], 1, -1, self.period))


def _score(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A discriminator's flattened scores and every feature map (the last is the score map), for feature matching."""
    fmaps = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmaps.append(x)
    x = post(x)
    return x.flatten(1), [*fmaps, x]


class ScaleDiscriminator(nn.Module):
    """Strided grouped 1-D convolutions over the waveform; spectral norm on the raw scale, as in MelGAN."""

    LAYERS = ((1, 128, 15, 1, 1), (128, 128, 41, 2, 4), (128, 256, 41, 2, 16), (256, 512, 41, 4, 16),
              (512, 1024, 41, 4, 16), (1024, 1024, 41, 1, 16), (1024, 1024, 5, 1, 1))  # fmt: skip
    """Per layer: in and out channels, kernel, stride, groups."""

    def __init__(self, divisor: int, spectral: bool):
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        convs = []
        for c_in, c_out, kernel, stride, groups in self.LAYERS:
            c_in, c_out = max(c_in // divisor, 1), c_out // divisor
            groups = math.gcd(groups, c_in, c_out)  # the paper's groups unless narrowed widths forbid them
            convs.append(norm(nn.Conv1d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups)))
        self.convs = nn.ModuleList(convs)
        self.post = norm(nn.Conv1d(c_out, 1, 3, padding=1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _score(self.convs, self.post, audio[:, None, :])


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, cfg.disc_width_divisor) for p in cfg.periods)

    def forward(self, audio: torch.Tensor) -> Outputs:
        scores, fmaps = zip(*(d(audio) for d in self.discriminators))
        return list(scores), list(fmaps)


class MultiScaleDiscriminator(nn.Module):
    """Scale discriminators on the waveform average-pooled by 1, 2, 4, ..."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(cfg.disc_width_divisor, spectral=i == 0) for i in range(cfg.n_scales)
        )

    def forward(self, audio: torch.Tensor) -> Outputs:
        scores, fmaps = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                audio = F.avg_pool1d(audio[:, None, :], 4, 2, padding=2)[:, 0]
            score, fmap = d(audio)
            scores.append(score)
            fmaps.append(fmap)
        return scores, fmaps


def _discriminate(discriminators: nn.ModuleList, audio: torch.Tensor) -> Outputs:
    """The outputs of every sub-discriminator of every discriminator in one pair of lists."""
    scores, fmaps = [], []
    for d in discriminators:
        s, f = d(audio)
        scores += s
        fmaps += f
    return scores, fmaps


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: real scores towards 1, fake towards 0, summed over sub-discriminators."""
    return sum(torch.mean((1 - r.float()) ** 2) + torch.mean(g.float() ** 2) for r, g in zip(real, fake))


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    return sum(torch.mean((1 - g.float()) ** 2) for g in fake)


def feature_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between real and fake feature maps, summed over layers and sub-discriminators."""
    return sum(torch.mean(torch.abs(r.float() - g.float())) for rs, gs in zip(real, fake) for r, g in zip(rs, gs))


def segment_batch(audio: Sequence[np.ndarray], cfg: VocoderConfig, step: int) -> torch.Tensor:
    """(batch, segment) random excerpts, clips drawn in proportion to their length, short ones zero-padded.

    The generator is seeded by (seed, step), so a resumed run draws what an uninterrupted one would.
    """
    rng = np.random.default_rng([cfg.seed, step])
    lengths = np.array([len(a) for a in audio], dtype=np.float64)
    out = np.zeros((cfg.batch_size, cfg.segment), dtype=np.float32)
    for row, i in enumerate(rng.choice(len(audio), size=cfg.batch_size, p=lengths / lengths.sum())):
        start = int(rng.integers(max(len(audio[i]) - cfg.segment, 0) + 1))
        clip = audio[i][start : start + cfg.segment]
        out[row, : len(clip)] = clip
    return torch.from_numpy(out)


@torch.no_grad()
def hifigan_vocode(generator: nn.Module, log_mel: np.ndarray) -> np.ndarray:
    """Float32 audio of ``len(log_mel) * HOP`` samples from a (frames, N_MELS) log-mel."""
    was_training = generator.training
    generator.eval()
    mel = torch.from_numpy(np.asarray(log_mel, dtype=np.float32).T.copy())[None].to(model_device(generator))
    audio = generator(mel)[0, 0].float().cpu().numpy()
    generator.train(was_training)
    return audio


def resynthesis_l1(audio: Sequence[np.ndarray], inverse: Callable[[np.ndarray], np.ndarray]) -> float:
    """Mean absolute log-mel error of the clips re-synthesised by ``inverse`` from their own log-mels:
    the one yardstick for HiFi-GAN and Griffin-Lim alike."""
    errors = []
    for clip in audio:
        target = log_mel(clip)
        restored = np.zeros(len(clip), np.float32)
        out = inverse(target)[: len(clip)]
        restored[: len(out)] = out
        errors.append(np.abs(log_mel(restored) - target).ravel())
    return float(np.concatenate(errors).mean())


def validate(generator: nn.Module, audio: Sequence[np.ndarray]) -> dict[str, float]:
    """``val_mel_l1``: :func:`resynthesis_l1` of the generator."""
    return {"val_mel_l1": resynthesis_l1(audio, lambda mel: hifigan_vocode(generator, mel))}


def _train_step(
    generator: nn.Module,
    discriminators: nn.ModuleList,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    audio: torch.Tensor,
    cfg: VocoderConfig,
) -> dict[str, float]:
    """One discriminator update on real vs generated audio, then one generator update against it."""
    opt_g, opt_d = optimizers
    device = audio.device

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    target = log_mel_torch(audio)
    with autocast():
        fake = generator(target[:, : cfg.segment // HOP].transpose(1, 2))[:, 0]
        real_scores, _ = _discriminate(discriminators, audio)
        fake_scores, _ = _discriminate(discriminators, fake.detach())
    d_loss = discriminator_loss(real_scores, fake_scores)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()

    with autocast():
        with torch.no_grad():
            _, real_fmaps = _discriminate(discriminators, audio)
        fake_scores, fake_fmaps = _discriminate(discriminators, fake)
    adv, fm = generator_loss(fake_scores), feature_loss(real_fmaps, fake_fmaps)
    mel = F.l1_loss(log_mel_torch(fake.float()), target)
    g_loss = adv + cfg.fm_weight * fm + cfg.mel_weight * mel
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    losses = {"d_loss": d_loss, "g_loss": g_loss, "g_adv": adv, "g_fm": fm, "mel_l1": mel}
    return {name: value.item() for name, value in losses.items()}


def _save_state(path: Path, parts: dict[str, Any], state: Checkpoint) -> None:
    payload = {name: part.state_dict() for name, part in parts.items()}
    atomic_save(payload | {"step": state.step, "best_metric": state.best_metric, "extra": dict(state.extra),
                           "rng": capture_rng_state()}, path)  # fmt: skip


def _load_state(path: Path, parts: dict[str, Any]) -> Checkpoint:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    for name, part in parts.items():
        part.load_state_dict(payload[name])
    restore_rng_state(payload["rng"])
    return Checkpoint(step=payload["step"], best_metric=payload["best_metric"], extra=payload["extra"])


def train_hifigan(
    cfg: VocoderConfig,
    train_audio: list[np.ndarray],
    valid_audio: list[np.ndarray],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    progress: bool = False,
    device: torch.device | None = None,
) -> tuple[Generator, FitResult]:
    """Train a HiFi-GAN on 16 kHz clips; the returned generator carries the best ``val_mel_l1`` weights.

    Two AdamW optimizers (generator, discriminators) are why :func:`models.training.fit` does not
    apply; this loop keeps its contract otherwise: ``ckpt_dir/last.pt`` (both networks, optimizers,
    schedulers, RNG states) every ``checkpoint_every`` steps and at the end, resumed from when
    present; ``ckpt_dir/best.pt`` (generator weights); validation every ``eval_every`` steps and at
    the last; early stopping after ``patience`` evaluations without improvement.
    """
    seed_everything(cfg.seed)
    device = device or default_device()
    generator = Generator(cfg).to(device)
    discriminators = nn.ModuleList([MultiPeriodDiscriminator(cfg), MultiScaleDiscriminator(cfg)]).to(device)
    opt_g = torch.optim.AdamW(generator.parameters(), cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.AdamW(discriminators.parameters(), cfg.lr, betas=cfg.betas)
    epoch = max(1, round(sum(len(a) for a in train_audio) / (cfg.segment * cfg.batch_size)))
    sched_g, sched_d = (
        torch.optim.lr_scheduler.LambdaLR(opt, lambda step: cfg.lr_decay ** (step // epoch)) for opt in (opt_g, opt_d)
    )
    parts = {"generator": generator, "discriminators": discriminators,
             "opt_g": opt_g, "opt_d": opt_d, "sched_g": sched_g, "sched_d": sched_d}  # fmt: skip

    last, best = Path(ckpt_dir) / "last.pt", Path(ckpt_dir) / "best.pt"
    state = Checkpoint(step=0, extra={"best_step": 0, "stale_evals": 0})
    resumed_from = None
    if last.exists():
        state = _load_state(last, parts)
        resumed_from = state.step
    saved_at = resumed_from

    def stale() -> bool:
        return state.extra["stale_evals"] >= cfg.patience

    generator.train()
    discriminators.train()
    bar = tqdm(total=cfg.max_steps, initial=state.step, disable=not progress, desc="hifigan")
    while state.step < cfg.max_steps and not stale():
        audio = segment_batch(train_audio, cfg, state.step).to(device)
        metrics = _train_step(generator, discriminators, (opt_g, opt_d), audio, cfg)
        metrics["lr"] = opt_g.param_groups[0]["lr"]
        sched_g.step()
        sched_d.step()
        state.step += 1
        bar.update()
        if state.step % cfg.eval_every == 0 or state.step == cfg.max_steps:
            metrics |= validate(generator, valid_audio)
            bar.set_postfix({"val_mel_l1": f"{metrics['val_mel_l1']:.4g}"})
            if metrics["val_mel_l1"] < state.best_metric:
                state.best_metric = metrics["val_mel_l1"]
                state.extra |= {"best_step": state.step, "stale_evals": 0}
                save_weights(best, generator)
            else:
                state.extra["stale_evals"] += 1
        log(metrics, state.step)
        if state.step % cfg.checkpoint_every == 0:
            _save_state(last, parts, state)
            saved_at = state.step
    bar.close()
    if state.step != saved_at:
        _save_state(last, parts, state)
    if best.exists():
        load_weights(best, generator)
    result = FitResult(
        steps=state.step,
        best_step=int(state.extra["best_step"]),
        best_metric=state.best_metric,
        resumed_from=resumed_from,
        stopped_early=stale(),
    )
    return generator, result


def save_vocoder(generator: nn.Module, cfg: VocoderConfig, out_dir: str) -> None:
    """The registered layout of the generator; discriminators are training-only."""
    save_model_dir(out_dir, generator, asdict(cfg))


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def load_vocoder(out_dir: str, device: torch.device | str | None = None) -> tuple[Generator, VocoderConfig]:
    """Rebuild a generator saved by :func:`save_vocoder`, in eval mode on ``device``."""
    cfg = VocoderConfig(**{k: _tuples(v) for k, v in read_model_config(out_dir).items()})  # JSON has no tuples
    return load_model_dir(out_dir, Generator(cfg), device or default_device()), cfg


def invert(log_mel: np.ndarray, vocoder: nn.Module | None = None) -> np.ndarray:
    """Audio of a (frames, N_MELS) log-mel: the HiFi-GAN ``vocoder`` when given, Griffin-Lim otherwise.

    Either way ``(frames - 1) * HOP`` samples, the length whose log-mel has ``frames`` frames.
    """
    if vocoder is None:
        return griffin_lim(log_mel)
    return hifigan_vocode(vocoder, log_mel)[: (len(log_mel) - 1) * HOP]
