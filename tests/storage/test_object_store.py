"""The shard store on S3 (moto's server on the loopback): commits without rename or cross-process lock."""

import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import fsspec
import music21
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch.utils.data

from storage import shards

REPO = Path(__file__).resolve().parents[2]
CORPUS = os.path.join(os.path.dirname(music21.__file__), "corpus")


def rows(writer: int, seq: int) -> pa.Table:
    """Write `seq` of `writer`: 1-23 rows, so sets differ in shard count as well as content."""
    n = 1 + (seq * 7 + writer) % 23
    return pa.table({"writer": [writer] * n, "seq": [seq] * n, "i": list(range(n))})


def objects(uri: str) -> set[str]:
    fs, path = fsspec.core.url_to_fs(uri, use_listings_cache=False)
    return {p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)}


def start(tmp_path: Path, env: dict[str, str], name: str, body: str, *args: str) -> subprocess.Popen:
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(script), *args], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)


def test_write_read_verify_iterate_and_rewrite(s3_bucket):
    table = pa.table({"i": list(range(250)), "s": [f"row {i}" for i in range(250)]})
    manifest = shards.write_table(s3_bucket, "notes", "p", table, rows_per_shard=60)
    assert [s.rows for s in manifest.shards] == [60, 60, 60, 60, 10]
    assert shards.read_manifest(s3_bucket, "notes", "p") == manifest
    assert shards.read_table(s3_bucket, "notes", "p").equals(table)
    assert shards.verify(s3_bucket, "notes", "p") == []
    assert shards.list_partitions(s3_bucket, "notes") == ["p"]
    assert shards.read_manifest(s3_bucket, "notes", "absent") is None

    paths = shards.shard_paths(s3_bucket, "notes", "p")
    assert all(p.startswith(f"{s3_bucket}/notes/p/part-") for p in paths)
    loader = torch.utils.data.DataLoader(shards.ShardIterableDataset(paths, columns=["i"]), batch_size=None, num_workers=2)
    assert sorted(row["i"] for row in loader) == list(range(250))

    rewritten = shards.write_table(s3_bucket, "notes", "p", table.slice(0, 7), rows_per_shard=60)
    assert shards.read_table(s3_bucket, "notes", "p").equals(table.slice(0, 7))
    assert shards.verify(s3_bucket, "notes", "p") == []
    left = objects(f"{s3_bucket}/notes/p")
    # The replaced set stays for readers that listed it just before the commit.
    assert {s.name for s in rewritten.shards} | {s.name for s in manifest.shards} <= left
    previous = shards.Manifest.from_json(fsspec.open(f"{s3_bucket}/notes/p/{shards.PREVIOUS}").open().read())
    assert previous == manifest


def test_a_corrupted_object_fails_the_read(s3_bucket):
    manifest = shards.write_table(s3_bucket, "notes", "p", pa.table({"i": list(range(20))}))
    path = f"{s3_bucket}/notes/p/{manifest.shards[0].name}"
    data = bytearray(fsspec.open(path).open().read())
    data[len(data) // 2] ^= 1
    fsspec.core.url_to_fs(path)[0].pipe_file(path, bytes(data))
    with pytest.raises(shards.ShardCorrupt):
        shards.read_table(s3_bucket, "notes", "p")
    assert [p.split(":")[0] for p in shards.verify(s3_bucket, "notes", "p")] == [manifest.shards[0].name]


def test_readers_trust_only_what_the_manifest_names(s3_bucket):
    manifest = shards.write_table(s3_bucket, "notes", "p", pa.table({"i": [1, 2, 3]}))
    fs, _ = fsspec.core.url_to_fs(s3_bucket)
    stray = f"{s3_bucket}/notes/p/part-00001-0123456789abcdef.parquet"
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"i": [99, 100]}), sink)
    fs.pipe_file(stray, sink.getvalue().to_pybytes())

    assert shards.read_table(s3_bucket, "notes", "p").column("i").to_pylist() == [1, 2, 3]
    assert shards.shard_paths(s3_bucket, "notes", "p") == [f"{s3_bucket}/notes/p/{manifest.shards[0].name}"]
    assert shards.verify(s3_bucket, "notes", "p") == []
    with pytest.raises(FileNotFoundError, match="not listed"):
        list(shards.ShardIterableDataset([stray]))


