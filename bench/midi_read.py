"""MIDI ingestion: Baton's symusic path into Parquet against bare symusic and bare muspy.read_midi.

Usage: .venv/bin/python bench/midi_read.py [--corpus DIR] [--files N] [--workers N] [--out BENCH_DIR]
Reads every .mid under --corpus (a Lakh MIDI folder when there is one). A folder with fewer than
--files files is first filled from the music21 corpus: each score under 60 kB (each of the first 20
tunes of an ABC opus) written as MIDI by music21, one track per part, every third one given a tempo
change half way through.
Times, each on the same files: the bare single-process symusic.Score loop, the bare single-process
muspy.read_midi loop, and the whole ingestion (parse_all over --workers processes, notes streamed
into Parquet shards by write_parsed). The compiled scan is loaded from numba's cache (or compiled)
first and timed on its own: a process pays it once, not per file. Every file's rows from the symusic path are compared with the
muspy path's (read_item + music_to_rows); the count of files that differ must be 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import muspy
import symusic

from assets.scores import ingest, midi_arrays, tables
from assets.scores.datasets import ScoreItem
from assets.scores.readers import read_item
from storage import shards

MUSIC21_SUFFIXES = (".krn", ".mxl", ".xml", ".musicxml", ".abc")
TUNES_PER_OPUS = 20
MAX_SOURCE_BYTES = 60_000  # music21 takes minutes over a symphony; chorales and songs take a second


def music21_sources() -> list[str]:
    """Corpus files, ABC opuses last: they are slow to parse and each gives many tunes."""
    import music21

    paths = [
        str(p) for p in music21.corpus.getPaths() if p.suffix in MUSIC21_SUFFIXES and p.stat().st_size < MAX_SOURCE_BYTES
    ]
    return sorted(paths, key=lambda p: (p.endswith(".abc"), p))


def write_music21_midi(args: tuple[str, str]) -> int:
    """The scores of one corpus file as MIDI files in `folder`; 0 written when music21 fails on it."""
    import music21

    source, folder = args
    try:
        parsed = music21.corpus.parse(source)
    except Exception:  # noqa: BLE001 - a corpus file music21 cannot read is left out
        return 0
    scores = parsed.scores[:TUNES_PER_OPUS] if isinstance(parsed, music21.stream.Opus) else [parsed]
    written = 0
    for number, score in enumerate(scores):
        name = Path(folder) / f"{hashlib.sha1(f'{source}:{number}'.encode()).hexdigest()[:12]}.mid"
        try:
            if number % 3 == 0:
                _tempo_change(score, 60 + len(source) % 100)
            score.write("midi", fp=str(name))
            written += 1
        except Exception:  # noqa: BLE001
            name.unlink(missing_ok=True)
    return written


def _tempo_change(score, qpm: int) -> None:
    import music21

    parts = score.parts
    measures = parts[0].getElementsByClass("Measure") if len(parts) else []
    if len(measures) > 1:
        measures[len(measures) // 2].insert(0, music21.tempo.MetronomeMark(number=qpm))


def fill_corpus(folder: Path, count: int, workers: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sources = music21_sources()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(write_music21_midi, [(s, str(folder)) for s in sources], chunksize=4):
            if len(list(folder.glob("*.mid"))) >= count:
                break


def timed(label: str, files: int, run: Callable[[], int]) -> dict:
    """Files/s and notes/s of `run`, which reads all files and returns the notes it read."""
    start = time.perf_counter()
    notes = run()
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "files": files, "notes": notes, "files_per_s": files / seconds, "notes_per_s": notes / seconds}
    print(f"{label:40s} {files:6d} files {notes:9d} notes {seconds:8.2f} s {result['files_per_s']:8.1f} files/s {result['notes_per_s']:10.0f} notes/s")
    return result


def ingest_to_parquet(items: list[ScoreItem], workers: int, readers: Counter) -> int:
    with tempfile.TemporaryDirectory() as root, shards.ShardWriter(root, "notes", "bench", tables.NOTES, rows_per_shard=250_000) as writer:
        songs, rejects = ingest.write_parsed(ingest.parse_all(items, workers=workers), writer)
    readers.update(song["reader"] for song in songs)
    readers.update(f"reject:{r.error_type}" for r in rejects)
    return sum(song["n_notes"] for song in songs)


def differs(item: ScoreItem) -> bool:
    """Whether the rows ingestion stores differ from the muspy path's (files muspy rejects count as
    equal when ingestion rejects them too)."""
    new = ingest.parse_item(item)
    try:
        old = ingest.music_to_rows(read_item(item), item, "")
    except Exception:  # noqa: BLE001
        return not isinstance(new, ingest.Reject)
    if not isinstance(new, ingest.Parsed):
        return True
    return not old.notes.equals(new.notes) or old.song != {**new.song, "sha256": "", "reader": "muspy"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", default=".baton/cache/bench_midi")
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=ingest.default_workers())
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    folder = Path(args.corpus)
    if len(list(folder.glob("*.mid"))) < args.files:
        fill_corpus(folder, args.files, args.workers)
    items = [ScoreItem("bench", p.stem, str(p), "midi", None) for p in sorted(folder.rglob("*.mid"))]
    n = len(items)
    readers: Counter = Counter()
    start = time.perf_counter()
    midi_arrays.load_scan()
    print(f"scan loaded (or compiled) in {time.perf_counter() - start:.2f} s")
    report = {
        "scan_load_s": time.perf_counter() - start,
        "files": n,
        "cores": len(os.sched_getaffinity(0)),
        "workers": args.workers,
        "bare_symusic": timed("symusic.Score loop, 1 process", n, lambda: sum(symusic.Score(i.path).note_num() for i in items)),
        "ingest_to_parquet": timed(f"parse_all to Parquet, {args.workers} workers", n, lambda: ingest_to_parquet(items, args.workers, readers)),
        "bare_muspy_read_midi": timed(
            "muspy.read_midi loop, 1 process", n, lambda: sum(len(t.notes) for i in items for t in muspy.read_midi(i.path).tracks)
        ),
    }
    report["readers"] = dict(readers)
    report["files_whose_rows_differ"] = sum(differs(item) for item in items)
    report["ratio_to_bare_symusic"] = report["ingest_to_parquet"]["files_per_s"] / report["bare_symusic"]["files_per_s"]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "midi_read.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps({k: report[k] for k in ("files", "readers", "files_whose_rows_differ", "ratio_to_bare_symusic")}))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
