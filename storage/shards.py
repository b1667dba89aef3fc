"""Parquet shard sets: `<root>/<asset>/<partition>/part-NNNNN-<hash>.parquet` plus `_manifest.json`.

Every file operation goes through fsspec, so a local directory and a remote URI
(memory://, s3://, gs://) share one code path. Shards are written deterministically
(fixed compression, no timestamps) so re-materializing gives byte-identical files and
the same data version. A partition is replaced in one atomic step, the manifest written
last, under a per-partition lock (see ShardWriter); readers trust only what it names.
Every read checks each shard's bytes against the sha256 in its manifest before parsing
them, so a flipped byte fails loudly instead of decoding to different values.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import torch.utils.data
from fsspec.implementations.local import LocalFileSystem

from storage.names import check_name

SCHEMA_VERSION = 1
MANIFEST = "_manifest.json"
PREVIOUS = ".previous_manifest.json"
GRACE_S = 3600.0
READ_ATTEMPTS = 10
COMPRESSION = "zstd"


class ShardCorrupt(ValueError):
    """A shard's bytes no longer hash to the sha256 its manifest recorded at write time."""

    def __init__(self, path: str, digest: str, expected: str):
        super().__init__(f"{path}: checksum mismatch (sha256 {digest}, manifest {expected})")
        self.path, self.digest, self.expected = path, digest, expected


@dataclass(frozen=True)
class ShardInfo:
    name: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    asset: str
    partition: str
    schema_version: int
    schema: str
    rows: int
    shards: tuple[ShardInfo, ...]
    code_version: str
    upstream: dict[str, str]
    schema_ipc: str = ""  # base64 Arrow IPC schema: lets an empty shard set still read back typed

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    @property
    def version(self) -> str:
        """Data version downstream assets record as upstream: changes iff any shard's bytes change."""
        return hashlib.sha256("\n".join(s.sha256 for s in self.shards).encode()).hexdigest()

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.schema_ipc)))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        d["shards"] = tuple(ShardInfo(**s) for s in d["shards"])
        return cls(**d)


def _fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    # No cached listings: another process commits between two looks, and a stale listing of an
    # object store would hide its partitions or name shards it has since removed.
    return fsspec.core.url_to_fs(url, use_listings_cache=False)


def _ls(fs: fsspec.AbstractFileSystem, folder: str, detail: bool = False) -> list:
    """The folder's entries; none for a folder that is not there (an object store has no empty
    folders, so a partition before its first shard is one)."""
    try:
        return fs.ls(folder, detail=detail)
    except FileNotFoundError:
        return []


def _join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/"), *parts[1:]])


def _as_table(data: pa.Table | pa.RecordBatch | list[dict], schema: pa.Schema) -> pa.Table:
    if isinstance(data, list):
        return pa.Table.from_pylist(data, schema=schema)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if sorted(data.column_names) != sorted(schema.names):
        raise ValueError(f"columns {data.column_names} do not match the shard set's schema {schema.names}")
    return data.select(schema.names).cast(schema)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parquet_bytes(table: pa.Table) -> bytes:
    # One contiguous chunk per column: the file's bytes then depend on the rows only, not on
    # how the caller happened to batch them.
    sink = pa.BufferOutputStream()
    pq.write_table(table.combine_chunks(), sink, compression=COMPRESSION)
    return sink.getvalue().to_pybytes()


class PartitionLocked(RuntimeError):
    """Another writer held the partition's lock for longer than this writer would wait."""


_PROCESS_LOCKS: dict[str, threading.Lock] = {}


