"""Plain HTTP downloads and archive extraction under hostile servers and archives: http(s) only,
redirects included; a total deadline; size caps; no partial file or folder left by a failure."""

import dataclasses
import hashlib
import http.server
import io
import random
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest

from assets.core.http import DownloadError, DownloadTimeout, TooLarge, UnsupportedURL, download
from assets.scores import datasets
from assets.scores.datasets import muspy_sources
from assets.scores.datasets.archives import UnpackLimit, UnpackLimits, download_archive
from pipelines.cli import main

MB = 1 << 20


def _handler(routes: dict):
    """A request handler answering each path with ``routes[path](handler)``; 404 elsewhere."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            routes.get(self.path.split("?")[0], lambda h: h.send_error(404))(self)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    return Handler


def _body(data: bytes, length: int | None = None, content_type: str = "application/octet-stream"):
    """Answer with ``data``, announcing ``length`` (default: the true length; -1: no Content-Length)."""

    def answer(h):
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        if length != -1:
            h.send_header("Content-Length", str(len(data) if length is None else length))
        else:
            h.close_connection = True
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    return answer


def _redirect(location: str, code: int = 302):
    def answer(h):
        h.send_response(code)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return answer


def _drip(length: int, every: float):
    """Announce ``length`` bytes, then send one byte every ``every`` seconds: each read is quick,
    the whole body slow."""

    def answer(h):
        h.send_response(200)
        h.send_header("Content-Length", str(length))
        h.end_headers()
        for _ in range(length):
            h.wfile.write(b"x")
            h.wfile.flush()
            time.sleep(every)

    return answer


@pytest.fixture
def stall():
    """A route that sends headers and then nothing until the test ends."""
    release = threading.Event()

    def answer(h):
        h.send_response(200)
        h.send_header("Content-Length", "10")
        h.end_headers()
        h.wfile.flush()
        release.wait(30)

    yield answer
    release.set()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- assets.core.http.download ----------------------------------------------------------------


def test_download_writes_the_body_atomically_and_returns_its_sha256(tmp_path, serve):
    data = random.Random(0).randbytes(300_000)
    base = serve(handler=_handler({"/f": _body(data), "/chunked": _body(data, length=-1)}))
    for path in ("/f", "/chunked"):
        dest = tmp_path / f"out{path.replace('/', '_')}"
        assert download(base + path, dest) == hashlib.sha256(data).hexdigest()
        assert dest.read_bytes() == data
    assert _leftovers(tmp_path) == ["out_chunked", "out_f"]


def test_progress_goes_to_stderr(tmp_path, serve, capsys):
    base = serve(handler=_handler({"/song.mid": _body(bytes(2_500_000))}))
    download(base + "/song.mid", tmp_path / "song.mid", progress=True)
    assert capsys.readouterr().err.split("\r")[-1] == "song.mid: 2.5 / 2.5 MB\n"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "data:text/plain;base64,AAAA", "ftp://127.0.0.1/x", "http:///x"])
def test_only_http_urls_are_downloaded(url, tmp_path):
    with pytest.raises(UnsupportedURL, match=r"only http\(s\) URLs are downloaded"):
        download(url, tmp_path / "out")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("target", ["ftp://127.0.0.1/x", "file:///etc/passwd", "data:text/plain;base64,AAAA"])
def test_redirects_to_anything_but_http_are_refused(code, target, tmp_path, serve):
    base = serve(handler=_handler({"/r": _redirect(target, code), "/ok": _redirect("/f", code), "/f": _body(b"fine")}))
    with pytest.raises(UnsupportedURL, match=f"redirects to {target!r}"):
        download(base + "/r", tmp_path / "out")
    assert _leftovers(tmp_path) == []
    download(base + "/ok", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"fine"


def test_a_dripping_server_is_cut_off_at_the_deadline(tmp_path, serve):
    base = serve(handler=_handler({"/drip": _drip(length=20, every=1.0)}))
    (tmp_path / "out").write_bytes(b"previous")
    # every byte arrives well within the socket timeout; the whole body would take 20 s
    with pytest.raises(DownloadTimeout, match=f"{base}/drip: not complete within the download's deadline"):
        download(base + "/drip", tmp_path / "out", timeout=60, deadline=3)
    assert _leftovers(tmp_path) == ["out"] and (tmp_path / "out").read_bytes() == b"previous"


def test_the_deadline_also_bounds_a_single_silent_read(tmp_path, serve, stall):
    base = serve(handler=_handler({"/stall": stall}))
    # with the socket timeout alone this would wait 60 s and fail as a plain DownloadError
    with pytest.raises(DownloadTimeout):
        download(base + "/stall", tmp_path / "out", timeout=60, deadline=2)
    assert _leftovers(tmp_path) == []


def test_a_silent_server_fails_at_the_socket_timeout(tmp_path, serve, stall):
    base = serve(handler=_handler({"/stall": stall}))
    with pytest.raises(DownloadError, match="no data within the socket timeout") as error:
        download(base + "/stall", tmp_path / "out", timeout=1, deadline=60)
    assert not isinstance(error.value, DownloadTimeout)
    assert _leftovers(tmp_path) == []


def test_a_content_length_over_max_bytes_is_refused_before_reading(tmp_path, serve):
    base = serve(handler=_handler({"/big": _body(b"tiny", length=10**9)}))
    with pytest.raises(TooLarge, match="Content-Length 1,000,000,000 bytes is over the limit of 1,048,576"):
        download(base + "/big", tmp_path / "out", max_bytes=MB)
    assert _leftovers(tmp_path) == []


def test_a_fake_content_length_leaves_no_partial_file(tmp_path, serve):
    base = serve(handler=_handler({"/big": _body(b"tiny", length=10**9)}))
    (tmp_path / "out").write_bytes(b"previous")
    with pytest.raises(DownloadError, match="the body ended after 4 of its 1,000,000,000 bytes"):
        download(base + "/big", tmp_path / "out")
    assert _leftovers(tmp_path) == ["out"] and (tmp_path / "out").read_bytes() == b"previous"


def test_a_body_growing_past_max_bytes_is_cut_off(tmp_path, serve):
    base = serve(handler=_handler({"/endless": _body(bytes(3 * MB), length=-1)}))
    with pytest.raises(TooLarge, match="the body grew past the limit of 1,048,576 bytes"):
        download(base + "/endless", tmp_path / "out", max_bytes=MB)
    assert _leftovers(tmp_path) == []


def test_an_http_error_is_one_line_naming_the_url(tmp_path, serve):
    base = serve(handler=_handler({}))
    with pytest.raises(DownloadError) as error:
        download(base + "/missing", tmp_path / "out")
    assert str(error.value) == f"{base}/missing: HTTP Error 404: Not Found"
    assert _leftovers(tmp_path) == []


# --- dataset archives: fetched through download(), unpacked within limits -------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tgz(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _source(name: str, archive: Path, url: str) -> muspy_sources.ArchiveSource:
    """The built-in source ``name`` pointed at ``url`` and checked against ``archive``'s sha256."""
    source = muspy_sources.REMOTE_SOURCES[name]
    return dataclasses.replace(
        source, url=url, filename=archive.name, md5=None, sha256=hashlib.sha256(archive.read_bytes()).hexdigest()
    )


