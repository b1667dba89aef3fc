"""Inversion of the Deep Performer's log-mel spectrograms to 16 kHz audio.

Griffin-Lim needs no training, so every mel can always be heard. HiFi-GAN V2 (Kong et al.,
NeurIPS 2020) is the trainable alternative for the GPU profile: a generator that upsamples each
mel frame to HOP = 8 * 8 * 2 * 2 samples, trained against multi-period and multi-scale
discriminators with LSGAN, feature-matching and mel L1 losses. Both invert the one log-mel of
:mod:`models.mel`, so a mel the synthesis model predicts is what the vocoder learned to invert.

Framing: ``F`` frames become ``F * HOP`` samples, block ``t`` belonging to frame ``t`` (centred on
sample ``t * HOP``); training feeds a segment's first ``segment // HOP`` frames to get it back.

- :mod:`~models.deep_performer.vocoder.config`: HiFi-GAN hyperparameters and profiles;
- :mod:`~models.deep_performer.vocoder.network`: the generator and the discriminators;
- :mod:`~models.deep_performer.vocoder.training`: the GAN losses and :func:`train_hifigan`;
- :mod:`~models.deep_performer.vocoder.inversion`: Griffin-Lim, the generator, and the resynthesis error of both;
- :mod:`~models.deep_performer.vocoder.persistence`: the registered generator folder.
"""

from models.deep_performer.vocoder.config import PROFILES
from models.deep_performer.vocoder.inversion import griffin_lim, hifigan_vocode, invert, resynthesis_l1, validate
from models.deep_performer.vocoder.network import Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator
from models.deep_performer.vocoder.persistence import load_vocoder, save_vocoder
from models.deep_performer.vocoder.training import (
    discriminator_loss,
    feature_loss,
    generator_loss,
    segment_batch,
    train_hifigan,
)

__all__ = [
    "PROFILES",
    "Generator",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
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
