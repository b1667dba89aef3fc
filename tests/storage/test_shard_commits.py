"""Shard commits under concurrent writers, kills between commit steps, leftovers and unsafe names."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

from storage import shards
from storage.names import UnsafeName
from storage.shards import PartitionLocked, ShardWriter

REPO = Path(__file__).resolve().parents[2]
WRITES = 120


def rows(writer: int, seq: int) -> pa.Table:
    """Write `seq` of `writer`: 1-23 rows, so sets differ in shard count as well as content."""
    n = 1 + (seq * 7 + writer) % 23
    return pa.table({"writer": [writer] * n, "seq": [seq] * n, "i": list(range(n))})


def run_script(tmp_path: Path, name: str, body: str, *args: str) -> subprocess.Popen:
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(script), *args], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)


WRITER = """
import json, os, sys, time
import pyarrow as pa
from storage import shards

root, writer, writes, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def rows(writer, seq):
    n = 1 + (seq * 7 + writer) % 23
    return pa.table({"writer": [writer] * n, "seq": [seq] * n, "i": list(range(n))})

with open(log, "w") as out:
    for seq in range(writes):
        try:
            shards.write_table(root, "notes", "p", rows(writer, seq), rows_per_shard=5)
        except Exception as exc:
            out.write(json.dumps({"seq": seq, "error": repr(exc)}) + "\\n")
            continue
        after = shards.read_table(root, "notes", "p")
        owner = (after.column("writer")[0].as_py(), after.column("seq")[0].as_py())
        out.write(json.dumps({"seq": seq, "after": owner}) + "\\n")
# Skip interpreter teardown: pyarrow's and torch's thread pools can abort there under load,
# after every write above is done and logged, which is not what this test is about.
os._exit(0)
"""

READER = """
import json, os, sys, time
from storage import shards

root, stop, log = sys.argv[1], sys.argv[2], sys.argv[3]
folder = os.path.join(root, "notes", "p")
with open(log, "w") as out:
    while not os.path.exists(stop):
        record = {}
        try:
            table = shards.read_table(root, "notes", "p")
            pairs = sorted(set(zip(table.column("writer").to_pylist(), table.column("seq").to_pylist())))
            record = {"pairs": pairs, "rows": table.num_rows}
        except Exception as exc:
            record = {"error": repr(exc)}
        record["dirs"] = [n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))]
        out.write(json.dumps(record) + "\\n")
os._exit(0)  # as in WRITER
"""


def expected_rows(writer: int, seq: int) -> int:
    return rows(writer, seq).num_rows


def test_two_processes_writing_one_partition(tmp_path):
    """No write that reported success is lost, no foreign folder enters a committed set, and the
    partition is never missing between commits."""
    root = str(tmp_path / "datasets")
    shards.write_table(root, "notes", "p", rows(9, 0), rows_per_shard=5)
    stop = tmp_path / "stop"
    reader = run_script(tmp_path, "reader", READER, root, str(stop), str(tmp_path / "reader.jsonl"))
    writers = [
        run_script(tmp_path, f"writer{w}", WRITER, root, str(w), str(WRITES), str(tmp_path / f"writer{w}.jsonl"))
        for w in (0, 1)
    ]
    for proc in writers:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()
    stop.touch()
    assert reader.wait(timeout=60) == 0, reader.stderr.read()

    logs = {w: [json.loads(line) for line in (tmp_path / f"writer{w}.jsonl").read_text().splitlines()] for w in (0, 1)}
    for w, entries in logs.items():
        assert [e.get("error") for e in entries] == [None] * WRITES, f"writer {w} failed writes"
        for entry in entries:
            owner, seq = entry["after"]
            # Read straight after its own commit: a writer sees its own write or a later one of the
            # other writer, never an older one of its own (which would mean its write was lost).
            assert owner != w or seq == entry["seq"], f"writer {w} write {entry['seq']} lost: read back {owner, seq}"

    seen = [json.loads(line) for line in (tmp_path / "reader.jsonl").read_text().splitlines()]
    assert len(seen) > 50
    assert [r for r in seen if "error" in r] == []
    assert [r["dirs"] for r in seen if r["dirs"]] == []
    last_seq = {9: -1, 0: -1, 1: -1}
    for record in seen:
        assert len(record["pairs"]) == 1, f"a read mixed two writes: {record['pairs']}"
        (writer, seq), = record["pairs"]
        assert record["rows"] == expected_rows(writer, seq)
        assert seq >= last_seq[writer], "a read went back to an older write"
        last_seq[writer] = seq

    final = shards.read_table(root, "notes", "p")
    assert (final.column("writer")[0].as_py(), final.column("seq")[0].as_py()) in {(0, WRITES - 1), (1, WRITES - 1)}
    assert shards.verify(root, "notes", "p") == []
    left = sorted(p.name for p in (Path(root) / "notes" / "p").iterdir())
    named = {s.name for s in shards.read_manifest(root, "notes", "p").shards}
    previous = shards.Manifest.from_json((Path(root) / "notes" / "p" / shards.PREVIOUS).read_text())
    assert set(left) == {"_manifest.json", shards.PREVIOUS} | named | {s.name for s in previous.shards}


KILLED_RUN = """
import os, sys, time
import dagster as dg
import pyarrow as pa
from storage import shards
from storage.io_manager import ShardIOManager

root, ready, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
pause = os.environ.get("PAUSE_BEFORE_POINTER") == "1"
put = shards._put

def put_then_stall(fs, path, data):
    if pause and path.endswith("/" + shards.MANIFEST):
        open(ready, "w").close()
        time.sleep(600)
    put(fs, path, data)

shards._put = put_then_stall

@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["p"]))
def notes() -> pa.Table:
    return pa.table({"i": list(range(n))})

