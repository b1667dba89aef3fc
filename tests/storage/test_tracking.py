import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from storage import tracking
from storage.tracking import MlflowResource


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


def _train(uri: str, artifacts: str, tmp_path: Path, loss: float, tag: str) -> str:
    model_dir = tmp_path / f"model-{tag}"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"tag": tag}))
    (model_dir / "weights.bin").write_bytes(tag.encode() * 4)
    with tracking.start_run(uri, "baton", artifacts, f"run-{tag}", {"dagster.asset_key": "music_lm"}) as run:
        mlflow.log_metric("loss", loss + 1.0, step=0)
        mlflow.log_metric("loss", loss, step=1)
        mlflow.log_artifacts(str(model_dir), artifact_path="model")
    return run.info.run_id


def test_registry_lifecycle(tmp_path: Path, uri: str):
    artifacts = str(tmp_path / "artifacts")
    first = _train(uri, artifacts, tmp_path, 0.5, "one")
    second = _train(uri, artifacts, tmp_path, 0.7, "two")

    run = MlflowClient(uri).get_run(first)
    assert run.data.tags["dagster.asset_key"] == "music_lm"
    assert run.data.tags[tracking.GIT_SHA_TAG] == tracking.git_sha()
    assert run.info.artifact_uri.startswith(artifacts)

    assert tracking.register_version(uri, "music_lm", first, "model") == "1"
    assert str(tracking.get_alias_version(uri, "music_lm", "candidate").version) == "1"
    assert tracking.register_version(uri, "music_lm", second, "model", tags={"dataset": "jsb"}) == "2"
    candidate = tracking.get_alias_version(uri, "music_lm", "candidate")
    assert str(candidate.version) == "2" and candidate.run_id == second and candidate.tags == {"dataset": "jsb"}

    assert tracking.get_alias_version(uri, "music_lm", "champion") is None
    tracking.set_alias(uri, "music_lm", "champion", "1")
    champion = tracking.get_alias_version(uri, "music_lm", "champion")
    assert str(champion.version) == "1"
    assert tracking.metric_of(uri, champion, "loss") == 0.5
    assert tracking.metric_of(uri, candidate, "loss") == 0.7
    assert tracking.metric_of(uri, champion, "absent") is None

    local = Path(tracking.fetch_version(uri, champion, str(tmp_path / "cache")))
    assert local == Path(tracking.version_dir(str(tmp_path / "cache"), champion))
    assert sorted(p.name for p in local.iterdir()) == ["config.json", "weights.bin"]
    assert json.loads((local / "config.json").read_text()) == {"tag": "one"}


def test_missing_model_or_alias(tmp_path: Path, uri: str):
    assert tracking.get_alias_version(uri, "nothing", "champion") is None


def test_git_sha(tmp_path: Path):
    assert tracking.git_sha(tmp_path) == "unknown"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert tracking.git_sha(tmp_path) == head and len(head) == 40


def test_resource_tags_runs_and_registers(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BATON_HOME", str(tmp_path / "home"))

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["jsb"]))
    def music_lm(context: dg.AssetExecutionContext, mlflow_res: MlflowResource) -> dg.MaterializeResult:
        with mlflow_res.run(context) as run:
            mlflow.log_metric("perplexity", 3.0)
            weights = tmp_path / "weights"
            weights.mkdir()
            (weights / "config.json").write_text("{}")
            mlflow.log_artifacts(str(weights), artifact_path="model")
        version = mlflow_res.register("music_lm", run.info.run_id, "model")
        return dg.MaterializeResult(
            metadata={"mlflow_run": mlflow_res.run_url(run), "run_id": run.info.run_id, "version": version}
        )

    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.materialize(
            [music_lm], partition_key="jsb", resources={"mlflow_res": MlflowResource()}, instance=instance
        )
    meta = result.asset_materializations_for_node("music_lm")[0].metadata
    run_id = meta["run_id"].value

    res = MlflowResource()
    assert res.uri == f"sqlite:///{tmp_path / 'home' / 'mlflow' / 'mlflow.db'}"
    run = MlflowClient(res.uri).get_run(run_id)
    assert run.info.run_name == "music_lm[jsb]"
    assert run.data.metrics == {"perplexity": 3.0}
    assert run.data.tags[tracking.RUN_ID_TAG] == result.run_id
    assert run.data.tags[tracking.ASSET_KEY_TAG] == "music_lm"
    assert run.data.tags[tracking.PARTITION_TAG] == "jsb"
    assert tracking.GIT_SHA_TAG in run.data.tags
    assert run.info.artifact_uri.startswith(str(tmp_path / "home" / "mlflow" / "artifacts"))
    assert meta["mlflow_run"] == dg.MetadataValue.url(
        f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run_id}?workflowType=machine_learning"
    )  # a link in the Dagster UI, opening MLflow's model-training view
    assert meta["version"].value == "1"

    assert res.get_alias_version("music_lm", "candidate").run_id == run_id
    res.set_alias("music_lm", "champion", "1")
    assert res.metric_of(res.get_alias_version("music_lm", "champion"), "perplexity") == 3.0
    assert (Path(res.fetch(res.get_alias_version("music_lm", "champion"), str(tmp_path / "cache"))) / "config.json").exists()


