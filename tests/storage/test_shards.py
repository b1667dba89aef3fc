import json
import uuid
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch.utils.data

from storage import shards
from storage.io_manager import UNPARTITIONED, ShardIOManager
from storage.shards import ShardCorrupt, ShardIterableDataset, ShardWriter


def make_table(n: int, offset: int = 0) -> pa.Table:
    ids = list(range(offset, offset + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array([f"item-{i}" for i in ids], pa.string()),
            "payload": pa.array([bytes([i % 256]) * 8 for i in ids], pa.binary()),
        }
    )


def shard_file(root: str, asset: str, partition: str, index: int) -> Path:
    """The committed file of a partition's shard `index`, as its manifest names it."""
    return Path(root) / asset / partition / shards.read_manifest(root, asset, partition).shards[index].name


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "datasets")


def test_roundtrip_and_manifest(root):
    table = make_table(25)
    m = shards.write_table(root, "notes", "maestro", table, rows_per_shard=10, code_version="v1", upstream={"songs": "abc"})

    assert [s.rows for s in m.shards] == [10, 10, 5]
    assert m.rows == 25 and m.code_version == "v1" and m.upstream == {"songs": "abc"}
    assert shards.read_manifest(root, "notes", "maestro") == m
    assert shards.read_table(root, "notes", "maestro").equals(table)
    assert shards.list_partitions(root, "notes") == ["maestro"]
    on_disk = json.loads((Path(root) / "notes" / "maestro" / "_manifest.json").read_text())
    assert on_disk["schema_version"] == shards.SCHEMA_VERSION
    folder = Path(root) / "notes" / "maestro"
    names = [s["name"] for s in on_disk["shards"]]
    assert [n[:10] for n in names] == ["part-00000", "part-00001", "part-00002"]
    assert [n[11:27] for n in names] == [s["sha256"][:16] for s in on_disk["shards"]]
    assert [s["bytes"] for s in on_disk["shards"]] == [(folder / n).stat().st_size for n in names]
    assert sum(s["bytes"] for s in on_disk["shards"]) == m.bytes
    assert sorted(p.name for p in folder.iterdir()) == ["_manifest.json", *names]


def test_streaming_writes_full_shards_as_it_goes(root):
    with ShardWriter(root, "notes", "p", make_table(0).schema, rows_per_shard=4) as w:
        w.write(make_table(3))
        assert w._shards == []
        w.write(make_table(6, offset=3).to_batches()[0])
        assert [s.rows for s in w._shards] == [4, 4]
        w.write(make_table(2, offset=9).to_pylist())
    assert [s.rows for s in w.manifest.shards] == [4, 4, 3]
    assert shards.read_table(root, "notes", "p").column("id").to_pylist() == list(range(11))


def test_exception_leaves_old_partition_and_no_tmp(root):
    old = shards.write_table(root, "notes", "p", make_table(5))
    with pytest.raises(RuntimeError):
        with ShardWriter(root, "notes", "p", make_table(0).schema, rows_per_shard=2) as w:
            w.write(make_table(7, offset=100))
            raise RuntimeError("boom")
    assert w.manifest is None
    assert sorted(p.name for p in (Path(root) / "notes").iterdir()) == [".p.lock", "p"]
    assert sorted(p.name for p in (Path(root) / "notes" / "p").iterdir()) == ["_manifest.json", old.shards[0].name]
    assert shards.read_manifest(root, "notes", "p") == old
    assert shards.read_table(root, "notes", "p").equals(make_table(5))


