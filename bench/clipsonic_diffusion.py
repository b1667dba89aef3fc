"""CLIPSonic diffusion on the synthetic instruments: training speed, sampling speed and whether
samples follow their condition.

Usage: .venv/bin/python bench/clipsonic_diffusion.py [--profile demo] [--clips 6] [--seconds 10]
                                                    [--max-steps N] [--batch-size N] [--lr X]
                                                    [--guidance 3] [--per-instrument 8] [--threads 1]
                                                    [--cache mels.npz] [--ddpm-per-instrument 1]
                                                    [--prediction v_prediction] [--min-snr-gamma G]
                                                    [--warmup-steps N] [--lr-floor F] [--seed S]

Renders ``--clips`` melodies of ``--seconds`` per instrument with the synthetic video renderer's
FluidSynth audio (no video), cuts them into 64-frame CLIPSonic log-mel crops, and conditions each
crop on a stand-in for CLIP image embeddings: a fixed random unit vector per instrument plus small
per-frame noise. The last clip of each instrument is held out. After training, a nearest-centroid
classifier on the mean log-mel bands of the real training crops labels DDIM samples queried with
fresh noisy embeddings of each instrument; the "shuffled" row scores the same samples against a
permutation of the queried labels (chance). ``--ddpm-per-instrument`` queries of each instrument are
also sampled by the DDPM at ``sample_steps`` and scored beside DDIM's samples of the same queries, with
the seconds per clip of both samplers. Prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from assets.core.tools import soundfont_path
from assets.videos import synthetic
from models import clipsonic as cso
from models import mel

NOISE = 0.3  # norm of the per-frame noise added to an instrument's unit vector


def render_mels(clips: int, seconds: float, cache: Path | None) -> dict[str, list[np.ndarray]]:
    """Per instrument, the log-mels of ``clips`` seeded renderings (cached in ``cache`` when given)."""
    if cache is not None and cache.exists():
        stored = np.load(cache)
        return {name: [stored[f"{name}|{i}"] for i in range(clips)] for name in synthetic.INSTRUMENTS}
    font = soundfont_path()
    def one(name: str, i: int) -> np.ndarray:
        return mel.log_mel(synthetic.render_audio(name, synthetic.video_seed(0, i), seconds, font), cso.SPEC)

    mels = {name: [one(name, i) for i in range(clips)] for name in synthetic.INSTRUMENTS}
    if cache is not None:
        np.savez(cache, **{f"{name}|{i}": m for name, ms in mels.items() for i, m in enumerate(ms)})
    return mels


def noisy_queries(direction: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal((n, len(direction))) * NOISE / np.sqrt(len(direction))
    rows = direction + noise
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def crop_set(
    clips: list[tuple[str, np.ndarray]], directions: dict[str, np.ndarray], rng: np.random.Generator
) -> tuple[cso.MelSet, list[str]]:
    """Non-overlapping 64-frame crops, each with two noisy frame embeddings of its instrument."""
    mels, conditions, labels = [], [], []
    for name, m in clips:
        for start in range(0, len(m) - cso.CROP_FRAMES + 1, cso.CROP_FRAMES):
            mels.append(m[start : start + cso.CROP_FRAMES])
            conditions.append(noisy_queries(directions[name], 2, rng))
            labels.append(name)
    return cso.MelSet(np.stack(mels), conditions), labels


def centroid_classifier(mels: np.ndarray, labels: list[str]):
    names = sorted(set(labels))
    features = mels.mean(1)
    centroids = np.stack([features[[label == n for label in labels]].mean(0) for n in names])

    def classify(x: np.ndarray) -> list[str]:
        distances = ((x.mean(1)[:, None] - centroids[None]) ** 2).sum(-1)
        return [names[i] for i in distances.argmin(1)]

    return classify


def accuracy(predicted: list[str], labels: list[str]) -> float:
    return float(np.mean([p == t for p, t in zip(predicted, labels)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="demo", choices=sorted(cso.PROFILES))
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--prediction", choices=cso.PREDICTIONS)
    parser.add_argument("--min-snr-gamma", type=float)
    parser.add_argument("--warmup-steps", type=int)
    parser.add_argument("--lr-floor", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--guidance", type=float, nargs="+", help="weights to sample with (default: the profile's)")
    parser.add_argument("--per-instrument", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--ddpm-per-instrument", type=int, default=1, help="queries per instrument also sampled by DDPM")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    names = ("max_steps", "batch_size", "lr", "prediction", "min_snr_gamma", "warmup_steps", "lr_floor", "seed")
    given = {name: getattr(args, name) for name in names}
    overrides = {k: v for k, v in given.items() if v is not None}
    cfg = dataclasses.replace(cso.PROFILES[args.profile], **overrides)
    rng = np.random.default_rng(0)
    unit = rng.standard_normal((len(synthetic.INSTRUMENTS), cfg.cond_dim))
    directions = dict(zip(synthetic.INSTRUMENTS, unit / np.linalg.norm(unit, axis=1, keepdims=True)))
    mels = render_mels(args.clips, args.seconds, args.cache)
    train, train_labels = crop_set([(n, m) for n, ms in mels.items() for m in ms[:-1]], directions, rng)
    valid, valid_labels = crop_set([(n, ms[-1]) for n, ms in mels.items()], directions, rng)
    classify = centroid_classifier(train.mels, train_labels)

    with tempfile.TemporaryDirectory() as ckpt:
        start = time.perf_counter()
        model, result = cso.train(cfg, train, valid, ckpt, lambda metrics, step: None, device=torch.device("cpu"))
        train_s = time.perf_counter() - start

    instruments = list(synthetic.INSTRUMENTS)
    queried = [n for n in instruments for _ in range(args.per_instrument)]
    queries = np.concatenate([noisy_queries(directions[n], args.per_instrument, rng) for n in instruments])
    shuffled = [queried[i] for i in rng.permutation(len(queried))]
    scores = []
    for guidance in args.guidance or [cfg.guidance]:
        start = time.perf_counter()
        predicted = classify(cso.generate(model, queries, guidance, cfg.fast_steps, "ddim", seed=1))
        ddim_s = (time.perf_counter() - start) / len(queries)
        scores += [
            (f"DDIM samples as queried (w={guidance})", f"{accuracy(predicted, queried):.3f}"),
            (f"DDIM samples vs shuffled queries (w={guidance})", f"{accuracy(predicted, shuffled):.3f}"),
        ]
    ddpm_s = float("nan")
    if args.ddpm_per_instrument:
        first = [i for i in range(len(queries)) if i % args.per_instrument < args.ddpm_per_instrument]
        start = time.perf_counter()
        ddpm = cso.generate(model, queries[first], cfg.guidance, cfg.sample_steps, "ddpm", seed=1)
        ddpm_s = (time.perf_counter() - start) / len(first)
        ddim = cso.generate(model, queries[first], cfg.guidance, cfg.fast_steps, "ddim", seed=1)
        truth = [queried[i] for i in first]
        scores += [
            (f"DDPM samples as queried (w={cfg.guidance}, {len(first)} clips)", f"{accuracy(classify(ddpm), truth):.3f}"),
            (f"DDIM samples of the same queries (w={cfg.guidance})", f"{accuracy(classify(ddim), truth):.3f}"),
        ]

    rows = [
        ("profile", f"{args.profile} ({', '.join(f'{k}={v}' for k, v in overrides.items()) or 'as defined'})"),
        ("train crops / valid crops", f"{len(train.mels)} / {len(valid.mels)}"),
        ("training", f"{result.steps} steps, batch {cfg.batch_size}: {train_s:.0f} s, "
                     f"{result.steps / train_s:.2f} steps/s"),
        ("best val_loss (step)", f"{result.best_metric:.4f} ({result.best_step})"),
        (f"DDIM {cfg.fast_steps} steps, batch 16", f"{ddim_s:.2f} s/clip"),
        (f"DDPM {cfg.sample_steps} steps, batch 16", f"{ddpm_s:.1f} s/clip"),
        ("real valid crops, classifier accuracy", f"{accuracy(classify(valid.mels), valid_labels):.3f}"),
        *scores,
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
