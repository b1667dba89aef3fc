import subprocess
from pathlib import Path

import numpy as np
import pytest

from assets.core.audio import MediaError
from assets.videos import batches
from assets.videos.sources import Video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 2 s video with a sine tone, written by ffmpeg."""
    path = tmp_path_factory.mktemp("videos") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5:duration=2",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def test_probed_videos_become_rows_and_unreadable_files_rejects(clip: Path, tmp_path: Path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(20_000))
    found = [
        Video("whole", None, str(clip), start=0.5, label="sine"),
        Video("cut", None, str(clip), start=0.0, duration=1.0),
        Video("broken", None, str(corrupt)),
        Video("never_fetched", "http://example.invalid/x.mp4", None),
    ]
    paths = {"whole": clip, "cut": clip, "broken": corrupt}
    splits = {v.id: "train" for v in found}
    rows, rejects = batches.probe_videos(found, paths, splits, "b1")
    assert [r["id"] for r in rows] == ["whole", "cut"]
    assert rows[0]["duration"] == pytest.approx(1.5, abs=0.05) and rows[1]["duration"] == 1.0
    assert rows[0] | {"duration": 0} == {
        "id": "whole", "label": "sine", "path": str(clip), "start": 0.5, "duration": 0, "split": "train", "batch": "b1"
    }
    assert [(r.item, r.stage) for r in rejects] == [("broken", "probe")]


def test_each_video_rejects_only_the_videos_whose_extraction_fails():
    def extract(video: dict) -> int:
        if video["id"] == "bad":
            raise MediaError("no audio stream")
        return len(video["id"])

    done, rejects = batches.each_video([{"id": "good"}, {"id": "bad"}], "audio", extract)
    assert done == [({"id": "good"}, 4)]
    assert [(r.item, r.stage, r.error_type, r.message) for r in rejects] == [("bad", "audio", "MediaError", "no audio stream")]
    with pytest.raises(ZeroDivisionError):  # anything but a media error is a bug, not a reject
        batches.each_video([{"id": "x"}], "audio", lambda v: 1 / 0)


def test_sources_are_read_by_kind_and_an_unknown_one_is_refused(tmp_path: Path):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(b"")
    assert [v.path for v in batches.read_source("", folder, 1, 0, 1.0)] == [str(folder / "a.mp4")]
    (tmp_path / "index.csv").write_text("abc123,5,violin,train\n")
    vggsound = batches.read_source(str(tmp_path / "index.csv"), folder, 1, 0, 1.0)
    assert len(vggsound) == 1 and vggsound[0].start == 5.0 and vggsound[0].label == "violin"
    with pytest.raises(batches.UnknownSource, match="not 'synthetic'"):
        batches.read_source(str(tmp_path / "videos.txt"), folder, 1, 0, 1.0)


def test_a_synthetic_batch_whose_set_exists_reads_it_instead_of_making_another(tmp_path: Path):
    (tmp_path / "manifest.csv").write_text("id,url,path,start,duration,label\nviolin-0,,violin-0.mp4,0,1.0,violin\n")
    found = batches.read_source(batches.SYNTHETIC, tmp_path, 4, 0, 1.0)
    assert [(v.id, v.label) for v in found] == [("violin-0", "violin")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv"]
