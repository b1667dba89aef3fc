"""Log-mels to the [-1, 1] range the diffusion model works in, and back, with fixed bounds.

The bounds are constants rather than data statistics so that every model, data set and vocoder
agrees on the mapping: the bottom is the mel floor, ln(1e-5); the top, ``LOG_MEL_MAX`` = 3.0,
leaves headroom above the loudest bins of clips normalised to a peak of 0.7 (about 2.4). Louder
bins clip to 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from models.clipsonic.config import SPEC

LOG_MEL_MIN = math.log(SPEC.floor)
LOG_MEL_MAX = 3.0

Array = np.ndarray | torch.Tensor


def to_unit(log_mel: Array) -> Array:
    """Log-mel values mapped linearly onto [-1, 1], the floor to -1 and ``LOG_MEL_MAX`` to 1."""
    unit = 2 * (log_mel - LOG_MEL_MIN) / (LOG_MEL_MAX - LOG_MEL_MIN) - 1
    return unit.clip(-1, 1)


def from_unit(unit: Array) -> Array:
    """Inverse of :func:`to_unit` for values in [-1, 1]."""
    return (unit.clip(-1, 1) + 1) / 2 * (LOG_MEL_MAX - LOG_MEL_MIN) + LOG_MEL_MIN
