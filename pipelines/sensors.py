"""Files dropped into <home>/incoming/scores/ or <home>/incoming/videos/ become a partition and are processed."""


import os
import shutil
import time
from datetime import datetime, timezone

import dagster as dg

from assets.core.partitions import DATASETS, VIDEO_BATCHES
from assets.core.resources import HomeResource
from assets.scores.datasets import list_datasets
from assets.videos.defs import batch_folder
from pipelines.jobs import ingest_job, video_data_job

SETTLE_SECONDS = 2.0


def settled_files(folder: str, now: float, settle: float = SETTLE_SECONDS) -> list[str]:
    """Visible files not modified for `settle` seconds: a copy still in progress is left alone."""
    found = []
    for base, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = os.path.join(base, name)
            if not name.startswith(".") and now - os.path.getmtime(path) >= settle:
                found.append(path)
    return sorted(found)


def claim_batch(files: list[str], incoming: str, target: str) -> str:
    """Move the files out of the watched folder into ``target``, keeping sub-folders."""
    for path in files:
        dest = os.path.join(target, os.path.relpath(path, incoming))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.move(path, dest)
    return target


def batch_name() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")


@dg.sensor(job=ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def incoming_scores_sensor(context: dg.SensorEvaluationContext, home: HomeResource):
    incoming = os.path.join(home.home.incoming, "scores")
    os.makedirs(incoming, exist_ok=True)
    files = settled_files(incoming, time.time())
    if not files:
        return dg.SkipReason(f"nothing new in {incoming}")
    batch = batch_name()
    claim_batch(files, incoming, os.path.join(home.home.raw, "incoming", batch))
    key = f"incoming_{batch}"
    context.log.info(f"{len(files)} files -> partition {key}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=key, partition_key=key)],
        dynamic_partitions_requests=[DATASETS.build_add_request([key])],
        cursor=key,
    )


@dg.sensor(job=video_data_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def incoming_videos_sensor(context: dg.SensorEvaluationContext, home: HomeResource):
    """Video files (and an optional manifest.csv) dropped into <home>/incoming/videos/ become one batch."""
    incoming = os.path.join(home.home.incoming, "videos")
    os.makedirs(incoming, exist_ok=True)
    files = settled_files(incoming, time.time())
    if not files:
        return dg.SkipReason(f"nothing new in {incoming}")
    key = f"incoming_{batch_name()}"
    claim_batch(files, incoming, str(batch_folder(home, key)))
    context.log.info(f"{len(files)} files -> video batch {key}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=key, partition_key=key)],
        dynamic_partitions_requests=[VIDEO_BATCHES.build_add_request([key])],
        cursor=key,
    )


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def dataset_partitions_sensor(context: dg.SensorEvaluationContext, home: HomeResource):
    """Every dataset the registry knows (built-in, downloaded or local) is a partition the UI can pick."""
    known = set(context.instance.get_dynamic_partitions(DATASETS.name))
    new = [d.name for d in list_datasets(home.home.local_datasets) if d.name not in known]
    if not new:
        return dg.SkipReason("every registered dataset is already a partition")
    return dg.SensorResult(dynamic_partitions_requests=[DATASETS.build_add_request(new)])


sensors = [incoming_scores_sensor, incoming_videos_sensor, dataset_partitions_sensor]
