"""Score files to song rows and note tables, fanned out over a process pool.

Parsing dominates ingestion time and is independent per file, so items go to a pool sized to
the cores, several to a message; results come back in item order so that re-running gives
byte-identical shards. A failing item becomes a reject row instead of an exception; a worker
that dies, or that runs past the per-file time limit and is killed, takes only its own item with it.
"""

from __future__ import annotations

import ctypes
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
from assets.scores import midi_arrays, tables
from assets.scores.datasets import ScoreItem
from assets.scores.midi_arrays import ScoreArrays
from assets.scores.readers import read_score
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
    """One song row and its note table of a muspy score."""
    return arrays_to_rows(music_arrays(music), item, sha256)


def music_arrays(music: muspy.Music) -> ScoreArrays:
    """A muspy score as whole arrays, the one form both readers' scores become rows from."""
    notes = [(index, n.time, n.duration, n.pitch, n.velocity) for index, t in enumerate(music.tracks) for n in t.notes]
    arr = np.array(notes, dtype=np.int64).reshape(-1, 5)
    return ScoreArrays(
        resolution=int(music.resolution),
        title=music.metadata.title,
        tempos=[(t.time, t.qpm) for t in music.tempos],
        key_signatures=[(k.time, k.root, k.mode, k.fifths) for k in music.key_signatures],
        time_signatures=[(t.time, t.numerator, t.denominator) for t in music.time_signatures],
        programs=[t.program for t in music.tracks],
        is_drum=[bool(t.is_drum) for t in music.tracks],
        names=[t.name for t in music.tracks],
        track=arr[:, 0],
        onset=arr[:, 1],
        duration=arr[:, 2],
        pitch=arr[:, 3],
        velocity=arr[:, 4],
        reader="muspy",
    )


@dataclass(frozen=True)
class NoteColumns:
    """One score's note rows as numpy columns, all but the string ones: many scores' columns become
    one Arrow table at once, so no file pays Arrow's fixed cost of building a table of its own."""

    item: ScoreItem
    names: list[str]  # per track, capped
    track: np.ndarray
    columns: dict[str, np.ndarray]


def arrays_to_rows(score: ScoreArrays, item: ScoreItem, sha256: str) -> Parsed:
    """One song row and its note table; every per-note quantity is computed on whole arrays."""
    song, columns = arrays_to_columns(score, item, sha256)
    return Parsed(song=song, notes=notes_table([columns]))


def arrays_to_columns(score: ScoreArrays, item: ScoreItem, sha256: str) -> tuple[dict, NoteColumns]:
    """One song row and its note columns."""
    if not len(score.track):
        raise ValueError("score has no notes")
    res = score.resolution
    tempo_times = np.array([t for t, _ in score.tempos], dtype=np.int64)
    qpms = np.array([q for _, q in score.tempos], dtype=np.float64)
    pitch = np.clip(score.pitch, 0, 127).astype(np.int8)
    order = np.lexsort((pitch, score.track, score.onset))
    track = score.track[order]
    onset = score.onset[order]
    duration = score.duration[order]
    n = len(order)
    seconds = tick_seconds(np.concatenate([onset, onset + duration]), tempo_times, qpms, res)
    onset_s, end_s = seconds[:n], seconds[n:]
    columns = {
        "track": track.astype(np.int16),
        "program": np.array(score.programs, np.int8)[track],
        "is_drum": np.array(score.is_drum, bool)[track],
        "resolution": np.full(n, res, np.int32),
        "onset": onset,
        "duration": duration,
        "onset_seconds": onset_s,
        "duration_seconds": end_s - onset_s,
        "pitch": pitch[order],
        "velocity": np.clip(score.velocity[order], 0, 127).astype(np.int8),
        "beat": onset // res,
        "position": (onset % res).astype(np.int32),
    }
    end_tick = int((onset + duration).max())
    song = {
        "dataset": item.dataset,
        "song": item.item_id,
        "source_path": item.path,
        "sha256": sha256,
        "reader": score.reader,
        "title": _capped(score.title),
        "resolution": res,
        "initial_tempo": float(qpms[np.argmin(tempo_times)]) if len(qpms) else DEFAULT_QPM,
        "tempos": [{"time": int(t), "qpm": float(q)} for t, q in score.tempos],
        "key_signatures": [
            {"time": int(t), "root": root, "mode": mode, "fifths": fifths} for t, root, mode, fifths in score.key_signatures
        ],
        "time_signatures": [
            {"time": int(t), "numerator": num, "denominator": den} for t, num, den in score.time_signatures
        ],
        "n_tracks": int(np.count_nonzero(np.bincount(track))),
        "n_notes": n,
        "length_beats": end_tick / res,
        "length_seconds": float(end_s.max()),
    }
    return song, NoteColumns(item, [_capped(name) for name in score.names], track, columns)


