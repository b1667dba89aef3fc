"""Text-queried sound separation learned from unlabeled videos (Dong et al., ICLR 2023, "CLIPSep").

CLIPSep trains on mixtures of two video soundtracks, each queried with the CLIP image embedding
of its own video; since CLIP puts images and text in one space, a text embedding can query the
trained model. The audio side follows Sound of Pixels (Zhao et al., ECCV 2018). One module per
concern:

- :mod:`~models.clipsep.config`: clip constants, hyperparameters and profiles;
- :mod:`~models.clipsep.frontend`: the STFT and its log-frequency warp;
- :mod:`~models.clipsep.network`: the U-Net and the query- and noise-weighted masks;
- :mod:`~models.clipsep.losses`: the training objectives of CLIPSep, CLIPSep-NIT and PIT;
- :mod:`~models.clipsep.mixtures`: sources and the two-source mixtures made of them;
- :mod:`~models.clipsep.training`: the schedule, validation and :func:`train`;
- :mod:`~models.clipsep.inference`: separation of a mixture of any length;
- :mod:`~models.clipsep.evaluation`: SDR and SDRi over test mixtures;
- :mod:`~models.clipsep.persistence`: the registered model folder.

The names other packages use are re-exported here, so ``from models import clipsep as cs``
gives ``cs.train``, ``cs.separate`` and the rest.
"""

from models.clipsep.config import CLIP_SAMPLES, EMBED_DIM, METHODS, PROFILES, SAMPLE_RATE
from models.clipsep.evaluation import evaluate, sdr, sdri
from models.clipsep.frontend import N_LINEAR, N_WARPED, apply_mask, stft, unwarp, warp
from models.clipsep.inference import separate, separate_pit
from models.clipsep.losses import assignment_losses, binary_masks, nit_candidates, noise_regularizer, objective
from models.clipsep.mixtures import Source, deterministic_mixtures, mixture_batches, query_vector
from models.clipsep.network import CLIPSep, build_model
from models.clipsep.persistence import load_model, save_model
from models.clipsep.training import lr_multiplier, train, validate

__all__ = [
    "CLIP_SAMPLES",
    "EMBED_DIM",
    "METHODS",
    "N_LINEAR",
    "N_WARPED",
    "PROFILES",
    "SAMPLE_RATE",
    "CLIPSep",
    "Source",
    "apply_mask",
    "assignment_losses",
    "binary_masks",
    "build_model",
    "deterministic_mixtures",
    "evaluate",
    "load_model",
    "lr_multiplier",
    "mixture_batches",
    "nit_candidates",
    "noise_regularizer",
    "objective",
    "query_vector",
    "save_model",
    "sdr",
    "sdri",
    "separate",
    "separate_pit",
    "stft",
    "train",
    "unwarp",
    "validate",
    "warp",
]
