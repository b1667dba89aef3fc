import functools
import http.server
import os
import sys
import threading

import pytest


def use_home(monkeypatch: pytest.MonkeyPatch, root):
    """A fresh BATON_HOME at `root` while `monkeypatch` lasts."""
    from storage.home import BatonHome

    monkeypatch.setenv("BATON_HOME", str(root))
    for setting in ("BATON_DATASETS_URI", "BATON_CHECKPOINTS_URI", "BATON_MLFLOW_URI", "BATON_EXECUTOR"):
        monkeypatch.delenv(setting, raising=False)  # a developer's deployment settings stay out of tests
    return BatonHome(str(root)).ensure()


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh BATON_HOME for one test."""
    return use_home(monkeypatch, tmp_path / "home")


@pytest.fixture(scope="module")
def module_home(tmp_path_factory):
    """A fresh BATON_HOME shared by the tests of one module, which read one costly lineage built in it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield use_home(monkeypatch, tmp_path_factory.mktemp("module") / "home")


def in_ci() -> bool:
    """CI runners set CI=true; unset, empty, "0" or "false" is a local run."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA is present."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


def skip_allowed_in_ci(node: pytest.Item | pytest.Collector, report: pytest.TestReport | pytest.CollectReport) -> bool:
    """An expected failure, or a `gpu` test on a machine without CUDA: the only skips CI accepts."""
    import torch

    return hasattr(report, "wasxfail") or (node.get_closest_marker("gpu") is not None and not torch.cuda.is_available())


def fail_skip_in_ci(node: pytest.Item | pytest.Collector, report: pytest.TestReport | pytest.CollectReport) -> None:
    """In CI every test's data and tools are installed, so a skip there is a failure: a missing
    sample or package must not pass unnoticed."""
    if not (in_ci() and report.skipped) or skip_allowed_in_ci(node, report):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, where it must run: {reason.removeprefix('Skipped: ')}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    fail_skip_in_ci(item, outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module skipped as a whole (``pytest.importorskip`` or ``allow_module_level``) is caught here."""
    outcome = yield
    fail_skip_in_ci(collector, outcome.get_result())


class LoopbackServer(http.server.ThreadingHTTPServer):
    """A client that hangs up mid-transfer (yt-dlp probing, a finished test) is not an error to print."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture
def serve():
    """Start a threaded loopback HTTP server on a folder (or a handler class); returns its base URL."""
    servers = []

    def start(directory=None, handler=None) -> str:
        handler = handler or functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
        server = LoopbackServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
