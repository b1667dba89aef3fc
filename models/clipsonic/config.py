"""CLIPSonic's mel format and the diffusion model's hyperparameters: the paper's, a smoke test's and a CPU demo's."""

from __future__ import annotations

from dataclasses import dataclass, fields

from models import mel

SPEC = mel.CLIPSONIC
CROP_FRAMES = 64  # about 2 s at hop 512
CONDITIONS = ("iq", "clip_tta", "clap_tta")  # CLIP image query; CLIP or CLAP text embeddings as the condition
PREDICTIONS = ("epsilon", "v_prediction")  # diffusers' names for noise and velocity targets


@dataclass
class ClipSonicConfig:
    """The paper's settings where the thesis states them: the cosine-schedule DDPM with
    ``train_timesteps`` 4000 diffusion steps in training and ``sample_steps`` 1000 at inference, AdamW
    at lr 1e-4, batch 32, 10 % condition dropout for classifier-free guidance, 64x64 log-mel crops.

    Assumed (the thesis does not give them): the U-Net widths, depth and attention levels (a mid-size
    diffusers ``UNet2DModel``), ``fast_steps`` of the DDIM sampler, the default ``guidance`` weight,
    ``max_steps`` and the evaluation and checkpoint intervals. The paper profile regresses the noise with
    a constant lr, as a DDPM does; the CPU profiles regress the velocity (Salimans and Ho, 2022) with a
    warm-up and cosine decay, which a few hundred steps need to follow the condition at all.
    """

    condition: str = "iq"  # one of CONDITIONS
    cond_dim: int = 512
    block_out_channels: tuple[int, ...] = (64, 128, 256, 256)
    attention: tuple[bool, ...] = (False, False, True, True)  # self-attention per resolution level
    layers_per_block: int = 2
    attention_head_dim: int = 32
    norm_groups: int = 32
    train_timesteps: int = 4000
    sample_steps: int = 1000  # DDPM sampler
    fast_steps: int = 50  # DDIM sampler
    guidance: float = 3.0  # w in eps_u + w * (eps_c - eps_u)
    cond_dropout: float = 0.1
    prediction: str = "epsilon"  # the network's target: one of PREDICTIONS
    min_snr_gamma: float | None = None  # Min-SNR-gamma loss weighting (Hang et al., 2023); None weighs steps equally
    batch_size: int = 32
    lr: float = 1e-4
    warmup_steps: int = 0  # linear warm-up, then a cosine decay to lr_floor * lr at max_steps when lr_floor is set
    lr_floor: float | None = None  # None keeps lr constant after the warm-up
    max_steps: int = 200_000
    eval_every: int = 5_000
    checkpoint_every: int = 5_000
    patience: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        """Tuples read back from ``config.json`` arrive as lists; keep them tuples so configs compare equal."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown condition {self.condition!r}; expected one of {CONDITIONS}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {self.prediction!r}; expected one of {PREDICTIONS}")
        if len(self.attention) != len(self.block_out_channels):
            raise ValueError("attention needs one flag per entry of block_out_channels")


PROFILES = {
    "paper": ClipSonicConfig(),
    "smoke": ClipSonicConfig(
        block_out_channels=(8, 16), attention=(False, True), layers_per_block=1, attention_head_dim=8, norm_groups=4,
        train_timesteps=100, sample_steps=20, fast_steps=5, prediction="v_prediction", batch_size=4, lr=1e-3,
        max_steps=40, eval_every=20, checkpoint_every=20, patience=5,
    ),
    # the demo's synthetic instrument set on a 2-core CPU: a few minutes of training. Velocity targets and a
    # decaying lr make a short run follow its condition (BENCHMARKS.md, "CLIPSonic on a CPU").
    "demo": ClipSonicConfig(
        block_out_channels=(16, 32, 64), attention=(False, False, False), layers_per_block=1, attention_head_dim=16,
        norm_groups=8, guidance=2.0, prediction="v_prediction", batch_size=8, lr=2e-3, warmup_steps=50, lr_floor=0.05,
        max_steps=600, eval_every=150, checkpoint_every=150, patience=4,
    ),
}  # fmt: skip