def _served(name: str, archive: Path, serve, monkeypatch) -> muspy_sources.ArchiveSource:
    source = _source(name, archive, f"{serve(archive.parent)}/{archive.name}")
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, name, source)
    return source


def _assert_nothing_extracted(raw: Path, name: str) -> None:
    left = _leftovers(raw / name)
    assert "extracted" not in left and "extracted.tmp" not in left and ".complete" not in left, left


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_a_bomb_is_refused_with_the_default_limits_and_leaves_nothing(kind, tmp_path, serve, monkeypatch):
    members = {"top/ok.mid": b"MThd", "top/bomb.bin": bytes(20 * MB)}
    archive = (_zip if kind == "zip" else _tgz)(tmp_path / "www" / f"bomb.{kind}", members)
    assert archive.stat().st_size < 100_000
    _served("lmd", archive, serve, monkeypatch)
    with pytest.raises(UnpackLimit) as error:
        datasets.download("lmd", tmp_path / "raw", progress=False)
    message = str(error.value)
    assert f"refusing to unpack {tmp_path / 'raw' / 'lmd' / archive.name}" in message
    assert "it expands more than 200:1 (max_ratio)" in message and "\n" not in message
    _assert_nothing_extracted(tmp_path / "raw", "lmd")


def test_the_zip_headers_are_checked_before_anything_is_written(tmp_path, serve, monkeypatch):
    archive = _zip(tmp_path / "www" / "big.zip", {"a.mid": b"MThd", "big.bin": bytes(20 * MB)})
    source = _served("maestro", archive, serve, monkeypatch)
    limits = UnpackLimits(max_bytes=2 * MB, max_ratio=10**6)
    why = r"extracts to more than 2,097,152 bytes \(max_bytes\), reached at member 'big.bin'"
    with pytest.raises(UnpackLimit, match=why):
        download_archive(source, tmp_path / "raw", progress=False, limits=limits)
    _assert_nothing_extracted(tmp_path / "raw", "maestro")


