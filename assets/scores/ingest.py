"""Score files to song rows and note tables, fanned out over a process pool.

Parsing dominates ingestion time and is independent per file, so items go to a pool sized to
the cores; results come back in item order so that re-running gives byte-identical shards.
A failing item becomes a reject row instead of an exception; a worker that dies, or that runs
past the per-file time limit and is killed, takes only its own item with it.
"""

from __future__ import annotations

import hashlib
import heapq
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing import connection
from multiprocessing.connection import Connection

import muspy
import numpy as np
import pandas as pd
import pyarrow as pa

from assets.core.processes import die_with_parent, exit_reason
from assets.core.rejects import Reject
from assets.scores import tables
from assets.scores.datasets import ScoreItem
from assets.scores.readers import read_item
from storage import shards

DEFAULT_QPM = 120.0
MAX_TEXT = 256  # characters kept of a title or part name: part names are repeated in every note row


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
        part_names.extend([_capped(track.name)] * n)
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
        "title": _capped(music.metadata.title),
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


def _capped(text: str | None) -> str:
    return (text or "")[:MAX_TEXT]


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Limits:
    """What one file may cost: parse time, parser memory, bytes on disk and notes, so no crafted
    file holds a batch or exhausts the machine."""

    resolution: int = 24
    max_bytes: int = 50_000_000
    max_notes: int = 2_000_000
    timeout_s: float = 120.0
    max_memory_mb: float = 4096.0  # growth of a worker's resident memory while parsing one file


def parse_item(item: ScoreItem, limits: Limits = Limits()) -> Parsed | Reject:
    """Never raises: whatever goes wrong with one file is that file's reject row."""
    try:
        music = read_item(item, resolution=limits.resolution, max_bytes=limits.max_bytes, max_notes=limits.max_notes)
    except Exception as error:  # noqa: BLE001 - any failure of one file is recorded, not raised
        return _reject(item, getattr(error, "stage", "read"), error)
    try:
        return music_to_rows(music, item, file_sha256(item.path))
    except Exception as error:  # noqa: BLE001
        return _reject(item, "convert", error)


MAX_REASON = 500
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]")


def _reject(item: ScoreItem, stage: str, error: BaseException) -> Reject:
    """Parsers quote what they choke on, so a reason is cut short and stripped of control bytes:
    enough to tell what failed, never a file's content verbatim."""
    error_type = getattr(error, "error_type", type(error).__name__)
    reason = _UNPRINTABLE.sub("?", str(error) or repr(error))
    if len(reason) > MAX_REASON:
        reason = reason[:MAX_REASON] + f"... ({len(reason) - MAX_REASON} more characters)"
    return Reject(item.dataset, item.item_id, stage, error_type, reason)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_all(
    items: Sequence[ScoreItem],
    workers: int | None = None,
    limits: Limits = Limits(),
    on_result: Callable[[], None] | None = None,
) -> Iterator[Parsed | Reject]:
    """Results in item order, each file parsed in a worker process that is killed when the file
    passes ``limits.timeout_s`` or that may die on it, without losing the other files."""
    pool = _Pool(workers or default_workers(), limits)
    try:
        yield from pool.results(items, on_result)
    finally:
        pool.close()


