"""Prompts of the paper's three generation modes: unconditioned, instrument-informed, n-beat continuation."""

from __future__ import annotations

import numpy as np

from models.mmt.encoding import BEAT, FIELDS, TYPE_NOTE, TYPE_START


def unconditioned_prompt() -> np.ndarray:
    """Start-of-song only: the model chooses the instruments and the notes."""
    prompt = np.zeros((1, len(FIELDS)), dtype=np.int64)
    prompt[0, 0] = TYPE_START
    return prompt


def instrument_prompt(codes: np.ndarray) -> np.ndarray:
    """Start-of-song, the song's instrument events and start-of-notes (instrument-informed mode)."""
    codes = np.asarray(codes, dtype=np.int64)
    return codes[codes[:, 0] < TYPE_NOTE].copy()


def continuation_prompt(codes: np.ndarray, n_beats: int) -> np.ndarray:
    """The song's header and its notes before beat ``n_beats`` (n-beat continuation mode)."""
    codes = np.asarray(codes, dtype=np.int64)
    keep = (codes[:, 0] < TYPE_NOTE) | ((codes[:, 0] == TYPE_NOTE) & (codes[:, BEAT] - 1 < n_beats))
    return codes[keep].copy()
