"""Large datasets split into shards of files: stable keys, balanced shards, and a sharded local folder
through a real Dagster instance, its shard sets together equal to one unsharded ingestion."""

import json
import os
import subprocess
import sys
from collections import Counter

import dagster as dg
import pytest

from assets.core.dataset_shards import (
    all_keys,
    complete,
    datasets_of,
    keys_of,
    parse_key,
    partition_keys,
    shard_of,
)
from assets.core.partitions import DATASETS, add_partitions
from assets.core.resources import HomeResource
from assets.mmt import codes as mmt_codes
from assets.mmt.defs import training_sets
from assets.scores import datasets
from pipelines import sensors
from pipelines.cli import main
from pipelines.definitions import build_defs
from storage import shards
from storage.names import check_name

from .conftest import write_midi

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- the stable hash and the keys -------------------------------------------------------------


def test_shard_of_is_the_sha1_of_the_item_id():
    # sha1("a.mid") = d7e0e2b60e4b6b12..., sha1("tunes.abc#X7") = 8508703198c3f23e..., first 8 bytes mod n
    assert shard_of("a.mid", 8) == 0xD7E0E2B60E4B6B12 % 8 == 2
    assert shard_of("a.mid", 64) == 18
    assert shard_of("tunes.abc#X7", 8) == 6 and shard_of("tunes.abc#X7", 64) == 62
    assert shard_of("lmd/0/0a1b.mid", 64) == 20
    assert {shard_of("a.mid", 1), shard_of("tunes.abc#X7", 1)} == {0}


def test_shards_and_keys_are_the_same_in_another_process_with_another_hash_seed():
    script = (
        "import json, os\n"
        "from assets.core.dataset_shards import partition_keys, shard_of\n"
        "print(json.dumps([[shard_of(f'd/{i}.mid', 16) for i in range(300)], partition_keys('lmd', 64)]))\n"
        "os._exit(0)\n"
    )
    here = [[shard_of(f"d/{i}.mid", 16) for i in range(300)], partition_keys("lmd", 64)]
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": REPO}
        out = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == here


@pytest.mark.parametrize("n", [2, 7, 10, 64, 100, 1000])
def test_keys_round_trip_and_are_plain_names(n):
    keys = partition_keys("lmd", n)
    assert len(keys) == len(set(keys)) == n
    assert all(len(key) == len(keys[0]) for key in keys)  # zero-padded: they sort by shard
    assert [parse_key(key) for key in keys] == [("lmd", i, n) for i in range(n)]
    assert all(check_name(key) == key for key in keys)


def test_key_format_and_whole_datasets():
    assert partition_keys("lmd", 64)[7] == "lmd.s07of64"
    assert partition_keys("lmd", 100)[7] == "lmd.s007of100"
    assert partition_keys("bach_chorales", 1) == ["bach_chorales"]
    assert parse_key("bach_chorales") == ("bach_chorales", 0, 1)
    assert parse_key("my.scores.v2") == ("my.scores.v2", 0, 1)  # a dataset whose name has dots
    assert parse_key("my.scores.v2.s3of4") == ("my.scores.v2", 3, 4)
    for whole in ("x.s7of64", "x.s64of64", "x.s0of1", "x.s00of064", "x.s-1of4", "x.s1of4.mid"):
        assert parse_key(whole) == (whole, 0, 1), whole  # not a well-formed shard suffix
    with pytest.raises(ValueError, match="at least 1"):
        partition_keys("lmd", 0)
    with pytest.raises(ValueError, match="reads as a shard key"):
        partition_keys("x.s1of4", 1)


def test_every_item_lands_in_exactly_one_shard_and_shards_are_balanced():
    paths = [f"artist_{i % 37}/song_{i:04d}.mid" for i in range(1000)]
    counts = Counter(shard_of(path, 8) for path in paths)
    assert sorted(counts) == list(range(8)) and sum(counts.values()) == 1000
    assert all(abs(count - 125) <= 0.5 * 125 for count in counts.values()), counts


def test_keys_of_and_complete_datasets():
    available = ["bach_chorales", *partition_keys("lmd", 4), *partition_keys("mine", 3)[:2], "my.set"]
    assert keys_of("lmd", reversed(available)) == partition_keys("lmd", 4)
    assert keys_of("bach_chorales", available) == ["bach_chorales"]
    assert complete("lmd", available) and not complete("mine", available) and not complete("gone", available)
    assert not complete("lmd", [*available, "lmd.s0of2"])  # two shard counts at once: re-shard in progress
    assert datasets_of(available) == ["bach_chorales", "lmd", "my.set"]
    assert all_keys(["my.set", "lmd"], available) == ["my.set", *partition_keys("lmd", 4)]


# --- registry ---------------------------------------------------------------------------------


