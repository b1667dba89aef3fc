"""What checking each shard's sha256 costs a read, as a percentage over the same read unverified.

Usage: .venv/bin/python bench/verified_reads.py [--dataset NAME ...] [--rows N] [--repeats R] [--root DATASETS_ROOT]
With --dataset, reads the real `notes` of each named dataset (for example bach_chorales, oneills),
ingesting it first with Baton's own parser pool and shard writer when --root does not hold it yet.
Without, writes a seeded notes-like table (the `notes` schema, songs of 500 notes, 100,000-row
shards). Then times read_table and a full iter_batches pass with verify=True and verify=False,
alternating, and reports the medians. Both sides read each shard's bytes once into memory; the
difference is the hashing alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from assets.scores import ingest
from assets.scores.datasets import list_items
from assets.scores.tables import NOTES
from storage import shards

SYNTHETIC = ("bench_notes", "synthetic")


def notes_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    song = np.arange(rows) // 500
    onset = np.cumsum(rng.integers(0, 480, rows))
    duration = rng.integers(1, 960, rows)
    columns = {
        "song": pa.array([f"song-{s:06d}" for s in song]),
        "dataset": pa.array(["synthetic"] * rows),
        "track": rng.integers(0, 4, rows).astype(np.int16),
        "part_name": pa.array(["Piano"] * rows),
        "program": rng.integers(0, 128, rows).astype(np.int8),
        "is_drum": np.zeros(rows, dtype=bool),
        "resolution": np.full(rows, 480, dtype=np.int32),
        "onset": onset,
        "duration": duration,
        "onset_seconds": onset / 960.0,
        "duration_seconds": duration / 960.0,
        "pitch": rng.integers(21, 109, rows).astype(np.int8),
        "velocity": rng.integers(1, 128, rows).astype(np.int8),
        "beat": onset // 480,
        "position": (onset % 480).astype(np.int32),
    }
    return pa.table(columns, schema=NOTES)


def _seconds(read: Callable[[bool], object], verify: bool) -> float:
    start = time.perf_counter()
    read(verify)
    return time.perf_counter() - start


def ingest_notes(root: str, dataset: str, raw_dir: str) -> None:
    """The dataset's `notes` shard set, written as the `ingest_scores` asset writes it."""
    items = list_items(dataset, raw_dir, None)
    with shards.ShardWriter(root, "notes", dataset, NOTES) as writer:
        ingest.write_parsed(ingest.parse_all(items), writer)


def _drain(root: str, asset: str, partition: str, verify: bool) -> int:
    return sum(b.num_rows for b in shards.iter_batches(root, asset, partition, verify=verify))


def measure(root: str, asset: str, partition: str, repeats: int) -> dict[str, tuple[float, float]]:
    """Median seconds (verified, unverified) per read path; runs alternate so drift hits both."""
    paths = {
        "read_table": lambda verify: shards.read_table(root, asset, partition, verify=verify),
        "iter_batches": lambda verify: _drain(root, asset, partition, verify),
    }
    results = {}
    for name, read in paths.items():
        read(True)  # warm the page cache and pyarrow's allocator
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(repeats):
            for verify in (True, False):
                times[verify].append(_seconds(read, verify))
        results[name] = (statistics.median(times[True]), statistics.median(times[False]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", default=[], help="read this dataset's real notes (repeatable)")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the synthetic table")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", help="datasets root holding the shard sets (written there if absent)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or tmp
        sets = [("notes", d) for d in args.dataset] or [SYNTHETIC]
        print("| notes of | rows | shards | MiB | read | verified s | unverified s | overhead |")
        print("|---|---|---|---|---|---|---|---|")
        for asset, partition in sets:
            if shards.read_manifest(root, asset, partition) is None:
                if (asset, partition) == SYNTHETIC:
                    shards.write_table(root, asset, partition, notes_table(args.rows))
                else:
                    ingest_notes(root, partition, tmp)
            m = shards.read_manifest(root, asset, partition)
            for name, (verified, unverified) in measure(root, asset, partition, args.repeats).items():
                print(
                    f"| {partition} | {m.rows:,} | {len(m.shards)} | {m.bytes / 2**20:.1f} | {name} "
                    f"| {verified:.3f} | {unverified:.3f} | {100 * (verified / unverified - 1):+.1f} % |"
                )


if __name__ == "__main__":
    main()
