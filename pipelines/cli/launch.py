"""What several commands share: the persistent Dagster instance, launching an experiment job, the summary."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from storage.home import BatonHome

if TYPE_CHECKING:
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableJob  # what execute_job takes; not exported
    from dagster._core.remote_origin import RemoteJobOrigin

# dagster and the lineage load inside the functions: `baton datasets list` stays quick.
BRANCHES = ("muspy", "mmt", "instrumentation", "performance", "video", "clipsonic")  # pipelines.experiments.EXPERIMENTS


class UsageError(Exception):
    """A mistake on the command line or in what it names: `main` prints it as one line and exits with status 2."""


def home_instance(home: BatonHome) -> dg.DagsterInstance:
    """The persistent Dagster instance under <home>/dagster, the same one `baton ui` shows."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = home.dagster
    return dg.DagsterInstance.get()


def instance_for(home: BatonHome) -> dg.DagsterInstance:
    """The home's instance, with runs whose worker was killed marked failed, so the same command can
    re-execute them."""
    from storage.run_worker import fail_dead_runs

    instance = home_instance(home)
    fail_dead_runs(instance)
    return instance


def experiment_job(branch: str, root: str) -> dg.JobDefinition:
    """The branch's experiment job exactly as the UI's code location defines it, bound to the home at `root`."""
    from pipelines.definitions import build_defs
    from pipelines.experiments import EXPERIMENTS

    return build_defs(BatonHome(root)).resolve_job_def(EXPERIMENTS[branch].name)


def reconstructable_experiment(branch: str, home: BatonHome) -> ReconstructableJob:
    """A pointer Dagster can rebuild the job from. The home is one of its arguments: Dagster caches the
    job it rebuilds by pointer, so a process that changes BATON_HOME (tests) still gets its own home's."""
    import dagster as dg

    return dg.build_reconstructable_job(__name__, experiment_job.__name__, reconstructable_args=(branch, home.root))


@dataclass
class Child:
    stage: str
    job: str
    partition: str | None
    run_id: str
    ok: bool

    @property
    def name(self) -> str:
        return f"{self.job}[{self.partition}]" if self.partition else self.job


@dataclass
class Outcome:
    """How one experiment run ended, with the child runs its stages started."""

    job: str
    run_id: str
    ok: bool
    children: list[Child] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # step failures of the run itself


def child_runs(instance: dg.DagsterInstance, run_id: str) -> list[Child]:
    """The child runs an experiment run started, oldest first, read from the instance by their tag."""
    import dagster as dg

    from pipelines.experiments import EXPERIMENT_TAG, STAGE_TAG

    runs = instance.get_runs(filters=dg.RunsFilter(tags={EXPERIMENT_TAG: run_id}), ascending=True)
    return [
        Child(r.tags.get(STAGE_TAG, "?"), r.job_name, r.tags.get("dagster/partition"), r.run_id,
              r.status == dg.DagsterRunStatus.SUCCESS)
        for r in runs
    ]  # fmt: skip


def ui_origin(job_name: str) -> RemoteJobOrigin:
    """The job as the UI's code location (workspace.yaml's) names it. The Overview timeline shows only runs
    with such an origin, which `dg.execute_job` does not give: the runs it makes have none."""
    import sys

    import yaml
    from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    from storage.home import REPO_ROOT

    (entry,) = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())["load_from"]
    module = entry["python_module"]
    target = LoadableTargetOrigin(
        executable_path=sys.executable, module_name=module["module_name"], working_directory=str(REPO_ROOT)
    )
    location = ManagedGrpcPythonEnvCodeLocationOrigin(target, module["location_name"])
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME), job_name)


def launch_experiment(instance: dg.DagsterInstance, branch: str, config: dict, home: BatonHome | None = None) -> Outcome:
    """One run of the branch's experiment job on the persistent instance, as `dg.execute_job` makes it plus
    the UI's origin of the job, so that it shows on the UI's Runs page and its Overview timeline."""
    from dagster._core.execution.api import execute_run  # execute_job, on a run created with that origin

    from pipelines.experiments import EXPERIMENTS

    job = reconstructable_experiment(branch, home or BatonHome.from_env())
    definition = job.get_definition()
    run = instance.create_run_for_job(
        definition, run_config=config, tags=definition.run_tags, job_code_origin=job.get_python_origin(),
        remote_job_origin=ui_origin(definition.name),
    )  # fmt: skip
    result = execute_run(job, run, instance)
    errors = [
        f"{event.step_key}: {event.event_specific_data.error.message.strip().splitlines()[0]}"
        for event in result.all_events
        if event.is_step_failure and event.event_specific_data.error is not None
    ]  # fmt: skip
    return Outcome(EXPERIMENTS[branch].name, result.run_id, result.success, child_runs(instance, result.run_id), errors)


def print_outcomes(outcomes: list[Outcome]) -> None:
    print("\nResults:")
    for outcome in outcomes:
        print(f"  {'ok  ' if outcome.ok else 'FAIL'} {outcome.job} (run {outcome.run_id})")
        stage = None
        for child in outcome.children:
            if child.stage != stage:
                stage = child.stage
                print(f"         {stage}")
            print(f"           {'ok  ' if child.ok else 'FAIL'} {child.name:40} run {child.run_id}")
        if not outcome.ok and all(child.ok for child in outcome.children):
            for error in outcome.errors:  # the run failed by itself, not through a child run
                print(f"           error in {error}")


def print_summary(home: BatonHome, outcomes: list[Outcome]) -> None:
    """Every run with its child runs, then where the results are."""
    from storage.tracking import (
        MlflowResource,
        default_tracking_uri,
        is_server,
        latest_run_url,
    )

    print_outcomes(outcomes)
    uri = default_tracking_uri(home)
    ui = uri if is_server(uri) else MlflowResource.model_fields["ui_url"].default
    run = latest_run_url(uri, "baton", "cross_dataset_perplexity", ui)
    print(
        f"""
Where to look:
  Dagster UI and MLflow UI:  make ui   (Dagster http://127.0.0.1:3000, MLflow http://127.0.0.1:5000)
  Dataset plots:             {home.cache}/plots/dataset_stats/<dataset>/
  Cross-dataset heatmap:     {run or "no run yet"} (artifact cross_dataset_perplexity.png)
  Violin alignments:         {home.cache}/plots/alignments/<recording>.png
  Deep Performer samples:    {home.cache}/performance_eval/<run id>/ (recordings, resyntheses, spectrograms)
  CLIPSep examples:          {home.cache}/clipsep_eval/<run id>/ (mixtures, references, separations)
  CLIPSonic samples:         {home.cache}/clipsonic_samples/<run id>/ (WAVs and spectrograms of every query mode)
  Shard sets:                {home.datasets}/
  MLflow store:              {home.mlflow}/mlflow.db"""
    )


def check_datasets(home: BatonHome, names: list[str]) -> None:
    """Every name is a dataset the registry knows (built-in, local, or incoming_<batch>)."""
    from assets.scores.datasets import get_info

    for name in names:
        try:
            get_info(name, home.local_datasets)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None


def write_png(path: str, png: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(png)
