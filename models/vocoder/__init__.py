"""Inversion of log-mel spectrograms to 16 kHz audio, for every spec of :mod:`models.mel`.

Griffin-Lim needs no training, so every mel can always be heard. HiFi-GAN V2 (Kong et al.,
NeurIPS 2020) is the trainable alternative for the GPU profile: a generator that upsamples each
mel frame to the spec's hop (8 * 8 * 2 * 2 = 256 samples for the Deep Performer's mels, 8 * 8 * 4 * 2
= 512 for CLIPSonic's), trained against multi-period and multi-scale discriminators with LSGAN,
feature-matching and mel L1 losses. ``VocoderConfig.mel`` names the spec, so a mel a model predicts
is what its vocoder learned to invert. CLIPSonic's thesis setup uses BigVGAN; this HiFi-GAN stands in
for it, trained the same way on the dataset's own mels.

Framing: ``F`` frames become ``F * hop`` samples, block ``t`` belonging to frame ``t`` (centred on
sample ``t * hop``); training feeds a segment's first ``segment // hop`` frames to get it back.

- :mod:`~models.vocoder.config`: HiFi-GAN hyperparameters, ``PROFILES`` (Deep Performer) and ``CLIPSONIC_PROFILES``;
- :mod:`~models.vocoder.network`: the generator and the discriminators;
- :mod:`~models.vocoder.training`: the GAN losses and :func:`train_hifigan`;
- :mod:`~models.vocoder.inversion`: Griffin-Lim, the generator, and the resynthesis error of both;
- :mod:`~models.vocoder.persistence`: the registered generator folder.
"""

from models.vocoder.config import CLIPSONIC_PROFILES, PROFILES, VocoderConfig
from models.vocoder.inversion import SpecMismatch, griffin_lim, hifigan_vocode, invert, resynthesis_l1, validate
from models.vocoder.network import Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator
from models.vocoder.persistence import load_vocoder, save_vocoder
from models.vocoder.training import (
    discriminator_loss,
    feature_loss,
    generator_loss,
    segment_batch,
    train_hifigan,
)

__all__ = [
    "CLIPSONIC_PROFILES",
    "PROFILES",
    "Generator",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "SpecMismatch",
    "VocoderConfig",
    "discriminator_loss",
    "feature_loss",
    "generator_loss",
    "griffin_lim",
    "hifigan_vocode",
    "invert",
    "load_vocoder",
    "resynthesis_l1",
    "save_vocoder",
    "segment_batch",
    "train_hifigan",
    "validate",
]
