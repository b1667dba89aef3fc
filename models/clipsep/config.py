"""CLIPSep's clip format and hyperparameters: the paper's, a smoke test's and a CPU demo's."""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 65_535
EMBED_DIM = 512
METHODS = ("clipsep", "nit", "pit")


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
