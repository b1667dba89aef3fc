"""Deep Performer (Dong et al., ICASSP 2022): score-to-audio violin synthesis.

Two models turn a score into a log-mel spectrogram (:mod:`models.mel`) that a vocoder inverts:
the alignment model predicts when each note is played, the synthesis model the log-mel of the
notes so played. One module per concern:

- :mod:`~models.deep_performer.config`: hyperparameters and profiles;
- :mod:`~models.deep_performer.clips`: the aligned excerpts models learn from, their crops and batches;
- :mod:`~models.deep_performer.network`: the two models and the note encoding they share;
- :mod:`~models.deep_performer.training`: their losses and :func:`train`;
- :mod:`~models.deep_performer.evaluation`: validation metrics (log-mel MSE, timing errors);
- :mod:`~models.deep_performer.inference`: timing and log-mels of scores of any length;
- :mod:`~models.deep_performer.persistence`: the registered model folder.

The vocoder, :mod:`models.vocoder` (Griffin-Lim or HiFi-GAN), is shared with CLIPSonic.

The names other packages use are re-exported here, so ``from models import deep_performer as dp``
gives ``dp.train``, ``dp.synthesize`` and the rest.
"""

from models.deep_performer.clips import Clip, clip_batches, collate, crop
from models.deep_performer.config import FRAME_RATE, PROFILES, DeepPerformerConfig
from models.deep_performer.evaluation import alignment_metrics, mel_mse
from models.deep_performer.inference import align, predict, synthesize
from models.deep_performer.network import build_model, polyphonic_mix
from models.deep_performer.persistence import load_model, save_model
from models.deep_performer.training import train

__all__ = [
    "FRAME_RATE",
    "PROFILES",
    "Clip",
    "DeepPerformerConfig",
    "align",
    "alignment_metrics",
    "build_model",
    "clip_batches",
    "collate",
    "crop",
    "load_model",
    "mel_mse",
    "polyphonic_mix",
    "predict",
    "save_model",
    "synthesize",
    "train",
]
