"""Ingestion throughput over the whole music21 corpus: Baton's pool + Parquet vs a muspy.read loop.

Usage: .venv/bin/python bench/ingest.py [--workers N] [--stride K] [--out BENCH_DIR]
Both sides parse the same items. The baseline is the plain single-process loop a MusPy user
writes: muspy.read for the formats muspy 0.5 still reads itself (MIDI, MusicXML); for ABC and
Humdrum, whose muspy bridge is broken under music21 >= 9, it calls the same music21 conversion
Baton uses, so the comparison measures orchestration, not a different parser.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import music21
import muspy
from tqdm import tqdm

from assets.scores import ingest, tables
from assets.scores.datasets.local import list_folder
from assets.scores.readers import read_item
from storage import shards

MUSPY_NATIVE = {"midi", "musicxml"}


def baseline(items) -> tuple[float, int, int]:
    start, notes, ok = time.perf_counter(), 0, 0
    for item in tqdm(items, desc="muspy.read loop", unit="file"):
        try:
            music = muspy.read(item.path) if item.format in MUSPY_NATIVE else read_item(item)
        except Exception:  # noqa: BLE001 - the baseline skips what it cannot read
            continue
        ok += 1
        notes += sum(len(t.notes) for t in music.tracks)
    return time.perf_counter() - start, ok, notes


def baton(items, workers: int, root: str) -> tuple[float, int, int]:
    start, ok, notes = time.perf_counter(), 0, 0
    bar = tqdm(total=len(items), desc=f"baton ({workers} workers)", unit="file")
    with shards.ShardWriter(root, "notes", "bench", tables.NOTES, rows_per_shard=250_000) as writer:
        for result in ingest.parse_all(items, workers=workers, on_result=bar.update):
            if isinstance(result, ingest.Parsed):
                ok += 1
                notes += result.notes.num_rows
                writer.write(result.notes)
    bar.close()
    return time.perf_counter() - start, ok, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=ingest.default_workers())
    parser.add_argument("--stride", type=int, default=1, help="every K-th item of the sorted corpus (quicker runs)")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    corpus = os.path.join(os.path.dirname(music21.__file__), "corpus")
    items = [i for i in list_folder("music21", corpus) if i.format != "unknown"]
    items = items[:: args.stride]
    formats = {f: sum(i.format == f for i in items) for f in sorted({i.format for i in items})}
    print(f"{len(items)} items from {corpus}: {formats}")
    with tempfile.TemporaryDirectory() as root:
        ours = baton(items, args.workers, root)
    base = baseline(items)
    report = {
        "items": len(items),
        "formats": formats,
        "stride": args.stride,
        "workers": args.workers,
        "cores": os.cpu_count(),
        "baseline": {"seconds": base[0], "files": base[1], "notes": base[2]},
        "baton": {"seconds": ours[0], "files": ours[1], "notes": ours[2]},
    }
    for side in ("baseline", "baton"):
        r = report[side]
        r["files_per_s"] = r["files"] / r["seconds"]
        r["notes_per_s"] = r["notes"] / r["seconds"]
    report["speedup_files_per_s"] = report["baton"]["files_per_s"] / report["baseline"]["files_per_s"]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ingest.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
