"""Child processes that never outlive the process that started them, even when it dies by kill -9."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies


def die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; elsewhere nothing), and
    exit at once if ``parent`` already died before the request took effect."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


class ChildDied(RuntimeError):
    """The child process running a call died before it answered (a crash inside a C library)."""


def call_in_child(fn: Callable[..., T], args: tuple, timeout: float) -> T:
    """``fn(*args)`` in a forked child that is killed past ``timeout`` seconds: a call stuck inside a
    C library (a video decoder) cannot be interrupted in-process. Raises TimeoutError past the limit,
    ChildDied when the child dies, and ``fn``'s own exception when it raises."""
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    parent = os.getpid()

    def run() -> None:
        die_with_parent(parent)
        try:
            writer.send((True, fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
            writer.send((False, exc))

    process = context.Process(target=run, daemon=True)
    process.start()
    writer.close()
    try:
        if not reader.poll(timeout):
            raise TimeoutError(f"took longer than {timeout:g} s and was killed")
        ok, value = reader.recv()
    except EOFError:
        process.join()
        raise ChildDied(f"its process died ({exit_reason(process.exitcode)})") from None
    finally:
        process.kill()
        process.join()
        reader.close()
    if not ok:
        raise value
    return value


def exit_reason(exitcode: int | None) -> str:
    """How a child process ended, from its multiprocessing exit code: "killed by SIGKILL", "exit code 1"."""
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
