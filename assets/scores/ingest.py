"""Score files to song rows and note tables, fanned out over a process pool.

Parsing dominates ingestion time and is independent per file, so items go to a pool sized to
the cores; results come back in item order so that re-running gives byte-identical shards.
A failing item becomes a reject row instead of an exception; a worker that dies takes only
its own item with it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass

import muspy
import numpy as np
import pandas as pd
import pyarrow as pa

from assets.core.rejects import Reject
from assets.scores import tables
from assets.scores.datasets import ScoreItem
from assets.scores.readers import read_item
from storage import shards

DEFAULT_QPM = 120.0


@dataclass(frozen=True)
class Parsed:
    song: dict
    notes: pa.Table


def tick_seconds(ticks: np.ndarray, tempo_times: np.ndarray, qpms: np.ndarray, resolution: int) -> np.ndarray:
    """Ticks to seconds under a piecewise-constant tempo map (the first tempo also covers time 0)."""
    if len(tempo_times) == 0:
        tempo_times, qpms = np.zeros(1, np.int64), np.array([DEFAULT_QPM])
    order = np.argsort(tempo_times, kind="stable")
    starts = tempo_times[order].astype(np.float64)
    starts[0] = 0.0
    sec_per_tick = 60.0 / (qpms[order] * resolution)
    start_seconds = np.concatenate([[0.0], np.cumsum(np.diff(starts) * sec_per_tick[:-1])])
    idx = np.searchsorted(starts, ticks, side="right") - 1
    idx = np.clip(idx, 0, len(starts) - 1)
    return start_seconds[idx] + (ticks - starts[idx]) * sec_per_tick[idx]


def music_to_rows(music: muspy.Music, item: ScoreItem, sha256: str) -> Parsed:
    """One song row and its note table; every per-note quantity is computed on whole arrays."""
    res = int(music.resolution)
    tempo_times = np.array([t.time for t in music.tempos], dtype=np.int64)
    qpms = np.array([t.qpm for t in music.tempos], dtype=np.float64)
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("track", "program", "is_drum", "onset", "duration", "pitch", "velocity")}
    part_names: list[str] = []
    for index, track in enumerate(music.tracks):
        if not track.notes:
            continue
        arr = np.array([(n.time, n.duration, n.pitch, n.velocity) for n in track.notes], dtype=np.int64)
        n = len(arr)
        columns["track"].append(np.full(n, index, np.int16))
        columns["program"].append(np.full(n, track.program, np.int8))
        columns["is_drum"].append(np.full(n, bool(track.is_drum)))
        columns["onset"].append(arr[:, 0])
        columns["duration"].append(arr[:, 1])
        columns["pitch"].append(np.clip(arr[:, 2], 0, 127).astype(np.int8))
        columns["velocity"].append(np.clip(arr[:, 3], 0, 127).astype(np.int8))
        part_names.extend([track.name or ""] * n)
    if not part_names:
        raise ValueError("score has no notes")
    cols = {k: np.concatenate(v) for k, v in columns.items()}
    order = np.lexsort((cols["pitch"], cols["track"], cols["onset"]))
    cols = {k: v[order] for k, v in cols.items()}
    names = np.array(part_names, dtype=object)[order]
    onset_s = tick_seconds(cols["onset"], tempo_times, qpms, res)
    end_s = tick_seconds(cols["onset"] + cols["duration"], tempo_times, qpms, res)
    n = len(order)
    notes = pa.table(
        {
            "song": pa.array([item.item_id] * n, pa.string()),
            "dataset": pa.array([item.dataset] * n, pa.string()),
            "track": cols["track"],
            "part_name": pa.array(names, pa.string()),
            "program": cols["program"],
            "is_drum": cols["is_drum"],
            "resolution": np.full(n, res, np.int32),
            "onset": cols["onset"],
            "duration": cols["duration"],
            "onset_seconds": onset_s,
            "duration_seconds": end_s - onset_s,
            "pitch": cols["pitch"],
            "velocity": cols["velocity"],
            "beat": cols["onset"] // res,
            "position": (cols["onset"] % res).astype(np.int32),
        },
        schema=tables.NOTES,
    )
    end_tick = int((cols["onset"] + cols["duration"]).max())
    song = {
        "dataset": item.dataset,
        "song": item.item_id,
        "source_path": item.path,
        "sha256": sha256,
        "title": music.metadata.title or "",
        "resolution": res,
        "initial_tempo": float(qpms[np.argmin(tempo_times)]) if len(qpms) else DEFAULT_QPM,
        "tempos": [{"time": int(t.time), "qpm": float(t.qpm)} for t in music.tempos],
        "key_signatures": [
            {"time": int(k.time), "root": k.root, "mode": k.mode, "fifths": k.fifths} for k in music.key_signatures
        ],
        "time_signatures": [
            {"time": int(t.time), "numerator": t.numerator, "denominator": t.denominator}
            for t in music.time_signatures
        ],
        "n_tracks": len({int(t) for t in cols["track"]}),
        "n_notes": n,
        "length_beats": end_tick / res,
        "length_seconds": float(end_s.max()),
    }
    return Parsed(song=song, notes=notes)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_item(item: ScoreItem, resolution: int = 24, max_bytes: int = 50_000_000) -> Parsed | Reject:
    """Never raises: whatever goes wrong with one file is that file's reject row."""
    try:
        music = read_item(item, resolution=resolution, max_bytes=max_bytes)
    except Exception as error:  # noqa: BLE001 - any failure of one file is recorded, not raised
        return _reject(item, getattr(error, "stage", "read"), error)
    try:
        return music_to_rows(music, item, file_sha256(item.path))
    except Exception as error:  # noqa: BLE001
        return _reject(item, "convert", error)


