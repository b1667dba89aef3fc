"""Automatic instrumentation of the Bach chorales: Arranger's online LSTM and offline BiLSTM on CPU.

Usage: .venv/bin/python bench/part_separation.py [--archs lstm bilstm] [--max-steps N] [--work DIR]
Extracts the music21 Bach chorales into SATB part-labelled downmixes (split 8:1:1, seed 0),
trains each architecture with the paper profile in its own single-threaded process (so two
runs share two cores), and reports micro-averaged test accuracy with the songs' own hints
(entry + pitch) and without labels (no entry hints, training-set pitch means). A rerun with
the same --work resumes the training runs from their last checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from assets.instrumentation import baselines as part_baselines
from assets.instrumentation import part_notes
from assets.scores import ingest
from assets.scores.datasets import list_items

DATASET = "bach_chorales"
PUBLISHED = {"lstm": 0.91, "bilstm": 0.95}  # the thesis's Bach accuracies the runs should reach


def extract(raw_dir: str, cache: Path) -> tuple[list[part_notes.PartSong], int, int]:
    """Part songs (cached as Parquet), the number of score items and the number of songs skipped."""
    items = list_items(DATASET, raw_dir)
    meta = cache.with_suffix(".json")
    if cache.exists() and meta.exists():
        return part_notes.from_table(pq.read_table(cache)), len(items), json.loads(meta.read_text())["skipped"]
    bar = tqdm(total=len(items), desc="parse chorales", unit="file")
    parsed = [r for r in ingest.parse_all(items, on_result=bar.update) if isinstance(r, ingest.Parsed)]
    bar.close()
    songs, skipped = part_notes.build((b for p in parsed for b in p.notes.to_batches()), seed=0)
    cache.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(part_notes.to_table(songs), cache)
    meta.write_text(json.dumps({"skipped": len(skipped), "parsed": len(parsed)}))
    return songs, len(items), len(skipped)


def run(arch: str, args: argparse.Namespace, songs: list[part_notes.PartSong]) -> dict:
    """Train one architecture single-threaded and evaluate it on the test split."""
    import torch

    from models import part_separation as ps

    torch.set_num_threads(1)
    split = {name: [s for s in songs if s.split == name] for name in ("train", "valid", "test")}
    cfg = replace(
        ps.PROFILES["paper"],
        arch=arch,
        max_steps=args.max_steps,
        eval_every=args.eval_every,
        checkpoint_every=args.eval_every,
        patience=args.patience,
    )
    cfg = ps.configure(cfg, split["train"])
    out = Path(args.work) / arch
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.jsonl", "a") as metrics_log:

        def log(metrics: dict[str, float], step: int) -> None:
            if step % args.eval_every == 0:
                metrics_log.write(json.dumps({"step": step, **metrics}) + "\n")
                metrics_log.flush()

        start = time.perf_counter()
        model, result = ps.train(
            cfg, split["train"], split["valid"], str(out / "checkpoints"), log, device="cpu", progress=True
        )
        seconds = time.perf_counter() - start
    ps.save_model(model, cfg, str(out / "model"))
    report = {"train_seconds": seconds, "fit": asdict(result), "config": asdict(cfg)}
    for name, use_hints in (("with_hints", True), ("without_hints", False)):
        test = ps.evaluate(model, cfg, split["test"], use_hints)
        report[name] = {
            "accuracy": test["accuracy"],
            "loss": test["loss"],
            "n_notes": test["n_notes"],
            "confusion": part_baselines.confusion_matrix(test["predictions"], test["labels"], cfg.n_parts).tolist(),
        }
    report["published"] = PUBLISHED.get(arch)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["lstm", "bilstm"])
    parser.add_argument("--max-steps", type=int, default=1000, help="chosen to fit ~25 minutes per run on one core")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--patience", type=int, default=10, help="evaluations without a better val_loss")
    parser.add_argument("--raw-dir", default=".baton/raw")
    parser.add_argument("--work", default=".baton/cache/bench_part_separation", help="checkpoints, logs, models")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()

    songs, n_items, n_skipped = extract(args.raw_dir, Path(args.work) / "part_notes.parquet")
    counts = {name: sum(s.split == name for s in songs) for name in ("train", "valid", "test")}
    notes = {name: int(sum(len(s.pitch) for s in songs if s.split == name)) for name in counts}
    print(f"{n_items} chorale files -> {len(songs)} songs ({n_skipped} skipped): {counts}, notes {notes}")

    with ProcessPoolExecutor(max_workers=len(args.archs)) as pool:
        futures = {arch: pool.submit(run, arch, args, songs) for arch in args.archs}
        results = {arch: f.result() for arch, f in futures.items()}

    report = {
        "dataset": DATASET,
        "items": n_items,
        "songs": counts,
        "skipped": n_skipped,
        "notes": notes,
        "parts": list(songs[0].part_names),
        "test_notes_per_part": np.bincount(
            np.concatenate([s.label for s in songs if s.split == "test"]), minlength=len(songs[0].part_names)
        ).tolist(),
        "cores": os.cpu_count(),
        "command": " ".join(["python", *sys.argv]),
        "results": results,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "part_separation.json"), "w") as f:
        json.dump(report, f, indent=2)
    for arch, r in results.items():
        print(
            f"{arch}: test accuracy {r['with_hints']['accuracy']:.4f} with hints, "
            f"{r['without_hints']['accuracy']:.4f} without (published {r['published']}); "
            f"{r['fit']['steps']} steps in {r['train_seconds'] / 60:.1f} min, best at {r['fit']['best_step']}"
        )


if __name__ == "__main__":
    main()
