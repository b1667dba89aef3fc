import numpy as np
import pytest

from assets.deep_performer.performing import (
    at_peak,
    perform,
    performer_index,
    read_context,
    spectrograms_png,
    write_context,
)
from models import deep_performer as dp

PERFORMERS = ["Emil Telmányi", "John Garner"]


@pytest.mark.parametrize("given, index", [("John Garner", 1), ("john garner", 1), ("0", 0), (1, 1)])
def test_performer_index_takes_a_name_or_an_index(given, index):
    assert performer_index(PERFORMERS, given) == index


@pytest.mark.parametrize("given", ["Itzhak Perlman", "2", -1])
def test_unknown_performer_lists_the_known_ones(given):
    with pytest.raises(ValueError, match="0: Emil Telmányi, 1: John Garner"):
        performer_index(PERFORMERS, given)


def test_context_keeps_performers_and_the_median_tempo(tmp_path):
    write_context(tmp_path, PERFORMERS, np.array([100.0, 164.6, 120.0]))
    assert read_context(tmp_path) == {"performers": PERFORMERS, "median_qpm": 120.0}


def test_perform_plays_every_note_and_refuses_an_empty_score():
    cfg = dp.PROFILES["smoke"]
    synthesis, alignment = dp.build_model(cfg, "synthesis").eval(), dp.build_model(cfg, "alignment").eval()
    notes = np.array([[0, 24, 67, 80], [24, 48, 69, 80], [48, 96, 71, 80]])  # ticks at 24 per quarter
    mel, audio = perform(notes, 120.0, 0, synthesis, alignment, cfg)
    assert mel.shape[1] == cfg.n_mels and len(audio) == (len(mel) - 1) * 256 and np.isfinite(audio).all()
    with pytest.raises(ValueError, match="no notes"):
        perform(notes[:0], 120.0, 0, synthesis, alignment, cfg)
    assert spectrograms_png([("performance", mel)]).startswith(b"\x89PNG")


def test_a_performance_is_written_with_its_peak_at_minus_one_dbfs():
    rng = np.random.default_rng(0)
    for gain in (1e-3, 1.0, 40.0):  # faint, full scale, far past clipping
        assert np.abs(at_peak(gain * rng.standard_normal(1000))).max() == pytest.approx(10 ** (-1 / 20))
    assert not at_peak(np.zeros(100)).any()
    with pytest.raises(ValueError, match="1 of 3 samples are not finite"):
        at_peak(np.array([0.1, np.nan, 0.2]))
