"""The sensor, the schedule and the code location as the UI loads them."""

import os
import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pyarrow as pa

from assets.core.resources import HomeResource
from assets.scores import tables
from pipelines import definitions, sensors
from pipelines.definitions import build_defs
from pipelines.schedules import weekly_music_lm_retrain
from storage import shards


def test_code_location_loads():
    dg.Definitions.validate_loadable(definitions.defs)
    job_names = {job.name for job in definitions.defs.resolve_all_job_defs()}
    assert {"symbolic_dataset", "ingest_scores_job", "music_lm_retrain", "cross_dataset_perplexity_job"} <= job_names


def test_incoming_sensor_claims_settled_files(home):
    incoming = os.path.join(home.incoming, "scores")
    os.makedirs(os.path.join(incoming, "sub"))
    old, fresh = os.path.join(incoming, "sub", "a.mid"), os.path.join(incoming, "b.mid")
    for path in (old, fresh):
        with open(path, "wb") as f:
            f.write(b"MThd")
    past, future = time.time() - 60, time.time() + 600  # "future": still being written, whatever the test's speed
    os.utime(old, (past, past))
    os.utime(fresh, (future, future))
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"home": HomeResource(root=home.root)})
        result = sensors.incoming_scores_sensor(context)
        assert isinstance(result, dg.SensorResult)
        (request,) = result.run_requests
        key = request.partition_key
        assert key.startswith("incoming_")
        assert result.dynamic_partitions_requests[0].partition_keys == [key]
        claim = request.run_config["ops"]["score_files"]["config"]["claim"]
        assert [f["path"] for f in claim] == ["sub/a.mid"]  # the fresh file waits for the next tick
        assert os.path.exists(old) and os.path.exists(fresh)  # the run's first step moves the files, not the sensor

        os.remove(old)
        os.remove(fresh)
        assert sensors.incoming_scores_sensor(context).skip_reason.skip_message == f"nothing new in {incoming}"


def test_weekly_retraining_schedule(home):
    defs = build_defs(home)
    schedule = defs.resolve_schedule_def("weekly_music_lm_retrain")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    empty = pa.Table.from_pylist([], schema=tables.EVENTS)
    shards.write_table(home.datasets, "event_sequences", "jsb", empty)
    shards.write_table(home.datasets, "event_sequences", "orphan", empty)
    with dg.instance_for_test() as instance, dg.build_schedule_context(
        instance=instance,
        resources={"home": HomeResource(root=home.root)},
        scheduled_execution_time=datetime(2026, 11, 23, 3, tzinfo=timezone.utc),
    ) as context:  # leaving the context releases its resources and the instance it entered
        assert weekly_music_lm_retrain(context).skip_message == "no dataset has event_sequences yet"
        instance.add_dynamic_partitions("datasets", ["jsb"])
        requests = weekly_music_lm_retrain(context)
        assert [(r.partition_key, r.run_key) for r in requests] == [("jsb", "jsb-20261123")]


def tick_datasets(instance: dg.DagsterInstance, home) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(instance=instance, resources={"home": HomeResource(root=home.root)})
    return sensors.dataset_partitions_sensor(context)


def test_dataset_partitions_sensor_adds_only_datasets_whose_files_are_here(home, tmp_path):
    from assets.scores.datasets import partition_keys, register_local
    from assets.scores.datasets.music21_corpus import COLLECTIONS
    from assets.scores.datasets.muspy_sources import REMOTE_SOURCES

    for name in ("my_scores", "moved_away"):
        (tmp_path / name).mkdir()
        register_local(name, str(tmp_path / name), home.local_datasets)
    (tmp_path / "moved_away").rmdir()
    with dg.instance_for_test() as instance:
        added = tick_datasets(instance, home).dynamic_partitions_requests[0].partition_keys
        assert set(added) == {*COLLECTIONS, "my_scores"}  # no remote dataset before its download, no vanished folder
        instance.add_dynamic_partitions("datasets", added)
        assert tick_datasets(instance, home).skip_message == "every dataset with files here is already a partition"

        # lmd as `baton datasets download lmd` leaves it; maestro interrupted while extracting
        (Path(home.raw) / "lmd" / "extracted" / "lmd_full").mkdir(parents=True)
        (Path(home.raw) / "lmd" / ".complete").write_text(f"{REMOTE_SOURCES['lmd'].url}\n")
        (Path(home.raw) / "maestro" / "extracted.tmp").mkdir(parents=True)
        (tmp_path / "moved_away").mkdir()
        added = tick_datasets(instance, home).dynamic_partitions_requests[0].partition_keys
    assert sorted(added) == sorted([*partition_keys("lmd"), "moved_away"])


def test_datasets_download_adds_its_partition_to_the_catalog(home, tmp_path, serve, monkeypatch, capsys):
    import dataclasses
    import glob
    import hashlib
    import zipfile

    import music21

    from assets.scores.datasets import muspy_sources
    from pipelines.cli import main
    from pipelines.cli.launch import home_instance

    www = tmp_path / "www"
    www.mkdir()
    source = muspy_sources.REMOTE_SOURCES["emopia"]
    chorales = sorted(glob.glob(os.path.join(os.path.dirname(music21.__file__), "corpus", "bach", "bwv2[0-9]*.mxl")))
    with zipfile.ZipFile(www / source.filename, "w") as zf:
        for path in chorales[:2]:
            zf.write(path, f"EMOPIA/midis/{os.path.basename(path)}")
    data = (www / source.filename).read_bytes()
    mirror = dataclasses.replace(
        source, url=f"{serve(www)}/{source.filename}", suffixes=(".mxl",),
        md5=hashlib.md5(data).hexdigest() if source.md5 else None,
        sha256=hashlib.sha256(data).hexdigest() if source.sha256 else None,
    )  # fmt: skip
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, "emopia", mirror)
    with home_instance(home) as instance:
        assert "emopia" not in tick_datasets(instance, home).dynamic_partitions_requests[0].partition_keys

    assert main(["datasets", "download", "emopia"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "emopia: 1 `datasets` partition(s) in the catalog (1 new)"
    with home_instance(home) as instance:
        assert "emopia" in instance.get_dynamic_partitions("datasets")
        added = tick_datasets(instance, home).dynamic_partitions_requests[0].partition_keys
    assert "emopia" not in added and "bach_chorales" in added  # the sensor has nothing more to add for it
