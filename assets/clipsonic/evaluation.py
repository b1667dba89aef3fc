"""CLIPSonic's metrics over generated mels (thesis Table 7.1 and Figure 7.3). VGGish and CLAP hear
audio: every mel is inverted by the vocoder, so the reconstruction row (the test mels through the
vocoder) is the upper bound the generated rows are read against. The domain backbone reads the mels
themselves, so its reconstruction row is its accuracy on the real test crops.

- FAD (VGGish): Fréchet distance of VGGish embeddings of generated and real test audio;
- CLAP score: cosine of the CLAP audio embedding and the CLAP text embedding of "the sound of [label]";
- domain accuracy and FAD (domain): the synthetic instruments' own classifier, trained on their real
  audio, labels each clip (chance is 1 / number of labels) and embeds it for a Fréchet distance. It is
  a domain backbone, not VGGish.
Each backbone is optional: a missing one leaves its columns empty, and the table says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow as pa
import soundfile as sf
from torch import nn

from assets.clipsonic import crops
from assets.clipsonic.queries import NAMES
from assets.core.plots import to_png
from models import audio_metrics as am
from models import clipsonic as cso
from models import vocoder as voc
from models.mel import log_mel

CLAP_TEMPLATE = "the sound of {}"
CROP_SAMPLES = (cso.CROP_FRAMES - 1) * cso.SPEC.hop  # the audio whose log-mel is one crop
METRICS = ("fad_vggish", "clap_score", "domain_accuracy", "fad_domain")
COLUMNS = ["model", "mode", "sampler", "steps", "guidance", "clips", *METRICS, "query_similarity"]
READABLE = {
    "model": "Model", "sampler": "Sampler", "steps": "Steps", "guidance": "w", "clips": "Clips",
    "fad_vggish": "FAD (VGGish) ↓", "clap_score": "CLAP score ↑", "domain_accuracy": "Queried instrument (domain) ↑",
    "fad_domain": "FAD (domain) ↓", "query_similarity": "Query–image cosine ↑",
}  # fmt: skip


@dataclass
class Backbones:
    """The embedding models the metrics use; any of them may be missing."""

    domain: nn.Module | None = None
    vggish: nn.Module | None = None
    clap: am.ClapBundle | None = None


@dataclass
class Reference:
    """The real test audio's embeddings every generated set is compared with."""

    domain: np.ndarray | None
    vggish: np.ndarray | None


def crops_of(audio: Sequence[np.ndarray]) -> np.ndarray:
    """(n, CROP_FRAMES, bands) log-mels of clips, each cut or padded (at the floor) to one crop."""
    out = np.full((len(audio), cso.CROP_FRAMES, cso.SPEC.n_mels), np.log(cso.SPEC.floor), dtype=np.float32)
    for i, clip in enumerate(audio):
        mel = log_mel(clip, cso.SPEC)[: cso.CROP_FRAMES]
        out[i, : len(mel)] = mel
    return out


def reference(real_audio: Sequence[np.ndarray], backbones: Backbones) -> Reference:
    """Embeddings of the real test audio: whole clips for VGGish, crops for the domain backbone."""
    crops = [clip[i : i + CROP_SAMPLES] for clip in real_audio for i in range(0, len(clip) - CROP_SAMPLES + 1, CROP_SAMPLES)]
    domain = am.domain_embed(backbones.domain, crops_of(crops)) if backbones.domain is not None else None
    vggish = am.vggish_embed(backbones.vggish, list(real_audio)) if backbones.vggish is not None else None
    return Reference(domain, vggish)


def score(
    mels: np.ndarray, invert: Callable[[np.ndarray], np.ndarray], labels: Sequence[str], ref: Reference, backbones: Backbones
) -> dict[str, float]:
    """Every metric of one set of generated mels asking for ``labels``; NaN where a backbone is missing."""
    out = dict.fromkeys(METRICS, float("nan"))
    audio = invert_all(mels, invert) if backbones.vggish is not None or backbones.clap is not None else []
    if backbones.domain is not None:
        out["domain_accuracy"] = float(np.mean(np.asarray(am.classify(backbones.domain, mels)) == np.asarray(labels)))
        out["fad_domain"] = am.frechet_distance(am.domain_embed(backbones.domain, mels), ref.domain)
    if backbones.vggish is not None:
        out["fad_vggish"] = am.frechet_distance(am.vggish_embed(backbones.vggish, list(audio)), ref.vggish)
    if backbones.clap is not None:
        texts = am.clap_text_embeds(backbones.clap, [CLAP_TEMPLATE.format(label) for label in labels])
        out["clap_score"] = am.clap_score(am.clap_audio_embeds(backbones.clap, list(audio)), texts)
    return out