def test_remote_lakh_datasets_are_sharded_and_the_small_ones_are_not():
    assert {name: datasets.get_info(name).shards for name in ("lmd", "lmd_matched", "lmd_aligned")} == {
        "lmd": 64, "lmd_matched": 32, "lmd_aligned": 16,
    }  # fmt: skip
    assert datasets.get_info("bach_chorales").shards == datasets.get_info("maestro").shards == 1
    assert datasets.partition_keys("lmd")[:2] == ["lmd.s00of64", "lmd.s01of64"]
    assert datasets.partition_keys("bach_chorales") == ["bach_chorales"]


def test_register_local_keeps_the_shard_count(tmp_path):
    registry = tmp_path / "local.json"
    datasets.register_local("plain", tmp_path, registry)
    datasets.register_local("big", tmp_path, registry, shards=4)
    assert json.loads(registry.read_text()) == {"plain": str(tmp_path), "big": {"folder": str(tmp_path), "shards": 4}}
    assert datasets.get_info("big", registry).shards == 4 and datasets.get_info("plain", registry).shards == 1
    assert datasets.partition_keys("big", registry) == ["big.s0of4", "big.s1of4", "big.s2of4", "big.s3of4"]
    assert {i.name: i.shards for i in datasets.list_datasets(registry)}["big"] == 4
    with pytest.raises(ValueError, match="shard count"):
        datasets.register_local("bad", tmp_path, registry, shards=0)


def test_shard_items_partition_a_folder_and_split_many_tune_files(tmp_path):
    from .conftest import ABC_TWO_TUNES

    for i in range(12):
        write_midi(tmp_path / "f" / f"{i:02d}.mid")
    (tmp_path / "f" / "tunes.abc").write_text(ABC_TWO_TUNES)
    datasets.register_local("mine", tmp_path / "f", tmp_path / "r.json", shards=3)
    whole = datasets.list_items("mine", tmp_path, tmp_path / "r.json")
    parts = [datasets.shard_items(key, tmp_path, tmp_path / "r.json") for key in datasets.partition_keys("mine", tmp_path / "r.json")]
    assert sorted((item for part in parts for item in part), key=str) == sorted(whole, key=str) and len(whole) == 14
    assert [{shard_of(item.item_id, 3) for item in part} for part in parts] == [{0}, {1}, {2}]
    tunes = {item.item_id: i for i, part in enumerate(parts) for item in part if item.number}
    assert tunes == {"tunes.abc#X3": 1, "tunes.abc#X7": 2}  # the tunes of one file hash apart
    assert all(item.dataset == "mine" for part in parts for item in part)  # the dataset, not the shard key


def test_registry_sensor_adds_every_shard_key(home, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    datasets.register_local("big_local", folder, home.local_datasets, shards=4)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"home": HomeResource(root=home.root)})
        added = set(sensors.dataset_partitions_sensor(context).dynamic_partitions_requests[0].partition_keys)
    assert {"big_local.s0of4", "big_local.s1of4", "big_local.s2of4", "big_local.s3of4", "bach_chorales"} <= added
    assert "big_local" not in added
    assert not {key for key in added if key.startswith("lmd")}  # a remote dataset waits for its download


# --- a sharded folder through Dagster ---------------------------------------------------------


def midi_folder(folder, n):
    """n small, distinct MIDI files written by muspy, some in a subfolder."""
    for i in range(n):
        notes = ((0, 48 + i % 30, 24), (24, 50 + i % 30, 12), (36, 55 + i % 20, 36 + i))
        write_midi(folder / ("sub" if i % 3 == 0 else "") / f"piece_{i:02d}.mid", notes=notes)
    return folder


def ingest(defs, instance, keys):
    add_partitions(instance, DATASETS, keys)
    job = defs.resolve_job_def("score_notes_job")
    for key in keys:
        assert job.execute_in_process(instance=instance, partition_key=key).success, key


def rows(root, asset, keys, columns):
    frame = shards.read_table(root, asset, keys).to_pandas()[columns]
    return sorted(map(tuple, frame.itertuples(index=False)))


NOTE_COLUMNS = ["song", "dataset", "track", "program", "onset", "duration", "pitch", "velocity"]


