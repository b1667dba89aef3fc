"""Videos of a batch are extracted several at once: results keep the batch's order, match extracting
one at a time, and a broken or stuck video is that video's reject while the others complete."""

import threading
from pathlib import Path

import numpy as np
import pytest

from assets.videos import batches, media


@pytest.fixture
def batch(tmp_path, make_video) -> list[dict]:
    """Three good videos of different lengths and tones, and a corrupt file between them."""
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(1).bytes(30_000))
    paths = [make_video(tmp_path / "a.mp4", 3.0, 440), corrupt, make_video(tmp_path / "b.mp4", 1.0, 660), make_video(tmp_path / "c.mp4", 2.0, 880)]
    return [{"id": path.stem, "path": str(path), "start": 0.0, "duration": None} for path in paths]


def _first_waits_for_last(workers: int) -> tuple[list, list[str]]:
    """each_video over two videos whose extractions must both be inside ``extract`` to pass a barrier;
    the first then waits for the last to finish, so the results arrive out of order."""
    barrier = threading.Barrier(2, timeout=5)
    finished: list[str] = []

    def extract(video: dict) -> str:
        barrier.wait()
        if video["id"] == "first":
            while "last" not in finished:
                threading.Event().wait(0.01)
        finished.append(video["id"])
        return video["id"].upper()

    done, rejects = batches.each_video([{"id": "first"}, {"id": "last"}], "frames", extract, workers=workers)
    assert rejects == []
    return done, finished


def test_videos_run_at_once_and_come_back_in_the_batch_order():
    done, finished = _first_waits_for_last(workers=2)
    assert finished == ["last", "first"]
    assert done == [({"id": "first"}, "FIRST"), ({"id": "last"}, "LAST")]
    with pytest.raises(threading.BrokenBarrierError):  # one at a time, the barrier is never passed
        _first_waits_for_last(workers=1)


@pytest.mark.parametrize("sampling", ["exact", "keyframes"])
def test_a_corrupt_video_among_good_ones_is_one_reject_and_the_rest_match_one_at_a_time(batch, sampling):
    def frames(video: dict) -> list[tuple[float, bytes]]:
        return media.extract_frames(video["path"], sampling=sampling)

    done, rejects = batches.each_video(batch, "frames", frames, workers=3)
    serial, serial_rejects = batches.each_video(batch, "frames", frames, workers=1)
    assert [video["id"] for video, _ in done] == ["a", "b", "c"]
    assert [len(extracted) for _, extracted in done] == [3, 1, 2]
    assert done == serial  # the same JPEG bytes, frame for frame
    assert [(r.item, r.stage, r.error_type) for r in rejects] == [("corrupt", "frames", "CorruptVideo")]
    assert [(r.item, r.message) for r in rejects] == [(r.item, r.message) for r in serial_rejects]


def test_audio_of_a_batch_is_extracted_at_once_with_its_corrupt_video_a_reject(batch):
    done, rejects = batches.each_video(batch, "audio", lambda v: media.extract_audio(v["path"]), workers=4)
    assert [(video["id"], len(audio)) for video, audio in done] == [
        ("a", pytest.approx(48_000, abs=1600)), ("b", pytest.approx(16_000, abs=1600)), ("c", pytest.approx(32_000, abs=1600))
    ]  # fmt: skip
    for (_, audio), (_, alone) in zip(done, batches.each_video(batch, "audio", lambda v: media.extract_audio(v["path"]), workers=1)[0]):
        np.testing.assert_array_equal(audio, alone)
    assert [(r.item, r.error_type) for r in rejects] == [("corrupt", "UnreadableAudio")]


def test_a_stuck_decoder_is_killed_at_its_limit_while_the_other_videos_complete(batch, monkeypatch):
    """The decoder of one video never returns; its child is killed at the time limit and the video is a
    reject, the videos decoded next to it are not held up into failing."""
    real = media._frames

    def frames(path, *args):
        if Path(path).stem == "b":
            threading.Event().wait(3600)
        return real(path, *args)

    monkeypatch.setattr(media, "_frames", frames)
    good = [video for video in batch if video["id"] != "corrupt"]
    done, rejects = batches.each_video(good, "frames", lambda v: media.extract_frames(v["path"], timeout=5), workers=3)
    assert [(video["id"], len(extracted)) for video, extracted in done] == [("a", 3), ("c", 2)]
    assert [(r.item, r.error_type) for r in rejects] == [("b", "CorruptVideo")]
    assert "took longer than 5 s and was killed" in rejects[0].message


def test_probing_a_batch_at_once_keeps_its_order_and_rejects_the_corrupt_file(batch):
    from assets.videos.sources import Video

    found = [Video(video["id"], None, video["path"]) for video in batch]
    rows, rejects = batches.probe_videos(found, {v.id: Path(v.path) for v in found}, {v.id: "train" for v in found}, "b")
    assert [(row["id"], round(row["duration"])) for row in rows] == [("a", 3), ("b", 1), ("c", 2)]
    assert [(r.item, r.stage) for r in rejects] == [("corrupt", "probe")]