result = dg.materialize([notes], partition_key="p", instance=dg.DagsterInstance.get(),
                        resources={"io_manager": ShardIOManager(datasets_root=root)})
sys.stderr.flush()
os._exit(0 if result.success else 1)  # as in WRITER
"""


def test_kill_between_the_two_steps_of_a_commit(tmp_path, monkeypatch):
    """A run killed with SIGKILL after writing its shards and before switching the manifest leaves
    the previous set readable, and the next run succeeds and removes what the killed one left."""
    root = str(tmp_path / "datasets")
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    ready = tmp_path / "ready"

    first = run_script(tmp_path, "run", KILLED_RUN, root, str(ready), "40")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    before = shards.read_table(root, "notes", "p")

    monkeypatch.setenv("PAUSE_BEFORE_POINTER", "1")
    killed = run_script(tmp_path, "run", KILLED_RUN, root, str(ready), "250000")
    deadline = time.monotonic() + 300
    while not ready.exists():
        assert killed.poll() is None, killed.stderr.read()
        assert time.monotonic() < deadline, "the run never reached its commit"
        time.sleep(0.2)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)

    folder = Path(root) / "notes" / "p"
    committed = {s.name for s in shards.read_manifest(root, "notes", "p").shards}
    stranded = {p.name for p in folder.glob("part-*.parquet")} - committed
    assert stranded, "the killed run wrote no shards before its commit"
    assert shards.read_table(root, "notes", "p").equals(before)
    assert shards.verify(root, "notes", "p") == []

    monkeypatch.delenv("PAUSE_BEFORE_POINTER")
    again = run_script(tmp_path, "run", KILLED_RUN, root, str(ready), "30")
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert shards.read_table(root, "notes", "p").column("i").to_pylist() == list(range(30))
    assert not stranded & {p.name for p in folder.iterdir()}


HOLDER = """
import os, sys, time
import pyarrow as pa
from storage import shards

root, ready = sys.argv[1], sys.argv[2]
with shards.ShardWriter(root, "notes", "p", pa.schema([("i", pa.int64())])) as w:
    w.write(pa.table({"i": [1, 2, 3]}))
    open(ready, "w").close()
    time.sleep(float(sys.argv[3]))
os._exit(0)  # as in WRITER
"""


def test_a_second_writer_waits_for_the_lock_or_fails_clearly(tmp_path):
    root = str(tmp_path / "datasets")
    ready = tmp_path / "ready"
    holder = run_script(tmp_path, "holder", HOLDER, root, str(ready), "4")
    while not ready.exists():
        assert holder.poll() is None, holder.stderr.read()
        time.sleep(0.05)

    with pytest.raises(PartitionLocked, match=rf"notes/p is being written by pid {holder.pid}; gave up after 0.5 s"):
        shards.write_table(root, "notes", "p", pa.table({"i": [9]}), lock_wait_s=0.5)
    assert shards.read_manifest(root, "notes", "p") is None

    waited = shards.write_table(root, "notes", "p", pa.table({"i": [7, 8]}), lock_wait_s=120)
    assert holder.wait(timeout=60) == 0
    assert waited.rows == 2
    assert shards.read_table(root, "notes", "p").column("i").to_pylist() == [7, 8]


def test_a_failed_write_removes_its_shards_and_keeps_the_set(tmp_path):
    root = str(tmp_path / "datasets")
    old = shards.write_table(root, "notes", "p", pa.table({"i": list(range(10))}), rows_per_shard=4)
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(root, "notes", "p", pa.schema([("i", pa.int64())]), rows_per_shard=2) as w:
            w.write(pa.table({"i": list(range(100, 107))}))
            assert len(list((Path(root) / "notes" / "p").glob("part-*"))) == 3 + 3
            raise RuntimeError("boom")
    assert sorted(p.name for p in (Path(root) / "notes" / "p").iterdir()) == sorted(
        ["_manifest.json", *(s.name for s in old.shards)]
    )
    assert shards.read_manifest(root, "notes", "p") == old


def test_leftovers_of_the_two_rename_commit_are_recovered(tmp_path):
    """A set the old protocol left only in `.old-<partition>-*` (killed between its renames) is put
    back by the next write's recovery, and `.tmp-*` folders are removed."""
    root = tmp_path / "datasets"
    shards.write_table(str(root), "notes", "p", pa.table({"i": [1, 2]}))
    asset = root / "notes"
    (asset / "p").rename(asset / ".old-p-0123")
    assert shards.read_manifest(str(root), "notes", "p") is None
    (asset / ".tmp-p-4567").mkdir()
    (asset / ".tmp-p-4567" / "part-00000.parquet").write_bytes(b"partial")
    (asset / ".tmp-other-89").mkdir()

    with ShardWriter(str(root), "notes", "p", pa.schema([("i", pa.int64())])) as w:
        assert shards.read_table(str(root), "notes", "p").column("i").to_pylist() == [1, 2]
        w.write(pa.table({"i": [5]}))
    assert sorted(p.name for p in asset.iterdir()) == [".p.lock", ".tmp-other-89", "p"]
    assert shards.read_table(str(root), "notes", "p").column("i").to_pylist() == [5]


@pytest.mark.parametrize("partition", ["../../outside/x", "..", ".hidden", "a/b", "", "x" * 200])
def test_unsafe_partition_keys_are_refused_before_any_write(tmp_path, partition):
    root = tmp_path / "data" / "datasets"
    with pytest.raises(UnsafeName, match="partition key"):
        shards.write_table(str(root), "notes", partition, pa.table({"i": [1]}))
    with pytest.raises(UnsafeName):
        shards.read_manifest(str(root), "notes", partition)
    assert not (tmp_path / "outside").exists()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
