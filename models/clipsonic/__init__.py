"""CLIPSonic (thesis ch. 7): text-to-audio synthesis learned from unlabeled videos.

A diffusion model generates log-mel spectrograms conditioned on the CLIP image embedding of a video
frame (CLIPSonic-IQ); since CLIP puts images and text in one space, a text embedding, directly or
through a diffusion prior that maps it to an image embedding, can condition the trained model. One
module per concern:

- :mod:`~models.clipsonic.config`: the mel format, hyperparameters and profiles;
- :mod:`~models.clipsonic.normalise`: log-mels to the model's [-1, 1] range and back;
- :mod:`~models.clipsonic.network`: the conditional U-Net with its learned null condition;
- :mod:`~models.clipsonic.diffusion`: the noise schedule, the objective and guided DDPM/DDIM sampling;
- :mod:`~models.clipsonic.data`: crops with their candidate conditions and the seeded batches;
- :mod:`~models.clipsonic.training`: validation and :func:`train`;
- :mod:`~models.clipsonic.persistence`: the registered model folder;
- :mod:`~models.clipsonic.prior_config` and :mod:`~models.clipsonic.prior`: CLIPSonic-SD's diffusion prior
  from a CLIP text embedding to a CLIP image embedding (DALL-E 2's, on diffusers' PriorTransformer).

The names other packages use are re-exported here, so ``from models import clipsonic as cso``
gives ``cso.train``, ``cso.generate`` and the rest.
"""

from models.clipsonic.config import CONDITIONS, CROP_FRAMES, PREDICTIONS, PROFILES, SPEC, ClipSonicConfig
from models.clipsonic.data import MelSet, batches, validation_batches
from models.clipsonic.diffusion import (
    SAMPLERS,
    denoising_loss,
    generate,
    guided_noise,
    loss_weights,
    noise_scheduler,
    sampling_scheduler,
)
from models.clipsonic.network import ClipSonicUNet, build_model
from models.clipsonic.normalise import LOG_MEL_MAX, LOG_MEL_MIN, from_unit, to_unit
from models.clipsonic.persistence import load_model, save_model
from models.clipsonic.prior import (
    ClipSonicPrior,
    PriorInputMismatch,
    PriorSet,
    build_prior,
    load_prior,
    make_prior_set,
    sample_prior,
    save_prior,
    train_prior,
)
from models.clipsonic.prior_config import PRIOR_PROFILES, PriorConfig
from models.clipsonic.training import lr_multiplier, train, validate

__all__ = [
    "CONDITIONS",
    "CROP_FRAMES",
    "PREDICTIONS",
    "LOG_MEL_MAX",
    "LOG_MEL_MIN",
    "PRIOR_PROFILES",
    "PROFILES",
    "SAMPLERS",
    "SPEC",
    "ClipSonicConfig",
    "ClipSonicPrior",
    "PriorConfig",
    "PriorInputMismatch",
    "PriorSet",
    "ClipSonicUNet",
    "MelSet",
    "batches",
    "build_model",
    "build_prior",
    "denoising_loss",
    "from_unit",
    "generate",
    "guided_noise",
    "loss_weights",
    "lr_multiplier",
    "load_model",
    "load_prior",
    "make_prior_set",
    "noise_scheduler",
    "sample_prior",
    "sampling_scheduler",
    "save_model",
    "save_prior",
    "to_unit",
    "train",
    "train_prior",
    "validate",
    "validation_batches",
]

