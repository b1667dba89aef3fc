"""Violin manifests whose names try to reach outside their folders, and a source that drips bytes:
each such recording is a reject with its reason, gets no partition, and the rest completes."""

import csv
import functools
import http.server
import subprocess
import threading
from pathlib import Path

import dagster as dg
import pytest

from assets.core.partitions import RECORDINGS, add_partitions
from assets.core.resources import HomeResource
from assets.core.versions import with_code_versions
from assets.violin import sources
from assets.violin.defs import recording_audio, recordings
from storage import shards
from storage.io_manager import ShardIOManager
from storage.names import UnsafeName, hashed_name

ROW = {
    "filename": "p_bwv1001_mov1", "collection": "p", "violinist_name": "P", "work": "BWV1001", "mov": "1",
    "movement": "Adagio", "source_filename": "p.wav", "start": "0:00:00", "end": "0:00:01", "repeat1": "-",
    "repeat2": "-", "score_filename": "bwv1001_mov1", "baroque_tuning": "0",
}  # fmt: skip


def _tone(path: Path, seconds: float = 2.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", str(path)],
        check=True,
        timeout=60,
    )
    return path


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _manifest(folder: Path, info: list[dict], url: str = "") -> Path:
    """info.csv with these rows and audio.csv naming each row's source file (all at ``url``)."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_csv(folder / "info.csv", info)
    names = dict.fromkeys(row["source_filename"] for row in info)
    _write_csv(folder / "audio.csv", [{"filename": name, "license": "PD", "url": url} for name in names])
    return folder / "info.csv"


def _materialize(instance: dg.DagsterInstance, home: HomeResource, asset, config: dict, partition: str | None = None):
    result = dg.materialize(
        with_code_versions([asset]), instance=instance, partition_key=partition,
        resources={"home": home, "shard_io": ShardIOManager(datasets_root=home.home.datasets)},
        run_config={"ops": {asset.op.name: {"config": config}}},
    )  # fmt: skip
    assert result.success
    return result


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def test_names_reaching_outside_are_rejects_and_never_partitions(tmp_path: Path):
    """A traversing collection, recording id, source file and score, and a collection folder that is
    a symlink to elsewhere: each row is a reject naming its field; the good row becomes a partition."""
    outside = tmp_path / "outside"
    _tone(outside / "evil.wav")
    folder = tmp_path / "manifest"
    _tone(folder / "audio" / "p" / "p.wav")
    (folder / "audio" / "evil").symlink_to(outside, target_is_directory=True)
    info = _manifest(
        folder,
        [
            ROW,
            ROW | {"filename": "climb", "collection": "../../.."},
            ROW | {"filename": "../../../outside/x"},
            ROW | {"filename": "source", "source_filename": "../../outside/evil.wav"},
            ROW | {"filename": "score", "score_filename": "../../../etc/passwd"},
            ROW | {"filename": "linked", "collection": "evil", "source_filename": "evil.wav"},
        ],
    )
    home = HomeResource(root=str(tmp_path / "home"))
    with dg.instance_for_test() as instance:
        result = _materialize(instance, home, recordings, {"manifest": str(info)})
        assert instance.get_dynamic_partitions(RECORDINGS.name) == [ROW["filename"]]
    table = shards.read_table(home.home.datasets, "recordings", "__all__").to_pylist()
    assert [(r["id"], r["path"]) for r in table] == [(ROW["filename"], str((folder / "audio" / "p" / "p.wav").resolve()))]
    metadata = _metadata(result, "recordings")
    assert metadata["rejects"] == 5 and metadata["partitions_added"] == 1
    rejected = metadata["rejected"]
    assert list(rejected) == ["climb", "../../../outside/x", "source", "score", "linked"]
    assert "collection (collection) '../../..' is not a plain name" in rejected["climb"]
    assert "recording id (filename)" in rejected["../../../outside/x"]
    assert "source file (source_filename)" in rejected["source"] and "score (score_filename)" in rejected["score"]
    assert f"outside {(folder / 'audio').resolve()}" in rejected["linked"]
    datasets = Path(home.home.datasets)
    assert not (outside / "x").exists()
    assert not [p for p in tmp_path.rglob("_manifest.json") if datasets not in p.parents]


def test_read_manifest_marks_the_unsafe_rows_and_usable_makes_them_rejects(tmp_path: Path):
    info = _manifest(tmp_path / "m", [ROW, ROW | {"filename": "climb", "collection": "../.."}], url="http://127.0.0.1:9/p.wav")
    found = sources.read_manifest(info, info.parent / "audio.csv", info.parent / "audio", info.parent / "scores")
    ok, rejects = sources.usable(found)
    assert [r.id for r in ok] == [ROW["filename"]] and ok[0].invalid is None
    assert [(r.dataset, r.item, r.stage, r.error_type) for r in rejects] == [("bach-violin", "climb", "manifest", "UnsafeName")]


def test_an_unsafe_recording_partition_key_is_never_added(tmp_path: Path):
    with dg.instance_for_test() as instance:
        with pytest.raises(UnsafeName, match="recordings partition key"):
            add_partitions(instance, RECORDINGS, ["fine", "../../../outside/x"])
        assert instance.get_dynamic_partitions(RECORDINGS.name) == []


class _Drip(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, except ``/drip/*``: a 1,000-byte body at one byte a second."""

    release: threading.Event

    def do_GET(self):
        if not self.path.startswith("/drip/"):
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        while not self.release.wait(1.0):
            self.wfile.write(b"\0")
            self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def site(tmp_path: Path, serve):
    root = tmp_path / "site"
    _tone(root / "tone.wav")
    handler = type("Handler", (_Drip,), {"release": threading.Event()})
    yield root, serve(handler=functools.partial(handler, directory=str(root)))
    handler.release.set()


def test_download_names_files_by_url_whatever_the_collection_says(tmp_path: Path, site):
    root, base = site
    climb = sources.Recording(
        id="climb", url=f"{base}/tone.wav", path=None, start=0.0, end=1.0, performer="P", work="BWV1001",
        movement=1, title="Adagio", score="s", score_path=None, repeat1=None, repeat2=None, baroque_tuning=False,
        collection="../../..", source_filename="../x.wav", license="PD",
    )  # fmt: skip
    raw = tmp_path / "deep" / "raw"
    paths, rejects = sources.download([climb], raw, backoff=0.01)
    assert not rejects and paths == {"climb": raw / f"{hashed_name(climb.url)}.wav"}
    assert paths["climb"].read_bytes() == (root / "tone.wav").read_bytes()
    assert {p for p in tmp_path.rglob("*") if p.is_file() and root not in p.parents} == {paths["climb"]}


def test_a_dripping_source_is_a_download_timeout_reject_in_a_job_run(tmp_path: Path, site):
    _, base = site
    info = _manifest(tmp_path / "manifest", [ROW], url=f"{base}/drip/p.wav")
    home = HomeResource(root=str(tmp_path / "home"))
    with dg.instance_for_test() as instance:
        _materialize(instance, home, recordings, {"manifest": str(info)})
        _materialize(instance, home, recording_audio, {"retries": 0, "deadline_s": 3}, partition=ROW["filename"])
    found = shards.read_table(home.home.datasets, "recording_audio_rejects", ROW["filename"]).to_pylist()
    assert [(r["item"], r["stage"], r["error_type"]) for r in found] == [(ROW["filename"], "download", "DownloadTimeout")]
    assert found[0]["message"] == f"{base}/drip/p.wav: no complete download within 3 s"
    downloads = Path(home.home.raw) / sources.DATASET
    assert not [p for p in downloads.rglob("*") if p.is_file()]