@contextmanager
def _partition_lock(fs: fsspec.AbstractFileSystem, asset_dir: str, partition: str, wait_s: float) -> Iterator[bool]:
    """Hold the partition's write lock; yields whether it excludes other processes too.

    On a local disk it is an flock on ``<asset>/.<partition>.lock``, which the kernel releases
    when its holder dies, so a killed writer never leaves the partition locked. Object stores
    have no such lock: there it only serializes writers of this process, and the commit protocol
    alone keeps every set readable (see ShardWriter).
    """
    if not isinstance(fs, LocalFileSystem):
        with _PROCESS_LOCKS.setdefault(f"{fs.protocol}:{asset_dir}/{partition}", threading.Lock()):
            yield False
        return
    fs.makedirs(asset_dir, exist_ok=True)
    path = f"{asset_dir}/.{partition}.lock"
    with open(path, "a+") as f:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    f.seek(0)
                    holder = f.read().strip() or "another process"
                    raise PartitionLocked(
                        f"{asset_dir}/{partition} is being written by {holder}; gave up after {wait_s:g} s"
                    ) from None
                time.sleep(0.05)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _put(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write a file so readers see the old bytes or the new ones, never a prefix: a temporary
    sibling renamed over it on a local disk, a single PUT on an object store."""
    if not isinstance(fs, LocalFileSystem):
        fs.pipe_file(path, data)
        return
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/.{name}.tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _pointed(fs: fsspec.AbstractFileSystem, partition_dir: str, pointers: Sequence[str]) -> list[ShardInfo]:
    """The shards the named manifest files of a partition list (missing ones list none)."""
    found = []
    for pointer in pointers:
        with suppress(FileNotFoundError):
            found.extend(Manifest.from_json(fs.cat_file(f"{partition_dir}/{pointer}").decode()).shards)
    return found


def _named_by(fs: fsspec.AbstractFileSystem, partition_dir: str) -> set[str]:
    """Files the committed manifest and the one it replaced name: everything a reader may still open."""
    return {MANIFEST, PREVIOUS, *(s.name for s in _pointed(fs, partition_dir, (MANIFEST, PREVIOUS)))}


class ShardWriter:
    """Streams rows into shards of `rows_per_shard`; commits the partition only on a clean exit.

    A commit is one atomic step. Shards are named by their content (`part-NNNNN-<sha256[:16]>`)
    and written beside the committed ones; the new `_manifest.json` then replaces the old one in
    a single rename (a single PUT on an object store), and readers trust only what it names. A
    crash before that leaves the previous set whole; the next write removes what the crash left.
    The set a manifest replaced stays on disk until the write after, so a reader that opened it
    just before a commit can finish. Writers of one partition hold its lock for the whole write.

    On an object store that lock excludes only this process's writers, and the protocol alone
    makes concurrent processes safe: a shard PUT can only rewrite an object with the same bytes
    (its name is its content), the manifest PUT is the commit, so whichever writer commits last
    wins with its whole set, and cleaning spares unnamed objects younger than `GRACE_S`, which may
    be another process's shards not yet committed. A write must therefore finish within `GRACE_S`.
    """

    def __init__(
        self,
        datasets_root: str,
        asset: str,
        partition: str,
        schema: pa.Schema,
        rows_per_shard: int = 100_000,
        code_version: str = "",
        upstream: dict[str, str] | None = None,
        lock_wait_s: float = 600.0,
    ):
        if rows_per_shard < 1:
            raise ValueError("rows_per_shard must be positive")
        self.fs, root = _fs(datasets_root)
        self.asset_dir = _join(root, check_name(asset, "asset"))
        self.final_dir = _join(self.asset_dir, check_name(partition, "partition key"))
        self.asset, self.partition, self.schema = asset, partition, schema
        self.rows_per_shard = rows_per_shard
        self.code_version = code_version
        self.upstream = dict(upstream or {})
        self.lock_wait_s = lock_wait_s
        self.manifest: Manifest | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._shards: list[ShardInfo] = []
        self._lock: ExitStack | None = None
        self._exclusive = False

    def __enter__(self) -> ShardWriter:
        self._lock = ExitStack()
        self._exclusive = self._lock.enter_context(_partition_lock(self.fs, self.asset_dir, self.partition, self.lock_wait_s))
        try:
            self._recover_legacy()
            self.fs.makedirs(self.final_dir, exist_ok=True)
            self._clean()
        except BaseException:
            self._lock.close()
            raise
        return self

    def write(self, data: pa.Table | pa.RecordBatch | list[dict]) -> None:
        table = _as_table(data, self.schema)
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffered += table.num_rows
        while self._buffered >= self.rows_per_shard:
            pending = pa.concat_tables(self._buffer)
            self._flush(pending.slice(0, self.rows_per_shard))
            rest = pending.slice(self.rows_per_shard)
            self._buffer, self._buffered = [rest], rest.num_rows

    def _flush(self, table: pa.Table) -> None:
        payload = _parquet_bytes(table)
        digest = _sha256(payload)
        name = f"part-{len(self._shards):05d}-{digest[:16]}.parquet"
        _put(self.fs, _join(self.final_dir, name), payload)
        self._shards.append(ShardInfo(name, table.num_rows, len(payload), digest))

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._lock is not None
        with self._lock:
            if exc_type is not None:
                self._clean()
                return
            if self._buffered:
                self._flush(pa.concat_tables(self._buffer))
            self._buffer, self._buffered = [], 0
            manifest = Manifest(
                asset=self.asset,
                partition=self.partition,
                schema_version=SCHEMA_VERSION,
                schema=self.schema.to_string(show_schema_metadata=False),
                rows=sum(s.rows for s in self._shards),
                shards=tuple(self._shards),
                code_version=self.code_version,
                upstream=self.upstream,
                schema_ipc=base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
            )
            self._commit(manifest.to_json().encode())
            self.manifest = manifest

    def _commit(self, manifest: bytes) -> None:
        pointer = _join(self.final_dir, MANIFEST)
        with suppress(FileNotFoundError):
            old = self.fs.cat_file(pointer)
            if old != manifest:
                _put(self.fs, _join(self.final_dir, PREVIOUS), old)
        _put(self.fs, pointer, manifest)
        self._clean()

    def _clean(self) -> None:
        """Remove files no manifest names: shards of a crashed or failed write, and the set two commits back.

        Without a lock that excludes other processes, a file is kept until it is `GRACE_S` old,
        since it may belong to a write still in flight.
        """
        keep = _named_by(self.fs, self.final_dir)
        now = time.time()
        for info in _ls(self.fs, self.final_dir, detail=True):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if name in keep:
                continue
            if not self._exclusive and now - modified_time(info) < GRACE_S:
                continue
            self.fs.rm(info["name"], recursive=info["type"] == "directory")

    def _recover_legacy(self) -> None:
        """Sets written by the old two-rename commit: a partition a crash left only in `.old-*` is put
        back, and the `.tmp-*` and `.old-*` folders of this partition are removed."""
        leftovers = [
            p.rstrip("/")
            for p in _ls(self.fs, self.asset_dir)
            if p.rstrip("/").rsplit("/", 1)[-1].startswith((f".tmp-{self.partition}-", f".old-{self.partition}-"))
        ]
        committed = self.fs.exists(_join(self.final_dir, MANIFEST))
        for path in sorted(leftovers):
            if not committed and "/.old-" in path and self.fs.exists(_join(path, MANIFEST)):
                self.fs.mv(path, self.final_dir, recursive=True)
                committed = True
            else:
                self.fs.rm(path, recursive=True)


def modified_time(info: dict) -> float:
    """Modification time of an fsspec `ls` entry across backends (local seconds, S3 datetimes)."""
    value = info.get("mtime", info.get("LastModified", info.get("created", 0)))
    return value.timestamp() if hasattr(value, "timestamp") else float(value or 0)


def write_table(
    datasets_root: str,
    asset: str,
    partition: str,
    table: pa.Table,
    rows_per_shard: int = 100_000,
    code_version: str = "",
    upstream: dict[str, str] | None = None,
    lock_wait_s: float = 600.0,
) -> Manifest:
    with ShardWriter(
        datasets_root, asset, partition, table.schema, rows_per_shard, code_version, upstream, lock_wait_s
    ) as w:
        w.write(table)
    assert w.manifest is not None
    return w.manifest


def read_manifest(datasets_root: str, asset: str, partition: str) -> Manifest | None:
    fs, root = _fs(datasets_root)
    path = _join(root, check_name(asset, "asset"), check_name(partition, "partition key"), MANIFEST)
    try:
        return Manifest.from_json(fs.cat_file(path).decode())
    except FileNotFoundError:
        return None


def list_partitions(datasets_root: str, asset: str) -> list[str]:
    """Committed partitions only: in-flight `.tmp-*` and leftover `.old-*` directories are hidden."""
    fs, root = _fs(datasets_root)
    asset_dir = _join(root, asset)
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in _ls(fs, asset_dir)]
    return sorted(n for n in names if not n.startswith(".") and fs.exists(_join(asset_dir, n, MANIFEST)))


def _partitions(partitions: str | Sequence[str]) -> list[str]:
    return [partitions] if isinstance(partitions, str) else list(partitions)


def _manifests(datasets_root: str, asset: str, partitions: str | Sequence[str]) -> list[Manifest]:
    manifests = []
    for p in _partitions(partitions):
        m = read_manifest(datasets_root, asset, p)
        if m is None:
            raise FileNotFoundError(f"no shard set for asset {asset!r} partition {p!r} under {datasets_root}")
        manifests.append(m)
    return manifests


def _shards(datasets_root: str, asset: str, partitions: str | Sequence[str]) -> list[tuple[str, ShardInfo]]:
    return _listed(datasets_root, asset, _manifests(datasets_root, asset, partitions))


def _listed(datasets_root: str, asset: str, manifests: Sequence[Manifest]) -> list[tuple[str, ShardInfo]]:
    return [(_join(datasets_root, asset, m.partition, s.name), s) for m in manifests for s in m.shards]


def shard_paths(datasets_root: str, asset: str, partitions: str | Sequence[str]) -> list[str]:
    """Full paths (or URIs, in the form `datasets_root` was given) in manifest order."""
    return [path for path, _ in _shards(datasets_root, asset, partitions)]


def _shard_bytes(path: str, sha256: str | None) -> pa.Buffer:
    """The shard's bytes, read once and, unless `sha256` is None, checked before anything parses them."""
    fs, p = _fs(path)
    data = fs.cat_file(p)
    if sha256 is not None and (digest := _sha256(data)) != sha256:
        raise ShardCorrupt(path, digest, sha256)
    return pa.py_buffer(data)


def _manifest_sha256(path: str) -> str:
    """The sha256 recorded for a shard by the manifest beside it (or the one it replaced, for a
    reader that listed the shards just before a commit), for readers given bare paths."""
    folder, name = path.rsplit("/", 1)
    fs, p = _fs(folder)
    digests = {s.name: s.sha256 for s in _pointed(fs, p, (MANIFEST, PREVIOUS))}
    if name not in digests:
        raise FileNotFoundError(f"{path}: not listed in {MANIFEST}")
    return digests[name]


def _iter_shard_batches(
    data: pa.Buffer, columns: Sequence[str] | None, filter: pc.Expression | None, batch_size: int
) -> Iterator[pa.RecordBatch]:
    fragment = ds.ParquetFileFormat().make_fragment(data)
    cols = list(columns) if columns is not None else None
    yield from fragment.to_batches(columns=cols, filter=filter, batch_size=batch_size)


def iter_batches(
    datasets_root: str,
    asset: str,
    partitions: str | Sequence[str],
    columns: list[str] | None = None,
    filter: pc.Expression | None = None,
    batch_size: int = 65_536,
    verify: bool = True,
) -> Iterator[pa.RecordBatch]:
    """Stream record batches shard by shard, so memory stays bounded by one shard's bytes.

    Raises ShardCorrupt before yielding anything from a shard whose sha256 differs from its
    manifest; `verify=False` skips the hash (only to measure what it costs).
    """
    yield from _batches(_shards(datasets_root, asset, partitions), columns, filter, batch_size, verify)


def _batches(
    listed: Sequence[tuple[str, ShardInfo]],
    columns: Sequence[str] | None,
    filter: pc.Expression | None,
    batch_size: int,
    verify: bool,
) -> Iterator[pa.RecordBatch]:
    for path, shard in listed:
        data = _shard_bytes(path, shard.sha256 if verify else None)
        yield from _iter_shard_batches(data, columns, filter, batch_size)


def read_table(
    datasets_root: str,
    asset: str,
    partitions: str | Sequence[str],
    columns: list[str] | None = None,
    filter: pc.Expression | None = None,
    verify: bool = True,
) -> pa.Table:
    """Whole shard sets as one table; for small sets only (use iter_batches otherwise).

    A commit keeps the set it replaced, so a read overlapping one commit still finds its shards;
    one that overlaps two finds them gone and reads the newly committed set instead.
    """
    for attempt in range(READ_ATTEMPTS):
        manifests = _manifests(datasets_root, asset, partitions)
        try:
            batches = list(_batches(_listed(datasets_root, asset, manifests), columns, filter, 65_536, verify))
            break
        except FileNotFoundError:
            if attempt == READ_ATTEMPTS - 1 or _manifests(datasets_root, asset, partitions) == manifests:
                raise
    schema = manifests[0].arrow_schema if manifests else pa.schema([])
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    return pa.Table.from_batches(batches, schema=schema)


def verify(datasets_root: str, asset: str, partition: str) -> list[str]:
    """Problems found in a committed shard set (missing shards, checksum or row-count mismatches)."""
    manifest = read_manifest(datasets_root, asset, partition)
    if manifest is None:
        return [f"{asset}/{partition}: no manifest"]
    fs, _ = _fs(datasets_root)
    problems = []
    if manifest.rows != sum(s.rows for s in manifest.shards):
        problems.append(f"{asset}/{partition}: manifest rows {manifest.rows} != sum of shard rows")
    for s in manifest.shards:
        path = _join(datasets_root, asset, partition, s.name)
        if not fs.exists(path):
            problems.append(f"{s.name}: missing")
            continue
        try:
            data = _shard_bytes(path, s.sha256)
        except ShardCorrupt as e:
            problems.append(f"{s.name}: sha256 {e.digest} != manifest {e.expected}")
            continue
        rows = pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows
        if rows != s.rows:
            problems.append(f"{s.name}: {rows} rows != manifest {s.rows}")
    return problems


class ShardIterableDataset(torch.utils.data.IterableDataset):
    """Rows of a list of shards; of ``world_size`` training processes with n DataLoader workers
    each, worker i of process ``rank`` reads shards rank * n + i, plus every (world_size * n)-th after.

    Each shard is checked against the manifest beside it, as in iter_batches. Every process must
    shuffle with the same seed, so the processes split one order and together read each shard once.

    Holds only paths and options (the filesystem is opened in each worker), so it pickles
    into worker processes.
    """

    def __init__(
        self,
        paths: Sequence[str],
        columns: Sequence[str] | None = None,
        transform: Callable[[dict], Any] | None = None,
        shuffle_shards_seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of {world_size} processes")
        self.paths = list(paths)
        self.columns = list(columns) if columns is not None else None
        self.transform = transform
        self.shuffle_shards_seed = shuffle_shards_seed
        self.rank, self.world_size = rank, world_size

    def _my_paths(self) -> list[str]:
        paths = list(self.paths)
        if self.shuffle_shards_seed is not None:
            random.Random(self.shuffle_shards_seed).shuffle(paths)
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return paths[self.rank * workers + worker :: self.world_size * workers]

    def __iter__(self) -> Iterator[Any]:
        for path in self._my_paths():
            data = _shard_bytes(path, _manifest_sha256(path))
            for batch in _iter_shard_batches(data, self.columns, None, 65_536):
                for row in batch.to_pylist():
                    yield row if self.transform is None else self.transform(row)
