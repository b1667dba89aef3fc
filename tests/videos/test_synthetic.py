import csv
import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from assets.videos.sources import read_manifest
from assets.videos.synthetic import (
    INSTRUMENTS,
    LOOKS,
    MANIFEST_COLUMNS,
    RANGES,
    SAMPLE_RATE,
    SIZE,
    make_dataset,
    make_video,
    melody_notes,
    render_frames,
    video_seed,
)

SECONDS = 3.0
SEED = 7
PAIR = ("cello", "flute")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("synthetic")
    return out, make_dataset(out, per_instrument=1, seed=SEED, instruments=PAIR, seconds=SECONDS)


def by_label(dataset: tuple[Path, list[dict]]) -> dict[str, Path]:
    out, rows = dataset
    return {row["label"]: out / row["path"] for row in rows}


def probe(path: Path) -> dict:
    done = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
                          capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


def decoded_audio(path: Path) -> np.ndarray:
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE),
                           "-f", "f32le", "-"], capture_output=True, timeout=30, check=True)
    return np.frombuffer(done.stdout, dtype=np.float32)


def decoded_frames(path: Path) -> np.ndarray:
    done = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, timeout=30, check=True)
    return np.frombuffer(done.stdout, dtype=np.uint8).reshape(-1, SIZE[1], SIZE[0], 3).astype(np.float32)


def spectral_centroid(audio: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    return float((np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE) * power).sum() / power.sum())


def test_at_least_six_distinct_instruments():
    assert len(INSTRUMENTS) >= 6
    assert set(LOOKS) == set(RANGES) == set(INSTRUMENTS)
    assert len(set(INSTRUMENTS.values())) == len(INSTRUMENTS)
    assert len({look.background for look in LOOKS.values()}) == len(INSTRUMENTS)


@pytest.mark.parametrize("instrument", list(INSTRUMENTS))
def test_melody_lies_in_the_instrument_range_and_fills_the_clip(instrument):
    notes, qpm = melody_notes(instrument, seed=3, seconds=10.0)
    low, high = RANGES[instrument]
    assert low <= notes[:, 2].min() and notes[:, 2].max() <= high
    assert notes[0, 0] == 0
    assert notes[:, 1].max() / 24 * 60 / qpm == pytest.approx(10.0, abs=0.3)


def test_manifest_has_one_row_per_video(dataset):
    out, rows = dataset
    with open(out / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == MANIFEST_COLUMNS
        written = list(reader)
    assert [r["label"] for r in written] == list(PAIR)
    assert len({r["id"] for r in written}) == len(written) == len(rows)
    for row, line in zip(rows, written):
        assert line == {key: str(value) for key, value in row.items()}
        assert line["url"] == "" and float(line["start"]) == 0.0 and float(line["duration"]) == SECONDS


def test_manifest_reader_finds_the_videos(dataset):
    out, _ = dataset
    videos = read_manifest(out / "manifest.csv")
    assert [v.label for v in videos] == list(PAIR)
    assert all(Path(v.path).is_file() and v.url is None and v.duration == SECONDS for v in videos)


def test_videos_have_the_duration_and_both_streams(dataset):
    for path in by_label(dataset).values():
        info = probe(path)
        kinds = sorted((s["codec_type"], s["codec_name"]) for s in info["streams"])
        assert kinds == [("audio", "aac"), ("video", "h264")]
        assert float(info["format"]["duration"]) == pytest.approx(SECONDS, abs=0.2)
        video = next(s for s in info["streams"] if s["codec_type"] == "video")
        assert (video["width"], video["height"]) == SIZE


def test_audio_sounds_and_differs_between_instruments(dataset):
    audio = {label: decoded_audio(path) for label, path in by_label(dataset).items()}
    for clip in audio.values():
        assert len(clip) == pytest.approx(SECONDS * SAMPLE_RATE, rel=0.05)
        assert np.sqrt(np.mean(clip**2)) > 0.02
    assert spectral_centroid(audio["flute"]) > 1.5 * spectral_centroid(audio["cello"])


def test_camera_moves_a_little_within_a_video_and_instruments_differ_a_lot(dataset):
    frames = {label: decoded_frames(path) for label, path in by_label(dataset).items()}
    within = [np.abs(f[0] - f[-1]).mean() for f in frames.values()]
    across = np.abs(frames["cello"][0] - frames["flute"][0]).mean()
    assert min(within) > 1.0  # the camera is not fixed
    assert max(within) < 0.25 * across


def test_every_instrument_has_its_own_colour():
    means = {name: render_frames(name, seed=1, seconds=0.5).reshape(-1, 3).mean(axis=0) for name in INSTRUMENTS}
    distances = [np.linalg.norm(means[a] - means[b]) for a, b in itertools.combinations(means, 2)]
    assert min(distances) > 30.0


def test_generation_is_deterministic_per_seed(dataset, tmp_path):
    np.testing.assert_array_equal(render_frames("piano", 11, 1.0), render_frames("piano", 11, 1.0))
    assert not np.array_equal(render_frames("piano", 11, 1.0), render_frames("piano", 12, 1.0))
    again = make_video("cello", video_seed(SEED, 0), tmp_path / "cello.mp4", seconds=SECONDS)
    assert again.read_bytes() == by_label(dataset)["cello"].read_bytes()


def test_unknown_instrument_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown instrument"):
        make_video("theremin", 0, tmp_path / "x.mp4")
