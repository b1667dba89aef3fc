"""Parquet shard sets: `<root>/<asset>/<partition>/part-NNNNN.parquet` plus `_manifest.json`.

Every file operation goes through fsspec, so a local directory and a remote URI
(memory://, s3://, gs://) share one code path. Shards are written deterministically
(fixed compression, no timestamps) so re-materializing gives byte-identical files and
the same data version; a partition is replaced atomically from a temporary sibling.
Every read checks each shard's bytes against the sha256 in its manifest before parsing
them, so a flipped byte fails loudly instead of decoding to different values.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import torch.utils.data

SCHEMA_VERSION = 1
MANIFEST = "_manifest.json"
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
    return fsspec.core.url_to_fs(url)


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


class ShardWriter:
    """Streams rows into shards of `rows_per_shard`; commits the partition only on a clean exit."""

    def __init__(
        self,
        datasets_root: str,
        asset: str,
        partition: str,
        schema: pa.Schema,
        rows_per_shard: int = 100_000,
        code_version: str = "",
        upstream: dict[str, str] | None = None,
    ):
        if rows_per_shard < 1:
            raise ValueError("rows_per_shard must be positive")
        self.fs, root = _fs(datasets_root)
        self.asset_dir = _join(root, asset)
        self.final_dir = _join(self.asset_dir, partition)
        self.tmp_dir = _join(self.asset_dir, f".tmp-{partition}-{uuid.uuid4().hex}")
        self.asset, self.partition, self.schema = asset, partition, schema
        self.rows_per_shard = rows_per_shard
        self.code_version = code_version
        self.upstream = dict(upstream or {})
        self.manifest: Manifest | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._shards: list[ShardInfo] = []

    def __enter__(self) -> ShardWriter:
        self.fs.makedirs(self.tmp_dir, exist_ok=True)
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
        name = f"part-{len(self._shards):05d}.parquet"
        self.fs.pipe_file(_join(self.tmp_dir, name), payload)
        self._shards.append(ShardInfo(name, table.num_rows, len(payload), _sha256(payload)))

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.fs.rm(self.tmp_dir, recursive=True)
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
        self.fs.pipe_file(_join(self.tmp_dir, MANIFEST), manifest.to_json().encode())
        self._commit()
        self.manifest = manifest

    def _commit(self) -> None:
        old = None
        if self.fs.exists(self.final_dir):
            old = _join(self.asset_dir, f".old-{self.partition}-{uuid.uuid4().hex}")
            self.fs.mv(self.final_dir, old, recursive=True)
        try:
            self.fs.mv(self.tmp_dir, self.final_dir, recursive=True)
        except BaseException:
            if old is not None:
                self.fs.mv(old, self.final_dir, recursive=True)
            raise
        if old is not None:
            self.fs.rm(old, recursive=True)


def write_table(
    datasets_root: str,
    asset: str,
    partition: str,
    table: pa.Table,
    rows_per_shard: int = 100_000,
    code_version: str = "",
    upstream: dict[str, str] | None = None,
) -> Manifest:
    with ShardWriter(datasets_root, asset, partition, table.schema, rows_per_shard, code_version, upstream) as w:
        w.write(table)
    assert w.manifest is not None
    return w.manifest


def read_manifest(datasets_root: str, asset: str, partition: str) -> Manifest | None:
    fs, root = _fs(datasets_root)
    path = _join(root, asset, partition, MANIFEST)
    if not fs.exists(path):
        return None
    return Manifest.from_json(fs.cat_file(path).decode())


def list_partitions(datasets_root: str, asset: str) -> list[str]:
    """Committed partitions only: in-flight `.tmp-*` and leftover `.old-*` directories are hidden."""
    fs, root = _fs(datasets_root)
    asset_dir = _join(root, asset)
    if not fs.exists(asset_dir):
        return []
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(asset_dir, detail=False)]
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
    return [
        (_join(datasets_root, asset, m.partition, s.name), s)
        for m in _manifests(datasets_root, asset, partitions)
        for s in m.shards
    ]


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
    """The sha256 recorded for a shard by the manifest beside it, for readers given bare paths."""
    folder, name = path.rsplit("/", 1)
    fs, p = _fs(_join(folder, MANIFEST))
    digests = {s.name: s.sha256 for s in Manifest.from_json(fs.cat_file(p).decode()).shards}
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
    for path, shard in _shards(datasets_root, asset, partitions):
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
    """Whole shard sets as one table; for small sets only (use iter_batches otherwise)."""
    manifests = _manifests(datasets_root, asset, partitions)
    schema = manifests[0].arrow_schema if manifests else pa.schema([])
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    batches = list(iter_batches(datasets_root, asset, partitions, columns, filter, verify=verify))
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
    """Rows of a list of shards; DataLoader worker i of n reads shards i, i+n, ...

    Each shard is checked against the manifest beside it, as in iter_batches.

    Holds only paths and options (the filesystem is opened in each worker), so it pickles
    into worker processes.
    """

    def __init__(
        self,
        paths: Sequence[str],
        columns: Sequence[str] | None = None,
        transform: Callable[[dict], Any] | None = None,
        shuffle_shards_seed: int | None = None,
    ):
        self.paths = list(paths)
        self.columns = list(columns) if columns is not None else None
        self.transform = transform
        self.shuffle_shards_seed = shuffle_shards_seed

    def _my_paths(self) -> list[str]:
        paths = list(self.paths)
        if self.shuffle_shards_seed is not None:
            random.Random(self.shuffle_shards_seed).shuffle(paths)
        info = torch.utils.data.get_worker_info()
        return paths if info is None else paths[info.id :: info.num_workers]

    def __iter__(self) -> Iterator[Any]:
        for path in self._my_paths():
            data = _shard_bytes(path, _manifest_sha256(path))
            for batch in _iter_shard_batches(data, self.columns, None, 65_536):
                for row in batch.to_pylist():
                    yield row if self.transform is None else self.transform(row)
