"""Jobs the executor tests run in other processes (dask workers, Celery workers): they load this file
by its path, so everything here is importable from a fresh interpreter."""

import os
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa

from storage.executors import baton_executor
from storage.shards import ShardWriter

ROWS = pa.schema([("i", pa.int64()), ("square", pa.int64())])


def score_notes() -> dg.JobDefinition:
    """Baton's own score_notes_job, bound to the BATON_HOME the loading process has now (a test
    process outlives many homes)."""
    from pipelines.definitions import build_defs
    from storage.home import BatonHome

    return build_defs(BatonHome.from_env()).resolve_job_def("score_notes_job")


class SlowShardsConfig(dg.Config):
    datasets_root: str
    markers: (
        str  # each attempt drops a file named for its process id here before it writes
    )
    batches: int = 6
    rows_per_batch: int = 50
    pause_s: float = 0.0


@dg.op
def slow_shards(config: SlowShardsConfig) -> dict:
    """A shard set written in batches with a pause after each: a step that is still running when its
    worker is killed."""
    Path(config.markers).mkdir(parents=True, exist_ok=True)
    Path(config.markers, str(os.getpid())).write_text(str(os.getpid()))
    with ShardWriter(
        config.datasets_root,
        "squares",
        "all",
        ROWS,
        rows_per_shard=config.rows_per_batch,
    ) as writer:
        for batch in range(config.batches):
            start = batch * config.rows_per_batch
            writer.write(
                [
                    {"i": i, "square": i * i}
                    for i in range(start, start + config.rows_per_batch)
                ]
            )
            time.sleep(config.pause_s)
    assert writer.manifest is not None
    return {"rows": writer.manifest.rows, "pid": os.getpid()}


@dg.op
def count_rows(written: dict) -> int:
    return written["rows"]


@dg.job(executor_def=baton_executor)
def squares_job():
    count_rows(slow_shards())
