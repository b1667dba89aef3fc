"""Scheduled retraining; stopped until someone turns it on in the UI."""

import dagster as dg

from assets.core.dataset_shards import datasets_of, keys_of
from assets.core.resources import HomeResource
from pipelines.jobs import music_lm_retrain_job
from storage import shards


@dg.schedule(
    cron_schedule="0 3 * * 1",
    job=music_lm_retrain_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly: retrain music_lm on every dataset whose event sequences exist for all its shards.",
)
def weekly_music_lm_retrain(context: dg.ScheduleEvaluationContext, home: HomeResource):
    known = set(context.instance.get_dynamic_partitions("datasets"))
    ready = [k for k in shards.list_partitions(home.home.datasets, "event_sequences") if k in known]
    keys = [keys_of(d, ready)[0] for d in datasets_of(ready)]  # any key of a dataset trains on all its shards
    if not keys:
        return dg.SkipReason("no dataset has event_sequences yet")
    stamp = context.scheduled_execution_time.strftime("%Y%m%d")
    return [dg.RunRequest(run_key=f"{k}-{stamp}", partition_key=k) for k in keys]


schedules = [weekly_music_lm_retrain]
