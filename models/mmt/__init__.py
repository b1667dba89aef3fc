"""Multitrack Music Transformer (Dong et al., ICASSP 2023): encoding, model, training and generation.

A decoder-only Transformer reads one MMT event per step (the sum of six field embeddings and a
learned position embedding) and predicts all six fields of the next event with six heads, so a
whole note costs one step instead of four or five tokens.

- ``encoding``: notes <-> (n, 6) code arrays; ``metrics``: the paper's objective metrics.
- ``config``: hyperparameters and profiles; ``network``: the KV-cached decoder.
- ``preparation``: which songs become training data; ``batches``: beat windows and batches; ``training``: loss, evaluation and the training run.
- ``prompts`` and ``generation``: the three generation modes and the constrained sampler.
- ``persistence``: model folders.

The names re-exported here are the ones code outside the package uses.
"""

from models.mmt.batches import collate, draw_start, make_batches, val_batches, window, window_at
from models.mmt.config import PROFILES, MMTConfig
from models.mmt.generation import generate, generate_many
from models.mmt.network import MMT
from models.mmt.persistence import load_model, save_model
from models.mmt.preparation import PREPARATIONS, Preparation, SongDropped, check_song, end_beats
from models.mmt.prompts import continuation_prompt, instrument_prompt, unconditioned_prompt
from models.mmt.training import evaluate, lr_multiplier, train

__all__ = [
    "MMT",
    "PREPARATIONS",
    "PROFILES",
    "Preparation",
    "SongDropped",
    "check_song",
    "MMTConfig",
    "collate",
    "continuation_prompt",
    "draw_start",
    "end_beats",
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
    "window_at",
]
