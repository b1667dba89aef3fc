"""The incoming sensors touch no file: they offer settled files as a batch, hold the claim in their
cursor until the batch's run has finished, and the run's first step moves exactly the claimed files."""

import glob
import json
import os
import subprocess
import time

import dagster as dg
import music21
import pytest

from assets.core.incoming import MAX_FILES
from assets.core.resources import HomeResource
from assets.core.tools import missing_tools
from pipelines import sensors
from pipelines.definitions import build_defs
from storage import shards

CHORALE = sorted(glob.glob(os.path.join(os.path.dirname(music21.__file__), "corpus", "bach", "bwv2[0-9]*.mxl")))[0]


def drop(folder: str, rel: str, data: bytes = b"MThd", age: float = 60.0) -> str:
    """A file under ``folder`` last written ``age`` seconds ago (negative: still being written)."""
    path = os.path.join(folder, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def settled_folder(path: str) -> str:
    os.makedirs(path)
    stamp = time.time() - 60
    os.utime(path, (stamp, stamp))
    return path


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, home, cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"home": HomeResource(root=home.root)})
    return sensor(context)


def claimed(request: dg.RunRequest, step: str) -> list[str]:
    return [f["path"] for f in request.run_config["ops"][step]["config"]["claim"]]


def created_run(instance: dg.DagsterInstance, home, request: dg.RunRequest) -> dg.DagsterRun:
    """The run the daemon creates for ``request``, not launched yet."""
    job = build_defs(home).resolve_job_def(sensors.incoming_scores_sensor.job_name)
    return instance.create_run_for_job(
        job, run_config=request.run_config,
        tags={"dagster/partition": request.partition_key, "dagster/run_key": request.run_key},
    )  # fmt: skip


def test_preview_moves_nothing_and_a_claim_without_a_run_is_offered_again(home):
    incoming = os.path.join(home.incoming, "scores")
    drop(incoming, "a.mid")
    with dg.instance_for_test() as instance:
        first = tick(sensors.incoming_scores_sensor, instance, home)
        (request,) = first.run_requests
        assert claimed(request, "score_files") == ["a.mid"]
        assert os.path.exists(os.path.join(incoming, "a.mid"))
        assert not os.path.exists(os.path.join(home.raw, "incoming"))
        assert list(json.loads(first.cursor)) == [request.partition_key]

        again = tick(sensors.incoming_scores_sensor, instance, home)  # a preview saved no cursor
        assert claimed(again.run_requests[0], "score_files") == ["a.mid"]
        lost = tick(sensors.incoming_scores_sensor, instance, home, first.cursor)  # submission failed: no run
        (offered,) = lost.run_requests
        assert claimed(offered, "score_files") == ["a.mid"] and offered.partition_key != request.partition_key
        assert list(json.loads(lost.cursor)) == [offered.partition_key]


def test_claimed_files_are_not_offered_twice_while_their_run_is_pending(home):
    incoming = os.path.join(home.incoming, "scores")
    drop(incoming, "a.mid")
    with dg.instance_for_test() as instance:
        first = tick(sensors.incoming_scores_sensor, instance, home)
        run = created_run(instance, home, first.run_requests[0])
        assert tick(sensors.incoming_scores_sensor, instance, home, first.cursor).skip_reason.skip_message == f"nothing new in {incoming}"

        drop(incoming, "b.mid")
        second = tick(sensors.incoming_scores_sensor, instance, home, first.cursor)
        assert claimed(second.run_requests[0], "score_files") == ["b.mid"]
        assert len(json.loads(second.cursor)) == 2
        created_run(instance, home, second.run_requests[0])

        instance.report_run_failed(run)  # failed before its first step moved anything
        third = tick(sensors.incoming_scores_sensor, instance, home, second.cursor)
        assert claimed(third.run_requests[0], "score_files") == ["a.mid"]


def test_a_batch_holds_at_most_max_files(home):
    incoming = os.path.join(home.incoming, "scores")
    for i in range(MAX_FILES + 1):
        drop(incoming, f"f{i:05d}.mid")
    with dg.instance_for_test() as instance:
        first = tick(sensors.incoming_scores_sensor, instance, home)
        assert len(claimed(first.run_requests[0], "score_files")) == MAX_FILES
        created_run(instance, home, first.run_requests[0])
        second = tick(sensors.incoming_scores_sensor, instance, home, first.cursor)
        assert claimed(second.run_requests[0], "score_files") == [f"f{MAX_FILES:05d}.mid"]


def test_unreadable_entries_are_skipped_and_reported(home):
    incoming = os.path.join(home.incoming, "scores")
    os.rmdir(incoming)
    with dg.instance_for_test() as instance:
        assert tick(sensors.incoming_scores_sensor, instance, home).skip_reason.skip_message == f"nothing new in {incoming}"
    assert not os.path.exists(incoming)  # a missing folder is empty, and the sensor creates nothing
    os.makedirs(incoming)
    os.symlink(os.path.join(home.root, "gone.mid"), os.path.join(incoming, "dangling.mid"))
    os.mkfifo(os.path.join(incoming, "pipe.mid"))
    settled_folder(os.path.join(incoming, "x.mid"))
    with dg.instance_for_test() as instance:
        message = tick(sensors.incoming_scores_sensor, instance, home).skip_reason.skip_message
    assert message.startswith(f"nothing new in {incoming}; skipped 2 entries that cannot be offered")
    assert "dangling.mid: a symbolic link, not followed" in message and "pipe.mid: not a regular file" in message
    assert "x.mid" not in message  # a folder is never a file