LISTER = """
import os, sys
import pyarrow as pa
from storage import shards
shards.write_table(sys.argv[1], "notes", sys.argv[2], pa.table({"i": [int(sys.argv[3])]}))
os._exit(0)
"""


def test_another_process_commit_is_seen_by_a_process_that_listed_before(s3_bucket, s3_env, tmp_path):
    """s3fs caches listings per process; the store must not, or partitions and commits made elsewhere
    stay invisible to a long-lived process (a code server, a sensor)."""
    shards.write_table(s3_bucket, "notes", "a", pa.table({"i": [0]}))
    assert shards.list_partitions(s3_bucket, "notes") == ["a"]
    assert shards.read_manifest(s3_bucket, "notes", "b") is None
    for partition, value in (("b", 1), ("a", 2)):
        proc = start(tmp_path, s3_env, "lister", LISTER, s3_bucket, partition, str(value))
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert shards.list_partitions(s3_bucket, "notes") == ["a", "b"]
    assert shards.read_table(s3_bucket, "notes", "a").column("i").to_pylist() == [2]
    assert shards.read_table(s3_bucket, "notes", "b").column("i").to_pylist() == [1]


STALLED_WRITER = """
import os, sys, time
import pyarrow as pa
from storage import shards

root, ready = sys.argv[1], sys.argv[2]
put = shards._put

def put_then_stall(fs, path, data):
    if path.endswith("/" + shards.MANIFEST):
        open(ready, "w").close()
        time.sleep(600)
    put(fs, path, data)

shards._put = put_then_stall
shards.write_table(root, "notes", "p", pa.table({"i": list(range(1000, 1100))}), rows_per_shard=10)
os._exit(0)
"""


def test_a_writer_killed_before_its_manifest_leaves_the_previous_set(s3_bucket, s3_env, tmp_path, monkeypatch):
    before = shards.write_table(s3_bucket, "notes", "p", pa.table({"i": list(range(40))}), rows_per_shard=15)
    table = shards.read_table(s3_bucket, "notes", "p")
    ready = tmp_path / "ready"
    killed = start(tmp_path, s3_env, "stalled", STALLED_WRITER, s3_bucket, str(ready))
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert killed.poll() is None, killed.stderr.read()
        assert time.monotonic() < deadline, "the writer never reached its manifest"
        time.sleep(0.1)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)

    folder = f"{s3_bucket}/notes/p"
    stranded = {n for n in objects(folder) if n.startswith("part-")} - {s.name for s in before.shards}
    assert len(stranded) == 10, "the killed writer did not write its shards before the manifest"
    assert shards.read_manifest(s3_bucket, "notes", "p") == before
    assert shards.read_table(s3_bucket, "notes", "p").equals(table)
    assert shards.verify(s3_bucket, "notes", "p") == []

    # Another process cannot be excluded on S3, so a young unnamed object may be a live writer's:
    # the next commit keeps it, and removes it once it is older than the grace period.
    after = shards.write_table(s3_bucket, "notes", "p", pa.table({"i": [7]}))
    assert stranded <= objects(folder)
    assert shards.read_table(s3_bucket, "notes", "p").column("i").to_pylist() == [7]
    monkeypatch.setattr(shards, "GRACE_S", 0.0)
    shards.write_table(s3_bucket, "notes", "p", pa.table({"i": [8]}))
    left = objects(folder)
    assert not stranded & left
    assert {s.name for s in after.shards} <= left  # the set just replaced stays for its readers
    assert shards.read_table(s3_bucket, "notes", "p").column("i").to_pylist() == [8]


WRITES = 12

