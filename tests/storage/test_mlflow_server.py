"""BATON_MLFLOW_URI: a real training asset tracked by a real `mlflow server` whose artifacts live in S3
(moto's server), proxied so that the client holds no S3 credentials."""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import fsspec
import music21
import pytest

from models import music_lm
from storage import tracking

CORPUS = os.path.join(os.path.dirname(music21.__file__), "corpus")
MLFLOW = os.path.join(os.path.dirname(sys.executable), "mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(s3_bucket, s3_env, tmp_path):
    """`http://127.0.0.1:<port>` of an MLflow server storing artifacts under `<bucket>/mlflow`."""
    port = free_port()
    with open(tmp_path / "mlflow-server.log", "w") as log:
        server = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{tmp_path}/m.db",
             "--artifacts-destination", f"{s3_bucket}/mlflow", "--serve-artifacts",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env={**os.environ, **s3_env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "mlflow-server.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the MLflow server never became healthy"
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=60)


def test_a_training_asset_tracks_runs_metrics_models_and_artifacts_on_the_server(home, mlflow_server, s3_bucket, s3_env, monkeypatch):
    from pipelines.definitions import build_defs

    monkeypatch.setenv("BATON_MLFLOW_URI", mlflow_server)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(key)  # artifacts go through the server, never straight to the bucket
    folder = Path(home.raw, "incoming", "chorales")
    folder.mkdir(parents=True)
    for path in sorted(glob.glob(os.path.join(CORPUS, "bach", "bwv2[0-9]*.mxl")))[:18]:
        shutil.copy(path, folder)
    key = "incoming_chorales"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("datasets", [key])
        result = build_defs(home).resolve_job_def("symbolic_dataset").execute_in_process(
            instance=instance, partition_key=key, run_config={"ops": {"music_lm": {"config": {"profile": "smoke", "max_steps": 12}}}}
        )
    assert result.success
    assert not Path(home.mlflow, "mlflow.db").exists()

    uri = tracking.default_tracking_uri(home)
    assert uri == mlflow_server
    name = f"music_lm-{key}"
    run = tracking.latest_run(uri, "baton", name)
    assert run.info.status == "FINISHED"
    assert run.data.tags[tracking.PARTITION_TAG] == key and run.data.tags[tracking.RUN_ID_TAG] == result.run_id
    assert {"test_perplexity", "train_loss", "val_loss"} <= run.data.metrics.keys()
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")

    version = tracking.get_alias_version(uri, name, "candidate")
    assert str(version.version) == "1" and version.run_id == run.info.run_id
    tracking.set_alias(uri, name, "champion", str(version.version))
    assert str(tracking.get_alias_version(uri, name, "champion").version) == "1"
    model, _ = music_lm.load_model(tracking.fetch_version(uri, version, home.cache), "cpu")
    assert sum(p.numel() for p in model.parameters()) > 0

    s3 = fsspec.filesystem("s3", key=s3_env["AWS_ACCESS_KEY_ID"], secret=s3_env["AWS_SECRET_ACCESS_KEY"],
                           endpoint_url=s3_env["AWS_ENDPOINT_URL_S3"], skip_instance_cache=True)  # fmt: skip
    stored = s3.find(f"{s3_bucket.removeprefix('s3://')}/mlflow")
    suffix = f"{run.info.run_id}/artifacts/model/"
    assert {p.rsplit("/", 1)[-1] for p in stored if suffix in p} >= {"model.pt", "config.json"}
    assert not any(Path(home.mlflow).rglob("model.pt"))
