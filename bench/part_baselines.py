"""Automatic-instrumentation baselines on the Bach chorales: test-split note accuracy.

Usage: .venv/bin/python bench/part_baselines.py [--dataset bach_chorales] [--reader lineage|music21] [--seeds 30]

Songs go through the lineage's own steps (read, note rows, `part_notes.build`); zones are fitted on
the training split. Each baseline is scored on the seed-0 test split and, since a test split is
only about 40 chorales, as mean and standard deviation over `--seeds` split seeds. Two data
preparations: the lineage's (one note per onset and pitch of the mixture) and Arranger's (voices
meeting in unison both kept, `keep_unisons=True`). `--reader music21` parses every MusicXML file
with music21 instead of the lineage's reader. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import music21
import numpy as np
import pyarrow as pa

from assets.instrumentation import baselines as pb
from assets.instrumentation import part_notes
from assets.scores.datasets import list_items
from assets.scores.ingest import music_to_rows
from assets.scores.music21_convert import from_music21
from assets.scores.readers import read_item
from assets.scores.songs import assign_splits

PUBLISHED = {"zone-based": "73", "closest-pitch mono": "90"}  # Dong et al. 2021, Bach chorales


def note_tables(dataset: str, reader: str) -> list[pa.Table]:
    tables = []
    for item in list_items(dataset, ".baton/raw"):
        music = from_music21(music21.converter.parse(item.path)) if reader == "music21" else read_item(item)
        tables.append(music_to_rows(music, item, "").notes)
    return tables


def scores(songs: list[part_notes.PartSong], song_ids: list[str], seeds: int) -> dict[str, list[float]]:
    """Test accuracy of every baseline for split seeds 0..seeds-1 (closest-pitch does not depend on the split)."""
    n_parts = len(songs[0].part_names)
    fixed = {
        "zone oracle": {s.song: pb.predict_zones(pb.oracle_zones(s), s.pitch) for s in songs},
        "closest-pitch": {s.song: pb.closest_pitch_song(s) for s in songs},
        "closest-pitch mono": {s.song: pb.closest_pitch_song(s, mono=True) for s in songs},
    }
    result: dict[str, list[float]] = {"zone-based": [], **{name: [] for name in fixed}}
    for seed in range(seeds):
        splits = assign_splits(song_ids, seed)
        train = [s for s in songs if splits[s.song] == "train"]
        test = [s for s in songs if splits[s.song] == "test"]
        labels = [s.label for s in test]
        zones = pb.fit_zones(train, n_parts)
        result["zone-based"].append(pb.accuracy([pb.predict_zones(zones, s.pitch) for s in test], labels))
        for name, preds in fixed.items():
            result[name].append(pb.accuracy([preds[s.song] for s in test], labels))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="bach_chorales")
    parser.add_argument("--reader", choices=("lineage", "music21"), default="lineage")
    parser.add_argument("--seeds", type=int, default=30)
    args = parser.parse_args()
    start = time.perf_counter()
    tables = note_tables(args.dataset, args.reader)
    print(f"{args.dataset}, {args.reader} reader, {len(tables)} items\n")
    print(f"| data | baseline | seed 0 (%) | {args.seeds} seeds (%) | published (%) |\n|---|---|---|---|---|")
    for keep_unisons in (False, True):
        songs, skips = part_notes.build((b for t in tables for b in t.to_batches()), keep_unisons=keep_unisons)
        n_test = sum(s.split == "test" for s in songs)
        prep = "unisons kept" if keep_unisons else "lineage"
        data = f"{prep}: {len(songs)} songs ({len(skips)} skipped), {n_test} test"
        for name, acc in scores(songs, [s.song for s in songs] + [k.song for k in skips], args.seeds).items():
            acc = 100 * np.array(acc)
            spread = f"{acc.mean():.1f} ± {acc.std():.1f}"
            print(f"| {data} | {name} | {acc[0]:.1f} | {spread} | {PUBLISHED.get(name, '')} |")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