def notes_table(scores: Sequence[NoteColumns]) -> pa.Table:
    """The note rows of `scores`, one after another, as one table; the string columns are taken
    from each score's few distinct strings by index, in Arrow, not made one Python string a row."""
    counts = np.array([len(s.track) for s in scores], np.int64)
    which = np.repeat(np.arange(len(scores), dtype=np.int32), counts)
    first_name = np.cumsum([0] + [len(s.names) for s in scores[:-1]])
    name_index = np.concatenate([s.track.astype(np.int64) + first for s, first in zip(scores, first_name)])
    strings = {
        "song": pa.array([s.item.item_id for s in scores], pa.string()).take(which),
        "dataset": pa.array([s.item.dataset for s in scores], pa.string()).take(which),
        "part_name": pa.array([name for s in scores for name in s.names], pa.string()).take(name_index),
    }
    return pa.table(
        {
            name: strings[name] if name in strings else np.concatenate([s.columns[name] for s in scores])
            for name in tables.NOTES.names
        },
        schema=tables.NOTES,
    )


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
    result = parse_columns(item, limits)
    if isinstance(result, Reject):
        return result
    song, columns = result
    return Parsed(song=song, notes=notes_table([columns]))


def parse_columns(item: ScoreItem, limits: Limits = Limits()) -> tuple[dict, NoteColumns] | Reject:
    """parse_item's song row and note columns, before they become a table; never raises."""
    try:
        score = read_score(item, resolution=limits.resolution, max_bytes=limits.max_bytes, max_notes=limits.max_notes)
    except Exception as error:  # noqa: BLE001 - any failure of one file is recorded, not raised
        return _reject(item, getattr(error, "stage", "read"), error)
    try:
        arrays = score if isinstance(score, ScoreArrays) else music_arrays(score)
        return arrays_to_columns(arrays, item, file_sha256(item.path))
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


