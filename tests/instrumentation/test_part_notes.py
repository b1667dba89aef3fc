import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.instrumentation import part_notes as pn
from assets.scores import tables
from assets.scores.datasets import list_items
from assets.scores.ingest import music_to_rows
from assets.scores.readers import read_item
from assets.scores.songs import assign_splits

SATB, QUARTET, LMD = pn.SCHEMES["satb"], pn.SCHEMES["string_quartet"], pn.SCHEMES["lmd"]


def note_table(song, tracks, resolution=24, dataset="toy"):
    """tracks: [(part_name, program, is_drum, [(onset, duration, pitch), ...]), ...] in score order."""
    rows = [(i, name, prog, drum, *note) for i, (name, prog, drum, notes) in enumerate(tracks) for note in notes]
    n = len(rows)
    col = list(zip(*rows)) if rows else [[]] * 7
    return pa.table(
        {
            "song": [song] * n,
            "dataset": [dataset] * n,
            "track": list(col[0]),
            "part_name": list(col[1]),
            "program": list(col[2]),
            "is_drum": list(col[3]),
            "resolution": [resolution] * n,
            "onset": list(col[4]),
            "duration": list(col[5]),
            "onset_seconds": [0.0] * n,
            "duration_seconds": [0.0] * n,
            "pitch": list(col[6]),
            "velocity": [64] * n,
            "beat": [0] * n,
            "position": [0] * n,
        },
        schema=tables.NOTES,
    )


def scale(n, start, step=24, pitch=60):
    return [(start + i * step, step, pitch + i % 5) for i in range(n)]


@pytest.mark.parametrize(
    "name, label",
    [
        ("Soprano", 0), ("soprano", 0), ("S.", 0), ("Sop.", 0), ("Soprano 2", 0), ("Sopran", 0),
        ("Soprano\rOboe 1,2\rViolin1", 0), ("Alto", 1), ("A.", 1), ("Alt", 1), ("TENOR", 2), ("T", 2),
        ("Bass", 3), ("B.", 3), ("Bass Continuo", 3),
        ("Bassoon", None), ("Instrument 1", None), ("Continuo", None), ("", None),
    ],
)  # fmt: skip
def test_satb_names(name, label):
    assert SATB.label_of(name, 0, 0) == label


@pytest.mark.parametrize(
    "name, order, label",
    [
        ("Violin 1", 1, 0), ("Violin I", 3, 0), ("1st Violin", 1, 0), ("Violin1", 1, 0), ("Violino primo", 2, 0),
        ("Violin 2", 0, 1), ("Violin II", 0, 1), ("2nd Violin", 0, 1),
        ("Violin", 0, 0), ("Violin", 1, 1), ("Viola", 0, 2), ("Vla.", 1, 2), ("Cello", 0, 3), ("Violoncello", 1, 3),
        ("String Ensemble 1", 0, 0), ("String Ensemble 1", 2, 2), ("Acoustic Grand Piano", 3, 3),
        ("String Ensemble 1", 4, None),
    ],
)  # fmt: skip
def test_quartet_names_then_score_order(name, order, label):
    assert QUARTET.label_of(name, 49, order) == label


@pytest.mark.parametrize(
    "program, label",
    [(0, 0), (7, 0), (8, None), (24, 1), (31, 1), (33, 2), (40, 3), (45, 3), (46, None), (48, 3), (51, 3),
     (52, None), (56, 4), (63, 4), (64, None), (80, None)],
)  # fmt: skip
def test_lmd_program_families(program, label):
    assert LMD.label_of("whatever", program, 0) == label


def test_default_schemes():
    assert pn.default_scheme("bach_chorales") is SATB
    assert pn.default_scheme("beethoven_quartets") is QUARTET
    assert pn.default_scheme("lakh") is LMD


def test_lmd_drops_drums_and_other_programs():
    table = note_table(
        "s",
        [
            ("Drums", 0, True, scale(20, 0, pitch=36)),  # program 0 would be piano if it were not a drum track
            ("Piano", 0, False, scale(12, 0, pitch=60)),
            ("Synth", 80, False, scale(12, 0, pitch=72)),
            ("Bass", 33, False, scale(12, 0, pitch=40)),
        ],
    )
    song = pn.extract(table, LMD, "train")
    assert isinstance(song, pn.PartSong)
    assert song.part_names == ("Piano", "Guitar", "Bass", "Strings", "Brass")
    assert np.bincount(song.label, minlength=5).tolist() == [12, 0, 12, 0, 0]
    assert song.pitch.min() >= 40 and song.pitch.max() < 72


