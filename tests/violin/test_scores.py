from pathlib import Path

import numpy as np
import pytest

from assets.violin.scores import ScoreError, read_notes_csv, score_notes, sort_notes, write_notes_csv


def test_each_sample_score_gives_exactly_the_published_notes(sample_dir: Path, sample_recordings, sample_notes):
    assert len(sample_recordings) == 3
    for recording in sample_recordings:
        published = read_notes_csv(sample_dir / "notes" / f"{recording.id}.csv")
        assert sample_notes[recording.id].dtype == np.int64
        np.testing.assert_array_equal(sample_notes[recording.id], published, err_msg=recording.id)


def _passes(notes: np.ndarray, start: int, stop: int, shift: int) -> np.ndarray:
    """Notes with onsets in [start, stop), moved earlier by ``shift`` ticks."""
    part = notes[(notes[:, 0] >= start) & (notes[:, 0] < stop)].copy()
    part[:, :2] -= shift
    return part


def test_repeat_flags_skip_sections_and_their_first_endings(sample_dir: Path):
    """mov6 has two repeated sections, each with first and second endings.

    Published (both repeats): A+1st [0, 864), A+2nd [864, 1728), B+1st [1728, 4320), B+2nd [4320, 6912).
    Skipping a repeat plays its section once, through the second ending.
    """
    score = sample_dir / "scores" / "bwv1002_mov6.mxl"
    both = read_notes_csv(sample_dir / "notes" / "john-garner_bwv1002_mov6.csv")
    first_only = sort_notes(np.concatenate([_passes(both, 0, 1728, 0), _passes(both, 4320, 6912, 2592)]))
    none = sort_notes(np.concatenate([_passes(both, 864, 1728, 864), _passes(both, 4320, 6912, 3456)]))
    np.testing.assert_array_equal(score_notes(score, True, False), first_only)
    np.testing.assert_array_equal(score_notes(score, False, False), none)
    assert none[:, 1].max() == 3456 and first_only[:, 1].max() == 4320


def test_flags_asking_for_a_repeat_the_score_lacks_are_refused(sample_dir: Path):
    with pytest.raises(ScoreError, match=r"takes repeat 2 but .* has only 1"):
        score_notes(sample_dir / "scores" / "bwv1002_mov7_10.mxl", True, True)


def test_a_file_that_is_not_a_score_is_a_score_error(tmp_path: Path):
    bad = tmp_path / "bad.mxl"
    bad.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ScoreError, match="cannot read score"):
        score_notes(bad)


def test_notes_csv_round_trip_keeps_the_published_format(sample_dir: Path, tmp_path: Path):
    source = sample_dir / "notes" / "john-garner_bwv1002_mov7.csv"
    notes = read_notes_csv(source)
    write_notes_csv(notes, tmp_path / "n.csv")
    assert (tmp_path / "n.csv").read_text() == source.read_text()
