"""The sensor, the schedule and the code location as the UI loads them."""

import os
import time
from datetime import datetime, timezone

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


def test_dataset_partitions_sensor_adds_registry_names(home, tmp_path):
    from assets.scores.datasets import register_local

    folder = tmp_path / "mine"
    folder.mkdir()
    register_local("my_scores", str(folder), home.local_datasets)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"home": HomeResource(root=home.root)})
        result = sensors.dataset_partitions_sensor(context)
        added = result.dynamic_partitions_requests[0].partition_keys
        assert {"bach_chorales", "lmd.s00of64", "lmd.s63of64", "my_scores"} <= set(added) and "lmd" not in added
        instance.add_dynamic_partitions("datasets", added)
        assert sensors.dataset_partitions_sensor(context).skip_message == "every registered dataset is already a partition"
