from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from storage import shards
from storage.io_manager import ShardIOManager

letters = dg.StaticPartitionsDefinition(["b", "a"])


@dg.asset(partitions_def=letters, code_version="2")
def songs(context: dg.AssetExecutionContext) -> pd.DataFrame:
    key = context.partition_key
    return pd.DataFrame({"song": [f"{key}{i}" for i in range(3 if key == "a" else 2)], "length": [1.5] * (3 if key == "a" else 2)})


@dg.asset
def song_count(songs: pd.DataFrame) -> pa.Table:
    return pa.table({"n": [len(songs)], "first": [songs["song"].iloc[0]], "last": [songs["song"].iloc[-1]]})


@dg.asset
def song_summary(song_count: pd.DataFrame) -> pd.DataFrame:
    return song_count.assign(seen=True)


@dg.asset
def nested(songs: pa.Table) -> pa.Table:
    assert isinstance(songs, pa.Table)
    return pa.table({"songs": [songs.column("song").to_pylist()], "rows": pa.array([[[1, 2], [3, 4]]], pa.list_(pa.list_(pa.int16(), 2)))})


@dg.asset
def nested_reader(nested: pa.Table) -> pa.Table:
    return nested


@pytest.fixture
def instance(tmp_path: Path):
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield instance


def test_partitioned_and_unpartitioned_assets_roundtrip(tmp_path: Path, instance):
    root = str(tmp_path / "datasets")
    resources = {"io_manager": ShardIOManager(datasets_root=root)}
    for key in ["b", "a"]:
        result = dg.materialize([songs], partition_key=key, resources=resources, instance=instance)
        assert result.success

    assert shards.list_partitions(root, "songs") == ["a", "b"]
    meta = instance.get_latest_materialization_event(dg.AssetKey("songs")).asset_materialization.metadata
    manifest = shards.read_manifest(root, "songs", "a")
    assert meta["rows"].value == 3 and meta["shards"].value == 1
    assert meta["bytes"].value == manifest.bytes
    assert meta["data_version"].value == manifest.version
    assert meta["path"].value == f"{root}/songs/a"
    assert manifest.code_version == "2"

    result = dg.materialize(
        [songs, song_count, song_summary], selection=[song_count, song_summary], resources=resources, instance=instance
    )
    assert result.success
    assert shards.read_manifest(root, "song_count", "__all__").rows == 1
    summary = shards.read_table(root, "song_summary", "__all__").to_pandas()
    # The downstream asset saw both upstream partitions, concatenated in sorted order.
    assert summary.to_dict("records") == [{"n": 5, "first": "a0", "last": "b1", "seen": True}]


def test_rejects_untabular_output(tmp_path: Path, instance):
    @dg.asset
    def not_a_table() -> list:
        return [1, 2]

    with pytest.raises(TypeError, match="got list"):
        dg.materialize([not_a_table], resources={"io_manager": ShardIOManager(datasets_root=str(tmp_path))}, instance=instance)


def test_arrow_annotated_inputs_load_as_tables_with_nested_columns(tmp_path: Path, instance):
    resources = {"io_manager": ShardIOManager(datasets_root=str(tmp_path / "datasets"))}
    for key in ["a", "b"]:
        assert dg.materialize([songs], partition_key=key, resources=resources, instance=instance).success
    result = dg.materialize([songs, nested, nested_reader], selection=[nested, nested_reader], resources=resources, instance=instance)
    assert result.success
    table = shards.read_table(str(tmp_path / "datasets"), "nested_reader", "__all__")
    assert table.column("songs").to_pylist() == [["a0", "a1", "a2", "b0", "b1"]]
    assert table.schema.field("rows").type == pa.list_(pa.list_(pa.int16(), 2))
    assert table.column("rows").to_pylist() == [[[1, 2], [3, 4]]]