def test_experiments_are_marked_as_model_training_new_and_existing(tmp_path: Path, uri: str):
    client = MlflowClient(uri)
    created = tracking.ensure_experiment(uri, "baton", str(tmp_path / "artifacts"))
    assert client.get_experiment(created).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    older = client.create_experiment("older", artifact_location=str(tmp_path / "older"))  # made before the tag existed
    assert tracking.EXPERIMENT_KIND_TAG not in client.get_experiment(older).tags
    with tracking.start_run(uri, "older", "", "r", {}) as run:
        pass
    assert run.info.experiment_id == older
    assert client.get_experiment(older).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert tracking.ensure_experiment(uri, "baton", "") == created


def test_run_url_is_absolute_for_a_server(tmp_path: Path, uri: str):
    with tracking.start_run(uri, "baton", str(tmp_path / "artifacts"), "r", {}) as run:
        pass
    res = MlflowResource(tracking_uri="http://127.0.0.1:5000/")
    page = f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert res.run_url(run).url == f"{page}?workflowType=machine_learning"
    assert res.artifacts == ""


def test_promote_if_better_moves_champion_only_on_improvement(tmp_path: Path, uri: str):
    art = str(tmp_path / "artifacts")
    versions = []
    for ppl in (5.0, 7.0, 4.0):
        with tracking.start_run(uri, "baton", art, "r", {}) as run:
            mlflow.log_metric("test_perplexity", ppl)
            model_dir = tmp_path / f"m{ppl}"
            model_dir.mkdir()
            (model_dir / "config.json").write_text("{}")
            mlflow.log_artifacts(str(model_dir), "model")
        tracking.register_version(uri, "lm", run.info.run_id, "model")
        versions.append(tracking.get_alias_version(uri, "lm", "candidate"))
    promoted = [tracking.promote_if_better(uri, "lm", v, "test_perplexity") for v in versions]
    assert promoted == [True, False, True]
    assert str(tracking.get_alias_version(uri, "lm", "champion").version) == "3"
    url = tracking.latest_run_url(uri, "baton", "r", "http://127.0.0.1:5000")
    page = f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert url == f"{page}?workflowType=machine_learning"
    assert tracking.latest_run_url(uri, "baton", "never-ran", "http://127.0.0.1:5000") is None


def test_evaluation_metrics_logged_on_a_version_drive_promotion(tmp_path: Path, uri: str):
    art = str(tmp_path / "artifacts")
    run_ids = [_train(uri, art, tmp_path, 1.0, tag) for tag in ("a", "b")]
    versions = []
    for run_id in run_ids:
        tracking.register_version(uri, "sep", run_id, "model")
        versions.append(tracking.get_alias_version(uri, "sep", "candidate"))
    for version, accuracy in zip(versions, (0.8, 0.9)):
        assert tracking.metric_of(uri, version, "test_accuracy") is None
        tracking.log_version_metrics(uri, version, {"test_accuracy": accuracy})
        assert tracking.metric_of(uri, version, "test_accuracy") == accuracy
    assert [tracking.promote_if_better(uri, "sep", v, "test_accuracy", lower_is_better=False) for v in versions] == [True, True]
    assert tracking.promote_if_better(uri, "sep", versions[0], "test_accuracy", lower_is_better=False) is False
    assert str(tracking.get_alias_version(uri, "sep", "champion").version) == "2"