BATCH = 16  # items sent to a worker in one message, and their results sent back in one: a MIDI file
# parses in a fraction of a millisecond, so a message per file would cost the parent more than the parse
REORDER = 4 * BATCH  # items a worker may run ahead of the oldest unfinished one: bounds buffered results
MEMORY_POLL_S = 0.2  # how often workers' memory is checked while they parse
PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes(pid: int) -> int:
    """A process's resident set size (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _serve(conn: Connection, parent: int, limits: Limits, progress: ctypes.Array) -> None:
    """A worker's loop: a batch of (index, item) in, until the parent sends None; the batch's results
    out in one message, their notes as one Arrow IPC stream. Before each file it records in
    `progress` when the file started and how many files it has started, so the parent still times,
    and if need be kills, one file at a time."""
    die_with_parent(parent)
    started = 0
    while (jobs := conn.recv()) is not None:
        results, parsed = [], []
        for index, item in jobs:
            progress[1] = time.monotonic()
            started += 1
            progress[0] = started
            result = parse_columns(item, limits)
            if isinstance(result, Reject):
                results.append((index, result))
            else:
                results.append((index, result[0]))
                parsed.append(result[1])
        conn.send((results, _ipc_bytes(notes_table(parsed)) if parsed else b""))


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _batch_results(results: list[tuple[int, dict | Reject]], notes: bytes) -> Iterator[tuple[int, Parsed | Reject]]:
    """A worker's batch message as one result per file, each file's notes a slice of the batch's table."""
    table = pa.ipc.open_stream(notes).read_all() if notes else None
    offset = 0
    for index, result in results:
        if isinstance(result, Reject):
            yield index, result
        else:
            yield index, Parsed(song=result, notes=table.slice(offset, result["n_notes"]))
            offset += result["n_notes"]


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    progress: ctypes.Array  # written by the worker: files started so far, and when the latest one started
    queue: deque[int] = field(default_factory=deque)  # indexes sent and not yet back, in the order sent
    since: float = 0.0  # when the parent last heard from it, or gave it work while it had none
    received: int = 0  # results back so far
    hung_up: bool = False  # its pipe closed: the process is gone or going
    base_rss: int = 0  # resident bytes when forked: what it shares with the parent, not what a parse costs

    def running(self) -> int:
        """Position in `queue` of the file being parsed (the first when none has started since the
        last results came back: a worker that dies then died on its way to the first)."""
        return max(0, int(self.progress[0]) - self.received - 1)

    def started_at(self) -> float:
        return max(self.since, self.progress[1])

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
        midi_arrays.load_scan()  # before forking, so that every worker inherits it
        self.context = multiprocessing.get_context("fork")
        self.workers = [self._start() for _ in range(size)]

    def _start(self) -> _Worker:
        parent_end, child_end = self.context.Pipe()
        progress = self.context.RawArray(ctypes.c_double, 2)
        process = self.context.Process(target=_serve, args=(child_end, os.getpid(), self.limits, progress), daemon=True)
        process.start()
        child_end.close()
        return _Worker(process, parent_end, progress, base_rss=resident_bytes(process.pid))

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
        """Give each worker holding one batch at most another, so it never waits for the parent."""
        for worker in self.workers:
            if len(worker.queue) > BATCH:
                continue
            room = min(BATCH, max(1, len(pending) // len(self.workers)))  # spread a short list
            batch = []
            while len(batch) < room and pending and pending[0] < horizon:
                batch.append(heapq.heappop(pending))
            if not batch:
                continue
            if not worker.queue:
                worker.since = time.monotonic()
            worker.queue.extend(batch)
            worker.conn.send([(index, items[index]) for index in batch])

    def _collect(self) -> Iterator[tuple[int, Parsed | Reject]]:
        """Results that arrive before the earliest deadline of a running item."""
        busy = [w for w in self.workers if w.queue]
        deadline = min(w.started_at() for w in busy) + self.limits.timeout_s
        wait = min(max(0.0, deadline - time.monotonic()), MEMORY_POLL_S)
        ready = connection.wait([w.conn for w in busy], timeout=wait)
        for worker in busy:
            while worker.conn in ready and worker.queue and worker.conn.poll():
                try:
                    results, notes = worker.conn.recv()
                except (EOFError, OSError):
                    worker.hung_up = True
                    break
                for _ in results:
                    worker.queue.popleft()
                worker.received += len(results)
                worker.since = time.monotonic()
                yield from _batch_results(results, notes)

    def _lost(self, worker: _Worker) -> bool:
        """Dead, or running one item for longer than the limit, or grown past the memory limit."""
        overdue = bool(worker.queue) and time.monotonic() - worker.started_at() >= self.limits.timeout_s
        return worker.hung_up or overdue or self._swollen(worker) or not worker.process.is_alive()

    def _swollen(self, worker: _Worker) -> bool:
        grown = resident_bytes(worker.process.pid) - worker.base_rss
        return bool(worker.queue) and grown > self.limits.max_memory_mb * 2**20

    def _replace(self, position: int, items: Sequence[ScoreItem], pending: list[int]) -> dict[int, Reject]:
        """Kill and replace a lost worker: its running item becomes a reject and the other items it
        held (those of its batch parsed before it, whose results die with it, and those queued
        behind it) go back to the pending ones."""
        worker = self.workers[position]
        crashed = worker.hung_up or not worker.process.is_alive()
        swollen = not crashed and self._swollen(worker)
        worker.stop()
        self.workers[position] = self._start()
        if not worker.queue:
            return {}
        queued = list(worker.queue)
        index = queued.pop(min(worker.running(), len(queued) - 1))
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


WRITE_ROWS = 65_536  # note rows handed to the writer at once: its checks cost as much for a file's rows as for many files


def write_parsed(results: Iterable[Parsed | Reject], writer: shards.ShardWriter) -> tuple[list[dict], list[Reject]]:
    """Stream every parsed score's notes into ``writer``; the song rows and the rejects come back, in
    item order, so songs, notes and rejects all come out of one parsing pass."""
    songs, rejects, notes, held = [], [], [], 0
    for result in results:
        if isinstance(result, Reject):
            rejects.append(result)
            continue
        songs.append(result.song)
        notes.append(result.notes)
        held += result.notes.num_rows
        if held >= WRITE_ROWS:
            writer.write(pa.concat_tables(notes))
            notes, held = [], 0
    if notes:
        writer.write(pa.concat_tables(notes))
    return songs, rejects


def songs_table(songs: Iterable[dict]) -> pa.Table:
    return pa.Table.from_pylist(list(songs), schema=tables.SONGS)
