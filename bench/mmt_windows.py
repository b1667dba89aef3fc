"""Where MMT's training windows fall in the songs: codes cut at 256 beats and 1,024 rows (as
`mmt_codes` stored them before) against whole songs with the published loader's window draw.

Usage: .venv/bin/python bench/mmt_windows.py [--draws 200] [--datasets ...] [--out bench/results/mmt_windows.json]

Every song of the multi-part music21 collections is parsed, encoded and passed through the paper
profile's data preparation. For each kept song ``--draws`` training windows (256 beats, 1,024
rows, the paper setup) are drawn per setting; reported are the distinct start beats, the latest
start, and the share of the song's notes that at least one window showed the model. The
Beethoven op. 59 no. 1 finale gets its own row.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assets.core.rejects import Reject
from assets.mmt.codes import DEFAULT_DATASETS, encode_songs
from assets.scores.datasets import list_items
from assets.scores.ingest import Parsed, default_workers, parse_all
from models import mmt
from models.mmt import encoding

FOCUS = "beethoven/opus59no1/movement4.mxl"
CFG = mmt.PROFILES["paper"]


def draws(codes: np.ndarray, n: int, rng: np.random.Generator, song_notes: int) -> dict[str, float]:
    """Start beats of ``n`` windows of ``codes`` and the share of the song's ``song_notes`` notes they
    cover; stored codes cut from a song hold a prefix of its notes, so indices line up."""
    beats = codes[codes[:, 0] == encoding.TYPE_NOTE, encoding.BEAT] - 1
    seen = np.zeros(song_notes, dtype=bool)
    starts = []
    for _ in range(n):
        start = mmt.draw_start(beats, CFG.max_beat, rng)
        shown = int((mmt.window_at(codes, start, CFG.max_beat, CFG.max_seq_len)[:, 0] == encoding.TYPE_NOTE).sum())
        first = int(np.searchsorted(beats, start))
        seen[first : first + shown] = True
        starts.append(start)
    return {"distinct_starts": len(set(starts)), "last_start": max(starts), "notes_seen": float(seen.mean())}


def songs(datasets: list[str], workers: int) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Whole-song codes of every song the paper preparation keeps, and the songs of each reject reason."""
    items = [item for name in datasets for item in list_items(name, tempfile.gettempdir())]
    kept, dropped = {}, {}
    rules = mmt.PREPARATIONS["paper"]
    every_song_trains = defaultdict(lambda: "train")
    for result in tqdm(parse_all(items, workers=workers), total=len(items), desc="parse"):
        if not isinstance(result, Parsed):
            dropped.setdefault("unreadable", []).append(result.item)
            continue
        for row in encode_songs("bench", result.notes.to_batches(), every_song_trains, rules):
            if isinstance(row, Reject):
                dropped.setdefault(re.sub(r"\d+(\.\d+)?", "N", row.message), []).append(row.item)
            else:
                kept[row["song"]] = np.array(row["codes"], dtype=np.int64)
    return kept, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--out", default="bench/results/mmt_windows.json")
    args = parser.parse_args()
    kept, dropped = songs(args.datasets, args.workers)
    rng = np.random.default_rng(0)
    rows: dict[str, list[dict]] = {"before": [], "after": []}
    focus = {}
    for song, codes in tqdm(kept.items(), desc="windows"):
        for setting, source in (("before", mmt.window(codes, CFG.max_beat, CFG.max_seq_len)), ("after", codes)):
            song_notes = int((codes[:, 0] == encoding.TYPE_NOTE).sum())
            stats = draws(source, args.draws, rng, song_notes) | {"beats": int(codes[-2, encoding.BEAT])}
            rows[setting].append(stats)
            if song.endswith(FOCUS):
                focus[setting] = stats
    summary = {
        setting: {
            "songs": len(stats),
            "songs_longer_than_window": sum(s["beats"] > CFG.max_beat for s in stats),
            "mean_distinct_starts": float(np.mean([s["distinct_starts"] for s in stats])),
            "mean_notes_seen": float(np.mean([s["notes_seen"] for s in stats])),
            "notes_seen_long_songs": float(np.mean([s["notes_seen"] for s in stats if s["beats"] > CFG.max_beat] or [np.nan])),
        }
        for setting, stats in rows.items()
    }
    report = {"args": vars(args), "dropped": dropped, "summary": summary, "focus": {FOCUS: focus}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    counts = {reason: len(names) for reason, names in dropped.items()}
    print(f"\n{len(kept)} songs kept; dropped by the paper preparation: {counts}\n")
    print(f"| stored codes | songs | longer than 256 beats | distinct starts per {args.draws} draws | notes seen | notes seen, long songs |")
    print("|---|---|---|---|---|---|")
    for setting, label in (("before", "cut at 256 beats, 1,024 rows"), ("after", "whole songs")):
        s = summary[setting]
        print(f"| {label} | {s['songs']} | {s['songs_longer_than_window']} | {s['mean_distinct_starts']:.1f} "
              f"| {s['mean_notes_seen']:.3f} | {s['notes_seen_long_songs']:.3f} |")
    for setting, s in focus.items():
        print(f"\n{FOCUS} ({s['beats']} beats), {setting}: {s['distinct_starts']} distinct starts, "
              f"latest {s['last_start']}, notes seen {s['notes_seen']:.3f}")


if __name__ == "__main__":
    main()