def test_quartet_fallback_and_unnumbered_violins():
    parts = [scale(12, 0, pitch=p) for p in (76, 69, 62, 48)]
    generic = pn.extract(note_table("g", [("String Ensemble 1", 49, False, n) for n in parts]), QUARTET, "test")
    named = pn.extract(
        note_table("n", [(name, 41, False, n) for name, n in zip(["Violin", "Violin", "Viola", "Cello"], parts)]),
        QUARTET, "test",
    )  # fmt: skip
    for song in (generic, named):
        means = [song.pitch[song.label == k].mean() for k in range(4)]
        assert means == sorted(means, reverse=True) and means[0] >= 76


def test_resampled_to_24_steps_and_zero_length_dropped():
    # Resolution 480: 240 ticks = an eighth (12 steps); 10 ticks = 0.5 step rounds to 0 and 30 to 2 (half to even).
    notes = [(0, 240, 60), (480, 480, 62), (960, 10, 64), (990, 30, 65)]
    notes += [(1920 + 480 * i, 480, 67) for i in range(10)]
    table = note_table("s", [("Soprano", 0, False, notes), ("Bass", 0, False, scale(11, 0, pitch=40))], resolution=480)
    song = pn.extract(table, SATB, "train")
    soprano = song.label == 0
    assert song.onset[soprano][:4].tolist() == [0, 24, 50, 96]
    assert song.duration[soprano][:4].tolist() == [12, 24, 2, 24]
    assert 64 not in song.pitch[soprano].tolist()  # 10 ticks became zero steps
    assert song.onset.dtype == song.label.dtype == np.int64


def test_sorted_by_onset_then_pitch_whatever_the_row_order():
    tracks = [("Soprano", 0, False, scale(11, 0, pitch=70)[::-1]), ("Alto", 0, False, scale(11, 0, pitch=62))]
    table = note_table("s", tracks)
    song = pn.extract(table, SATB, "valid")
    keys = song.onset * 128 + song.pitch
    assert np.all(np.diff(keys) > 0)
    assert song.split == "valid" and song.scheme == "satb" and song.dataset == "toy"


def test_unison_keeps_shortest_then_lower_label_and_exact_repeats_collapse():
    soprano = scale(11, 0, pitch=72) + [(480, 48, 67), (600, 24, 65), (600, 24, 65)]  # the last two: an exact repeat
    alto = scale(11, 0, pitch=60) + [(480, 24, 67), (600, 24, 65)]  # unisons: shorter alto note, then same length
    table = note_table("s", [("Soprano", 0, False, soprano), ("Alto", 0, False, alto)])
    song = pn.extract(table, SATB, "train")
    at = {(o, p): (d, lab) for o, p, d, lab in zip(song.onset, song.pitch, song.duration, song.label)}
    assert at[(480, 67)] == (24, 1)  # the shorter (alto) note
    assert at[(600, 65)] == (24, 0)  # equal lengths: the lower label
    assert len(song.onset) == 22 + 2
    kept = pn.extract(table, SATB, "train", keep_unisons=True)
    assert len(kept.onset) == 22 + 4  # both unisons kept, the soprano's exact repeat collapsed
    assert np.all(np.diff(kept.onset * 128 + kept.pitch) >= 0)


def test_skip_rule():
    ok = note_table("a", [("Soprano", 0, False, scale(11, 0)), ("Bass", 0, False, scale(11, 0, pitch=40))])
    assert isinstance(pn.extract(ok, SATB, "train"), pn.PartSong)
    thin = note_table("b", [("Soprano", 0, False, scale(11, 0)), ("Bass", 0, False, scale(10, 0, pitch=40))])
    skip = pn.extract(thin, SATB, "train")
    assert isinstance(skip, pn.Skip) and skip.song == "b" and "more than 10 notes" in skip.reason
    # Unmapped tracks are dropped; they make the song unusable only through the rule above.
    piano = note_table("c", [("Piano", 0, False, scale(30, 0)), ("Soprano", 0, False, scale(30, 0, pitch=72))])
    skip = pn.extract(piano, SATB, "train")
    assert isinstance(skip, pn.Skip) and "Piano" in skip.reason
    voices = [(v, 0, False, scale(11, 0, pitch=p)) for v, p in (("Alto", 64), ("Tenor", 55))]
    extra = note_table("d", [("Piano", 0, False, scale(30, 0)), *voices])
    song = pn.extract(extra, SATB, "train")
    assert isinstance(song, pn.PartSong) and set(song.label.tolist()) == {1, 2}


def toy_corpus(n_songs=30):
    tables_ = []
    for i in range(n_songs):
        notes = 5 if i % 7 == 0 else 12  # every 7th song is too thin to keep
        tracks = [("Soprano", 0, False, scale(notes, 0, pitch=70)), ("Bass", 0, False, scale(12, 0, pitch=45))]
        tables_.append(note_table(f"song{i:02d}", tracks, dataset="bach_chorales"))
    return pa.concat_tables(tables_)


