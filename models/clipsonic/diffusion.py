"""The cosine-schedule diffusion process, its training objective and guided sampling.

Training noises crops at one of ``cfg.train_timesteps`` (4000) steps of the cosine schedule
(diffusers' ``squaredcos_cap_v2``) and regresses the noise, or the velocity when ``cfg.prediction`` is
"v_prediction", optionally with Min-SNR-gamma weights that keep nearly clean steps, which teach little
about the condition, from dominating the loss. Sampling walks a subset of those steps:
the DDPM sampler in ``cfg.sample_steps`` (1000) steps, or DDIM, deterministic, in ``cfg.fast_steps``.
Timesteps are spaced "trailing", so both samplers start from the last, pure-noise step.
Classifier-free guidance mixes the conditional and unconditional predictions as
eps = eps_u + w * (eps_c - eps_u).
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from models.clipsonic.config import CROP_FRAMES, SPEC, ClipSonicConfig
from models.clipsonic.network import ClipSonicUNet
from models.clipsonic.normalise import from_unit
from models.training import model_device

SAMPLERS = ("ddpm", "ddim")


def noise_scheduler(cfg: ClipSonicConfig) -> DDPMScheduler:
    """The forward process: ``cfg.train_timesteps`` steps of the cosine schedule."""
    return DDPMScheduler(
        num_train_timesteps=cfg.train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        timestep_spacing="trailing",
        prediction_type=cfg.prediction,
    )


def sampling_scheduler(cfg: ClipSonicConfig, sampler: str, steps: int) -> DDPMScheduler | DDIMScheduler:
    """The reverse process of ``sampler`` ("ddpm" or "ddim") over ``steps`` of the training schedule."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
    if not 1 <= steps <= cfg.train_timesteps:
        raise ValueError(f"steps must be between 1 and {cfg.train_timesteps}, got {steps}")
    train = noise_scheduler(cfg)
    scheduler = train if sampler == "ddpm" else DDIMScheduler.from_config(train.config)
    scheduler.set_timesteps(steps)
    return scheduler


def loss_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float | None) -> torch.Tensor:
    """Per-sample Min-SNR-gamma weights, min(SNR, gamma) over the target's own scale (SNR for noise,
    SNR + 1 for velocity), so that each target's loss is capped at gamma; ones when ``gamma`` is None."""
    if gamma is None:
        return torch.ones(len(timesteps))
    alpha_bar = scheduler.alphas_cumprod[timesteps.cpu()].double()
    snr = alpha_bar / (1 - alpha_bar)
    scale = snr + 1 if scheduler.config.prediction_type == "v_prediction" else snr
    return (snr.clamp(max=gamma) / scale).float()


def denoising_loss(
    model: torch.nn.Module, scheduler: DDPMScheduler, batch: dict[str, torch.Tensor], gamma: float | None = None
) -> torch.Tensor:
    """The (Min-SNR-weighted) mean squared error of the predicted noise or velocity of a batch from
    :mod:`models.clipsonic.data`."""
    mels, noise, timesteps = batch["mels"], batch["noise"], batch["timesteps"]
    noisy = scheduler.add_noise(mels, noise, timesteps)
    predicted = model(noisy, timesteps, batch["conditions"], batch["drop"])
    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(mels, noise, timesteps)
    else:
        target = noise
    per_sample = (predicted.float() - target).pow(2).flatten(1).mean(1)
    return (per_sample * loss_weights(scheduler, timesteps, gamma).to(per_sample.device)).mean()


def guided_noise(
    model: ClipSonicUNet, sample: torch.Tensor, timestep: torch.Tensor, conditions: torch.Tensor, guidance: float
) -> torch.Tensor:
    """eps_u + w * (eps_c - eps_u), both predictions (noise or velocity) from one doubled batch."""
    n = len(sample)
    drop = torch.arange(2 * n, device=sample.device) >= n
    eps = model(torch.cat([sample, sample]), timestep.expand(2 * n), torch.cat([conditions, conditions]), drop)
    conditional, unconditional = eps.float().chunk(2)
    return unconditional + guidance * (conditional - unconditional)


def _batch_seed(seed: int, batch: int) -> int:
    return int(np.random.SeedSequence([seed, batch]).generate_state(1)[0])


@torch.no_grad()
def generate(
    model: ClipSonicUNet,
    conditions: np.ndarray,
    guidance: float,
    steps: int,
    sampler: str,
    seed: int,
    batch_size: int = 16,
) -> np.ndarray:
    """(n, 64, 64) log-mel crops, one per condition row (n, cond_dim), sampled with classifier-free
    guidance weight ``guidance`` by ``sampler`` in ``steps`` steps.

    The same seed gives the same crops: batch b's noise comes from a CPU generator seeded with
    (seed, b), whatever the device.
    """
    conditions = np.asarray(conditions, dtype=np.float32).reshape(-1, model.cfg.cond_dim)
    scheduler = sampling_scheduler(model.cfg, sampler, steps)
    device = model_device(model)
    was_training = model.training
    model.eval()
    out = []
    for b, start in enumerate(range(0, len(conditions), batch_size)):
        chunk = torch.from_numpy(conditions[start : start + batch_size]).to(device)
        generator = torch.Generator().manual_seed(_batch_seed(seed, b))
        sample = torch.randn((len(chunk), 1, CROP_FRAMES, SPEC.n_mels), generator=generator).to(device)
        for t in scheduler.timesteps:
            eps = guided_noise(model, sample, t.to(device), chunk, guidance)
            sample = scheduler.step(eps, t, sample, generator=generator).prev_sample
        out.append(from_unit(sample[:, 0].float()).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, CROP_FRAMES, SPEC.n_mels), dtype=np.float32)
