"""An S3 endpoint for storage tests: moto's server on the loopback, reached the way a user reaches
MinIO or Ceph (AWS_ENDPOINT_URL_S3, which botocore, and so s3fs, honours natively)."""

import itertools
import logging
import os

import fsspec
import pytest
from moto.server import ThreadedMotoServer
from s3fs import S3FileSystem

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_buckets = itertools.count()


@pytest.fixture(scope="session")
def s3_endpoint():
    """The endpoint URL of one moto server for the whole session; its environment is set for this
    process (and so for the subprocesses tests start) only while the `s3_bucket` fixture is in use."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch) -> dict[str, str]:
    """Credentials and endpoint for the moto server, set in os.environ and returned for subprocesses."""
    env = {**S3_ENV, "AWS_ENDPOINT_URL_S3": s3_endpoint, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    S3FileSystem.clear_instance_cache()  # an instance made under other settings is not reused
    return env


@pytest.fixture
def s3_bucket(s3_env) -> str:
    """`s3://<fresh bucket>/baton`: an empty prefix in a bucket of its own for each test."""
    bucket = f"baton-test-{os.getpid()}-{next(_buckets)}"
    fsspec.filesystem("s3").mkdir(bucket)
    return f"s3://{bucket}/baton"
