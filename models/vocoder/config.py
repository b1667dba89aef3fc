"""HiFi-GAN V2 hyperparameters per mel spec: the paper's, a smoke profile that trains in seconds on a
CPU, and for CLIPSonic's hop-512 mels a CPU demo profile."""

from __future__ import annotations

from dataclasses import dataclass

from models.mel import SPECS, MelSpec


@dataclass
class VocoderConfig:
    mel: str = "performance"  # the key in models.mel.SPECS of the mels it inverts
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)  # product must be the spec's hop
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

    @property
    def spec(self) -> MelSpec:
        return SPECS[self.mel]


PROFILES = {
    "paper": VocoderConfig(),
    "smoke": VocoderConfig(
        upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilations=((1, 3, 5),),
        disc_width_divisor=16, segment=2048, batch_size=2, lr=2e-3, max_steps=30, eval_every=10, checkpoint_every=10,
        patience=3,
    ),
}  # fmt: skip

_CLIPSONIC_UPSAMPLING = {"mel": "clipsonic", "upsample_rates": (8, 8, 4, 2), "upsample_kernel_sizes": (16, 16, 8, 4)}

CLIPSONIC_PROFILES = {
    "paper": VocoderConfig(**_CLIPSONIC_UPSAMPLING),
    "smoke": VocoderConfig(
        **_CLIPSONIC_UPSAMPLING, upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilations=((1, 3, 5),),
        disc_width_divisor=16, segment=4096, batch_size=2, lr=2e-3, max_steps=30, eval_every=10, checkpoint_every=10,
        patience=3,
    ),
    "demo": VocoderConfig(
        **_CLIPSONIC_UPSAMPLING, upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilations=((1, 3, 5),),
        disc_width_divisor=16, segment=4096, batch_size=4, lr=2e-3, max_steps=600, eval_every=100, checkpoint_every=100,
        patience=3,
    ),
}  # fmt: skip
