"""HiFi-GAN training: LSGAN and feature-matching losses against the discriminators plus a mel L1
loss, one discriminator and one generator update per step of the shared training loop."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.checkpoints import seed_everything
from models.mel import log_mel_torch
from models.training import FitResult, LoopConfig, Part, Update, default_device, fit_parts
from models.vocoder.config import VocoderConfig
from models.vocoder.inversion import validate
from models.vocoder.network import (
    Generator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    discriminate,
)


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


def _train_step(
    generator: nn.Module, discriminators: nn.ModuleList, audio: torch.Tensor, cfg: VocoderConfig, update: Update
) -> dict[str, torch.Tensor]:
    """One discriminator update on real vs generated audio, then one generator update against it."""
    target = log_mel_torch(audio, cfg.spec)
    fake = generator(target[:, : cfg.segment // cfg.spec.hop].transpose(1, 2))[:, 0]
    real_scores, _ = discriminate(discriminators, audio)
    fake_scores, _ = discriminate(discriminators, fake.detach())
    d_loss = discriminator_loss(real_scores, fake_scores)
    update("discriminators", d_loss)

    with torch.no_grad():
        _, real_fmaps = discriminate(discriminators, audio)
    fake_scores, fake_fmaps = discriminate(discriminators, fake)
    adv, fm = generator_loss(fake_scores), feature_loss(real_fmaps, fake_fmaps)
    mel = F.l1_loss(log_mel_torch(fake.float(), cfg.spec), target)
    g_loss = adv + cfg.fm_weight * fm + cfg.mel_weight * mel
    update("generator", g_loss)
    return {"d_loss": d_loss, "g_loss": g_loss, "g_adv": adv, "g_fm": fm, "mel_l1": mel}


def train_hifigan(
    cfg: VocoderConfig,
    train_audio: list[np.ndarray],
    valid_audio: list[np.ndarray],
    ckpt_dir: str,
    log: Callable[[dict[str, float], int], None],
    progress: bool = False,
    device: torch.device | None = None,
) -> tuple[Generator, FitResult]:
    """Train a HiFi-GAN on 16 kHz clips to invert ``cfg.spec`` log-mels; the returned generator carries
    the best ``val_mel_l1`` weights.

    Generator and discriminators each have an AdamW optimizer and a stepwise exponential decay and
    learn through :func:`models.training.fit_parts`, so they checkpoint to and resume from one
    ``ckpt_dir/last.pt`` like every other model; ``ckpt_dir/best.pt`` holds generator weights.
    Gradients are not clipped, as in the paper. The loop's batches are the step indices that
    :func:`segment_batch` draws each step's audio from, so resuming skips ahead without drawing
    the batches already trained on.
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

    def step(index: int, update: Update) -> dict[str, torch.Tensor]:
        return _train_step(generator, discriminators, segment_batch(train_audio, cfg, index).to(device), cfg, update)

    result = fit_parts(
        {"generator": Part(generator, opt_g, sched_g), "discriminators": Part(discriminators, opt_d, sched_d)},
        itertools.count(),
        step,
        lambda g: validate(g, valid_audio),
        ckpt_dir,
        LoopConfig(cfg.max_steps, cfg.eval_every, cfg.checkpoint_every, cfg.patience, grad_clip=None),
        log,
        monitor="val_mel_l1",
        progress=progress,
        desc="hifigan",
    )
    return generator, result
