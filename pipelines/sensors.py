"""Files dropped into <home>/incoming/scores/ or <home>/incoming/videos/ become a partition and are processed.

The incoming sensors touch no file. Each offers the settled files as a new batch, records the
claim in its cursor until the batch's run has finished, and passes it to the run's first step
in the run config; that step moves the files (assets.core.incoming.claim). A claim whose run
never appeared (a failed submission) is dropped, so its files are offered again.
"""

import json
import os
import time
from datetime import datetime, timezone

import dagster as dg

from assets.core import incoming as drops
from assets.core.dataset_shards import partition_keys
from assets.core.partitions import DATASETS, VIDEO_BATCHES
from assets.core.resources import HomeResource
from assets.scores.datasets import present_datasets
from pipelines.jobs import ingest_job, video_data_job
from storage.names import check_name, is_safe_name

SKIPPED_TAG = "baton/incoming_skipped"

Claims = dict[str, list[dict]]


def batch_name() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")


def read_claims(cursor: str | None) -> Claims:
    """The pending claims recorded in the cursor, ``{batch key: [claimed file, ...]}``; a cursor of
    another shape (an older sensor's last key) holds none."""
    try:
        claims = json.loads(cursor or "{}")
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) and all(isinstance(v, list) for v in claims.values()) else {}


def pending_claims(context: dg.SensorEvaluationContext, job_name: str, claims: Claims) -> Claims:
    """The claims whose batch still has an unfinished run. A finished run moved its files or left
    them in incoming to be offered again; a batch without a run never started, so its claim goes."""
    pending = {}
    for key, files in claims.items():
        runs = context.instance.get_runs(dg.RunsFilter(job_name=job_name, tags={"dagster/partition": key}))
        if any(not run.is_finished for run in runs):
            pending[key] = files
        elif not runs:
            context.log.warning(f"batch {key} never got a run; its {len(files)} files are offered again")
    return pending


def incoming_sensor(
    kind: str, job, partitions: dg.DynamicPartitionsDefinition, first_step: str, description: str
) -> dg.SensorDefinition:
    """A sensor on <home>/incoming/<kind>/: settled files not claimed yet become the new partition
    `incoming_<timestamp>` of `partitions`, handed to one run of `job` through `first_step`'s config."""

    @dg.sensor(
        name=f"incoming_{kind}_sensor", job=job, minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING, description=description,
    )  # fmt: skip
    def incoming(context: dg.SensorEvaluationContext, home: HomeResource):
        folder = os.path.join(home.home.incoming, kind)
        claims = pending_claims(context, job.name, read_claims(context.cursor))
        taken = {f["path"] for files in claims.values() for f in files}
        files, problems = drops.scan(folder, time.time())
        for problem in problems:
            context.log.warning(f"skipped in {folder}: {problem}")
        offered = [f for f in files if f.path not in taken][: drops.MAX_FILES]
        if not offered:
            skipped = f"; skipped {len(problems)} entries that cannot be offered: {'; '.join(problems)}" if problems else ""
            return dg.SensorResult(skip_reason=f"nothing new in {folder}{skipped}", cursor=json.dumps(claims))
        key = check_name(f"incoming_{batch_name()}", "batch key")
        claims[key] = [f.model_dump() for f in offered]
        context.log.info(f"{len(offered)} files offered as {partitions.name} partition {key}")
        request = dg.RunRequest(
            run_key=key, partition_key=key,
            run_config={"ops": {first_step: {"config": {"claim": claims[key]}}}},
            tags={SKIPPED_TAG: str(len(problems))} if problems else {},
        )  # fmt: skip
        return dg.SensorResult(
            run_requests=[request], dynamic_partitions_requests=[partitions.build_add_request([key])],
            cursor=json.dumps(claims),
        )  # fmt: skip

    return incoming


incoming_scores_sensor = incoming_sensor(
    "scores", ingest_job, DATASETS, "score_files",
    "Score files dropped into <home>/incoming/scores/ become one `datasets` partition, ingested to event sequences.",
)  # fmt: skip
incoming_videos_sensor = incoming_sensor(
    "videos", video_data_job, VIDEO_BATCHES, "videos",
    "Video files (and an optional manifest.csv) dropped into <home>/incoming/videos/ become one video batch.",
)  # fmt: skip


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def dataset_partitions_sensor(context: dg.SensorEvaluationContext, home: HomeResource):
    """Every dataset of the registry whose files are here (the music21 corpus, local folders, finished
    downloads) is a partition the UI can pick, or one partition per shard of a sharded dataset; a
    remote dataset joins once `baton datasets download` has fetched it, so the catalog offers nothing
    that cannot be materialized offline. An unreadable registry or a name that is not a safe
    partition key is reported, never raised."""
    try:
        present = present_datasets(home.home.raw, home.home.local_datasets)
        keys = [key for info in present for key in partition_keys(info.name, info.shards)]
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        reason = f"local dataset registry {home.home.local_datasets} is unreadable: {exc}"
        context.log.warning(reason)
        return dg.SkipReason(reason)
    unsafe = [key for key in keys if not is_safe_name(key)]
    if unsafe:
        context.log.warning(f"registered datasets {unsafe} are not safe partition keys; not added")
    known = set(context.instance.get_dynamic_partitions(DATASETS.name))
    new = [key for key in keys if key not in known and key not in unsafe]
    if not new:
        return dg.SkipReason("every dataset with files here is already a partition")
    return dg.SensorResult(dynamic_partitions_requests=[DATASETS.build_add_request(new)])


sensors = [incoming_scores_sensor, incoming_videos_sensor, dataset_partitions_sensor]
