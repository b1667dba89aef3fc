"""Deep Performer training clips: 5-second excerpts of a recording with the score notes sounding in them.

A row holds everything the synthesis model, the vocoder and the evaluation read, so no training step
goes back to the recordings: the clip's int16 audio, its log-mel (``models.mel.log_mel`` of exactly
that audio, so the vocoder's audio/mel pairs are the mels the synthesis model learns to predict), the
notes with their score beats and aligned frames, the performer and the tempo.

Clips are cut back to back from the start of the recording slice. A tail of at least half a clip is
zero-padded to a whole one, so every clip has ``CLIP_FRAMES`` frames and batches stack without masks
(the slice ends after the last note, so the padding extends the silence already there); a shorter
tail is dropped, since a mostly padded clip teaches silence. Clips without notes are skipped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import librosa
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.core.plots import plt, to_png
from assets.violin.scores import RESOLUTION
from models.deep_performer import Clip
from models.mel import HOP, N_MELS, SAMPLE_RATE, log_mel

CLIP_SECONDS = 5.0
CLIP_SAMPLES = round(CLIP_SECONDS * SAMPLE_RATE)
CLIP_FRAMES = 1 + CLIP_SAMPLES // HOP  # 313: log_mel's centred frames of one clip
MIN_TAIL_SAMPLES = CLIP_SAMPLES // 2
PCM_SCALE = 32767

CLIPS = pa.schema(
    [
        ("recording", pa.string()),
        ("clip", pa.int32()),  # position in the recording: the clip starts at clip * CLIP_SECONDS
        ("start_s", pa.float64()),
        ("performer", pa.string()),
        ("qpm", pa.float32()),
        ("split", pa.string()),  # "train" or "valid"
        ("n_frames", pa.int32()),
        ("mel", pa.binary()),  # (n_frames, N_MELS) little-endian float32
        ("audio", pa.binary()),  # CLIP_SAMPLES little-endian int16 at SAMPLE_RATE, full scale PCM_SCALE
        ("pitch", pa.list_(pa.int16())),
        ("velocity", pa.list_(pa.int16())),
        ("onset_beat", pa.list_(pa.float32())),  # quarter notes after the clip's first note onset
        ("duration_beat", pa.list_(pa.float32())),
        ("onset_frame", pa.list_(pa.int32())),  # aligned start, in mel frames from the clip start
        ("offset_frame", pa.list_(pa.int32())),  # aligned end (exclusive)
    ]
)


def decode_audio(data: bytes) -> np.ndarray:
    """A row's ``audio`` as float32 samples in [-1, 1]."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / PCM_SCALE


def decode_mel(data: bytes, n_frames: int) -> np.ndarray:
    """A row's ``mel`` as a writable (n_frames, N_MELS) float32 array."""
    return np.frombuffer(data, dtype="<f4").reshape(n_frames, N_MELS).astype(np.float32)


def _clip_pcm(audio: np.ndarray) -> np.ndarray:
    """(clips, CLIP_SAMPLES) int16 of the recording cut into clips, the tail padded or dropped."""
    whole, tail = divmod(len(audio), CLIP_SAMPLES)
    n = whole + (tail >= MIN_TAIL_SAMPLES)
    padded = np.zeros(n * CLIP_SAMPLES, dtype=np.float32)
    kept = min(len(audio), len(padded))
    padded[:kept] = audio[:kept]
    return np.rint(np.clip(padded, -1.0, 1.0) * PCM_SCALE).astype("<i2").reshape(n, CLIP_SAMPLES)