IN_FLIGHT = 2  # items queued per worker, so a worker never waits for the parent between items
REORDER = 8  # items a worker may run ahead of the oldest unfinished one: bounds buffered results
MEMORY_POLL_S = 0.2  # how often workers' memory is checked while they parse
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes(pid: int) -> int:
    """A process's resident set size (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _serve(conn: Connection, parent: int, limits: Limits) -> None:
    """A worker's loop: (index, item) in, (index, result) out, until the parent sends None."""
    die_with_parent(parent)
    while (job := conn.recv()) is not None:
        index, item = job
        conn.send((index, parse_item(item, limits)))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    queue: deque[int] = field(default_factory=deque)  # indexes sent, oldest (the one running) first
    since: float = 0.0  # when the oldest queued item started
    hung_up: bool = False  # its pipe closed: the process is gone or going
    base_rss: int = 0  # resident bytes when forked: what it shares with the parent, not what a parse costs

    def stop(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


class _Pool:
    """Worker processes the parent can kill one at a time, which ProcessPoolExecutor cannot.

    Forked, so a replacement starts in milliseconds with music21 already imported, and workers die
    with the parent even when it is killed with kill -9.
    """

    def __init__(self, size: int, limits: Limits):
        self.limits = limits
        self.context = multiprocessing.get_context("fork")
        self.workers = [self._start() for _ in range(size)]

    def _start(self) -> _Worker:
        parent_end, child_end = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(child_end, os.getpid(), self.limits), daemon=True)
        process.start()
        child_end.close()
        return _Worker(process, parent_end, base_rss=resident_bytes(process.pid))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()

    def results(self, items: Sequence[ScoreItem], on_result: Callable[[], None] | None) -> Iterator[Parsed | Reject]:
        pending = list(range(len(items)))  # a heap: the lowest index is dispatched first
        done: dict[int, Parsed | Reject] = {}
        emitted = 0
        while emitted < len(items):
            self._dispatch(items, pending, emitted + REORDER * len(self.workers))
            done.update(self._collect())
            for position, worker in enumerate(self.workers):
                if self._lost(worker):
                    done.update(self._replace(position, items, pending))
            while emitted in done:
                yield done.pop(emitted)
                emitted += 1
                if on_result:
                    on_result()

    def _dispatch(self, items: Sequence[ScoreItem], pending: list[int], horizon: int) -> None:
        for worker in self.workers:
            while len(worker.queue) < IN_FLIGHT and pending and pending[0] < horizon:
                index = heapq.heappop(pending)
                if not worker.queue:
                    worker.since = time.monotonic()
                worker.queue.append(index)
                worker.conn.send((index, items[index]))

    def _collect(self) -> Iterator[tuple[int, Parsed | Reject]]:
        """Results that arrive before the earliest deadline of a running item."""
        busy = [w for w in self.workers if w.queue]
        deadline = min(w.since for w in busy) + self.limits.timeout_s
        wait = min(max(0.0, deadline - time.monotonic()), MEMORY_POLL_S)
        ready = connection.wait([w.conn for w in busy], timeout=wait)
        for worker in busy:
            while worker.conn in ready and worker.queue and worker.conn.poll():
                try:
                    index, result = worker.conn.recv()
                except (EOFError, OSError):
                    worker.hung_up = True
                    break
                worker.queue.popleft()
                worker.since = time.monotonic()
                yield index, result

    def _lost(self, worker: _Worker) -> bool:
        """Dead, or running one item for longer than the limit, or grown past the memory limit."""
        overdue = bool(worker.queue) and time.monotonic() - worker.since >= self.limits.timeout_s
        return worker.hung_up or overdue or self._swollen(worker) or not worker.process.is_alive()

    def _swollen(self, worker: _Worker) -> bool:
        grown = resident_bytes(worker.process.pid) - worker.base_rss
        return bool(worker.queue) and grown > self.limits.max_memory_mb * 2**20

    def _replace(self, position: int, items: Sequence[ScoreItem], pending: list[int]) -> dict[int, Reject]:
        """Kill and replace a lost worker: its running item becomes a reject and the items queued
        behind it go back to the pending ones."""
        worker = self.workers[position]
        crashed = worker.hung_up or not worker.process.is_alive()
        swollen = not crashed and self._swollen(worker)
        worker.stop()
        self.workers[position] = self._start()
        if not worker.queue:
            return {}
        index, *queued = worker.queue
        for other in queued:
            heapq.heappush(pending, other)
        item = items[index]
        if crashed:
            return {index: Reject(item.dataset, item.item_id, "parse", "WorkerCrashed", _death(worker.process.exitcode))}
        if swollen:
            reason = f"parsing took more than the limit of {self.limits.max_memory_mb:g} MB of memory; the parser was killed"
            return {index: Reject(item.dataset, item.item_id, "parse", "ParseMemory", reason)}
        reason = f"parsing took longer than the limit of {self.limits.timeout_s:g} s; the parser was killed"
        return {index: Reject(item.dataset, item.item_id, "parse", "ParseTimeout", reason)}


def _death(exitcode: int | None) -> str:
    return f"the parser process died ({exit_reason(exitcode)})"


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
