"""MLflow tracking and model registry helpers, plus the Dagster resource that wraps them.

Model versions point at a run's artifact directory (a state_dict plus a config JSON),
not at an MLflow-flavoured model, so they are created with `create_model_version`
and resolved by alias (MLflow 3: aliases, not stages).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from storage.home import REPO_ROOT, BatonHome
from storage.run_worker import dead_worker

GIT_SHA_TAG = "mlflow.source.git.commit"
RUN_ID_TAG = "dagster.run_id"
ROOT_RUN_ID_TAG = "dagster.root_run_id"
ASSET_KEY_TAG = "dagster.asset_key"
PARTITION_TAG = "dagster.partition_key"
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
TRAINING_VIEW = "?workflowType=machine_learning"
"""The query that opens a page of MLflow 3's UI in its model-training view (runs, metrics, registry)."""
BELOW_BASELINE_TAG = "below_baseline"  # model version tag: the baselines its evaluation found it did not beat
BASELINE_ARTIFACT = "baseline.json"  # an evaluation run's baselines, its best model and what runs the baseline


def default_tracking_uri(home: BatonHome) -> str:
    """BATON_MLFLOW_URI (an MLflow tracking server, http://host:port) when set, else the home's
    sqlite store: runs, metrics, artifacts and the registry all follow it."""
    return os.environ.get("BATON_MLFLOW_URI") or f"sqlite:///{Path(home.mlflow) / 'mlflow.db'}"


def is_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def default_artifact_root(home: BatonHome) -> str:
    """The home's artifact folder; "" with a tracking server, which then stores (or proxies, with
    `--serve-artifacts`) artifacts where it was told, so clients need no access to that store."""
    return "" if is_server(default_tracking_uri(home)) else str(Path(home.mlflow) / "artifacts")


def _client(tracking_uri: str) -> MlflowClient:
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def git_sha(cwd: str | Path = REPO_ROOT) -> str:
    """The checkout's HEAD commit, or "unknown" outside a git repository (or before the first commit)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def ensure_experiment(tracking_uri: str, name: str, artifact_root: str) -> str:
    """Experiment id, creating it with `artifact_root` as artifact location ("" = the server's default).
    The experiment is marked as model training (EXPERIMENT_KIND), an existing one too, so the UI
    does not treat it as a GenAI experiment of traces."""
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(
            name, artifact_location=artifact_root or None, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def run_page(ui_url: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI, in its model-training view: MLflow 3's UI opens in its GenAI
    view (traces) unless the link names the view, whatever the experiment's kind tag says."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}{TRAINING_VIEW}"


@contextmanager
def start_run(
    tracking_uri: str, experiment: str, artifact_root: str, run_name: str, tags: dict[str, str]
) -> Iterator[mlflow.ActiveRun]:
    """An active fluent run (so `mlflow.log_*` works inside), always tagged with the git sha."""
    experiment_id = ensure_experiment(tracking_uri, experiment, artifact_root)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags={GIT_SHA_TAG: git_sha(), **tags})
    try:
        yield run
    except BaseException as exc:
        mlflow.end_run(end_status(exc))
        raise
    mlflow.end_run("FINISHED")


def end_status(exc: BaseException) -> str:
    """KILLED for a run stopped from outside (Ctrl-C, or Dagster's termination, which raises its
    interruption on SIGTERM), FAILED for an error."""
    interrupted = isinstance(exc, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError))
    return "KILLED" if interrupted else "FAILED"


def running_runs(tracking_uri: str, experiment: str, tag: str, value: str) -> list[Run]:
    """The experiment's runs still RUNNING whose tag `tag` is `value` (an asset key or a run id, never
    outside input, so it needs no quoting)."""
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], f"attributes.status = 'RUNNING' and tags.`{tag}` = '{value}'")


def end_runs(tracking_uri: str, runs: list[Run]) -> list[str]:
    """End `runs` as KILLED (the runs of a killed attempt, which nothing else would end); their ids."""
    client = _client(tracking_uri)
    for run in runs:
        client.set_terminated(run.info.run_id, "KILLED")
    return [run.info.run_id for run in runs]


def end_runs_of_dagster_run(tracking_uri: str, experiment: str, dagster_run_id: str) -> list[str]:
    """End the MLflow runs a Dagster run left RUNNING (its worker died, or it was marked failed)."""
    return end_runs(tracking_uri, running_runs(tracking_uri, experiment, RUN_ID_TAG, dagster_run_id))


def register_version(
    tracking_uri: str,
    name: str,
    run_id: str,
    artifact_path: str,
    alias: str = "candidate",
    tags: dict[str, str] | None = None,
) -> str:
    """Register the run's artifact directory `artifact_path` as a new version of `name` and alias it."""
    client = _client(tracking_uri)
    try:
        client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        client.create_registered_model(name)
    source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path.strip('/')}"
    version = client.create_model_version(name, source=source, run_id=run_id, tags=tags or {})
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    _client(tracking_uri).set_registered_model_alias(name, alias, version)


