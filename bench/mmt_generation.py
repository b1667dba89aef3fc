"""MMT generation speed with and without the key/value cache.

Usage: .venv/bin/python bench/mmt_generation.py [--events 1024] [--device auto|cpu|cuda] [--dim 512 --layers 6]
                                               [--threads N]

A paper-size MMT (random weights: speed does not depend on training) generates one unconditioned
song of exactly --events rows, once recomputing the whole prefix every step (the published
x-transformers sampler does this) and once with the cache. End-of-song is made unlikely by
its output bias so that every run reaches --events rows; the constraints still close the song
with end-of-song on the last row. Writes bench/results/mmt_generation.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm import tqdm

from models.checkpoints import seed_everything
from models.mmt import MMT, PROFILES, generate, unconditioned_prompt
from models.mmt.encoding import TYPE_END, TYPE_NOTE


def time_generation(model: MMT, events: int, use_cache: bool, device: torch.device) -> dict[str, float]:
    generate(model, unconditioned_prompt(), 16, use_cache=use_cache, device=device)  # warm-up
    start = time.perf_counter()
    codes = generate(model, unconditioned_prompt(), events, use_cache=use_cache, device=device, progress=True)
    seconds = time.perf_counter() - start
    notes = int((codes[:, 0] == TYPE_NOTE).sum())
    return {
        "device": device.type,
        "cache": use_cache,
        "events": len(codes),
        "notes": notes,
        "seconds": seconds,
        "events_per_s": len(codes) / seconds,
        "notes_per_s": notes / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1024, help="rows to generate (at most max_seq_len, 1024)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto: cpu and, when present, cuda")
    parser.add_argument("--dim", type=int, default=PROFILES["paper"].dim)
    parser.add_argument("--layers", type=int, default=PROFILES["paper"].layers)
    parser.add_argument("--heads", type=int, default=PROFILES["paper"].heads)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for torch")
    parser.add_argument("--out", default="bench/results/mmt_generation.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cfg = replace(PROFILES["paper"], dim=args.dim, layers=args.layers, heads=args.heads, seed=args.seed)
    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]
    seed_everything(cfg.seed)
    model = MMT(cfg)
    with torch.no_grad():
        model.heads[0].bias[TYPE_END] = -1e4
    parameters = sum(p.numel() for p in model.parameters())
    print(f"MMT dim={cfg.dim} layers={cfg.layers} heads={cfg.heads}: {parameters:,} parameters")

    runs = []
    cases = [(d, c) for d in devices for c in (False, True)]
    for device, use_cache in tqdm(cases, desc="runs", unit="run"):
        runs.append(time_generation(model, args.events, use_cache, torch.device(device)))
    speedup = {}
    for device in devices:
        by_cache = {r["cache"]: r for r in runs if r["device"] == device}
        speedup[device] = by_cache[True]["events_per_s"] / by_cache[False]["events_per_s"]

    report = {
        "command": "python bench/mmt_generation.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "model": asdict(cfg) | {"parameters": parameters},
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name() if "cuda" in devices else None,
        },
        "runs": runs,
        "speedup": speedup,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))

    print("\n| device | cache | events | notes | seconds | events/s | notes/s |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['device']} | {'yes' if r['cache'] else 'no'} | {r['events']} | {r['notes']} | "
            f"{r['seconds']:.2f} | {r['events_per_s']:.1f} | {r['notes_per_s']:.1f} |"
        )
    for device, factor in speedup.items():
        print(f"\nspeed-up from the cache on {device}: {factor:.1f}×")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
