"""Arrow schemas of the symbolic lineage: one place that says what each shard set holds."""

import pyarrow as pa

SONGS = pa.schema(
    [
        ("dataset", pa.string()),
        ("song", pa.string()),
        ("source_path", pa.string()),
        ("sha256", pa.string()),
        ("reader", pa.string()),  # "symusic" (MIDI, fast path) or "muspy" (muspy.Music, from muspy or music21)
        ("title", pa.string()),
        ("resolution", pa.int32()),
        ("initial_tempo", pa.float64()),
        ("tempos", pa.list_(pa.struct([("time", pa.int64()), ("qpm", pa.float64())]))),
        (
            "key_signatures",
            pa.list_(
                pa.struct(
                    [("time", pa.int64()), ("root", pa.int8()), ("mode", pa.string()), ("fifths", pa.int8())]
                )
            ),
        ),
        (
            "time_signatures",
            pa.list_(pa.struct([("time", pa.int64()), ("numerator", pa.int16()), ("denominator", pa.int16())])),
        ),
        ("n_tracks", pa.int32()),
        ("n_notes", pa.int64()),
        ("length_beats", pa.float64()),
        ("length_seconds", pa.float64()),
    ]
)

NOTES = pa.schema(
    [
        ("song", pa.string()),
        ("dataset", pa.string()),
        ("track", pa.int16()),
        ("part_name", pa.string()),
        ("program", pa.int8()),
        ("is_drum", pa.bool_()),
        ("resolution", pa.int32()),
        ("onset", pa.int64()),
        ("duration", pa.int64()),
        ("onset_seconds", pa.float64()),
        ("duration_seconds", pa.float64()),
        ("pitch", pa.int8()),
        ("velocity", pa.int8()),
        ("beat", pa.int64()),
        ("position", pa.int32()),
    ]
)

EVENTS = pa.schema(
    [
        ("dataset", pa.string()),
        ("song", pa.string()),
        ("split", pa.string()),
        ("n_events", pa.int32()),
        ("events", pa.list_(pa.int16())),
    ]
)
