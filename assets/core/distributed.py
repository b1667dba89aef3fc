"""Training a model in ``nproc`` processes (one per GPU, or CPU shares) under ``torchrun``.

The run happens in :mod:`models.train_worker`: this side writes its spec and data, starts
``torchrun --standalone``, forwards each step the main process logs to the caller's ``log`` (the open
MLflow run) while training runs, and returns the :class:`FitResult` and the model folder it wrote.
The checkpoint folder is the caller's, so a retried step resumes as an in-process run does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

import dagster as dg

from assets.core.processes import die_with_parent, exit_reason
from models.train_worker import read_result, save_data
from models.training import FitResult

POLL_S = 0.5  # how often the metrics file is read while training runs
STOP_GRACE_S = 30  # how long torchrun gets to stop its workers before it is killed
LOG_TAIL_CHARS = 4_000  # of the workers' output, shown when a run fails


def torchrun_command(nproc: int, spec_path: str) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
        "-m", "models.train_worker", spec_path,
    ]  # fmt: skip


def _forward(lines: BinaryIO, log: Callable[[dict[str, float], int], None]) -> None:
    """Log every complete line written since the last call (a line still being written waits)."""
    while (line := lines.readline()).endswith(b"\n"):
        record = json.loads(line)
        log(record["metrics"], record["step"])
    lines.seek(lines.tell() - len(line))


def train_distributed(
    kind: str,
    cfg: Any,
    train: Sequence[Any],
    valid: Sequence[Any],
    ckpt_dir: str,
    nproc: int,
    log: Callable[[dict[str, float], int], None],
) -> tuple[FitResult, str]:
    """Train ``kind`` with config ``cfg`` in ``nproc`` processes; the result and the model folder
    (``ckpt_dir/model``). A failed run is a ``dg.Failure`` with the end of the workers' output."""
    model_dir = os.path.join(ckpt_dir, "model")
    with tempfile.TemporaryDirectory(dir=ckpt_dir, prefix=".torchrun-") as work:
        files = {name: os.path.join(work, name) for name in ("data.pt", "spec.json", "metrics.jsonl", "result.json", "output.log")}
        save_data(files["data.pt"], train, valid)
        spec = {
            "kind": kind, "config": asdict(cfg), "data": files["data.pt"], "ckpt_dir": ckpt_dir,
            "model_dir": model_dir, "metrics": files["metrics.jsonl"], "result": files["result.json"],
        }  # fmt: skip
        Path(files["spec.json"]).write_text(json.dumps(spec))
        Path(files["metrics.jsonl"]).touch()
        parent = os.getpid()
        with open(files["output.log"], "wb") as output, open(files["metrics.jsonl"], "rb") as lines:
            process = subprocess.Popen(
                torchrun_command(nproc, files["spec.json"]), stdout=output, stderr=subprocess.STDOUT,
                env=os.environ | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
                preexec_fn=lambda: die_with_parent(parent),
            )  # fmt: skip
            try:
                while process.poll() is None:
                    _forward(lines, log)
                    time.sleep(POLL_S)
                _forward(lines, log)
            finally:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(STOP_GRACE_S)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
        if process.returncode != 0:
            tail = Path(files["output.log"]).read_text(errors="replace")[-LOG_TAIL_CHARS:]
            raise dg.Failure(f"torchrun with {nproc} processes ended with {exit_reason(process.returncode)}:\n{tail}")
        return read_result(files["result.json"]), model_dir
