import muspy
import numpy as np
import pytest

from assets.scores import tables
from assets.scores.datasets import ScoreItem
from assets.scores.datasets.music21_corpus import CORPUS_DIR
from assets.scores.ingest import music_to_rows
from assets.scores.readers import read_item
from models.mmt.encoding import (
    FIELD_SIZES,
    INSTRUMENT_PROGRAMS,
    INSTRUMENTS,
    KNOWN_DURATIONS,
    MAX_BEAT,
    PROGRAM_INSTRUMENTS,
    RESOLUTION,
    TYPE_END,
    TYPE_INSTRUMENT,
    TYPE_NOTE,
    EncodingError,
    decode,
    describe,
    encode,
    encode_music,
    snap_durations,
    validate,
    write_midi,
)

PIANO, VIOLIN = INSTRUMENTS.index("piano") + 1, INSTRUMENTS.index("violin") + 1


def make_music(tracks, resolution=RESOLUTION) -> muspy.Music:
    """tracks: (program, is_drum, [(time, pitch, duration), ...]) per track."""
    return muspy.Music(
        resolution=resolution,
        tempos=[muspy.Tempo(time=0, qpm=120.0)],
        tracks=[
            muspy.Track(program=p, is_drum=d, notes=[muspy.Note(t, n, u, 80) for t, n, u in notes])
            for p, d, notes in tracks
        ],
    )


def note_set(music: muspy.Music) -> set[tuple[int, int, int, int]]:
    """(program, onset, pitch, duration) of every non-drum note, at the music's resolution."""
    return {(t.program, n.time, n.pitch, n.duration) for t in music.tracks if not t.is_drum for n in t.notes}


def random_song(seed=0, n=300) -> muspy.Music:
    """In-vocabulary content: representative programs, grid onsets, known durations, beats < 256."""
    rng = np.random.default_rng(seed)
    programs = [INSTRUMENT_PROGRAMS[name] for name in ("piano", "violin", "electric-bass", "flute", "church-organ")]
    per_track = n // len(programs)
    tracks = []
    for program in programs:
        times = rng.integers(0, MAX_BEAT * RESOLUTION, per_track)
        # distinct pitches per track where possible, so MIDI note-offs pair up unambiguously
        pitches = rng.choice(np.arange(21, 109), per_track, replace=per_track > 88)
        durations = rng.choice(KNOWN_DURATIONS, per_track)
        tracks.append((program, False, [(int(t), int(p), int(d)) for t, p, d in zip(times, pitches, durations)]))
    tracks[0][2][0] = (0, 60, 12)  # the song starts at beat 0, so no leading beats are shifted away
    return make_music(tracks)


def test_program_map_published_shape():
    assert len(PROGRAM_INSTRUMENTS) == 128 and len(INSTRUMENTS) == 64 == len(set(INSTRUMENTS))
    assert {name for name in PROGRAM_INSTRUMENTS if name is not None} == set(INSTRUMENTS)
    # every instrument decodes to a program that encodes back to it
    assert all(PROGRAM_INSTRUMENTS[program] == name for name, program in INSTRUMENT_PROGRAMS.items())
    unmapped = [p for p, name in enumerate(PROGRAM_INSTRUMENTS) if name is None]
    assert unmapped == [76, 77, 78, *range(96, 104), *range(112, 117), *range(120, 128)]
    assert PROGRAM_INSTRUMENTS[110] == "violin" and PROGRAM_INSTRUMENTS[48] == "strings"
    assert INSTRUMENT_PROGRAMS["strings"] == 49
    assert FIELD_SIZES[5] == len(INSTRUMENTS) + 1 and FIELD_SIZES[4] == len(KNOWN_DURATIONS) + 1


def test_round_trip_in_memory_is_lossless():
    music = random_song()
    codes = encode_music(music)
    assert validate(codes) == []
    assert note_set(decode(codes)) == note_set(music)


def test_round_trip_through_midi_files(tmp_path):
    source = random_song(seed=1, n=200)
    source.adjust_resolution(24)  # files at another resolution exercise the rescaling
    path = tmp_path / "in.mid"
    source.write_midi(str(path))
    item = ScoreItem("toy", "in.mid", str(path), "midi")
    notes = music_to_rows(read_item(item), item, "sha").notes
    codes = encode(notes)
    out = write_midi(codes, tmp_path / "out" / "song.mid")
    back = muspy.read_midi(str(out))
    back.adjust_resolution(RESOLUTION)
    source.adjust_resolution(RESOLUTION)
    assert note_set(back) == note_set(source)
    assert {t.program for t in back.tracks} == {0, 40, 33, 73, 19}