def test_sensor_run_claims_ingests_and_is_idempotent(home):
    incoming = os.path.join(home.incoming, "scores")
    with open(CHORALE, "rb") as f:
        drop(incoming, "sub/chorale.mxl", f.read())
    os.symlink("/etc/passwd", os.path.join(incoming, "y.mid"))
    settled_folder(os.path.join(incoming, "x.mid"))
    fresh = drop(incoming, "fresh.mid", age=-600)
    defs = build_defs(home)
    with dg.instance_for_test() as instance:
        result = tick(sensors.incoming_scores_sensor, instance, home)
        (request,) = result.run_requests
        assert claimed(request, "score_files") == ["sub/chorale.mxl"]
        assert request.tags == {sensors.SKIPPED_TAG: "1"}
        key = request.partition_key
        instance.add_dynamic_partitions("datasets", result.dynamic_partitions_requests[0].partition_keys)
        job = defs.resolve_job_def(sensors.incoming_scores_sensor.job_name)
        for selection in (None, [dg.AssetKey("score_files")]):  # then a retry of the first step: already moved
            run = job.execute_in_process(
                instance=instance, partition_key=key, run_config=request.run_config, tags=request.tags, asset_selection=selection
            )  # fmt: skip
            assert run.success
            assert "claim_rejects" not in run.asset_materializations_for_node("score_files")[0].metadata
        batch = os.path.join(home.raw, "incoming", key.removeprefix("incoming_"))
        assert os.listdir(batch) == ["sub"] and os.listdir(os.path.join(batch, "sub")) == ["chorale.mxl"]
        assert sorted(os.listdir(incoming)) == ["fresh.mid", "y.mid"]  # x.mid/ and the emptied sub/ are gone
        assert os.path.exists(fresh)
        assert shards.read_table(home.datasets, "songs", [key]).num_rows == 1

        after = tick(sensors.incoming_scores_sensor, instance, home, result.cursor)
        assert json.loads(after.cursor) == {}  # the run finished: the claim is retired
        assert "y.mid: a symbolic link" in after.skip_reason.skip_message


def test_dataset_partitions_sensor_survives_a_broken_registry(home):
    with open(home.local_datasets, "w") as f:
        f.write("{not json")
    with dg.instance_for_test() as instance:
        assert "is unreadable" in tick(sensors.dataset_partitions_sensor, instance, home).skip_message
        with open(home.local_datasets, "w") as f:
            json.dump({"mine": home.root, "../../outside": home.root}, f)
        added = tick(sensors.dataset_partitions_sensor, instance, home).dynamic_partitions_requests[0].partition_keys
    assert "mine" in added and "../../outside" not in added


@pytest.mark.skipif("ffmpeg" in missing_tools(), reason="ffmpeg is missing")
def test_video_claim_rejects_a_vanished_a_changed_and_an_escaping_file(home, tmp_path):
    incoming = os.path.join(home.incoming, "videos")
    os.makedirs(incoming, exist_ok=True)
    for name in ("keep.mp4", "gone.mp4", "edited.mp4"):
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=4:duration=1",
             "-f", "lavfi", "-i", "sine=duration=1", "-shortest", os.path.join(incoming, name)],
            check=True, timeout=60,
        )  # fmt: skip
        stamp = time.time() - 60
        os.utime(os.path.join(incoming, name), (stamp, stamp))
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"not yours")
    defs = build_defs(home)
    with dg.instance_for_test() as instance:
        result = tick(sensors.incoming_videos_sensor, instance, home)
        (request,) = result.run_requests
        key = request.partition_key
        config = request.run_config["ops"]["videos"]["config"]
        config["claim"].append({"path": "../../../../outside.mp4", "size": 9, "mtime_ns": outside.stat().st_mtime_ns})
        os.remove(os.path.join(incoming, "gone.mp4"))
        os.utime(os.path.join(incoming, "edited.mp4"))
        instance.add_dynamic_partitions("video_batches", [key])
        job = defs.resolve_job_def(sensors.incoming_videos_sensor.job_name)
        run = job.execute_in_process(
            instance=instance, partition_key=key, run_config=request.run_config,
            asset_selection=[dg.AssetKey("videos"), dg.AssetKey("videos_rejects")],
        )  # fmt: skip
        assert run.success
    videos = shards.read_table(home.datasets, "videos", [key]).to_pylist()
    assert [os.path.basename(v["path"]) for v in videos] == ["keep.mp4"]
    rejects = {r["item"]: r for r in shards.read_table(home.datasets, "videos_rejects", [key]).to_pylist()}
    assert rejects["gone.mp4"]["stage"] == "claim" and "vanished" in rejects["gone.mp4"]["message"]
    assert "changed after it was offered" in rejects["edited.mp4"]["message"]
    assert rejects["../../../../outside.mp4"]["error_type"] == "UnsafeName"
    assert outside.read_bytes() == b"not yours" and os.listdir(incoming) == ["edited.mp4"]