def test_rewrite_replaces_partition_and_is_byte_identical(root):
    first = shards.write_table(root, "notes", "p", make_table(30), rows_per_shard=7)
    manifest_bytes = (Path(root) / "notes" / "p" / "_manifest.json").read_bytes()
    # Same rows, batched differently by the caller: the shards must not change.
    chunked = pa.concat_tables([make_table(11), make_table(19, offset=11)])
    second = shards.write_table(root, "notes", "p", chunked, rows_per_shard=7)
    assert [s.sha256 for s in second.shards] == [s.sha256 for s in first.shards]
    assert second.version == first.version
    assert (Path(root) / "notes" / "p" / "_manifest.json").read_bytes() == manifest_bytes
    assert sorted(p.name for p in (Path(root) / "notes").iterdir()) == [".p.lock", "p"]

    third = shards.write_table(root, "notes", "p", make_table(3))
    assert third.version != first.version
    assert shards.read_table(root, "notes", "p").num_rows == 3


def test_memory_uri_uses_same_code():
    root = f"memory://baton-{uuid.uuid4().hex}/datasets"
    m = shards.write_table(root, "notes", "a", make_table(9), rows_per_shard=4)
    shards.write_table(root, "notes", "b", make_table(2, offset=9))
    assert shards.list_partitions(root, "notes") == ["a", "b"]
    paths = shards.shard_paths(root, "notes", ["a", "b"])
    assert paths[0] == f"{root}/notes/a/{m.shards[0].name}" and len(paths) == 4
    assert shards.read_table(root, "notes", ["a", "b"]).column("id").to_pylist() == list(range(11))
    assert shards.verify(root, "notes", "a") == []
    assert shards.read_manifest(root, "notes", "a") == m


def test_iter_batches_projects_filters_and_streams(root):
    shards.write_table(root, "notes", "p", make_table(50), rows_per_shard=20)
    batches = list(shards.iter_batches(root, "notes", "p", columns=["id"], filter=pc.field("id") >= 15, batch_size=8))
    assert all(b.schema.names == ["id"] and b.num_rows <= 8 for b in batches)
    assert [i for b in batches for i in b.column("id").to_pylist()] == list(range(15, 50))
    small = shards.read_table(root, "notes", "p", columns=["name"], filter=pc.field("id") < 2)
    assert small.to_pylist() == [{"name": "item-0"}, {"name": "item-1"}]


def test_verify_detects_corruption_and_missing_shard(root):
    shards.write_table(root, "notes", "p", make_table(30), rows_per_shard=10)
    assert shards.verify(root, "notes", "p") == []
    shard = shard_file(root, "notes", "p", 1)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    missing = shard_file(root, "notes", "p", 2)
    missing.unlink()
    problems = shards.verify(root, "notes", "p")
    assert len(problems) == 2
    assert f"{shard.name}: sha256" in problems[0]
    assert problems[1] == f"{missing.name}: missing"
    assert shards.verify(root, "notes", "absent") == ["notes/absent: no manifest"]


def test_empty_write_is_a_valid_shard_set(root):
    schema = make_table(0).schema
    with ShardWriter(root, "notes", "empty", schema) as w:
        pass
    assert w.manifest.rows == 0 and w.manifest.shards == ()
    assert shards.verify(root, "notes", "empty") == []
    assert shards.shard_paths(root, "notes", "empty") == []
    table = shards.read_table(root, "notes", "empty")
    assert table.num_rows == 0 and table.schema == schema


def test_write_rejects_mismatched_columns(root):
    with pytest.raises(ValueError, match="do not match"):
        with ShardWriter(root, "notes", "p", make_table(0).schema) as w:
            w.write(make_table(2).append_column("extra", pa.array([1, 2])))
    assert shards.list_partitions(root, "notes") == []


def test_missing_partition_is_a_clear_error(root):
    shards.write_table(root, "notes", "a", make_table(1))
    assert shards.read_manifest(root, "notes", "b") is None
    assert shards.list_partitions(root, "songs") == []
    with pytest.raises(FileNotFoundError, match="partition 'b'"):
        shards.read_table(root, "notes", ["a", "b"])


def _id_of(row: dict) -> int:
    return row["id"]


