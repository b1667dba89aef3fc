"""Neural part separation for automatic instrumentation (Dong et al., ISMIR 2021, "Arranger").

Automatic instrumentation is cast as per-note part classification: the notes of a multitrack
piece are downmixed into one sequence sorted by (onset, pitch) and a sequence model labels each
note with the part it came from.

- ``songs``: the part-labelled song unit; ``config``: hyperparameters, architectures, profiles.
- ``hints``: each part's entry and mean pitch; ``note_features``: the per-note model inputs.
- ``batches``: padded batches and training crops; ``network``: the part separator.
- ``inference``: labelling and evaluating whole songs; ``training``: configure, validate, train.
- ``persistence``: model folders.

The names re-exported here are the ones code outside the package uses.
"""

from models.part_separation.batches import IGNORE_INDEX, collate, crop_batches, transpositions
from models.part_separation.config import ARCHS, OFFLINE, ONLINE, PROFILES, PartSepConfig
from models.part_separation.hints import NEVER, Hints, hints_from_labels
from models.part_separation.inference import evaluate, predict
from models.part_separation.network import build_model
from models.part_separation.note_features import features
from models.part_separation.persistence import load_model, save_model
from models.part_separation.songs import RESOLUTION, PartSong
from models.part_separation.training import configure, train

__all__ = [
    "ARCHS",
    "IGNORE_INDEX",
    "NEVER",
    "OFFLINE",
    "ONLINE",
    "PROFILES",
    "RESOLUTION",
    "Hints",
    "PartSepConfig",
    "PartSong",
    "build_model",
    "collate",
    "configure",
    "crop_batches",
    "evaluate",
    "features",
    "hints_from_labels",
    "load_model",
    "predict",
    "save_model",
    "train",
    "transpositions",
]
