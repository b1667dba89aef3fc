"""Training windows of whole songs: where they start, what they hold, how long they are."""

import numpy as np

from models.mmt import window
from models.mmt.encoding import BEAT, TYPE_END, TYPE_INSTRUMENT, TYPE_NOTE, encode_arrays, validate


def song(n_beats: int, per_beat: int = 2, programs=(0, 40)) -> np.ndarray:
    """Notes on every half beat for ``n_beats`` beats, alternating between ``programs``."""
    n = n_beats * per_beat
    onset = np.arange(n) * 12 // per_beat
    return encode_arrays(
        onset=onset, duration=np.full(n, 6), pitch=60 + np.arange(n) % 24,
        program=np.array(programs)[np.arange(n) % len(programs)], is_drum=np.zeros(n, bool), resolution=12,
    )


def test_whole_songs_are_stored_uncut():
    codes = song(853)
    assert codes[-2, BEAT] == 853 and (codes[:, 0] == TYPE_NOTE).sum() == 853 * 2


def test_windows_start_anywhere_the_published_loader_can_start_them():
    k = np.arange(853)  # one note per beat, each at its own (position, pitch), so a window's start is known
    codes = encode_arrays(k * 12 + k // 128, np.full(853, 1), k % 128, np.zeros(853, int), np.zeros(853, bool), 12)
    beat_of = {(int(r[2]), int(r[3])): int(r[BEAT]) - 1 for r in codes[codes[:, 0] == TYPE_NOTE]}
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(200):
        out = window(codes, max_beat=256, max_seq_len=1024, rng=rng)
        assert validate(out) == []
        first = out[out[:, 0] == TYPE_NOTE][0]
        starts.append(beat_of[int(first[2]), int(first[3])] - (int(first[BEAT]) - 1))
    assert min(starts) >= 0 and max(starts) < 853 - 256  # the published draw: [0, n_beats - max_beat)
    assert len(set(starts)) > 150 and max(starts) > 500


def test_first_window_without_rng_is_the_first_max_beat_beats():
    codes = song(600)
    out = window(codes, max_beat=256, max_seq_len=10_000)
    notes = out[out[:, 0] == TYPE_NOTE]
    assert notes[:, BEAT].max() == 256 and len(notes) == 512


def test_sparse_windows_are_drawn_again():
    dense = song(40)
    notes = dense[dense[:, 0] == TYPE_NOTE].copy()
    tail = notes[:1].copy()
    tail[:, BEAT] = 900  # one lone note far away: most windows would hold nothing
    codes = np.concatenate([dense[:-1], tail, dense[-1:]])
    rng = np.random.default_rng(1)
    held = [(window(codes, 32, 4096, rng)[:, 0] == TYPE_NOTE).sum() for _ in range(400)]
    # one draw holds more than ten notes 4 % of the time (a start in the first 35 of 868 beats);
    # ten draws, one of them does 34 % of the time
    assert np.mean([h > 10 for h in held]) > 0.2


def test_instrument_events_come_from_the_window():
    n = 100
    onset = np.arange(n) * 12
    program = np.where(np.arange(n) < 50, 0, 40)  # piano for 50 beats, then violin
    codes = encode_arrays(onset, np.full(n, 12), np.full(n, 60), program, np.zeros(n, bool), 12)
    assert (codes[:, 0] == TYPE_INSTRUMENT).sum() == 2
    out = window(codes, max_beat=32, max_seq_len=1024)
    assert out[out[:, 0] == TYPE_INSTRUMENT, 5].tolist() == [1]  # only piano plays in beats 0..31
    assert validate(out) == []


def test_window_is_cut_to_max_seq_len_keeping_end_of_song():
    codes = song(100)
    out = window(codes, max_beat=256, max_seq_len=30)
    assert len(out) == 30 and out[-1, 0] == TYPE_END and validate(out) == []
    np.testing.assert_array_equal(out[:-1], codes[:29])
