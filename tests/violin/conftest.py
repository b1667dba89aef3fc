from pathlib import Path

import numpy as np
import pytest

from assets.violin.scores import score_notes
from assets.violin.sources import SAMPLE_NAME, Recording, sample_manifest, shared_data_dir


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The shared three-movement sample of the Bach Violin Dataset (read-only)."""
    root = shared_data_dir() / SAMPLE_NAME
    if not (root / "info.csv").is_file():
        pytest.skip(f"Bach Violin Dataset sample not found at {root} (set BATON_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def sample_recordings(sample_dir: Path) -> list[Recording]:
    return sample_manifest(sample_dir.parent)


@pytest.fixture(scope="session")
def sample_notes(sample_recordings: list[Recording]) -> dict[str, np.ndarray]:
    """Notes of each sample movement from its MusicXML score, parsed once per session."""
    return {r.id: score_notes(r.score_path, r.repeat1, r.repeat2) for r in sample_recordings}
