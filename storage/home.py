"""The BATON_HOME layout: one directory tree that holds everything a run produces."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BatonHome:
    """Paths under the home root; `datasets` may point elsewhere (an fsspec URI) via BATON_DATASETS_URI."""

    root: str

    @classmethod
    def from_env(cls) -> BatonHome:
        return cls(str(Path(os.environ.get("BATON_HOME") or REPO_ROOT / ".baton").resolve()))

    def _sub(self, name: str) -> str:
        return str(Path(self.root) / name)

    @property
    def dagster(self) -> str:
        return self._sub("dagster")

    @property
    def raw(self) -> str:
        return self._sub("raw")

    @property
    def datasets(self) -> str:
        return os.environ.get("BATON_DATASETS_URI") or self._sub("datasets")

    @property
    def mlflow(self) -> str:
        return self._sub("mlflow")

    @property
    def incoming(self) -> str:
        return self._sub("incoming")

    @property
    def cache(self) -> str:
        return self._sub("cache")

    @property
    def checkpoints(self) -> str:
        return str(Path(self.cache) / "checkpoints")

    @property
    def checkpoints_uri(self) -> str | None:
        """Where checkpoint folders are mirrored (BATON_CHECKPOINTS_URI, an fsspec URI), so a retry
        on another machine resumes; None keeps them local only."""
        return os.environ.get("BATON_CHECKPOINTS_URI") or None

    @property
    def local_datasets(self) -> str:
        """JSON registry of the user's own score folders (`baton datasets add-local`)."""
        return os.path.join(self.root, "local_datasets.json")

    def ensure(self) -> BatonHome:
        """Create every local directory (a remote `datasets` URI is left to its store)."""
        drops = [str(Path(self.incoming, kind)) for kind in ("scores", "videos")]
        dirs = [self.dagster, self.raw, self.mlflow, self.incoming, *drops, self.cache, self.checkpoints]
        if "://" not in self.datasets:
            dirs.append(self.datasets)
        for d in dirs:
            Path(d).mkdir(parents=True, exist_ok=True)
        config = Path(self.dagster, "dagster.yaml")
        if not config.exists() or config.read_text() == _FORMER_INSTANCE_CONFIG:
            config.write_text(INSTANCE_CONFIG)
        return self


# Dagster's defaults (sqlite under DAGSTER_HOME) are intended; telemetry has no network to reach and
# would only print its banner into every CLI run. Run monitoring, in the daemon that `dagster dev`
# (`baton ui`) runs, marks a run whose worker died, say to kill -9, as failed, so it can be
# re-executed; the launcher tells it whether the worker lives. Dead runs are failed, not resumed:
# training resumes from its checkpoint in the re-execution.
INSTANCE_CONFIG = """\
telemetry:
  enabled: false
run_launcher:
  module: storage.run_worker
  class: LocalRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  free_slots_after_run_end_seconds: 60
"""
_FORMER_INSTANCE_CONFIG = "telemetry:\n  enabled: false\n"  # what earlier versions wrote: upgraded in place