def test_table_and_music_encode_alike_and_rescale_like_muspy():
    rng = np.random.default_rng(3)
    onsets = rng.integers(0, 480 * 40, 150)
    music = make_music(
        [(0, False, [(int(t), int(rng.integers(30, 90)), int(rng.integers(1, 2000))) for t in onsets])],
        resolution=480,
    )
    codes = encode_music(music)
    rescaled = make_music([(0, False, [(n.time, n.pitch, n.duration) for n in music.tracks[0].notes])], 480)
    rescaled.adjust_resolution(RESOLUTION)
    np.testing.assert_array_equal(codes, encode_music(rescaled))
    item = ScoreItem("toy", "x", "x", "midi")
    np.testing.assert_array_equal(codes, encode(music_to_rows(music, item, "sha").notes))


@pytest.mark.parametrize(
    "ticks, snapped",
    [(0, 1), (1, 1), (12, 12), (13, 12), (14, 15), (17, 16), (19, 18), (27, 24), (33, 30), (38, 36), (45, 42),
     (54, 48), (288, 192), (383, 384), (1000, 384)],
)
def test_snap_durations_nearest_with_ties_to_shorter(ticks, snapped):
    assert snap_durations(np.array([ticks]))[0] == snapped


def test_encode_snaps_durations_and_rounds_onsets():
    # at 24 ticks per quarter: onset 3 -> 1.5 -> 2 (half to even), duration 34 -> offset 18.5 -> 18, 16 ticks
    codes = encode_music(make_music([(0, False, [(0, 60, 24), (3, 62, 34)])], resolution=24))
    notes = codes[codes[:, 0] == TYPE_NOTE]
    assert notes[:, 2].tolist() == [1, 3]  # positions 0 and 2
    assert [KNOWN_DURATIONS[c - 1] for c in notes[:, 4]] == [12, 16]


def test_notes_sorted_on_raw_rows_and_deduplicated_before_mapping():
    # programs 0 and 1 are both "piano": their unison notes stay two rows, as the published code keeps
    # them; the same note twice in one track (program 0) is one
    music = make_music(
        [
            (40, False, [(13, 60, 12), (0, 64, 6)]),
            (0, False, [(0, 64, 12), (13, 55, 3), (0, 64, 6), (0, 64, 12)]),
            (1, False, [(0, 64, 12)]),
        ]
    )
    codes = encode_music(music)
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0],
            [1, 0, 0, 0, 0, PIANO],
            [1, 0, 0, 0, 0, VIOLIN],
            [2, 0, 0, 0, 0, 0],
            [3, 1, 1, 65, 6, PIANO],  # duration 6, program 0
            [3, 1, 1, 65, 6, VIOLIN],  # duration 6, program 40
            [3, 1, 1, 65, 12, PIANO],  # duration 12, program 0
            [3, 1, 1, 65, 12, PIANO],  # duration 12, program 1
            [3, 2, 2, 56, 3, PIANO],
            [3, 2, 2, 61, 12, VIOLIN],
            [4, 0, 0, 0, 0, 0],
        ]
    )
    np.testing.assert_array_equal(codes, expected)


def test_drums_and_unmapped_programs_dropped():
    music = make_music([(0, False, [(0, 60, 12)]), (0, True, [(0, 36, 12)]), (120, False, [(0, 70, 12)])])
    codes = encode_music(music)
    assert codes[codes[:, 0] == TYPE_INSTRUMENT, 5].tolist() == [PIANO]
    assert codes[codes[:, 0] == TYPE_NOTE, 3].tolist() == [61]


def test_leading_beats_shifted_and_whole_song_kept():
    start = 3 * RESOLUTION + 5
    last = start + 255 * RESOLUTION
    music = make_music([(0, False, [(start, 60, 12), (last, 62, 12), (last + RESOLUTION, 64, 12)])])
    notes = encode_music(music)
    notes = notes[notes[:, 0] == TYPE_NOTE]
    assert notes[:, 1].tolist() == [1, 256, 257]  # beats 0, 255 and 256: windows bring them into the vocabulary
    assert notes[:, 2].tolist() == [6, 6, 6]


def test_long_songs_are_not_cut():
    codes = encode_music(random_song(seed=2, n=1500))
    assert len(codes) == (codes[:, 0] == TYPE_NOTE).sum() + 5 + 3 > 1024
    assert codes[-1, 0] == TYPE_END and validate(codes) == []


