"""What both vocoder assets do: train a HiFi-GAN on a system's audio, score Griffin-Lim on the same
validation clips, and register the generator with both errors on its run."""

import os
import sys
from dataclasses import asdict

import dagster as dg
import mlflow
import numpy as np

from assets.core.resources import HomeResource
from assets.core.training import checkpoint_dir, log_step, register_model, training_metadata
from models import vocoder as voc
from storage.tracking import MlflowResource


def train_vocoder(
    context: dg.AssetExecutionContext, home: HomeResource, tracking: MlflowResource, cfg: voc.VocoderConfig,
    profile: str, name: str, train_audio: list[np.ndarray], valid_audio: list[np.ndarray],
) -> dg.MaterializeResult:  # fmt: skip
    """HiFi-GAN on ``train_audio``; ``val_mel_l1`` and ``griffin_lim_mel_l1`` on ``valid_audio`` in the
    config's own mel, the pair its evaluation compares before promoting it."""
    with checkpoint_dir(context, home, cfg, name) as ckpt_dir, tracking.run(context, run_name=name) as run:
        generator, result = voc.train_hifigan(cfg, train_audio, valid_audio, ckpt_dir, log_step, progress=sys.stderr.isatty())
        griffin_lim = voc.resynthesis_l1(valid_audio, lambda mel: voc.griffin_lim(mel, cfg.spec), cfg.spec)
        mlflow.log_params({**asdict(cfg), "profile": profile})
        mlflow.log_metrics({"val_mel_l1": result.best_metric, "griffin_lim_mel_l1": griffin_lim})
        model_dir = os.path.join(ckpt_dir, "model")
        voc.save_vocoder(generator, cfg, model_dir)
        version = register_model(tracking, run, model_dir, name, {"kind": "hifigan", "profile": profile})
    metadata = training_metadata(name, version, result, tracking.run_url(run))
    return dg.MaterializeResult(metadata=metadata | {"griffin_lim_mel_l1": griffin_lim})