def _unit_hash(seed: int, recording_id: str, clip: int) -> float:
    digest = hashlib.blake2b(f"{seed}\0{recording_id}\0{clip}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign_splits(recording_id: str, clips: Sequence[int], valid_share: float = 0.1, seed: int = 0) -> list[str]:
    """"valid" or "train" for each clip index of one recording.

    A clip is valid when a hash of (seed, recording, clip) falls below ``valid_share``: its split
    depends on nothing else, so it survives re-materialization and other recordings coming or going.
    Where chance leaves a recording with fewer than floor(len(clips) * valid_share) valid clips, the
    clips with the smallest hashes make up the number, so every recording of at least
    1 / valid_share clips (10 at 10 %) holds one out.
    """
    u = np.array([_unit_hash(seed, recording_id, int(c)) for c in clips])
    valid = u < valid_share
    valid[np.argsort(u, kind="stable")[: math.floor(len(u) * valid_share + 1e-9)]] = True
    return np.where(valid, "valid", "train").tolist()


def clip_rows(
    recording_id: str,
    audio: np.ndarray,
    notes: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    performer: str,
    qpm: float,
    valid_share: float = 0.1,
    seed: int = 0,
) -> list[dict]:
    """Rows of ``CLIPS`` for one recording slice (16 kHz mono) and its notes (n, 4: onset, offset,
    pitch, velocity in ticks at ``RESOLUTION``) aligned at ``starts``/``ends`` seconds in it.

    A clip holds every note whose aligned span overlaps it (a zero-length one when it starts inside),
    sorted by score onset. Frames are rounded to the nearest (frame t is centred on sample t * HOP)
    and clamped to [0, n_frames]: a note sounding across a clip boundary keeps only the frames it
    sounds in this clip, so durations in frames add up to the mel they condition, while its beats
    stay those of the score.
    """
    audio = np.asarray(audio, dtype=np.float32)
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 4)
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio, got shape {audio.shape}")
    if not len(notes) == len(starts) == len(ends):
        raise ValueError(f"{len(notes)} notes but {len(starts)} starts and {len(ends)} ends")
    order = np.argsort(notes[:, 0], kind="stable")
    notes, starts = notes[order], starts[order]
    ends = np.maximum(ends[order], starts)
    pcm = _clip_pcm(audio)
    clip_start = np.arange(len(pcm))[:, None] * CLIP_SECONDS
    inside = (starts < clip_start + CLIP_SECONDS) & ((ends > clip_start) | (starts >= clip_start))
    kept = np.flatnonzero(inside.any(axis=1))
    rows = []
    for k, split in zip(kept, assign_splits(recording_id, kept, valid_share, seed)):
        chosen = np.flatnonzero(inside[k])
        t0 = float(clip_start[k, 0])
        audio_bytes = pcm[k].tobytes()
        mel = log_mel(decode_audio(audio_bytes))
        frames = np.rint((np.stack([starts[chosen], ends[chosen]]) - t0) * SAMPLE_RATE / HOP)
        onset_frame, offset_frame = np.clip(frames, 0, len(mel)).astype(np.int64)
        ticks = notes[chosen]
        rows.append({
            "recording": recording_id,
            "clip": int(k),
            "start_s": t0,
            "performer": performer,
            "qpm": float(qpm),
            "split": split,
            "n_frames": len(mel),
            "mel": mel.astype("<f4").tobytes(),
            "audio": audio_bytes,
            "pitch": ticks[:, 2].tolist(),
            "velocity": ticks[:, 3].tolist(),
            "onset_beat": ((ticks[:, 0] - ticks[0, 0]) / RESOLUTION).tolist(),
            "duration_beat": ((ticks[:, 1] - ticks[:, 0]) / RESOLUTION).tolist(),
            "onset_frame": onset_frame.tolist(),
            "offset_frame": offset_frame.tolist(),
        })
    return rows


def _lists(column: pa.Array | pa.ChunkedArray) -> list[np.ndarray]:
    """A list column as one array per row, split by its offsets rather than converted row by row."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.values.to_numpy(zero_copy_only=False)
    offsets = column.offsets.to_numpy()
    return [values[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def performer_vocabulary(table: pa.Table | pa.RecordBatch) -> list[str]:
    """Sorted performer names: the index of a name is the performer id the models embed."""
    return sorted(pc.unique(table.column("performer")).to_pylist())


def to_clips(table: pa.Table | pa.RecordBatch, performers: Sequence[str]) -> list[Clip]:
    """Rows of ``CLIPS`` as ``Clip``s, performers numbered by their place in ``performers``."""
    index = {name: i for i, name in enumerate(performers)}
    missing = set(table.column("performer").to_pylist()) - index.keys()
    if missing:
        raise ValueError(f"performers {sorted(missing)} are not in the vocabulary {list(performers)}")
    pitch, onset_beat, duration_beat, onset_frame, offset_frame = (
        _lists(table.column(name)) for name in ("pitch", "onset_beat", "duration_beat", "onset_frame", "offset_frame")
    )
    columns = (table.column(name).to_pylist() for name in ("mel", "n_frames", "performer", "qpm"))
    return [
        Clip(
            mel=decode_mel(mel, n_frames),
            pitch=pitch[i].astype(np.int64),
            onset_beat=onset_beat[i].astype(np.float32),
            duration_beat=duration_beat[i].astype(np.float32),
            onset_frame=onset_frame[i].astype(np.int64),
            offset_frame=offset_frame[i].astype(np.int64),
            performer=index[performer],
            qpm=qpm,
        )
        for i, (mel, n_frames, performer, qpm) in enumerate(zip(*columns))
    ]


def clip_preview_png(clip: Clip, title: str = "") -> bytes:
    """PNG of a clip's log-mel with each note drawn at its fundamental's mel bin from its onset to its
    offset frame: where notes and energy disagree, the alignment or the frame arithmetic is off."""
    seconds_per_frame = HOP / SAMPLE_RATE
    centres = librosa.mel_frequencies(N_MELS + 2, fmax=SAMPLE_RATE / 2)[1:-1]
    rows = np.interp(librosa.midi_to_hz(clip.pitch), centres, np.arange(N_MELS))
    fig, ax = plt.subplots(figsize=(10, 3.2))
    extent = (-0.5 * seconds_per_frame, (len(clip.mel) - 0.5) * seconds_per_frame, -0.5, N_MELS - 0.5)
    ax.imshow(clip.mel.T, cmap="magma", aspect="auto", origin="lower", extent=extent, interpolation="none")
    ax.hlines(rows, clip.onset_frame * seconds_per_frame, clip.offset_frame * seconds_per_frame, colors="lime",
              linewidth=1.5)
    ax.set(xlabel="time (s)", ylabel="mel bin", title=title)
    return to_png(fig)


def split_counts(table: pa.Table) -> dict[str, int]:
    """Clips per split, as the UI shows them."""
    return {s["values"]: s["counts"] for s in table.column("split").value_counts().to_pylist()}


def first_clip_png(table: pa.Table, title: str) -> bytes | None:
    """``clip_preview_png`` of a clip table's first clip; None for a recording without clips."""
    if not table.num_rows:
        return None
    return clip_preview_png(to_clips(table.slice(0, 1), performer_vocabulary(table))[0], title)