def test_sharded_folder_ingests_per_shard_equal_to_one_partition_and_is_read_whole(home, tmp_path):
    folder = midi_folder(tmp_path / "scores", 40)
    root, defs = home.datasets, build_defs(home)
    with dg.instance_for_test() as instance:
        datasets.register_local("mine", folder, home.local_datasets)
        ingest(defs, instance, ["mine"])
        whole_songs, whole_notes = rows(root, "songs", ["mine"], ["dataset", "song"]), rows(root, "notes", ["mine"], NOTE_COLUMNS)
        assert len(whole_songs) == 40

        datasets.register_local("mine", folder, home.local_datasets, shards=4)
        keys = datasets.partition_keys("mine", home.local_datasets)
        ingest(defs, instance, keys)
        assert sorted(k for k in instance.get_dynamic_partitions(DATASETS.name) if k.startswith("mine.")) == keys
        assert instance.get_materialized_partitions(dg.AssetKey("notes")) == {"mine", *keys}
        assert all(shards.read_manifest(root, "notes", key).rows > 0 for key in keys)
        per_shard = [len(rows(root, "songs", [key], ["song"])) for key in keys]
        assert sum(per_shard) == 40 and all(per_shard), per_shard
        assert rows(root, "songs", keys, ["dataset", "song"]) == whole_songs
        assert rows(root, "notes", keys, NOTE_COLUMNS) == whole_notes
        assert not set(rows(root, "songs", keys[:1], ["song"])) & set(rows(root, "songs", keys[1:], ["song"]))

        codes = defs.resolve_job_def("mmt_codes_job")
        smoke = {"ops": {"mmt_codes": {"config": {"profile": "smoke"}}}}
        for key in keys[:3]:
            assert codes.execute_in_process(instance=instance, partition_key=key, run_config=smoke).success
        resource = HomeResource(root=home.root)
        with pytest.raises(dg.Failure, match="not materialized for \\['mine'\\]"):
            training_sets(resource, ["mine"])  # three of four shards encoded: not the whole dataset
        assert codes.execute_in_process(instance=instance, partition_key=keys[3], run_config=smoke).success
        picked = training_sets(resource, ["mine"])  # selected by dataset name, read by every shard key
        assert picked == keys
        songs = [song for split in ("train", "valid", "test") for song in mmt_codes.read_sequences(root, picked, split)[0]]
        assert sorted(songs) == sorted(song for _, song in whole_songs)
        assert set(shards.read_table(root, "mmt_codes", keys, columns=["dataset"]).column("dataset").to_pylist()) == {"mine"}


@pytest.fixture
def persistent(home, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", home.dagster)  # instance_for sets it; restored afterwards
    from pipelines.cli import launch

    with launch.instance_for(home) as instance:
        yield instance


def test_cli_ingest_folder_with_shards_adds_and_runs_every_shard(home, tmp_path, persistent, capsys):
    folder = midi_folder(tmp_path / "Drop Box", 8)
    assert main(["ingest", str(folder), "--shards", "4"]) == 0
    out = capsys.readouterr().out
    keys = ["drop_box.s0of4", "drop_box.s1of4", "drop_box.s2of4", "drop_box.s3of4"]
    assert [k for k in persistent.get_dynamic_partitions(DATASETS.name) if k.startswith("drop_box")] == keys
    assert all(f"ok   score_notes_job[{key}]" in out for key in keys), out
    assert sum(shards.read_manifest(home.datasets, "songs", key).rows for key in keys) == 8
    assert datasets.get_info("drop_box", home.local_datasets).shards == 4
    assert main(["ingest", str(folder)]) == 0  # named again without --shards: still four shards
    out = capsys.readouterr().out
    assert all(f"ok   score_notes_job[{key}]" in out for key in keys), out
    assert datasets.get_info("drop_box", home.local_datasets).shards == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shards", "0"], "error: --shards must be at least 1, not 0"),
        (["lmd", "--shards", "8"], "error: --shards: lmd has a fixed 64 shard(s)"),
    ],
)
def test_cli_ingest_bad_shards_is_one_line_and_status_2(home, tmp_path, capsys, argv, message):
    folder = midi_folder(tmp_path / "drop", 1)
    assert main(["ingest", str(folder), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_shards_downloading_at_once_fetch_the_archive_once(tmp_path, serve, monkeypatch):
    import dataclasses
    import hashlib
    import http.server
    import tarfile
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from assets.scores.datasets import muspy_sources

    for i in range(6):
        write_midi(tmp_path / "staging" / "lmd_full" / f"{i}.mid")
    archive = tmp_path / "www" / "lmd_full.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "staging" / "lmd_full", arcname="lmd_full")
    fetched, lock = [], threading.Lock()

    class Counting(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(archive.parent), **kwargs)

        def do_GET(self):
            with lock:
                fetched.append(self.path)
            super().do_GET()

    data = archive.read_bytes()
    source = dataclasses.replace(
        muspy_sources.REMOTE_SOURCES["lmd"], url=f"{serve(handler=Counting)}/lmd_full.tar.gz",
        md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, "lmd", source)
    raw = tmp_path / "raw"
    with ThreadPoolExecutor(8) as pool:  # eight shard steps asking for the same download
        outs = list(pool.map(lambda _: datasets.download("lmd", raw, progress=False), range(8)))
    assert set(outs) == {str(raw / "lmd" / "extracted")} and fetched == ["/lmd_full.tar.gz"]
    keys = datasets.partition_keys("lmd")
    listed = [item.item_id for key in keys for item in datasets.shard_items(key, raw)]
    assert sorted(listed) == [f"lmd_full/{i}.mid" for i in range(6)]
