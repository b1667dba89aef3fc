"""Files dropped into <home>/incoming/scores/ or <home>/incoming/videos/ become a partition and are processed."""


import os
import shutil
import time
from collections.abc import Callable
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


def incoming_sensor(
    kind: str, job, partitions: dg.DynamicPartitionsDefinition,
    target: Callable[[HomeResource, str], str], description: str,
) -> dg.SensorDefinition:
    """A sensor on <home>/incoming/<kind>/: settled files move to `target(home, key)` and become the
    new partition `incoming_<timestamp>` of `partitions`, which one run of `job` then processes."""

    @dg.sensor(
        name=f"incoming_{kind}_sensor", job=job, minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING, description=description,
    )  # fmt: skip
    def incoming(context: dg.SensorEvaluationContext, home: HomeResource):
        folder = os.path.join(home.home.incoming, kind)
        os.makedirs(folder, exist_ok=True)
        files = settled_files(folder, time.time())
        if not files:
            return dg.SkipReason(f"nothing new in {folder}")
        key = f"incoming_{batch_name()}"
        claim_batch(files, folder, target(home, key))
        context.log.info(f"{len(files)} files -> {partitions.name} partition {key}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=key, partition_key=key)],
            dynamic_partitions_requests=[partitions.build_add_request([key])],
            cursor=key,
        )

    return incoming


incoming_scores_sensor = incoming_sensor(
    "scores", ingest_job, DATASETS, lambda home, key: os.path.join(home.home.raw, "incoming", key.removeprefix("incoming_")),
    "Score files dropped into <home>/incoming/scores/ become one `datasets` partition, ingested to event sequences.",
)
incoming_videos_sensor = incoming_sensor(
    "videos", video_data_job, VIDEO_BATCHES, lambda home, key: str(batch_folder(home, key)),
    "Video files (and an optional manifest.csv) dropped into <home>/incoming/videos/ become one video batch.",
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
