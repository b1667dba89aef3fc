"""The queries of every CLIPSonic mode turned into generated mels: one table of samples that the
evaluation scores, with the test crops themselves as the vocoder's reconstruction rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from torch import nn

from assets.clipsonic import crops
from assets.clipsonic import queries as qs
from assets.clipsonic.evaluation import CLAP_TEMPLATE
from models import audio_metrics as am
from models import clip_embed
from models import clipsonic as cso

PHOTO = "a photo of {}"  # the text of every CLIP text query: the prior learns from it, ZS and CLIP-TTA read it
CLIP_SPACE = {"iq", "shuffled", "zs", "sd", "pd"}  # modes whose query lives in CLIP's image-text space
SAMPLES = pa.schema(
    [
        ("group", pa.string()),  # main, ddpm (the 1,000-step sampler), sweep (guidance), reconstruction
        ("mode", pa.string()), ("sampler", pa.string()), ("steps", pa.int32()), ("guidance", pa.float64()),
        ("label", pa.string()), ("video", pa.string()), ("start_frame", pa.int32()), ("version", pa.string()),
        ("prior_version", pa.string()),  # SD's and PD's prior
        ("query_similarity", pa.float64()), ("mel", pa.list_(pa.float32(), cso.CROP_FRAMES * crops.BANDS)),
    ]
)  # fmt: skip


@dataclass
class Loaded:
    """A registered model loaded for sampling."""

    version: Any  # mlflow ModelVersion
    model: nn.Module
    cfg: Any


@dataclass
class Plan:
    per_label: int
    sampler: str
    steps: int  # 0: the model's own
    guidance: float  # negative: the model's own
    ddpm_per_label: int
    sweep: list[float]
    sweep_per_label: int
    seed: int


def text_conditions(condition: str, labels: list[str], clip_model: str, clap_model: str) -> dict[str, np.ndarray]:
    """label -> the text embedding a text-to-audio baseline is conditioned on: CLIP's of "a photo of
    [label]" (CLIP-TTA) or CLAP's of "the sound of [label]" (CLAP-TTA)."""
    if condition == "clip_tta":
        return dict(zip(labels, clip_embed.embed_prompts(clip_embed.load_clip(clip_model), crops.prompts(labels, PHOTO))))
    return dict(zip(labels, am.clap_text_embeds(am.load_clap(clap_model), crops.prompts(labels, CLAP_TEMPLATE))))


def prior_set(bundle: clip_embed.ClipBundle, images: Mapping[str, np.ndarray]) -> cso.PriorSet:
    """The prior's examples: each label's text "a photo of [label]" and its frames' image embeddings."""
    return cso.make_prior_set(bundle, crops.prompts(list(images), PHOTO), list(images.values()))


def prior_queries(prior: nn.Module, bundle: clip_embed.ClipBundle, labels: list[str], seed: int) -> np.ndarray:
    """One prior sample per query (the better of two, 64 steps), from its label's text."""
    tokens, mask, embeds = clip_embed.encode_text_tokens(bundle, crops.prompts(labels, PHOTO))
    return cso.sample_prior(prior, tokens, mask, embeds, seed=seed)


def sampler_steps(cfg: Any, sampler: str, steps: int) -> int:
    return steps or (cfg.fast_steps if sampler == "ddim" else cfg.sample_steps)


def rows(group: str, queries: qs.Queries, test: pa.Table, mels: np.ndarray, sampler: str, steps: int,
         guidance: float, version: str, prior_version: str = "") -> list[dict]:  # fmt: skip
    similarity = (
        np.sum(queries.conditions * queries.truth, axis=1)
        / np.linalg.norm(queries.conditions, axis=1) / np.linalg.norm(queries.truth, axis=1)
        if queries.mode in CLIP_SPACE else np.full(len(mels), np.nan)
    )  # fmt: skip
    videos, starts = test.column("video").to_pylist(), test.column("start_frame").to_pylist()
    return [
        {"group": group, "mode": queries.mode, "sampler": sampler, "steps": steps, "guidance": guidance,
         "label": queries.labels[i], "video": videos[i], "start_frame": starts[i], "version": version, "prior_version": prior_version,
         "query_similarity": float(similarity[i]), "mel": mels[i].ravel()}
        for i in range(len(mels))
    ]  # fmt: skip


def generate(loaded: Loaded, queries: qs.Queries, sampler: str, steps: int, guidance: float, seed: int) -> np.ndarray:
    return cso.generate(loaded.model, queries.conditions, guidance, steps, sampler, seed)


def first_per_label(queries: qs.Queries, test: pa.Table, count: int) -> tuple[qs.Queries, pa.Table]:
    """The queries of the first ``count`` crops of each label."""
    keep = crops.first_mask(queries.labels, count)
    sub = qs.Queries(queries.mode, [label for label, k in zip(queries.labels, keep) if k], queries.conditions[keep],
                     None if queries.truth is None else queries.truth[keep])  # fmt: skip
    return sub, test.filter(pa.array(keep))


