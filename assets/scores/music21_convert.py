"""music21 streams -> muspy.Music.

muspy 0.5.0 ships a music21 bridge, but it calls APIs removed in music21 >= 9
(``Stream.flat``, positional ``getComposer``), so the conversion lives here.
Repeats are expanded, as muspy's MusicXML reader does and as a MIDI file plays,
so one piece gives the same notes whichever format it came in.
"""

from __future__ import annotations

from fractions import Fraction

import muspy
from music21 import (
    bar,
    chord,
    exceptions21,
    instrument,
    key,
    meter,
    note,
    repeat,
    stream,
    tempo,
)

DEFAULT_QPM = 120.0
DEFAULT_VELOCITY = 64


def from_music21(score: stream.Score | stream.Part | stream.Opus, resolution: int = 24) -> muspy.Music:
    """Convert a music21 score, part or single-score opus to muspy at `resolution` ticks per quarter."""
    if isinstance(score, stream.Opus):
        scores = list(score.scores)
        if len(scores) != 1:
            raise ValueError(f"an opus must hold exactly one score to convert, not {len(scores)}")
        score = scores[0]
    played = _expand_repeats(score)
    parts = list(played.parts) if isinstance(played, stream.Score) else []
    if not parts:
        parts = [played]
    flat = played.flatten()
    return muspy.Music(
        metadata=_metadata(score),
        resolution=resolution,
        tempos=_tempos(flat, resolution),
        key_signatures=_key_signatures(flat, resolution),
        time_signatures=_time_signatures(flat, resolution),
        tracks=[_track(part, resolution) for part in parts],
    )


def _expand_repeats(score: stream.Stream) -> stream.Stream:
    """Play repeats out; a score whose repeat marks do not nest properly converts as written.

    Expansion deep-copies the score, so scores without repeat marks skip it.
    """
    if not score.recurse().getElementsByClass((bar.Repeat, repeat.RepeatExpression)).first():
        return score
    try:
        return score.expandRepeats()
    except exceptions21.Music21Exception:
        return score


def _ticks(quarter_length, resolution: int) -> int:
    """Quarter lengths (float or Fraction) -> integer ticks, rounded exactly."""
    return round(Fraction(quarter_length) * resolution)


def _metadata(score: stream.Stream) -> muspy.Metadata:
    md = score.metadata
    if md is None:
        return muspy.Metadata(source_format="music21")
    creators = [md.composer] if md.composer else []
    return muspy.Metadata(title=md.title, creators=creators, source_format="music21")


def _track(part: stream.Stream, resolution: int) -> muspy.Track:
    inst = part.getInstrument(returnDefault=False)
    name = getattr(part, "partName", None) or ((inst.partName or inst.instrumentName) if inst else None)
    program = inst.midiProgram if inst is not None and inst.midiProgram is not None else 0
    is_drum = isinstance(inst, instrument.UnpitchedPercussion) or getattr(inst, "midiChannel", None) == 9
    notes = sorted(_notes(part, resolution), key=lambda n: (n.time, n.pitch, n.duration))
    return muspy.Track(program=program, is_drum=is_drum, name=name, notes=notes)


def _notes(part: stream.Stream, resolution: int) -> list[muspy.Note]:
    """Sounding notes with ties merged and chords expanded; grace notes skipped.

    Ties are merged in one pass per pitch; music21's stripTies does the same but
    takes quadratic time, minutes on a long quartet movement.
    """
    notes: list[muspy.Note] = []
    open_ties: dict[int, muspy.Note] = {}
    for element in part.flatten().notes:
        if element.duration.isGrace:
            continue
        start = _ticks(element.offset, resolution)
        end = _ticks(element.offset + element.quarterLength, resolution)
        velocity = element.volume.velocity
        velocity = DEFAULT_VELOCITY if velocity is None else min(127, max(0, round(velocity)))
        for pitch, tie in _pitches(element):
            held = open_ties.pop(pitch, None)
            tie_type = tie.type if tie is not None else None
            if held is not None and tie_type in ("stop", "continue"):
                held.duration = max(1, end - held.time)
            else:
                held = muspy.Note(time=start, pitch=pitch, duration=max(1, end - start), velocity=velocity)
                notes.append(held)
            if tie_type in ("start", "continue"):
                open_ties[pitch] = held
    return notes


def _pitches(element: note.NotRest) -> list[tuple[int, object]]:
    """(MIDI pitch, tie) of each sounding pitch; unpitched percussion has none."""
    if isinstance(element, note.Note):
        sounding = [(element.pitch, element.tie)]
    elif isinstance(element, chord.Chord):
        sounding = [(n.pitch, n.tie or element.tie) for n in element.notes]
    else:
        return []
    return [(p.midi, tie) for p, tie in sounding if 0 <= p.midi <= 127]


def _tempos(flat: stream.Stream, resolution: int) -> list[muspy.Tempo]:
    found: dict[int, float] = {}
    for mark in flat.getElementsByClass(tempo.MetronomeMark):
        qpm = mark.getQuarterBPM()
        if qpm:
            found.setdefault(_ticks(mark.offset, resolution), float(qpm))
    if 0 not in found:
        found[0] = DEFAULT_QPM
    return [muspy.Tempo(time=t, qpm=q) for t, q in sorted(found.items())]


def _key_signatures(flat: stream.Stream, resolution: int) -> list[muspy.KeySignature]:
    found: dict[int, muspy.KeySignature] = {}
    for sig in flat.getElementsByClass(key.KeySignature):
        time = _ticks(sig.offset, resolution)
        if isinstance(sig, key.Key):
            ks = muspy.KeySignature(
                time=time, root=sig.tonic.pitchClass, mode=sig.mode, fifths=sig.sharps, root_str=sig.tonic.name
            )
        else:
            ks = muspy.KeySignature(time=time, fifths=sig.sharps)
        found.setdefault(time, ks)
    return [found[t] for t in sorted(found)]


def _time_signatures(flat: stream.Stream, resolution: int) -> list[muspy.TimeSignature]:
    found: dict[int, muspy.TimeSignature] = {}
    for sig in flat.getElementsByClass(meter.TimeSignature):
        time = _ticks(sig.offset, resolution)
        found.setdefault(time, muspy.TimeSignature(time=time, numerator=sig.numerator, denominator=sig.denominator))
    return [found[t] for t in sorted(found)]
