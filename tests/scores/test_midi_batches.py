"""Files go to the parser workers in batches, yet each file keeps its own time limit: a file that
hangs inside a batch is that file's ParseTimeout, and the files queued behind it are parsed."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from assets.core.rejects import Reject
from assets.scores import ingest, readers
from assets.scores.datasets import ScoreItem

TIMEOUT_S = 3.0


def write_midi(path: Path, pitch: int) -> Path:
    track = bytes([0, 0x90, pitch, 80, 24, 0x80, pitch, 0]) + b"\x00\xff\x2f\x00"
    path.write_bytes(struct.pack(">4sIHHH", b"MThd", 6, 0, 1, 96) + b"MTrk" + struct.pack(">I", len(track)) + track)
    return path


@pytest.fixture
def hanging_midi(monkeypatch):
    """The MIDI parser, except that it hangs on hang.mid (patched before the workers are forked)."""
    original = readers.PARSERS["midi"]

    def parse(item, resolution):
        if Path(item.path).name == "hang.mid":
            time.sleep(3600)
        return original(item, resolution)

    monkeypatch.setitem(readers.PARSERS, "midi", parse)


def test_a_file_hanging_inside_a_batch_is_the_only_timeout(tmp_path, hanging_midi):
    count = 3 * ingest.BATCH
    paths = [write_midi(tmp_path / f"{i:03d}.mid", 40 + i % 60) for i in range(count)]
    paths[5] = write_midi(tmp_path / "hang.mid", 60)  # in the first batch, with files queued behind it
    items = [ScoreItem("test", p.name, str(p), "midi", None) for p in paths]
    results = list(ingest.parse_all(items, workers=2, limits=ingest.Limits(timeout_s=TIMEOUT_S)))

    assert len(results) == count
    hang = results.pop(5)
    assert isinstance(hang, Reject) and (hang.item, hang.error_type) == ("hang.mid", "ParseTimeout")
    assert all(isinstance(r, ingest.Parsed) for r in results)
    expected = [p.name for i, p in enumerate(paths) if i != 5]
    assert [r.song["song"] for r in results] == expected
    assert {r.song["reader"] for r in results} == {"symusic"}