WRITER = """
import json, os, sys, time
import pyarrow as pa
from storage import shards

root, writer, writes, go, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]

def rows(writer, seq):
    n = 1 + (seq * 7 + writer) % 23
    return pa.table({"writer": [writer] * n, "seq": [seq] * n, "i": list(range(n))})

while not os.path.exists(go):
    time.sleep(0.01)
with open(log, "w") as out:
    for seq in range(writes):
        try:
            shards.write_table(root, "notes", "p", rows(writer, seq), rows_per_shard=5)
            out.write(json.dumps({"seq": seq}) + "\\n")
        except Exception as exc:
            out.write(json.dumps({"seq": seq, "error": repr(exc)}) + "\\n")
os._exit(0)
"""


def test_two_writer_processes_on_one_partition_end_with_one_complete_set(s3_bucket, s3_env, tmp_path):
    """Without a lock across processes, manifest-last commits alone keep every read one whole write,
    and no commit removes what another writer's manifest names."""
    shards.write_table(s3_bucket, "notes", "p", rows(9, 0), rows_per_shard=5)
    go = tmp_path / "go"
    writers = [
        start(tmp_path, s3_env, f"writer{w}", WRITER, s3_bucket, str(w), str(WRITES), str(go), str(tmp_path / f"w{w}.jsonl"))
        for w in (0, 1)
    ]
    go.touch()
    seen = []
    while any(p.poll() is None for p in writers):
        table = shards.read_table(s3_bucket, "notes", "p")
        seen.append((sorted(set(zip(table.column("writer").to_pylist(), table.column("seq").to_pylist()))), table.num_rows))
    for proc in writers:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()

    for w in (0, 1):
        log = [json.loads(line) for line in (tmp_path / f"w{w}.jsonl").read_text().splitlines()]
        assert [e.get("error") for e in log] == [None] * WRITES, f"writer {w} failed writes"
    assert len(seen) > 3
    for pairs, n in seen:
        assert len(pairs) == 1, f"a read mixed two writes: {pairs}"
        assert n == rows(*pairs[0]).num_rows
    final = shards.read_table(s3_bucket, "notes", "p")
    (owner, seq), = set(zip(final.column("writer").to_pylist(), final.column("seq").to_pylist()))
    assert (owner, seq) in {(0, WRITES - 1), (1, WRITES - 1)}
    assert final.equals(rows(owner, seq).cast(final.schema))
    assert shards.verify(s3_bucket, "notes", "p") == []


def make_batch(home, batch: str, files: list[str]) -> str:
    folder = Path(home.raw, "incoming", batch)
    folder.mkdir(parents=True)
    for path in files:
        (folder / os.path.basename(path)).write_bytes(Path(path).read_bytes())
    return f"incoming_{batch}"


def test_a_dagster_ingestion_writes_its_shard_sets_to_the_bucket(home, s3_bucket, monkeypatch):
    from pipelines.definitions import build_defs

    monkeypatch.setenv("BATON_DATASETS_URI", s3_bucket)
    chorales = sorted(glob.glob(os.path.join(CORPUS, "bach", "bwv2[0-9]*.mxl")))[:4]
    key = make_batch(home, "chorales", chorales)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("datasets", [key])
        defs = build_defs(home)
        result = defs.resolve_job_def("ingest_scores_job").execute_in_process(instance=instance, partition_key=key)
    assert result.success
    assert list(Path(home.root, "datasets").rglob("*")) == []  # made by the fixture's home, before the setting
    songs = shards.read_table(s3_bucket, "songs", key)
    assert songs.num_rows == 4
    notes = shards.read_manifest(s3_bucket, "notes", key)
    assert notes.rows == sum(songs.column("n_notes").to_pylist()) > 0
    assert {s.name for s in notes.shards} <= objects(f"{s3_bucket}/notes/{key}")
    events = shards.read_manifest(s3_bucket, "event_sequences", key)  # downstream: read notes from the bucket
    assert events.rows == 4 and events.upstream == {"notes": notes.version}
    for asset in ("songs", "notes", "event_sequences"):
        assert shards.verify(s3_bucket, asset, key) == []
