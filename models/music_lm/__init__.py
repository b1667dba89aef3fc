"""Event-sequence language models of the MusPy cross-dataset generalizability experiment.

Dong et al. (ISMIR 2020) train RNN, LSTM, GRU and Transformer language models on the MusPy
event representation of each dataset and compare their perplexities on every other dataset.

- ``config``: hyperparameters and profiles; ``network``: the four models.
- ``batches``: the crop sampler that streams songs and the evaluation windows.
- ``training``: loss, deterministic evaluation and the resumable training run.
- ``persistence``: model folders.

The names re-exported here are the ones code outside the package uses.
"""

from models.music_lm.batches import IGNORE_INDEX, crop_batches
from models.music_lm.config import PROFILES, LMConfig
from models.music_lm.network import ARCHS, build_model
from models.music_lm.persistence import load_model, save_model
from models.music_lm.training import evaluate, train

__all__ = [
    "ARCHS",
    "IGNORE_INDEX",
    "LMConfig",
    "PROFILES",
    "build_model",
    "crop_batches",
    "evaluate",
    "load_model",
    "save_model",
    "train",
]
