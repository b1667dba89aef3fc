"""Video manifests and servers that try to write outside the download folder, collide two URLs,
drip bytes, hang or lie about their length: every such row is a reject and the rest completes."""

import functools
import http.server
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest

from assets.core.partitions import VIDEO_BATCHES, add_partitions
from assets.core.resources import HomeResource
from assets.core.versions import with_code_versions
from assets.videos import batches
from assets.videos.defs import videos
from assets.videos.sources import Video, download, read_manifest, usable
from storage import shards
from storage.names import UnsafeName, hashed_name



def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def _until(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether ``condition`` holds within ``seconds`` (checked every 0.1 s)."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.1)
    return True


class _Hostile(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, except ``/drip/*`` (one byte a second of a 1,000-byte body), ``/lie/*``
    (claims 1 GB, sends 1 KB and hangs up) and ``/hang/*`` (no answer until ``release`` is set,
    counting how many such requests are open at once)."""

    release: ClassVar[threading.Event]
    lock: ClassVar[threading.Lock]
    hanging: ClassVar[list[int]]  # [open now, most open at once]

    def do_GET(self):
        kind = self.path.split("/")[1]
        if kind == "drip":
            self._headers(1000)
            for _ in range(1000):
                if self.release.wait(1.0):
                    return
                self.wfile.write(b"\0")
                self.wfile.flush()
        elif kind == "lie":
            self._headers(1 << 30)
            self.wfile.write(b"\0" * 1024)
            self.wfile.flush()
            self.close_connection = True
        elif kind == "hang":
            with self.lock:
                self.hanging[0] += 1
                self.hanging[1] = max(self.hanging)
            while not self.release.is_set() and not self._client_gone():
                pass
            with self.lock:
                self.hanging[0] -= 1
        else:
            super().do_GET()

    def _client_gone(self) -> bool:
        """Whether the client closed its end (waits up to 0.2 s for the socket to say so)."""
        readable, _, _ = select.select([self.connection], [], [], 0.2)
        return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)

    def _headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def site(tmp_path: Path, serve, make_video):
    """A loopback server on a folder holding ``a/clip.mp4`` and ``b/clip.mp4`` (two different videos)
    plus the hostile paths of ``_Hostile``; yields (folder, handler class, base URL)."""
    root = tmp_path / "site"
    make_video(root / "a" / "clip.mp4", 1.0, 440)
    make_video(root / "b" / "clip.mp4", 1.5, 880)
    handler = type(
        "Handler", (_Hostile,), {"release": threading.Event(), "lock": threading.Lock(), "hanging": [0, 0]}
    )
    base = serve(handler=functools.partial(handler, directory=str(root)))
    yield root, handler, base
    handler.release.set()


def test_a_url_that_names_a_folder_outside_downloads_inside_by_its_hash(tmp_path: Path, site):
    _, _, base = site
    url = f"{base}/a/clip.mp4?v=../../../../outside/x"
    (tmp_path / "manifest.csv").write_text(f"id,url\nclip,{url}\n")
    raw = tmp_path / "deep" / "er" / "raw"

    paths, rejects = download(usable(read_manifest(tmp_path / "manifest.csv"))[0], raw, backoff=0.01)

    assert not rejects and paths == {"clip": raw / f"{hashed_name(url)}.mp4"}
    assert _files(tmp_path / "deep") == {paths["clip"]}
    assert not list(tmp_path.rglob("x.*")) and not (tmp_path / "outside").exists()


def test_two_urls_with_one_file_name_get_their_own_files(tmp_path: Path, site):
    root, _, base = site
    a, b = Video("a", f"{base}/a/clip.mp4", None), Video("b", f"{base}/b/clip.mp4", None)

    paths, rejects = download([a, b], tmp_path / "raw", backoff=0.01)

    assert not rejects and paths["a"] != paths["b"]
    assert paths["a"].read_bytes() == (root / "a" / "clip.mp4").read_bytes()
    assert paths["b"].read_bytes() == (root / "b" / "clip.mp4").read_bytes()
    again, _ = download([b, a], tmp_path / "raw", backoff=0.01)  # re-run: the same files, in either order
    assert again == paths


def test_a_dripping_server_is_cut_at_the_deadline_and_leaves_no_partial_file(tmp_path: Path, site):
    _, _, base = site
    drip = Video("drip", f"{base}/drip/clip.mp4", None)

    paths, rejects = download([drip], tmp_path / "raw", retries=0, timeout=30, deadline=3)

    assert not paths
    assert [(r.item, r.stage, r.error_type) for r in rejects] == [("drip", "download", "DownloadTimeout")]
    assert rejects[0].message == f"{drip.url}: no complete download within 3 s"
    assert not _files(tmp_path / "raw")


def test_a_lying_content_length_and_an_http_error_leave_no_partial_file(tmp_path: Path, site):
    _, _, base = site
    lie, missing = Video("lie", f"{base}/lie/clip.mp4", None), Video("missing", f"{base}/nothing.mp4", None)

    paths, rejects = download([lie, missing], tmp_path / "raw", retries=0, timeout=5, deadline=30)

    assert not paths
    assert [(r.item, r.error_type) for r in rejects] == [("lie", "DownloadError"), ("missing", "DownloadError")]
    assert "404" in rejects[1].message
    assert not _files(tmp_path / "raw")


def test_downloads_run_in_parallel_bounded_and_report_in_manifest_order(tmp_path: Path, site):
    """Three hung URLs and a good one, two slots: two hang at once, never three, the good one gets
    the slot of a hung one at its deadline, and each hung download's process is gone when it ends."""
    _, handler, base = site
    listed = [Video(name, f"{base}/hang/{name}.mp4", None) for name in ("h1", "h2", "h3")]
    listed.append(Video("good", f"{base}/a/clip.mp4", None))

    paths, rejects = download(listed, tmp_path / "raw", retries=0, timeout=60, deadline=10, max_parallel=2)

    assert set(paths) == {"good"} and paths["good"].is_file()
    assert [(r.item, r.error_type) for r in rejects] == [(n, "DownloadTimeout") for n in ("h1", "h2", "h3")]
    assert handler.hanging[1] == 2
    assert _until(lambda: handler.hanging[0] == 0, 5), "a timed-out download kept its connection"
    assert _files(tmp_path / "raw") == {paths["good"]}


def test_a_download_dies_with_the_process_that_started_it(tmp_path: Path, site):
    """kill -9 of the parent: its download's process drops the hung connection instead of holding it."""
    _, handler, base = site
    script = f"from assets.core.downloads import fetch; fetch({base + '/hang/x.mp4'!r}, {str(tmp_path)!r}, timeout=600)"
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
    try:
        assert _until(lambda: handler.hanging[0] == 1, 60), "the download never connected"
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
    assert _until(lambda: handler.hanging[0] == 0, 30), "the download outlived its parent"


def test_an_unsafe_video_id_and_url_write_nothing_outside_in_a_job_run(tmp_path: Path, site):
    _, _, base = site
    (tmp_path / "manifest.csv").write_text(
        "id,url\n"
        f"../../../../outside/y,{base}/a/clip.mp4?v=../../../../outside/x\n"
        f"fine,{base}/b/clip.mp4\n"
    )
    home = HomeResource(root=str(tmp_path / "home"))
    with dg.instance_for_test() as instance:
        add_partitions(instance, VIDEO_BATCHES, ["b1"])
        result = dg.materialize(
            with_code_versions([videos]), partition_key="b1", instance=instance, resources={"home": home},
            run_config={"ops": {"videos": {"config": {"source": str(tmp_path / "manifest.csv"), "retries": 0}}}},
        )  # fmt: skip
    assert result.success
    rows = shards.read_table(home.home.datasets, "videos", "b1").to_pylist()
    assert [r["id"] for r in rows] == ["../../../../outside/y", "fine"]
    downloads = Path(home.home.raw) / "videos" / "downloads"
    assert {Path(r["path"]) for r in rows} == _files(downloads)
    assert not (tmp_path / "outside").exists() and not list(tmp_path.rglob("x.mp4"))


def test_an_unsafe_batch_key_is_refused_before_any_partition_or_folder(tmp_path: Path):
    with dg.instance_for_test() as instance:
        with pytest.raises(UnsafeName, match="video_batches partition key '../x'"):
            add_partitions(instance, VIDEO_BATCHES, ["ok", "../x"])
        assert instance.get_dynamic_partitions(VIDEO_BATCHES.name) == []
        assert add_partitions(instance, VIDEO_BATCHES, ["ok", "ok", "two"]) == ["ok", "two"]
        assert add_partitions(instance, VIDEO_BATCHES, ["two", "three"]) == ["three"]
    with pytest.raises(UnsafeName):
        batches.batch_folder(str(tmp_path), "..")
    assert batches.batch_folder(str(tmp_path), "b1") == (tmp_path / "videos" / "batches" / "b1").resolve()