def get_alias_version(tracking_uri: str, name: str, alias: str) -> ModelVersion | None:
    """The version `name@alias` points at; None when the model or the alias does not exist."""
    client = _client(tracking_uri)
    try:
        model = client.get_registered_model(name)
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if alias not in model.aliases:
        return None
    return client.get_model_version(name, model.aliases[alias])


def get_version(tracking_uri: str, name: str, version: str) -> ModelVersion:
    return _client(tracking_uri).get_model_version(name, version)


def version_dir(cache_root: str, version: ModelVersion) -> str:
    """Where a registered version's model folder is cached: ``<cache>/models/<name>/<version>-<source digest>``.

    The number alone does not name a model for good: the registry hands a deleted latest version's
    number to the next one, and a fresh registry next to an old cache starts again at 1. The digest
    of the artifact source tells such versions apart.
    """
    digest = hashlib.sha256(version.source.encode()).hexdigest()[:12]
    return os.path.join(cache_root, "models", version.name, f"{version.version}-{digest}")


def fetch_version(tracking_uri: str, version: ModelVersion, cache_root: str) -> str:
    """The local folder of one registered version (its `model` artifact), downloaded once into the cache.

    The one registry lookup behind every inference command and evaluation asset: each model
    package's ``load_model`` then reads the folder. The download lands in a temporary folder that
    is renamed into place, so an interrupted one never leaves a partial folder to be served.
    """
    dst = Path(version_dir(cache_root, version))
    if dst.is_dir():
        return str(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.name}.") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=version.source, dst_path=tmp, tracking_uri=tracking_uri
        )
        try:
            os.rename(local, dst)
        except OSError:  # another process put the same version in place first
            if not dst.is_dir():
                raise
    return str(dst)


def metric_of(tracking_uri: str, version: ModelVersion, key: str) -> float | None:
    """Latest value of metric `key` on the run that produced `version` (to compare candidate and champion)."""
    return _client(tracking_uri).get_run(version.run_id).data.metrics.get(key)


def newest_by_tag(tracking_uri: str, name: str, tag: str) -> dict[str, ModelVersion]:
    """The newest version of `name` for each value of version tag `tag` (e.g. one per architecture)."""
    newest: dict[str, ModelVersion] = {}
    for version in _client(tracking_uri).search_model_versions(f"name = '{name}'"):
        value = version.tags.get(tag)
        if value is not None and (value not in newest or int(version.version) > int(newest[value].version)):
            newest[value] = version
    return dict(sorted(newest.items()))


def log_version_metrics(tracking_uri: str, version: ModelVersion, metrics: dict[str, float]) -> None:
    """Record evaluation results on the run that trained `version`, where promotion compares them."""
    client = _client(tracking_uri)
    for key, value in metrics.items():
        client.log_metric(version.run_id, key, float(value))


def latest_run(tracking_uri: str, experiment: str, run_name: str) -> Run | None:
    """The newest run of that name, or None."""
    exp = _client(tracking_uri).get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = _client(tracking_uri).search_runs(
        [exp.experiment_id], f"attributes.run_name = '{run_name}'", order_by=["attributes.start_time DESC"], max_results=1
    )
    return runs[0] if runs else None


def baseline_text(baselines: Mapping[str, float]) -> str:
    """"zone-based 0.7012, closest-pitch 0.6523": baselines as a tag value or a line of text."""
    return ", ".join(f"{name} {value:.4g}" for name, value in baselines.items())


def baseline_record(
    metric: str, lower_is_better: bool, baselines: Mapping[str, float], best: str, best_value: float, **extra
) -> dict:
    """What an evaluation logs as BASELINE_ARTIFACT: the baselines a champion must beat on `metric`, the
    best model (`best`, e.g. "lstm v3") and its value, and `extra`, what inference needs to run the baseline."""
    return {
        "metric": metric, "lower_is_better": lower_is_better, "baselines": {k: float(v) for k, v in baselines.items()},
        "best": {"model": best, "value": float(best_value)}, **extra,
    }  # fmt: skip