def test_the_bytes_written_count_against_max_bytes(tmp_path):
    noise = random.Random(1)
    members = {f"part{i}.bin": noise.randbytes(MB) for i in range(3)}  # incompressible: no ratio refusal
    archive = _tgz(tmp_path / "raw" / "lmd" / "parts.tar.gz", members)  # placed by hand: nothing to download
    source = _source("lmd", archive, "http://127.0.0.1:9/parts.tar.gz")
    with pytest.raises(UnpackLimit, match=r"max_bytes\), reached at member 'part2.bin'"):
        download_archive(source, tmp_path / "raw", progress=False, limits=UnpackLimits(max_bytes=2 * MB + 1))
    _assert_nothing_extracted(tmp_path / "raw", "lmd")
    out = download_archive(source, tmp_path / "raw", progress=False, limits=UnpackLimits(max_bytes=3 * MB))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == members


def test_the_compression_ratio_limit_is_an_argument(tmp_path, serve, monkeypatch):
    digits = random.Random(2).choices(b"0123456789", k=2 * MB)  # deflates to roughly 2.4:1
    archive = _zip(tmp_path / "www" / "digits.zip", {"digits.txt": bytes(digits)})
    source = _served("maestro", archive, serve, monkeypatch)
    with pytest.raises(UnpackLimit, match=r"it expands more than 1.5:1 \(max_ratio\)"):
        download_archive(source, tmp_path / "raw", progress=False, limits=UnpackLimits(max_ratio=1.5))
    _assert_nothing_extracted(tmp_path / "raw", "maestro")
    out = download_archive(source, tmp_path / "raw", progress=False)
    assert (out / "digits.txt").read_bytes() == bytes(digits)


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_the_member_count_limit_is_an_argument(kind, tmp_path, serve, monkeypatch):
    members = {f"m{i}.mid": b"MThd" for i in range(5)}
    archive = (_zip if kind == "zip" else _tgz)(tmp_path / "www" / f"many.{kind}", members)
    source = _served("lmd", archive, serve, monkeypatch)
    with pytest.raises(UnpackLimit, match=r"it holds more than 4 members \(max_members\), reached at member 'm4.mid'"):
        download_archive(source, tmp_path / "raw", progress=False, limits=UnpackLimits(max_members=4))
    _assert_nothing_extracted(tmp_path / "raw", "lmd")
    out = download_archive(source, tmp_path / "raw", progress=False, limits=UnpackLimits(max_members=5))
    assert sorted(p.name for p in out.iterdir()) == sorted(members)


def test_a_zip_whose_headers_understate_its_members_is_refused(tmp_path, serve, monkeypatch):
    archive = _zip(tmp_path / "www" / "liar.zip", {"liar.bin": bytes(8 * MB)})
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central uncompressed size
        at = data.index(signature) + offset
        data[at : at + 4] = (1000).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    source = _served("maestro", archive, serve, monkeypatch)
    with pytest.raises(DownloadError, match=f"cannot unpack {tmp_path / 'raw' / 'maestro' / 'liar.zip'}"):
        download_archive(source, tmp_path / "raw", progress=False)
    _assert_nothing_extracted(tmp_path / "raw", "maestro")


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_a_member_path_outside_the_folder_is_refused(kind, tmp_path, serve, monkeypatch):
    archive = (_zip if kind == "zip" else _tgz)(tmp_path / "www" / f"escape.{kind}", {"../../escaped.mid": b"MThd"})
    source = _served("lmd", archive, serve, monkeypatch)
    with pytest.raises(DownloadError, match="cannot unpack"):
        download_archive(source, tmp_path / "raw", progress=False)
    assert not list(tmp_path.rglob("escaped.mid"))
    _assert_nothing_extracted(tmp_path / "raw", "lmd")


def test_a_fake_content_length_leaves_no_partial_archive(tmp_path, serve, monkeypatch):
    base = serve(handler=_handler({"/lmd.tar.gz": _body(b"tiny", length=10**9)}))
    archive = tmp_path / "lmd.tar.gz"
    archive.write_bytes(b"tiny")
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, "lmd", _source("lmd", archive, f"{base}/lmd.tar.gz"))
    with pytest.raises(DownloadError, match=f"cannot download lmd from {base}/lmd.tar.gz: the body ended after 4 of"):
        datasets.download("lmd", tmp_path / "raw", progress=False)
    assert _leftovers(tmp_path / "raw" / "lmd") == []


