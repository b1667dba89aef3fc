"""Multitrack Music Transformer (Dong et al., ICASSP 2023): encoding, model, training and generation.

A decoder-only Transformer reads one MMT event per step (the sum of six field embeddings and a
learned position embedding) and predicts all six fields of the next event with six heads, so a
whole note costs one step instead of four or five tokens.

- ``encoding``: notes <-> (n, 6) code arrays; ``metrics``: the paper's objective metrics.
- ``config``: hyperparameters and profiles; ``network``: the KV-cached decoder.
- ``batches``: beat windows and batches; ``training``: loss, evaluation and the training run.
- ``prompts`` and ``generation``: the three generation modes and the constrained sampler.
- ``persistence``: model folders.

The names re-exported here are the ones code outside the package uses.
"""

from models.mmt.batches import collate, make_batches, val_batches, window
from models.mmt.config import PROFILES, MMTConfig
from models.mmt.generation import generate, generate_many
from models.mmt.network import MMT
from models.mmt.persistence import load_model, save_model
from models.mmt.prompts import continuation_prompt, instrument_prompt, unconditioned_prompt
from models.mmt.training import evaluate, lr_multiplier, train

__all__ = [
    "MMT",
    "PROFILES",
    "MMTConfig",
    "collate",
    "continuation_prompt",
    "evaluate",
    "generate",
    "generate_many",
    "instrument_prompt",
    "load_model",
    "lr_multiplier",
    "make_batches",
    "save_model",
    "train",
    "unconditioned_prompt",
    "val_batches",
    "window",
]