def baseline_notice(name: str, record: dict, fmt: Callable[[float], str]) -> str:
    """"no part_separation model beats the zone-based baseline (best, lstm v3, 31.0 % vs 70.1 %)":
    why inference runs the baseline, with the record's values written by `fmt`."""
    below = unbeaten(record["best"]["value"], record["baselines"], record["lower_is_better"])
    what = " and ".join(below) + (" baselines" if len(below) > 1 else " baseline")
    best = record["best"]
    return f"no {name} model beats the {what} (best, {best['model']}, {fmt(best['value'])} vs {' and '.join(map(fmt, below.values()))})"


def run_dict(tracking_uri: str, run: Run, path: str) -> dict | None:
    """The JSON artifact `path` of `run`, or None when the run has none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path=path, dst_path=tmp, tracking_uri=tracking_uri
            )
        except (MlflowException, OSError):
            return None
        return json.loads(Path(local).read_text())


def baseline_in_place(tracking_uri: str, experiment: str, name: str, alias: str, eval_run: str) -> dict | None:
    """When `name@alias` is missing because the champion rule held every model back (the newest run
    `eval_run` found none beating its baselines), that run's baseline record: inference then runs the
    baseline. None when there is a champion, another alias is asked for, or nothing was evaluated."""
    if alias != "champion" or get_alias_version(tracking_uri, name, alias) is not None:
        return None
    run = latest_run(tracking_uri, experiment, eval_run)
    record = run_dict(tracking_uri, run, BASELINE_ARTIFACT) if run is not None else None
    if record is None or not unbeaten(record["best"]["value"], record["baselines"], record["lower_is_better"]):
        return None
    return record


def latest_run_url(tracking_uri: str, experiment: str, run_name: str, ui_url: str) -> str | None:
    """Link to the newest run of that name, for pointing a person at results."""
    run = latest_run(tracking_uri, experiment, run_name)
    if run is None:
        return None
    return run_page(ui_url, run.info.experiment_id, run.info.run_id)


def unbeaten(value: float | None, baselines: Mapping[str, float], lower_is_better: bool) -> dict[str, float]:
    """The baselines `value` does not strictly beat (every one when there is no value)."""
    return {
        name: b for name, b in baselines.items() if value is None or not (value < b if lower_is_better else value > b)
    }


def promote_if_better(
    tracking_uri: str, name: str, version: ModelVersion, metric: str, lower_is_better: bool = True,
    baselines: Mapping[str, float] | None = None,
) -> bool:  # fmt: skip
    """Move `champion` to `version` when its run's metric beats the champion's (or there is none) and
    strictly beats every one of `baselines` (the task's non-learned methods on the same data and metric).

    With baselines, the version's `below_baseline` tag names those it did not beat ("" when it beat
    them all), and a champion that does not beat them loses the alias: no champion is better than one
    worse than a baseline, because inference then runs the baseline and says so.
    """
    champion = get_alias_version(tracking_uri, name, "champion")
    new = metric_of(tracking_uri, version, metric)
    if new is None:
        return False
    if baselines:
        client = _client(tracking_uri)
        below = unbeaten(new, baselines, lower_is_better)
        client.set_model_version_tag(name, str(version.version), BELOW_BASELINE_TAG, baseline_text(below))
        if champion is not None and unbeaten(metric_of(tracking_uri, champion, metric), baselines, lower_is_better):
            client.delete_registered_model_alias(name, "champion")
            champion = None
        if below:
            return False
    if champion is not None and str(champion.version) != str(version.version):
        old = metric_of(tracking_uri, champion, metric)
        if old is not None and (new >= old if lower_is_better else new <= old):
            return False
    set_alias(tracking_uri, name, "champion", str(version.version))
    return True


def dagster_run_alive(instance: dg.DagsterInstance, run_id: str | None) -> bool:
    """Whether the Dagster run is still queued or executing: not finished, and its worker process not
    gone (a run killed while no daemon was there to mark it failed is dead too). A run the instance
    does not know is not alive."""
    run = instance.get_run_by_id(run_id) if run_id else None
    return run is not None and not run.is_finished and dead_worker(instance, run.run_id) is None


def dead_attempts(tracking_uri: str, experiment: str, instance: dg.DagsterInstance, tags: dict[str, str]) -> list[Run]:
    """RUNNING MLflow runs of the asset and partition in `tags` that no live attempt owns: their Dagster
    run has ended, or it is the current run, whose step starts them again only after an attempt died."""
    same = [
        run for run in running_runs(tracking_uri, experiment, ASSET_KEY_TAG, tags[ASSET_KEY_TAG])
        if run.data.tags.get(PARTITION_TAG) == tags.get(PARTITION_TAG)
    ]  # fmt: skip
    owner = tags[RUN_ID_TAG]
    return [
        run for run in same
        if run.data.tags.get(RUN_ID_TAG) == owner or not dagster_run_alive(instance, run.data.tags.get(RUN_ID_TAG))
    ]  # fmt: skip


class MlflowResource(dg.ConfigurableResource):
    """MLflow for assets: empty settings fall back to the BATON_HOME sqlite store and artifact directory."""

    tracking_uri: str = ""
    experiment: str = "baton"
    artifact_root: str = ""
    ui_url: str = "http://127.0.0.1:5000"

    @property
    def uri(self) -> str:
        return self.tracking_uri or default_tracking_uri(BatonHome.from_env().ensure())

    @property
    def artifacts(self) -> str:
        """Artifact root; a remote http(s) server keeps its own default unless one is configured."""
        if self.artifact_root or is_server(self.uri):
            return self.artifact_root
        return default_artifact_root(BatonHome.from_env())

    @contextmanager
    def run(
        self, context: dg.AssetExecutionContext | dg.OpExecutionContext, run_name: str | None = None
    ) -> Iterator[mlflow.ActiveRun]:
        """An MLflow run tagged with the Dagster run id, asset key(s), partition key and git sha.

        Runs of the same asset and partition that an earlier, killed attempt left RUNNING are ended
        as KILLED first, so the tracking UI never shows a dead attempt as still running.
        """
        keys = sorted(k.to_user_string() for k in context.selected_asset_keys)
        tags = {
            RUN_ID_TAG: context.run_id,
            ROOT_RUN_ID_TAG: context.run.root_run_id or context.run_id,
            ASSET_KEY_TAG: ",".join(keys),
        }
        partition = context.partition_key if context.has_partition_key else None
        if partition is not None:
            tags[PARTITION_TAG] = partition
        end_runs(self.uri, dead_attempts(self.uri, self.experiment, context.instance, tags))
        name = run_name or ",".join(keys) + (f"[{partition}]" if partition is not None else "")
        with start_run(self.uri, self.experiment, self.artifacts, name, tags) as active:
            yield active

    def end_runs_of(self, dagster_run_id: str) -> list[str]:
        return end_runs_of_dagster_run(self.uri, self.experiment, dagster_run_id)

    def run_url(self, run: mlflow.ActiveRun) -> dg.UrlMetadataValue:
        """Link to the run in the MLflow UI (on the http(s) server when there is one), as URL metadata
        so the Dagster UI shows it as a link."""
        base = self.uri if is_server(self.uri) else self.ui_url
        return dg.MetadataValue.url(run_page(base, run.info.experiment_id, run.info.run_id))

    def register(
        self, name: str, run_id: str, artifact_path: str, alias: str = "candidate", tags: dict[str, str] | None = None
    ) -> str:
        return register_version(self.uri, name, run_id, artifact_path, alias, tags)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        set_alias(self.uri, name, alias, version)

    def get_alias_version(self, name: str, alias: str) -> ModelVersion | None:
        return get_alias_version(self.uri, name, alias)

    def get_version(self, name: str, version: str) -> ModelVersion:
        return get_version(self.uri, name, version)

    def fetch(self, version: ModelVersion, cache_root: str) -> str:
        return fetch_version(self.uri, version, cache_root)

    def metric_of(self, version: ModelVersion, key: str) -> float | None:
        return metric_of(self.uri, version, key)

    def newest_by_tag(self, name: str, tag: str) -> dict[str, ModelVersion]:
        return newest_by_tag(self.uri, name, tag)

    def log_version_metrics(self, version: ModelVersion, metrics: dict[str, float]) -> None:
        log_version_metrics(self.uri, version, metrics)

    def promote_if_better(
        self, name: str, version: ModelVersion, metric: str, lower_is_better: bool = True,
        baselines: Mapping[str, float] | None = None,
    ) -> bool:  # fmt: skip
        return promote_if_better(self.uri, name, version, metric, lower_is_better, baselines)

    def baseline_in_place(self, name: str, alias: str, eval_run: str) -> dict | None:
        return baseline_in_place(self.uri, self.experiment, name, alias, eval_run)
