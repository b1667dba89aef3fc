"""Offline metrics of generated audio: FAD in VGGish space, the CLAP score and an in-domain classifier.

- :mod:`~models.audio_metrics.vggish`: VGGish and its log-mel examples, the embedding of FAD;
- :mod:`~models.audio_metrics.frechet`: the Fréchet distance between two embedding sets;
- :mod:`~models.audio_metrics.clap`: CLAP audio and text embeddings and the CLAP score;
- :mod:`~models.audio_metrics.domain`: the synthetic instruments' classifier on CLIPSonic log-mel crops.

Every weight file is local; a missing one raises an exception whose message says what to provide.
"""

from models.audio_metrics.clap import (
    ClapBundle,
    ClapWeightsMissing,
    clap_audio_embeds,
    clap_score,
    clap_text_embeds,
    load_clap,
)
from models.audio_metrics.domain import (
    DOMAIN_PROFILES,
    DomainClassifier,
    DomainConfig,
    classify,
    crop_mels,
    domain_embed,
    load_classifier,
    save_classifier,
    train_domain_classifier,
)
from models.audio_metrics.frechet import frechet_distance
from models.audio_metrics.vggish import VGGish, VGGishWeightsMissing, load_vggish, vggish_embed, vggish_examples

__all__ = [
    "DOMAIN_PROFILES",
    "ClapBundle",
    "ClapWeightsMissing",
    "DomainClassifier",
    "DomainConfig",
    "VGGish",
    "VGGishWeightsMissing",
    "clap_audio_embeds",
    "clap_score",
    "clap_text_embeds",
    "classify",
    "crop_mels",
    "domain_embed",
    "frechet_distance",
    "load_clap",
    "load_classifier",
    "load_vggish",
    "save_classifier",
    "train_domain_classifier",
    "vggish_embed",
    "vggish_examples",
]