def _reject(item: ScoreItem, stage: str, error: BaseException) -> Reject:
    error_type = getattr(error, "error_type", type(error).__name__)
    return Reject(item.dataset, item.item_id, stage, error_type, str(error)[:2000] or repr(error))


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_all(
    items: Sequence[ScoreItem],
    workers: int | None = None,
    resolution: int = 24,
    max_bytes: int = 50_000_000,
    on_result: Callable[[], None] | None = None,
) -> Iterator[Parsed | Reject]:
    """Results in item order. With one worker everything runs in-process (no pickling)."""
    workers = workers or default_workers()
    if workers <= 1:
        for item in items:
            yield parse_item(item, resolution, max_bytes)
            if on_result:
                on_result()
        return
    done = 0
    while done < len(items):
        try:
            with worker_pool(workers) as pool:
                chunk = max(1, min(16, (len(items) - done) // (workers * 8)))
                args = items[done:]
                for result in pool.map(parse_item, args, [resolution] * len(args), [max_bytes] * len(args), chunksize=chunk):
                    done += 1
                    yield result
                    if on_result:
                        on_result()
        except BrokenProcessPool:
            # The next item killed its worker (or shares a chunk with the one that did): isolate it.
            yield _isolated(items[done], resolution, max_bytes)
            done += 1
            if on_result:
                on_result()


PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool whose workers die with the process that started them, even by kill -9, so a killed run
    never leaves parsers holding their memory."""
    return ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),))


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere nothing), and
    exit at once if ``parent`` already died before the request took effect."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _isolated(item: ScoreItem, resolution: int, max_bytes: int) -> Parsed | Reject:
    try:
        with worker_pool(1) as pool:
            return pool.submit(parse_item, item, resolution, max_bytes).result()
    except BrokenProcessPool as error:
        return Reject(item.dataset, item.item_id, "read", "WorkerCrashed", f"the parser process died: {error}")

ITEM_COLUMNS = ["dataset", "item_id", "path", "format", "number"]


def items_frame(items: Iterable[ScoreItem]) -> pd.DataFrame:
    """The `score_files` table: one row per item, ``number`` NaN where there is none."""
    return pd.DataFrame([asdict(item) for item in items], columns=ITEM_COLUMNS)


def frame_items(frame: pd.DataFrame) -> list[ScoreItem]:
    """The items of a `score_files` table (its ``number`` column comes back as float with NaN)."""
    return [
        ScoreItem(r.dataset, r.item_id, r.path, r.format, None if pd.isna(r.number) else int(r.number))
        for r in frame.itertuples()
    ]


def write_parsed(results: Iterable[Parsed | Reject], writer: shards.ShardWriter) -> tuple[list[dict], list[Reject]]:
    """Stream every parsed score's notes into ``writer``; the song rows and the rejects come back, in
    item order, so songs, notes and rejects all come out of one parsing pass."""
    songs, rejects = [], []
    for result in results:
        if isinstance(result, Reject):
            rejects.append(result)
        else:
            songs.append(result.song)
            writer.write(result.notes)
    return songs, rejects


def songs_table(songs: Iterable[dict]) -> pa.Table:
    return pa.Table.from_pylist(list(songs), schema=tables.SONGS)
