"""Calls in a child process: results and errors come back, a hang is killed at its limit, a crash is named."""

import os
import signal
import time

import pytest

from assets.core.processes import ChildDied, call_in_child


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def hang() -> None:
    time.sleep(3600)


def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_result_and_the_error_of_the_call_come_back():
    assert call_in_child(add, (2, 3), timeout=30) == 5
    with pytest.raises(ValueError, match="bad input"):
        call_in_child(fail, ("bad input",), timeout=30)


def test_a_hung_call_is_killed_at_its_limit_and_a_crash_is_named():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="took longer than 1 s and was killed"):
        call_in_child(hang, (), timeout=1)
    assert time.monotonic() - start < 30
    with pytest.raises(ChildDied, match=r"its process died \(killed by SIGKILL\)"):
        call_in_child(crash, (), timeout=30)

