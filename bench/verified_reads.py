"""What checking each shard's sha256 costs a read, as a percentage over the same read unverified.

Usage: .venv/bin/python bench/verified_reads.py [--rows N] [--repeats R] [--root DATASETS_ROOT]
Writes a seeded notes-like table (the `notes` schema, songs of 500 notes, 100,000-row shards) to a
temporary shard set, or reads the one already under --root/bench_notes, then times read_table and
a full iter_batches pass with verify=True and verify=False, alternating, and reports the medians.
Both sides read each shard's bytes once into memory; the difference is the hashing alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from assets.scores.tables import NOTES
from storage import shards

ASSET, PARTITION = "bench_notes", "synthetic"


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


def _drain(root: str, verify: bool) -> int:
    return sum(b.num_rows for b in shards.iter_batches(root, ASSET, PARTITION, verify=verify))


def measure(root: str, repeats: int) -> dict[str, tuple[float, float]]:
    """Median seconds (verified, unverified) per read path; runs alternate so drift hits both."""
    paths = {
        "read_table": lambda verify: shards.read_table(root, ASSET, PARTITION, verify=verify),
        "iter_batches": lambda verify: _drain(root, verify),
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
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", help="datasets root holding bench_notes/synthetic (written if absent)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or tmp
        if shards.read_manifest(root, ASSET, PARTITION) is None:
            shards.write_table(root, ASSET, PARTITION, notes_table(args.rows))
        manifest = shards.read_manifest(root, ASSET, PARTITION)
        print(f"{manifest.rows:,} rows, {len(manifest.shards)} shards, {manifest.bytes / 2**20:.1f} MiB")
        print("| read | verified s | unverified s | overhead |")
        print("|---|---|---|---|")
        for name, (verified, unverified) in measure(root, args.repeats).items():
            print(f"| {name} | {verified:.3f} | {unverified:.3f} | {100 * (verified / unverified - 1):+.1f} % |")


if __name__ == "__main__":
    main()
