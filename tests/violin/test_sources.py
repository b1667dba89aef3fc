import csv
import functools
import hashlib
import http.server
import shutil
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from assets.core.audio import TruncatedAudio, UnreadableAudio
from assets.scores.datasets.archives import UnpackLimit
from assets.violin import sources
from assets.violin.sources import (
    ChecksumMismatch,
    Recording,
    ReleaseUnavailable,
    SilentAudio,
    bach_violin_release,
    download,
    load_slice,
    parse_time,
    read_manifest,
    reject,
)
from storage.names import hashed_name

TEMPLATE = Recording(
    id="x",
    url=None,
    path=None,
    start=0.0,
    end=1.0,
    performer="P",
    work="BWV1001",
    movement=1,
    title="Adagio",
    score="bwv1001_mov1",
    score_path=None,
    repeat1=None,
    repeat2=None,
    baroque_tuning=False,
    collection="c",
    source_filename="x.wav",
    license="PD",
)


def _tone(
    path: Path, seconds: float, source: str = "sine=frequency=440", rate: int = 44_100, channels: int = 2
) -> Path:
    """An audio file written by ffmpeg from one of its generated sources."""
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"{source}:duration={seconds}",
            "-ar",
            str(rate),
            "-ac",
            str(channels),
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def test_parse_time_reads_the_published_clock_format():
    assert parse_time("0:04:13") == 253
    assert parse_time("1:02:03.5") == 3723.5
    assert parse_time("4:13") == 253
    assert parse_time("45") == 45