def test_an_archive_over_the_size_limit_is_refused_while_downloading(tmp_path, serve, monkeypatch):
    archive = _tgz(tmp_path / "www" / "noise.tar.gz", {"noise.bin": random.Random(3).randbytes(2 * MB)})
    source = _served("lmd", archive, serve, monkeypatch)
    with pytest.raises(TooLarge, match="cannot download lmd from .*is over the limit of 1,048,576"):
        download_archive(source, tmp_path / "raw", progress=False, limits=UnpackLimits(max_bytes=MB))
    assert _leftovers(tmp_path / "raw" / "lmd") == []


def test_a_dripping_dataset_server_times_out(tmp_path, serve, monkeypatch):
    base = serve(handler=_handler({"/lmd.tar.gz": _drip(length=20, every=1.0)}))
    archive = tmp_path / "lmd.tar.gz"
    archive.write_bytes(b"x" * 20)
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, "lmd", _source("lmd", archive, f"{base}/lmd.tar.gz"))
    monkeypatch.setattr("assets.scores.datasets.archives.DEADLINE_S", 2)
    with pytest.raises(DownloadTimeout, match="cannot download lmd from .*deadline. Download it on a machine"):
        datasets.download("lmd", tmp_path / "raw", progress=False)
    assert _leftovers(tmp_path / "raw" / "lmd") == []


# --- the CLI: one line, nothing left -------------------------------------------------------


def test_cli_reports_a_bomb_as_one_line(tmp_path, serve, monkeypatch, capsys):
    monkeypatch.setenv("BATON_HOME", str(tmp_path / "home"))
    archive = _zip(tmp_path / "www" / "bomb.zip", {"bomb.bin": bytes(20 * MB)})
    _served("maestro", archive, serve, monkeypatch)
    assert main(["datasets", "download", "maestro"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: refusing to unpack ") and err.endswith("reached at member 'bomb.bin'")
    _assert_nothing_extracted(tmp_path / "home" / "raw", "maestro")


def test_cli_refuses_a_redirect_to_a_local_file_as_a_usage_error(tmp_path, serve, monkeypatch, capsys):
    monkeypatch.setenv("BATON_HOME", str(tmp_path / "home"))
    archive = _zip(tmp_path / "local.zip", {"a.mid": b"MThd"})
    base = serve(handler=_handler({"/maestro.zip": _redirect(archive.as_uri())}))
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, "maestro", _source("maestro", archive, f"{base}/maestro.zip"))
    assert main(["datasets", "download", "maestro"]) == 2
    assert capsys.readouterr().err == (
        f"error: {base}/maestro.zip redirects to {archive.as_uri()!r}: only http(s) URLs are downloaded\n"
    )
    assert _leftovers(tmp_path / "home" / "raw" / "maestro") == []


# --- the hymnal crawl ------------------------------------------------------------------------


def _hymnal(name: str, base_url: str, monkeypatch) -> None:
    source = muspy_sources.REMOTE_SOURCES[name]
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, name, dataclasses.replace(source, base_url=base_url))


def test_hymnal_refuses_a_non_http_base_url(tmp_path, monkeypatch):
    _hymnal("hymnal", (tmp_path / "site").as_uri(), monkeypatch)
    with pytest.raises(UnsupportedURL):
        datasets.download("hymnal", tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_hymnal_refuses_a_redirect_to_ftp(tmp_path, serve, monkeypatch):
    routes = {"/en/hymn/h/1/f=mid": _redirect("ftp://127.0.0.1/1.mid")}
    _hymnal("hymnal", serve(handler=_handler(routes)), monkeypatch)
    with pytest.raises(UnsupportedURL, match="redirects to 'ftp://127.0.0.1/1.mid'"):
        datasets.download("hymnal", tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw" / "hymnal" / ".complete").exists()


def test_hymnal_refuses_an_oversized_file_and_keeps_no_part(tmp_path, serve, monkeypatch):
    routes = {"/en/hymn/h/1/f=mid": _body(b"MThd", length=10**9, content_type="audio/midi")}
    _hymnal("hymnal", serve(handler=_handler(routes)), monkeypatch)
    with pytest.raises(TooLarge, match="cannot download hymnal from .*/en/hymn/h/1/f=mid: Content-Length"):
        datasets.download("hymnal", tmp_path / "raw", progress=False)
    classic = tmp_path / "raw" / "hymnal" / "extracted" / "Classic"
    assert _leftovers(classic) == [] and not (tmp_path / "raw" / "hymnal" / ".complete").exists()