def invert_all(mels: np.ndarray, invert: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(invert(mel), dtype=np.float32) for mel in mels]


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """Table 7.1's layout: one row per model and mode, columns with their names and directions; a cell
    that does not apply (a reconstruction row's sampler settings, a metric left out) is blank."""
    shown = table[[c for c in COLUMNS if c != "mode"]].copy()
    shown[["steps", "guidance"]] = shown[["steps", "guidance"]].astype(object)
    shown.loc[shown["sampler"] == "", ["steps", "guidance"]] = float("nan")
    shown = shown.dropna(axis=1, how="all").rename(columns=READABLE)
    return shown.astype(object).where(shown.notna(), "")


def sweep_png(sweep: pd.DataFrame) -> bytes:
    """Figure 7.3: the image-queried model's domain accuracy and FAD against the guidance scale."""
    fig, left = plt.subplots(figsize=(6.0, 3.4))
    left.plot(sweep["guidance"], sweep["domain_accuracy"], "o-", color="tab:blue")
    left.set(xlabel="guidance scale w", ylabel="queried instrument (domain)", ylim=(0, 1.02))
    right = left.twinx()
    right.plot(sweep["guidance"], sweep["fad_domain"], "s--", color="tab:red")
    right.set_ylabel("FAD (domain)", color="tab:red")
    left.set_title("CLIPSonic-IQ: classifier-free guidance sweep")
    fig.tight_layout()
    return to_png(fig)


def mel_grid_png(panels: Sequence[tuple[str, np.ndarray]], columns: int = 4) -> bytes:
    """Generated log-mels side by side on one colour scale, titled with their mode and label."""
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.1 * rows), squeeze=False)
    low, high = np.log(cso.SPEC.floor), max(float(m.max()) for _, m in panels)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, mel) in zip(axes.ravel(), panels):
        ax.imshow(mel.T, cmap="magma", aspect="auto", origin="lower", interpolation="none", vmin=low, vmax=high)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return to_png(fig)


def write_wavs(folder: str, named: Sequence[tuple[str, np.ndarray]]) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, audio in named:
        sf.write(os.path.join(folder, f"{name}.wav"), np.clip(audio, -1, 1), cso.SPEC.sample_rate)


KEYS = ["group", "mode", "sampler", "steps", "guidance"]


def evaluate(
    samples: pa.Table, real_audio: Sequence[np.ndarray], backbones: Backbones, vocoder: nn.Module | None
) -> pd.DataFrame:
    """One row of metrics per group, mode, sampler and guidance scale of the samples table."""
    ref = reference(real_audio, backbones)
    frame = samples.drop_columns(["mel"]).to_pandas()
    mels = crops.mels_of(samples)
    out = []
    for key, index in frame.groupby(KEYS, sort=False, dropna=False).groups.items():
        part = frame.loc[index]
        invert = lambda mel: voc.invert(mel, vocoder, cso.SPEC)  # noqa: E731
        out.append({
            **dict(zip(KEYS, key)), "model": NAMES.get(key[1], key[1]), "clips": len(part),
            **score(mels[np.asarray(index)], invert, part["label"].tolist(), ref, backbones), "query_similarity": float(part["query_similarity"].mean()),
            "version": part["version"].iloc[0], "prior_version": part["prior_version"].iloc[0],
        })  # fmt: skip
    return pd.DataFrame(out, columns=[*COLUMNS, "group", "version", "prior_version"])


def rows_of(table: pd.DataFrame, *groups: str) -> pd.DataFrame:
    """The rows of the given groups: main, ddpm and reconstruction make Table 7.1, sweep Figure 7.3."""
    return table[table["group"].isin(groups)].reset_index(drop=True)


def table_7_1(table: pd.DataFrame) -> pd.DataFrame:
    return readable(rows_of(table, "main", "ddpm", "reconstruction"))


def table_7_2(table: pd.DataFrame) -> pd.DataFrame:
    """The cosine between each text mode's query embeddings and the ground-truth image embeddings."""
    text = rows_of(table, "main")
    text = text[text["mode"].isin(["zs", "sd", "pd"])]
    return text[["model", "query_similarity"]].rename(columns=READABLE)
