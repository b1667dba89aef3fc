"""What the tests of commands that start processes share."""

from collections.abc import Callable

import psutil
import pytest


def _assert_gone(processes: list[psutil.Process]) -> None:
    """None of `processes` survived: each is gone, or an exited child its parent has not reaped yet."""
    for process in processes:
        try:
            assert process.status() == psutil.STATUS_ZOMBIE, f"{process.pid} {process.cmdline()} survived the stop"
        except psutil.NoSuchProcess:
            pass


@pytest.fixture(scope="session")
def assert_gone() -> Callable[[list[psutil.Process]], None]:
    return _assert_gone