def test_build_splits_are_deterministic_and_cover_skipped_songs():
    table = toy_corpus()
    songs, skips = pn.build(table.to_batches(max_chunksize=50))
    again, _ = pn.build(table.to_batches(max_chunksize=7))
    assert len(songs) == 25 and len(skips) == 5
    assert all(s.scheme == "satb" for s in songs)  # chosen by dataset
    expected = assign_splits([f"song{i:02d}" for i in range(30)], seed=0)
    assert {s.song: s.split for s in songs} == {s.song: expected[s.song] for s in songs}
    assert [(s.song, s.split) for s in again] == [(s.song, s.split) for s in songs]
    other, _ = pn.build(table.to_batches(), seed=1)
    assert [s.split for s in other] != [s.split for s in songs]


def assert_same_songs(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for field in ("dataset", "song", "split", "scheme", "part_names"):
            assert getattr(x, field) == getattr(y, field)
        for name in ("onset", "duration", "pitch", "label"):
            assert getattr(y, name).dtype == np.int64
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))


def test_table_round_trip_through_parquet(tmp_path):
    songs, _ = pn.build(toy_corpus().to_batches())
    table = pn.to_table(songs)
    assert table.schema == pn.PART_NOTES
    assert table.column("n_notes").to_pylist() == [len(s.onset) for s in songs]
    pq.write_table(table, tmp_path / "part_notes.parquet", row_group_size=4)
    back = pq.read_table(tmp_path / "part_notes.parquet")
    assert_same_songs(songs, pn.from_table(back))
    assert_same_songs(songs[3:9], pn.from_table(back.slice(3, 6)))
    assert pn.from_table(pn.to_table([])) == []


@pytest.fixture(scope="module")
def chorales():
    """Every music21 Bach chorale through the lineage's reader and note rows."""
    items = list_items("bach_chorales", "unused")
    notes = [music_to_rows(read_item(item), item, "").notes for item in items]
    songs, skips = pn.build(b for t in notes for b in t.to_batches())
    return items, songs, skips


def test_bach_chorales(chorales):
    items, songs, skips = chorales
    assert len(songs) + len(skips) == len(items) == 409
    assert len(songs) >= 0.75 * len(items)
    assert all(s.part_names == SATB.labels and s.scheme == "satb" for s in songs)
    counts = np.array([np.bincount(s.label, minlength=4) for s in songs])
    assert np.all((counts > pn.MIN_PART_NOTES).sum(axis=1) >= 2)
    assert np.all(counts.sum(axis=0) > 10_000)  # all four voices, plenty of notes each
    means = [np.concatenate([s.pitch[s.label == k] for s in songs]).mean() for k in range(4)]
    assert means == sorted(means, reverse=True)  # soprano above alto above tenor above bass
    for s in songs:
        assert np.all(np.diff(s.onset * 128 + s.pitch) > 0) and np.all(s.duration > 0)
    splits = np.array([s.split for s in songs])
    assert 0.7 < np.mean(splits == "train") < 0.9 and np.sum(splits == "test") >= 25


def test_scheme_for_a_name_or_the_datasets_default():
    assert pn.scheme_for("", "haydn_quartets") is QUARTET and pn.scheme_for("lmd", "bach_chorales") is LMD
    with pytest.raises(ValueError, match="unknown part scheme 'ssaattbb'"):
        pn.scheme_for("ssaattbb", "bach_chorales")


def test_extract_rejecting_keeps_songs_and_turns_skips_into_rejects():
    table = toy_corpus(8)
    splits = {f"song{i:02d}": "train" if i % 2 else "test" for i in range(8)}
    songs, rejects = pn.extract_rejecting("bach_chorales", table.to_batches(max_chunksize=20), SATB, splits)
    assert [s.song for s in songs] == [f"song{i:02d}" for i in range(1, 7)]  # songs 0 and 7 are too thin
    assert [(r.dataset, r.item, r.stage, r.error_type) for r in rejects] == [
        ("bach_chorales", "song00", "part_extract", "Skipped"), ("bach_chorales", "song07", "part_extract", "Skipped")
    ]
    assert pn.songs_per_split(songs) == {"train": 3, "test": 3}
    assert pn.notes_per_part(songs, SATB) == {"Soprano": 6 * 12, "Alto": 0, "Tenor": 0, "Bass": 6 * 12}
    assert pn.notes_per_part([], SATB) == {"Soprano": 0, "Alto": 0, "Tenor": 0, "Bass": 0}
