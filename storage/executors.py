"""One Dagster executor for every job, chosen per deployment (BATON_EXECUTOR) or per run (`execution:`).

Its config is a selector over Dagster's own executors, each branch taking that executor's schema
unchanged, so the Dagster documentation of each one applies as written:

    execution: {config: {dask: {cluster: {existing: {address: tcp://scheduler:8786}}}}}

Without `execution:` in the run config, the branch named by BATON_EXECUTOR (default `multiprocess`)
is used, filled from BATON_DASK_SCHEDULER (dask) or BATON_CELERY_BROKER / BATON_CELERY_BACKEND
(celery). Celery deliveries are acknowledged only after a step finishes, so a step whose worker
dies goes back to the queue and runs on another worker instead of being lost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
import dask
from dagster._core.definitions.partitions.subset import KeyRangesPartitionsSubset
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster_celery import celery_executor
from dagster_dask import dask_executor
from dagster_dask.executor import DaskExecutor
from dagster_k8s import k8s_job_executor
from dagster_shared.record import copy

EXECUTORS: dict[str, dg.ExecutorDefinition] = {
    "in_process": dg.in_process_executor,
    "multiprocess": dg.multiprocess_executor,
    "dask": dask_executor,
    "celery": celery_executor,
    "k8s": k8s_job_executor,
}
DEFAULT_EXECUTOR = "multiprocess"
DEFAULT_CELERY_BROKER = "redis://127.0.0.1:6379/0"
DAGSTER_CELERY_BACKEND = "rpc://"  # the celery branch's own default, replaced by BATON_CELERY_BACKEND when set

# Late acknowledgement plus rejection on worker loss: a delivery is only acknowledged once its step
# has finished, so a killed worker's step is redelivered. One prefetched task per worker process, so
# a busy worker never holds a step another worker could run.
RELIABLE_DELIVERY: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
}


class UnknownExecutor(ValueError):
    def __init__(self, name: str):
        super().__init__(
            f"BATON_EXECUTOR={name!r} is not one of: {', '.join(EXECUTORS)}"
        )


def default_branch(env: Mapping[str, str]) -> dict[str, dict]:
    """The executor config a run gets when its run config names none: BATON_EXECUTOR's branch."""
    name = env.get("BATON_EXECUTOR") or DEFAULT_EXECUTOR
    if name not in EXECUTORS:
        raise UnknownExecutor(name)
    if name == "dask":
        address = env.get("BATON_DASK_SCHEDULER")
        return {
            "dask": {
                "cluster": {"existing": {"address": address}}
                if address
                else {"local": {}}
            }
        }
    return {name: {}}


def celery_config(config: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The celery branch with Baton's broker, backend and delivery defaults where the run config leaves
    them unset; what the run config says wins."""
    backend = config.get("backend")
    if backend == DAGSTER_CELERY_BACKEND and env.get("BATON_CELERY_BACKEND"):
        backend = env["BATON_CELERY_BACKEND"]
    return {
        **config,
        "broker": config.get("broker")
        or env.get("BATON_CELERY_BROKER")
        or DEFAULT_CELERY_BROKER,
        "backend": backend,
        "config_source": {**RELIABLE_DELIVERY, **(config.get("config_source") or {})},
    }


class _RunScopedContext(PlanOrchestrationContext):
    """The orchestration context with the run id in the job name, which dagster-dask uses as the
    prefix of its task keys: dask treats two tasks with one key as one, so without it the second of
    two concurrent runs of a job on a shared cluster gets the first run's step results and writes
    nothing of its own."""

    @property
    def job_name(self) -> str:
        return f"{super().job_name}.{self.run_id}"


class PartitionedDaskExecutor(DaskExecutor):
    """Dagster's dask executor, made safe for concurrent runs on one cluster and able to run a
    dynamic partition's run.

    dask walks every tuple among a task's arguments looking for futures; the run of a dynamic
    partition carries a KeyRangesPartitionsSubset, a Dagster record that refuses iteration, so
    submitting its first step fails. Step execution never reads that subset (Dagster resolves the
    partition from the run's tags instead), so the steps are handed the run without it. The steps
    load the job from the reconstructable job, never by the context's name.
    """

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan):
        run = plan_context.dagster_run
        if isinstance(run.partitions_subset, KeyRangesPartitionsSubset):
            run = copy(run, partitions_subset=None)
        plan_context = _RunScopedContext(
            plan_data=plan_context.plan_data._replace(dagster_run=run),
            log_manager=plan_context.log,
            executor=plan_context.executor,
            output_capture=plan_context.output_capture,
            resume_from_failure=plan_context.resume_from_failure,
        )
        # Steps start child processes (the parser pool), which daemonic workers may not: a
        # LocalCluster made for this run gets non-daemonic ones (a standing cluster needs
        # DASK_DISTRIBUTED__WORKER__DAEMON=False on its workers).
        with dask.config.set({"distributed.worker.daemon": False}):
            yield from super().execute(plan_context, execution_plan)


def chosen(executor_config: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    ((name, config),) = executor_config.items()
    return name, config


def build_executor(env: Mapping[str, str] = os.environ) -> dg.ExecutorDefinition:
    """The selector executor, its default branch read from `env`."""

    def requirements(
        executor_config: Mapping[str, Any],
    ) -> list[dg.ExecutorRequirement]:
        name, config = chosen(executor_config)
        return list(EXECUTORS[name].get_requirements(config))

    @dg.executor(
        name="baton",
        config_schema=dg.Field(
            dg.Selector(
                {name: d.config_schema.as_field() for name, d in EXECUTORS.items()}
            ),
            default_value=default_branch(env),
            description="Which Dagster executor runs the steps: "
            + ", ".join(EXECUTORS),
        ),
        requirements=requirements,
    )
    def baton_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
        """Hand over to the chosen executor's own creation function with its branch of the config."""
        name, config = chosen(init_context.executor_config)
        if name == "celery":
            config = celery_config(config, env)
        definition = EXECUTORS[name]
        inner = dg.InitExecutorContext(
            job=init_context.job,
            executor_def=definition,
            executor_config=config,
            instance=init_context.instance,
        )
        executor = definition.executor_creation_fn(inner)
        if isinstance(executor, DaskExecutor):
            return PartitionedDaskExecutor(
                executor.cluster_type, executor.cluster_configuration
            )
        return executor

    return baton_executor


baton_executor = build_executor()