def test_read_manifest_reads_all_published_movements(sample_dir: Path):
    recordings = read_manifest(sample_dir / "info.csv", sample_dir / "audio.csv")
    with open(sample_dir / "info.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r.id for r in recordings] == [row["filename"] for row in rows] and len(recordings) == 105
    for recording, row in zip(recordings, rows, strict=True):
        assert recording.seconds == parse_time(row["length"])
        assert recording.path is None and recording.score_path is None
        assert recording.url.startswith("http")
    first = recordings[0]
    assert (first.id, first.start, first.end, first.repeat1, first.repeat2) == (
        "emil-telmanyi_bwv1001_mov1",
        3,
        253,
        None,
        None,
    )
    assert first.performer == "Emil Telmányi" and first.score == "bwv1001_mov1"
    flags = {(r.repeat1, r.repeat2) for r in recordings}
    assert flags == {(None, None), (True, None), (False, False), (True, False), (True, True)}
    assert [r.baroque_tuning for r in recordings] == [row["baroque_tuning"] == "1" for row in rows]
    assert 0 < sum(r.baroque_tuning for r in recordings) < len(recordings)  # the column holds both values


def test_sample_manifest_has_the_three_local_recordings_with_their_attribution(sample_recordings):
    assert [r.id for r in sample_recordings] == [f"john-garner_bwv1002_mov{m}" for m in (6, 7, 8)]
    assert all(Path(r.path).is_file() and Path(r.score_path).is_file() for r in sample_recordings)
    assert [(r.start, r.end, r.repeat1, r.repeat2) for r in sample_recordings] == [
        (1, 106, True, True),
        (0, 141, True, False),
        (0, 139, True, False),
    ]
    assert {r.attribution for r in sample_recordings} == {"John Garner, CC BY 3.0, musopen.org"}


class _Logged(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and remembers every requested path; answers 503 to the first ``failures`` requests."""

    requests: ClassVar[list[str]] = []
    failures = 0

    def do_GET(self):
        type(self).requests.append(self.path)
        if type(self).failures > 0:
            type(self).failures -= 1
            self.send_error(503, "busy")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def site(tmp_path: Path, serve):
    """A loopback HTTP server on a folder holding one three-second tone."""
    root = tmp_path / "site"
    root.mkdir()
    _tone(root / "tone.wav", 3.0)
    handler = type("Handler", (_Logged,), {"requests": [], "failures": 0})
    return root, handler, serve(handler=functools.partial(handler, directory=str(root)))


def test_download_fetches_http_audio_rejects_the_rest_and_never_fetches_twice(tmp_path: Path, site):
    root, handler, base = site
    good = replace(TEMPLATE, id="good_mov1", url=f"{base}/tone.wav", source_filename="good.wav")
    same_file = replace(good, id="good_mov2", start=1.0, end=2.0)
    missing = replace(TEMPLATE, id="missing", url=f"{base}/missing.wav", source_filename="missing.wav")
    not_http = replace(TEMPLATE, id="ftp", url="ftp://127.0.0.1/tone.wav", source_filename="ftp.wav")
    local = replace(TEMPLATE, id="local", url=None, path=str(_tone(tmp_path / "local.wav", 1.0)))
    raw = tmp_path / "raw"

    paths, rejects = download([good, same_file, missing, not_http, local], raw, backoff=0.01)

    assert set(paths) == {"good_mov1", "good_mov2", "local"} and paths["local"] == Path(local.path)
    assert paths["good_mov1"] == paths["good_mov2"] == raw / f"{hashed_name(good.url)}.wav"
    assert load_slice(paths["good_mov2"], 1.0, 2.0).shape == (16_000,)
    by_item = {r.item: r for r in rejects}
    assert set(by_item) == {"missing", "ftp"}
    assert by_item["missing"].stage == "download" and "404" in by_item["missing"].message
    assert by_item["ftp"].error_type == "UnsupportedURL" and "http(s)" in by_item["ftp"].message
    assert not any("ftp" in p for p in handler.requests)
    assert handler.requests.count("/missing.wav") <= 2  # a 404 is not retried

    first_bytes = paths["good_mov1"].read_bytes()
    _tone(root / "tone.wav", 2.0, source="sine=frequency=880")  # the server now holds a different file
    again, rejects_again = download([good], raw, backoff=0.01)
    assert again["good_mov1"] == paths["good_mov1"] and not rejects_again
    assert again["good_mov1"].read_bytes() == first_bytes
    paths["good_mov1"].unlink()  # a deleted download is fetched anew
    anew, rejects_anew = download([good], raw, backoff=0.01)
    assert anew == {"good_mov1": paths["good_mov1"]} and not rejects_anew
    assert paths["good_mov1"].read_bytes() == (root / "tone.wav").read_bytes()


def test_download_retries_a_busy_server_with_backoff(tmp_path: Path, site):
    _, handler, base = site
    handler.failures = 2
    recording = replace(TEMPLATE, url=f"{base}/tone.wav")
    paths, rejects = download([recording], tmp_path / "raw", retries=3, backoff=0.01)
    assert not rejects and paths["x"].is_file()
    assert len(handler.requests) >= 3

    handler.failures = 10
    _, rejects = download([replace(recording, source_filename="other.wav")], tmp_path / "raw2", retries=1, backoff=0.01)
    assert len(rejects) == 1 and "503" in rejects[0].message


def test_load_slice_cuts_downmixes_and_resamples(tmp_path: Path):
    tone = _tone(tmp_path / "tone.mp3", 3.0)
    audio = load_slice(tone, 0.5, 2.5)
    assert audio.dtype == np.float32 and audio.shape == (32_000,)
    peak_hz = np.fft.rfftfreq(len(audio), 1 / 16_000)[np.abs(np.fft.rfft(audio)).argmax()]
    assert abs(peak_hz - 440) < 2


def test_load_slice_of_a_real_recording_has_the_exact_slice_length(sample_recordings):
    recording = sample_recordings[0]
    audio = load_slice(recording.path, recording.start, recording.end)
    assert audio.shape == (105 * 16_000,)
    assert np.sqrt(np.mean(audio**2)) > 0.01


def test_load_slice_names_each_kind_of_bad_recording(tmp_path: Path):
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).bytes(50_000))
    with pytest.raises(UnreadableAudio, match="not readable audio") as caught:
        load_slice(noise, 0.0, 1.0)
    row = reject(TEMPLATE, "slice", caught.value)
    assert (row.dataset, row.item, row.stage, row.error_type) == ("bach-violin", "x", "slice", "UnreadableAudio")
    with pytest.raises(SilentAudio, match="silent"):
        load_slice(_tone(tmp_path / "silence.wav", 2.0, source="anullsrc=r=44100:cl=stereo"), 0.0, 2.0)
    with pytest.raises(TruncatedAudio, match="has 2.00 s of audio from 1.00 s, not 9.00 s"):
        load_slice(_tone(tmp_path / "short.wav", 3.0), 1.0, 10.0)


def _release_zip(sample_dir: Path, tmp_path: Path) -> Path:
    """A miniature release archive in the published layout, built from the sample's metadata."""
    tree = tmp_path / "tree" / "bach-violin"
    (tree / "audio" / "john-garner").mkdir(parents=True)
    (tree / "scores" / "bwv1002").mkdir(parents=True)
    for name in ("info.csv", "audio.csv"):
        shutil.copy(sample_dir / name, tree / name)
    shutil.copy(sample_dir / "audio" / "LICENSE", tree / "audio" / "john-garner" / "LICENSE")
    _tone(tree / "audio" / "john-garner" / "john-garner_bwv1002_mov7.mp3", 1.0)
    shutil.copy(sample_dir / "scores" / "bwv1002_mov7_10.mxl", tree / "scores" / "bwv1002")
    archive = tmp_path / "site" / sources.RELEASE_FILE
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, path.relative_to(tree.parent).as_posix())
    return archive


def test_release_is_fetched_only_when_asked_checked_and_unpacked(sample_dir: Path, tmp_path: Path, serve):
    archive = _release_zip(sample_dir, tmp_path)
    url = f"{serve(archive.parent)}/{archive.name}"
    root = tmp_path / "release"
    with pytest.raises(FileNotFoundError, match="download=True"):
        bach_violin_release(root, urls=[url])
    with pytest.raises(ChecksumMismatch, match="expected 00"):
        bach_violin_release(root, download=True, urls=[url], sha256="00" * 32)
    assert not (root / "bach-violin").exists()

    recordings = bach_violin_release(root, download=True, urls=["http://127.0.0.1:9/closed", url], sha256=None)
    assert len(recordings) == 105
    mov7 = next(r for r in recordings if r.id == "john-garner_bwv1002_mov7")
    assert mov7.path == str(root / "bach-violin" / "audio" / "john-garner" / "john-garner_bwv1002_mov7.mp3")
    assert mov7.score_path == str(root / "bach-violin" / "scores" / "bwv1002" / "bwv1002_mov7_10.mxl")
    assert mov7.attribution == "John Garner, CC BY 3.0, musopen.org"
    recorded = (root / f"{sources.RELEASE_FILE}.sha256").read_text().split()[0]
    assert recorded == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert [r.id for r in bach_violin_release(root)] == [r.id for r in recordings]  # no network the second time


def test_a_release_zip_bomb_is_refused_and_leaves_nothing_unpacked(tmp_path: Path, serve):
    site = tmp_path / "site"
    site.mkdir()
    with zipfile.ZipFile(site / sources.RELEASE_FILE, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bach-violin/info.csv", b"\0" * (50 << 20))  # 50 MB of zeros: about 1,000:1
    root = tmp_path / "release"
    url = f"{serve(site)}/{sources.RELEASE_FILE}"
    with pytest.raises(UnpackLimit, match=r"200:1 \(max_ratio\)"):
        bach_violin_release(root, download=True, urls=[url], sha256=None)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == []


def test_release_download_offline_says_what_to_do(tmp_path: Path):
    with pytest.raises(ReleaseUnavailable, match=r"offline.*by hand"):
        bach_violin_release(tmp_path / "r", download=True, urls=["http://127.0.0.1:9/bach-violin.zip"], timeout=5)