def test_dataloader_workers_read_every_row_once(root):
    shards.write_table(root, "notes", "p", make_table(57), rows_per_shard=5)
    dataset = ShardIterableDataset(shards.shard_paths(root, "notes", "p"), columns=["id"], transform=_id_of, shuffle_shards_seed=3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
    assert sorted(int(i) for i in loader) == list(range(57))


def test_shard_shuffle_is_seeded(root):
    shards.write_table(root, "notes", "p", make_table(40), rows_per_shard=5)
    paths = shards.shard_paths(root, "notes", "p")

    def first_ids(seed):
        return [row["id"] for row in ShardIterableDataset(paths, columns=["id"], shuffle_shards_seed=seed)][::5]

    assert first_ids(None) == list(range(0, 40, 5))
    assert first_ids(7) == first_ids(7)
    assert sorted(first_ids(7)) == list(range(0, 40, 5)) and first_ids(7) != first_ids(None)


def test_dataset_yields_dict_rows_in_process(root):
    shards.write_table(root, "notes", "p", make_table(3), rows_per_shard=2)
    rows = list(ShardIterableDataset(shards.shard_paths(root, "notes", "p"), columns=["id", "name"]))
    assert rows == [{"id": 0, "name": "item-0"}, {"id": 1, "name": "item-1"}, {"id": 2, "name": "item-2"}]


def _flip_column_byte(shard: Path) -> None:
    """Flip the last byte of the first column chunk: page data, well before the footer."""
    column = pq.ParquetFile(shard).metadata.row_group(0).column(0)
    data = bytearray(shard.read_bytes())
    data[column.data_page_offset + column.total_compressed_size - 1] ^= 0x01
    shard.write_bytes(bytes(data))


def test_reads_reject_a_flipped_byte_before_using_the_shard(root):
    shards.write_table(root, "notes", "p", make_table(30), rows_per_shard=10)
    shard = shard_file(root, "notes", "p", 1)
    _flip_column_byte(shard)

    with pytest.raises(ShardCorrupt, match="checksum mismatch") as raised:
        shards.read_table(root, "notes", "p", columns=["id"])
    assert str(shard) in str(raised.value)

    seen = []
    with pytest.raises(ShardCorrupt, match=f"{shard}: checksum mismatch"):
        for batch in shards.iter_batches(root, "notes", "p", batch_size=4):
            seen.extend(batch.column("id").to_pylist())
    assert seen == list(range(10))

    with pytest.raises(ShardCorrupt, match=f"{shard}: checksum mismatch"):
        list(ShardIterableDataset(shards.shard_paths(root, "notes", "p"), columns=["id"]))
    assert f"{shard.name}: sha256" in shards.verify(root, "notes", "p")[0]


def test_verified_reads_of_an_intact_set_match_unverified_ones(root):
    table = make_table(45)
    shards.write_table(root, "notes", "p", table, rows_per_shard=10)
    assert shards.read_table(root, "notes", "p").equals(table)
    assert shards.read_table(root, "notes", "p", verify=False).equals(table)
    expr = (pc.field("id") >= 8) & (pc.field("id") < 33)
    verified = shards.read_table(root, "notes", "p", columns=["name"], filter=expr)
    assert verified.equals(shards.read_table(root, "notes", "p", columns=["name"], filter=expr, verify=False))
    assert verified.column("name").to_pylist() == [f"item-{i}" for i in range(8, 33)]


def test_an_asset_reading_a_corrupt_shard_fails(root):
    @dg.asset
    def notes() -> pa.Table:
        return make_table(5)

    @dg.asset
    def note_count(notes: pa.Table) -> pa.Table:
        return pa.table({"n": [notes.num_rows]})

    resources = {"io_manager": ShardIOManager(datasets_root=root)}
    assert dg.materialize([notes, note_count], resources=resources).success
    shard = shard_file(root, "notes", UNPARTITIONED, 0)
    _flip_column_byte(shard)
    with pytest.raises(Exception, match="checksum mismatch") as raised:
        dg.materialize([notes, note_count], selection=[note_count], resources=resources)
    assert str(shard) in str(raised.value)