def sample_all(
    plan: Plan, test: pa.Table, models: Mapping[str, Loaded], prior: Loaded | None, pd_prior: Loaded | None,
    bundle: clip_embed.ClipBundle, clap_model: str,
) -> tuple[pa.Table, list[str]]:
    """Every mode's samples for the first ``plan.per_label`` test crops of each label, plus the
    reconstruction rows, the 1,000-step sampler on fewer crops and the guidance sweep of IQ; and notes
    on the modes left out and why."""
    test = crops.per_label(test, plan.per_label)
    labels = test.column("label").to_pylist()
    iq_model = models["iq"]
    iq = qs.image_queries(crops.frames_of(test), labels, plan.seed)
    clip_texts = dict(zip(sorted(set(labels)), clip_embed.embed_prompts(bundle, crops.prompts(sorted(set(labels)), PHOTO))))
    modes = [iq, qs.shuffled_queries(iq, plan.seed), qs.label_queries("zs", clip_texts, iq)]
    notes, prior_versions = [], {}
    for mode, found in (("sd", prior), ("pd", pd_prior)):
        if found is None:
            notes.append(f"{mode.upper()} left out: " + ("no clipsonic_prior trained" if mode == "sd" else "no pretrained prior given (pd_prior)"))
            continue
        prior_versions[mode] = str(found.version.version) if found.version is not None else ""
        modes.append(qs.per_query(mode, prior_queries(found.model, bundle, labels, plan.seed), iq))
    if "clip_tta" in models:
        modes.append(qs.label_queries("clip_tta", clip_texts, iq))
    else:
        notes.append("CLIP-TTA left out: clipsonic_model[clip_tta] not trained")
    if "clap_tta" in models:
        folder = clap_model or models["clap_tta"].version.tags.get("clap_model", "")
        clap = dict(zip(sorted(set(labels)), am.clap_text_embeds(am.load_clap(folder), crops.prompts(sorted(set(labels)), CLAP_TEMPLATE))))
        modes.append(qs.label_queries("clap_tta", clap, iq))
    else:
        notes.append("CLAP-TTA left out: clipsonic_model[clap_tta] not trained (it needs CLAP weights)")

    def guidance_of(loaded: Loaded) -> float:
        return plan.guidance if plan.guidance >= 0 else loaded.cfg.guidance

    out: list[dict] = []
    for queries in modes:
        loaded = models[qs.MODEL_OF[queries.mode]]
        steps, w = sampler_steps(loaded.cfg, plan.sampler, plan.steps), guidance_of(loaded)
        mels = generate(loaded, queries, plan.sampler, steps, w, plan.seed)
        out += rows("main", queries, test, mels, plan.sampler, steps, w, str(loaded.version.version),
                    prior_versions.get(queries.mode, ""))
    recon = qs.Queries("reconstruction", labels, iq.conditions, iq.truth)
    out += [dict(r, query_similarity=float("nan")) for r in rows("reconstruction", recon, test, crops.mels_of(test), "", 0, float("nan"), "")]
    if plan.ddpm_per_label and plan.sampler != "ddpm":
        sub, sub_test = first_per_label(iq, test, plan.ddpm_per_label)
        steps, w = sampler_steps(iq_model.cfg, "ddpm", 0), guidance_of(iq_model)
        out += rows("ddpm", sub, sub_test, generate(iq_model, sub, "ddpm", steps, w, plan.seed), "ddpm", steps, w, str(iq_model.version.version))
    if plan.sweep and plan.sweep_per_label:
        sub, sub_test = first_per_label(iq, test, plan.sweep_per_label)
        steps = sampler_steps(iq_model.cfg, plan.sampler, plan.steps)
        for w in plan.sweep:
            mels = generate(iq_model, sub, plan.sampler, steps, float(w), plan.seed)
            out += rows("sweep", sub, sub_test, mels, plan.sampler, steps, float(w), str(iq_model.version.version))
    return pa.Table.from_pylist(out, schema=SAMPLES), notes


def listening_set(samples: pa.Table, per_label: int) -> list[tuple[str, np.ndarray]]:
    """The first ``per_label`` main and reconstruction samples of each mode and label, named for their files."""
    picked, seen = [], {}
    mels = crops.mels_of(samples)
    for i, (group, mode, label) in enumerate(zip(*(samples.column(c).to_pylist() for c in ("group", "mode", "label")))):
        key = (mode, label)
        if group in ("main", "reconstruction") and seen.get(key, 0) < per_label:
            seen[key] = seen.get(key, 0) + 1
            picked.append((f"{mode}-{label.replace(' ', '_')}-{seen[key]}", mels[i]))
    return picked