def test_newest_version_per_tag(tmp_path: Path, uri: str):
    art = str(tmp_path / "artifacts")
    for tag, arch in (("a", "lstm"), ("b", "bilstm"), ("c", "lstm")):
        tracking.register_version(uri, "sep", _train(uri, art, tmp_path, 1.0, tag), "model", tags={"arch": arch})
    newest = tracking.newest_by_tag(uri, "sep", "arch")
    assert {arch: str(v.version) for arch, v in newest.items()} == {"bilstm": "2", "lstm": "3"}
    assert tracking.newest_by_tag(uri, "sep", "dataset") == {}


def test_version_dir_names_the_model_its_version_and_its_source(tmp_path):
    def version(number: str, source: str) -> SimpleNamespace:
        return SimpleNamespace(name="clipsep", version=number, source=source)

    first = tracking.version_dir(str(tmp_path), version("7", "file:///runs/a/artifacts/model"))
    assert Path(first).parent == tmp_path / "models" / "clipsep" and Path(first).name.startswith("7-")
    assert tracking.version_dir(str(tmp_path), version("7", "file:///runs/a/artifacts/model")) == first
    assert tracking.version_dir(str(tmp_path), version("7", "file:///runs/b/artifacts/model")) != first
    assert tracking.version_dir(str(tmp_path), version("8", "file:///runs/a/artifacts/model")) != first


def _register(uri: str, tmp_path: Path, tag: str, files: dict[str, str]) -> ModelVersion:
    model_dir = tmp_path / f"model-{tag}"
    model_dir.mkdir(parents=True)
    for name, text in files.items():
        (model_dir / name).write_text(text)
    with tracking.start_run(uri, "baton", str(tmp_path / "artifacts"), tag, {}) as run:
        mlflow.log_artifacts(str(model_dir), "model")
    tracking.register_version(uri, "lm", run.info.run_id, "model")
    return tracking.get_alias_version(uri, "lm", "candidate")


def _listing(folder: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(Path(folder).iterdir())}


def test_each_version_is_downloaded_once_into_its_own_folder(tmp_path: Path, uri: str, monkeypatch):
    cache = str(tmp_path / "cache")
    downloads = []
    download = mlflow.artifacts.download_artifacts
    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", lambda **kw: downloads.append(kw) or download(**kw))
    first = _register(uri, tmp_path, "one", {"config.json": "1", "extra.bin": "old"})
    assert _listing(tracking.fetch_version(uri, first, cache)) == {"config.json": "1", "extra.bin": "old"}
    second = _register(uri, tmp_path, "two", {"config.json": "2"})
    assert _listing(tracking.fetch_version(uri, second, cache)) == {"config.json": "2"}
    assert _listing(tracking.fetch_version(uri, first, cache)) == {"config.json": "1", "extra.bin": "old"}
    assert len(downloads) == 2


def test_a_reused_version_number_is_not_served_from_the_old_download(tmp_path: Path):
    """A fresh registry (say, after the MLflow store was wiped) numbers from 1 again; the cache stays."""
    cache = str(tmp_path / "cache")
    old = _register(f"sqlite:///{tmp_path / 'old.db'}", tmp_path / "old", "one", {"config.json": "old", "extra.bin": "x"})
    new_uri = f"sqlite:///{tmp_path / 'new.db'}"
    new = _register(new_uri, tmp_path / "new", "one", {"config.json": "new"})
    assert (old.name, old.version) == (new.name, new.version)
    tracking.fetch_version(f"sqlite:///{tmp_path / 'old.db'}", old, cache)
    assert _listing(tracking.fetch_version(new_uri, new, cache)) == {"config.json": "new"}


def test_an_interrupted_download_leaves_nothing_to_serve(tmp_path: Path, uri: str, monkeypatch):
    cache = tmp_path / "cache"
    version = _register(uri, tmp_path, "one", {"config.json": "1"})
    download = mlflow.artifacts.download_artifacts

    def interrupted(**kw):
        download(**kw)
        raise ConnectionError("connection reset")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", interrupted)
    with pytest.raises(ConnectionError):
        tracking.fetch_version(uri, version, str(cache))
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", download)
    assert _listing(tracking.fetch_version(uri, version, str(cache))) == {"config.json": "1"}
