"""The Deep Performer evaluation over loaded models and the validation clips: the paper's Table 5.1
(mel MSE of the full model and its ablations, and of the aligned FluidSynth rendering the full
model must beat to serve), the alignment model's timing error, the vocoders' resynthesis error,
and the sample clips to listen to and look at.

Loading from the registry stays with the caller; every function here takes models in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import soundfile as sf
from torch import nn

from assets.core.metric_keys import metric_key
from assets.deep_performer import performing, rendering
from assets.deep_performer.training_sets import VARIANT_LABELS, clip_audio
from assets.violin import clips as clip_data
from models import deep_performer as dp
from models import vocoder as voc
from models.mel import SAMPLE_RATE

COLUMNS = ["model", "version", "metric", "value"]
TIMING = {"val_onset_mae_ms": "onset MAE (ms)", "val_duration_mae_ms": "duration MAE (ms)"}
RESYNTHESIS = "resynthesis mel L1"


@dataclass(frozen=True)
class Loaded:
    """A registered model version in memory with the config and performer vocabulary it was trained with."""

    version: str
    model: nn.Module
    cfg: dp.DeepPerformerConfig | None = None
    performers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VocoderScores:
    rows: list[dict]
    griffin_lim: float
    hifigan: float | None  # None without a trained HiFi-GAN


def synthesis_rows(variants: dict[str, Loaded], valid: pa.Table) -> tuple[list[dict], dict[str, float]]:
    """Table 5.1's rows, one per variant, and each variant's mel MSE on the validation clips."""
    mse = {
        variant: dp.mel_mse(loaded.model, loaded.cfg, clip_data.to_clips(valid, loaded.performers))
        for variant, loaded in variants.items()
    }
    rows = [
        {"model": VARIANT_LABELS.get(variant, variant), "version": variants[variant].version, "metric": "mel MSE", "value": value}
        for variant, value in mse.items()
    ]
    return rows, mse


def rendering_row(valid: pa.Table, transposes: dict[str, int], soundfont: str) -> dict:
    """Table 5.1's baseline row: the mel MSE of the FluidSynth rendering of every validation clip's
    aligned notes (``rendering``), transposed as its recording's score rendering was."""
    clips = clip_data.to_clips(valid, clip_data.performer_vocabulary(valid))
    velocities = [np.asarray(v) for v in valid.column("velocity").to_pylist()]
    shifts = [transposes.get(recording, 0) for recording in valid.column("recording").to_pylist()]
    audio = rendering.render_clips(clips, velocities, shifts, soundfont)
    value = rendering.rendering_mse(clips, audio, clip_audio(valid))
    return {"model": rendering.LABEL, "version": "", "metric": "mel MSE", "value": value}


def alignment_rows(alignment: Loaded, valid: pa.Table) -> tuple[list[dict], dict[str, float]]:
    """The alignment model's onset and duration errors as rows, and its `eval_` metrics (its loss among them)."""
    metrics = dp.alignment_metrics(alignment.model, alignment.cfg, clip_data.to_clips(valid, alignment.performers))
    rows = [{"model": "alignment model", "version": alignment.version, "metric": label, "value": metrics[k]} for k, label in TIMING.items()]
    return rows, {"eval_" + k.removeprefix("val_"): v for k, v in metrics.items()}


def vocoder_scores(audio: list[np.ndarray], hifigan: Loaded | None) -> VocoderScores:
    """Resynthesis error of Griffin-Lim and, when there is one, of the HiFi-GAN on the same clips."""
    griffin_lim = voc.resynthesis_l1(audio, voc.griffin_lim)
    rows = [{"model": "Griffin-Lim", "version": "", "metric": RESYNTHESIS, "value": griffin_lim}]
    if hifigan is None:
        return VocoderScores(rows, griffin_lim, None)
    error = voc.validate(hifigan.model, audio)["val_mel_l1"]
    rows.append({"model": "HiFi-GAN", "version": hifigan.version, "metric": RESYNTHESIS, "value": error})
    return VocoderScores(rows, griffin_lim, error)


def results_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def table_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Every row of the table as the MLflow metric "<model>.<metric>"."""
    return {metric_key(f"{r['model']}.{r['metric']}"): r["value"] for r in table.to_dict("records")}


def _slug(label: str) -> str:
    """"synthesized (score only)" -> "score_only"; the recording's own mel is its Griffin-Lim."""
    return label.split(" (")[-1].rstrip(")").replace(" ", "_") if "(" in label else "griffin_lim"


def write_samples(out_dir: str, valid: pa.Table, synthesis: Loaded, alignment: Loaded | None, count: int) -> list[tuple[str, bytes]]:
    """Per sample clip: the recording, Griffin-Lim of its own mel (the inversion's ceiling), the full
    model with the recorded timing and, with an alignment model, from the score alone; wav + PNG.
    Returns each clip's name and spectrogram PNG."""
    os.makedirs(out_dir, exist_ok=True)
    clips = clip_data.to_clips(valid.slice(0, count), synthesis.performers)
    pngs = []
    for i, (clip, predicted) in enumerate(zip(clips, dp.predict(synthesis.model, synthesis.cfg, clips))):
        name = f"{valid['recording'][i].as_py()}-clip{valid['clip'][i].as_py()}"
        mels = {"recording": clip.mel, "synthesized (recorded timing)": predicted[: len(clip.mel)]}
        if alignment is not None:
            mels["synthesized (score only)"] = dp.synthesize(
                synthesis.model, alignment.model, synthesis.cfg, clip.pitch, clip.onset_beat, clip.duration_beat,
                clip.performer, clip.qpm,
            )  # fmt: skip
        sf.write(os.path.join(out_dir, f"{name}-recording.wav"), clip_data.decode_audio(valid["audio"][i].as_py()), SAMPLE_RATE)
        for label, mel in mels.items():
            sf.write(os.path.join(out_dir, f"{name}-{_slug(label)}.wav"), voc.griffin_lim(mel), SAMPLE_RATE)
        png = performing.spectrograms_png(list(mels.items()), title=name)
        with open(os.path.join(out_dir, f"{name}.png"), "wb") as f:
            f.write(png)
        pngs.append((name, png))
    return pngs
