"""What the Deep Performer models learn from: every recording's clips under one performer vocabulary,
and the configs of the full model and its Table 5.1 ablations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa

from assets.violin import clips as clip_data
from models import deep_performer as dp

VARIANTS = {  # Table 5.1: the full model and its two ablations
    "full": {},
    "no_notewise_pe": {"use_notewise_pe": False},
    "no_performer": {"use_performer": False},
}
VARIANT_LABELS = {
    "full": "Deep Performer",
    "no_notewise_pe": "w/o note-wise positional encoding",
    "no_performer": "w/o performer embedding",
}


def training_clips(train: pa.Table, valid: pa.Table) -> tuple[list[str], list[dp.Clip], list[dp.Clip]]:
    """The performers of both splits (the embedding's vocabulary, so a performer seen only in
    validation still has an index) and each split's clips numbered by it."""
    performers = sorted(set(clip_data.performer_vocabulary(train)) | set(clip_data.performer_vocabulary(valid)))
    return performers, clip_data.to_clips(train, performers), clip_data.to_clips(valid, performers)


def variant_config(base: dp.DeepPerformerConfig, n_performers: int, variant: str) -> dp.DeepPerformerConfig:
    """The profile's config with the data's performer count and the variant's ablation switched off."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    return replace(base, n_performers=n_performers, **VARIANTS[variant])


def clip_audio(table: pa.Table) -> list[np.ndarray]:
    """Each clip's recorded audio (what the vocoders are trained and scored on)."""
    return [clip_data.decode_audio(data) for data in table.column("audio").to_pylist()]