def test_encoding_errors_name_the_cause():
    with pytest.raises(EncodingError, match="no notes"):
        encode(tables.NOTES.empty_table())
    with pytest.raises(EncodingError, match="no notes"):
        encode_music(make_music([(0, False, [])]))
    with pytest.raises(EncodingError, match="drums only"):
        encode_music(make_music([(0, True, [(0, 36, 12), (12, 38, 12)])]))
    with pytest.raises(EncodingError, match=r"no instrument the vocabulary knows.*\[97, 121\]"):
        encode_music(make_music([(121, False, [(0, 60, 12)]), (97, False, [(0, 60, 12)]), (0, True, [(0, 36, 1)])]))
    assert issubclass(EncodingError, ValueError)


def test_decode_tolerates_generated_sequences():
    good = encode_music(make_music([(0, False, [(0, 60, 12), (12, 62, 12)]), (40, False, [(24, 67, 24)])]))
    junk = np.array(
        [
            [3, 300, 1, 61, 1, 1],  # beat out of range
            [3, 2, 0, 61, 1, 1],  # no position
            [3, 2, 1, 61, 1, 99],  # instrument out of range
            [7, 2, 1, 61, 1, 1],  # unknown type
            [1, 0, 0, 0, 0, 5],  # instrument after notes
        ]
    )
    after_end = np.array([[3, 10, 1, 70, 1, 1]])
    codes = np.concatenate([good[:-1], junk, good[-1:], after_end])
    assert note_set(decode(codes)) == note_set(decode(good)) == {(0, 0, 60, 12), (0, 12, 62, 12), (40, 24, 67, 24)}
    assert decode(codes[:-2]).tracks  # no end-of-song: reads to the end
    rng = np.random.default_rng(0)
    random_codes = rng.integers(0, np.array(FIELD_SIZES) + 3, (200, 6))  # some fields out of range
    random_codes[:, 0] = rng.choice([1, 3, 3, 3, 7], 200)
    random_codes[150, 0] = TYPE_END
    before_end = random_codes[: np.flatnonzero(random_codes[:, 0] == TYPE_END)[0]]
    valid = (before_end[:, 0] == TYPE_NOTE) & ((before_end[:, 1:] > 0) & (before_end < np.array(FIELD_SIZES))[:, 1:]).all(axis=1)
    decoded = decode(random_codes)
    assert sum(len(t.notes) for t in decoded.tracks) == valid.sum() > 0


def test_validate_reports_each_problem():
    good = encode_music(make_music([(0, False, [(0, 60, 12), (12, 62, 12)])]))
    assert validate(good) == []

    def problems(edit):
        codes = good.copy()
        edit(codes)
        return " | ".join(validate(codes))

    assert "shape" in " ".join(validate(good[:, :5]))
    assert "shape" in " ".join(validate(good.astype(float)))
    assert "pitch out of range" in problems(lambda c: c.__setitem__((3, 3), 129))
    assert "not end-of-song" in " ".join(validate(good[:-1]))
    assert "not start-of-song" in " ".join(validate(good[1:]))
    assert "out of order" in problems(lambda c: c.__setitem__((1, 0), TYPE_NOTE))
    assert "fields set or missing" in problems(lambda c: c.__setitem__((3, 2), 0))
    assert "fields set or missing" in problems(lambda c: c.__setitem__((0, 1), 4))
    assert "beats decrease" in problems(lambda c: c.__setitem__((3, 1), 5))
    assert "2 end-of-song rows" in " ".join(validate(np.concatenate([good, good[-1:]])))


def test_describe_one_line_per_row():
    codes = encode_music(make_music([(40, False, [(13, 60, 18)])]))
    lines = describe(codes).splitlines()
    assert lines == [
        "start-of-song",
        "instrument violin",
        "start-of-notes",
        "note beat=0 position=1 pitch=60 duration=18 violin",  # shifted to the first beat
        "end-of-song",
    ]


def test_bach_chorale_encodes_valid_codes():
    item = ScoreItem("bach_chorales", "bach/bwv66.6.mxl", str(CORPUS_DIR / "bach" / "bwv66.6.mxl"), "musicxml")
    music = read_item(item)
    notes = music_to_rows(music, item, "sha").notes
    codes = encode(notes)
    assert validate(codes) == []
    assert codes.dtype == np.int64 and codes.shape[1] == 6
    # eighth notes and longer at 24 ticks per quarter: every note survives, voices in unison merge
    rows = notes.select(["onset", "pitch", "duration"]).to_pylist()
    expected = {(0, r["onset"] // 2, r["pitch"], r["duration"] // 2) for r in rows}
    assert note_set(decode(codes)) == expected
