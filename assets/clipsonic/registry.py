"""The registered models CLIPSonic's sampling and evaluation read, and the promotions its evaluation makes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from torch import nn

from assets.clipsonic.evaluation import Backbones
from assets.clipsonic.sampling import Loaded
from models import audio_metrics as am
from models import clipsonic as cso
from models import vocoder as voc
from models.training import default_device
from storage.tracking import MlflowResource, unbeaten

REGISTERED, PRIOR, VOCODER, DOMAIN = "clipsonic", "clipsonic_prior", "clipsonic_vocoder", "clipsonic_domain"


def load_models(tracking: MlflowResource, cache: str, clip_model: str) -> dict[str, Loaded]:
    """The newest diffusion model of each condition; the CLIP-conditioned ones only when trained on
    ``clip_model``'s embeddings (other CLIP spaces would not match the queries)."""
    loaded = {}
    for condition, version in tracking.newest_by_tag(REGISTERED, "condition").items():
        if condition != "clap_tta" and version.tags.get("clip_model") != clip_model:
            continue
        loaded[condition] = Loaded(version, *cso.load_model(tracking.fetch(version, cache), default_device()))
    return loaded


def newest(tracking: MlflowResource, name: str) -> Any | None:
    versions = mlflow.MlflowClient(tracking_uri=tracking.uri).search_model_versions(f"name = '{name}'")
    return max(versions, key=lambda v: int(v.version), default=None)


def load_newest(tracking: MlflowResource, cache: str, name: str, loader: Callable, clip_model: str | None = None) -> Loaded | None:
    """The newest version of ``name`` (trained on ``clip_model``'s embeddings, when given), loaded."""
    version = newest(tracking, name)
    if version is None or (clip_model is not None and version.tags.get("clip_model") != clip_model):
        return None
    return Loaded(version, *loader(tracking.fetch(version, cache), default_device()))


def griffin_lim(tracking: MlflowResource, vocoder: Any) -> dict[str, float]:
    """The baseline a vocoder must beat: Griffin-Lim's mel L1 on the vocoder's own validation clips (NaN,
    which nothing beats, when its run lacks it)."""
    error = tracking.metric_of(vocoder, "griffin_lim_mel_l1")
    return {"Griffin-Lim": float("nan") if error is None else error}


def usable_vocoder(tracking: MlflowResource, cache: str) -> tuple[Any, nn.Module] | None:
    """The newest clipsonic_vocoder when it beats Griffin-Lim on its validation resynthesis (the champion
    rule's test), else None."""
    version = newest(tracking, VOCODER)
    if version is None or unbeaten(tracking.metric_of(version, "val_mel_l1"), griffin_lim(tracking, version), True):
        return None
    return version, voc.load_vocoder(tracking.fetch(version, cache), default_device())[0]


def load_backbones(tracking: MlflowResource, cache: str, vggish_weights: str, clap_model: str) -> tuple[Backbones, list[str]]:
    """The metrics' backbones, and a note for each one left out. A configured weight that cannot be
    loaded raises (VGGishWeightsMissing, ClapWeightsMissing); an unconfigured one only empties its columns."""
    notes, backbones = [], Backbones()
    domain = load_newest(tracking, cache, DOMAIN, am.load_classifier)
    if domain is None:
        notes.append("no domain classifier: materialize clipsonic_domain_classifier for its accuracy and FAD")
    else:
        backbones.domain = domain.model
    if vggish_weights:
        backbones.vggish = am.load_vggish(vggish_weights, default_device())
    else:
        notes.append("FAD (VGGish) left out: set vggish_weights to torchvggish's vggish-10086976.pth")
    if clap_model:
        backbones.clap = am.load_clap(clap_model, default_device())
    else:
        notes.append("CLAP score left out: set clap_model to a folder saved with ClapModel.save_pretrained")
    return backbones, notes


def version_of(tracking: MlflowResource, name: str, number: str) -> Any:
    return mlflow.MlflowClient(tracking_uri=tracking.uri).get_model_version(name, number)


def promote(tracking: MlflowResource, table: pd.DataFrame, vocoder: Any | None) -> list[str]:
    """Record each model's test metrics on its training run, then move `champion` to the image-queried
    model (FAD with VGGish when measured, else with the domain backbone), the prior (SD's query
    similarity) and the newest vocoder, each when it beats the current champion, and the vocoder only
    when it also beats Griffin-Lim."""
    main = table[table["group"] == "main"].set_index("mode")
    promoted = []
    if "iq" in main.index:
        row = main.loc["iq"]
        iq = version_of(tracking, REGISTERED, str(row["version"]))
        metrics = {f"test_{k}": float(row[k]) for k in ("fad_vggish", "fad_domain", "domain_accuracy") if np.isfinite(row[k])}
        tracking.log_version_metrics(iq, metrics)
        key = "test_fad_vggish" if "test_fad_vggish" in metrics else "test_fad_domain"
        if key in metrics and tracking.promote_if_better(REGISTERED, iq, key, lower_is_better=True):
            promoted.append(f"{REGISTERED} v{iq.version}")
    if "sd" in main.index and main.loc["sd", "prior_version"]:
        prior = version_of(tracking, PRIOR, str(main.loc["sd", "prior_version"]))
        tracking.log_version_metrics(prior, {"test_query_similarity": float(main.loc["sd", "query_similarity"])})
        if tracking.promote_if_better(PRIOR, prior, "test_query_similarity", lower_is_better=False):
            promoted.append(f"{PRIOR} v{prior.version}")
    if vocoder is not None and tracking.promote_if_better(VOCODER, vocoder, "val_mel_l1", True, griffin_lim(tracking, vocoder)):
        promoted.append(f"{VOCODER} v{vocoder.version}")
    return promoted
