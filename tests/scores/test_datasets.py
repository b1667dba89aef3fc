import dataclasses
import hashlib
import http.server
import json
import os
import socket
import tarfile
import urllib.parse
import zipfile
from pathlib import Path

import music21
import pytest

from assets.core.http import UnsupportedURL
from assets.scores import datasets
from assets.scores.datasets import (
    ChecksumError,
    DownloadError,
    ScoreItem,
    muspy_sources,
)
from assets.scores.datasets.music21_corpus import COLLECTIONS
from assets.scores.readers import read_item

from .conftest import ABC_TWO_TUNES, KERN, write_midi

ARCHIVES = [n for n, s in muspy_sources.REMOTE_SOURCES.items() if isinstance(s, muspy_sources.ArchiveSource)]


# --- music21 corpus collections -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COLLECTIONS))
def test_collection_items_are_sorted_unique_and_exist(name):
    items = datasets.list_items(name, "/nonexistent")
    assert items, name
    ids = [item.item_id for item in items]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(Path(item.path).is_file() and item.dataset == name for item in items)
    assert {item.format for item in items} <= {"musicxml", "abc", "humdrum"}
    assert datasets.get_info(name).kind == "music21"


@pytest.mark.parametrize("name", ["essen", "oneills"])
def test_abc_collections_count_tunes_not_files(name):
    items = datasets.list_items(name, "/nonexistent")
    files = {item.path for item in items}
    assert len(items) > 10 * len(files)
    assert all(item.number is not None and item.item_id.endswith(f"#X{item.number}") for item in items)


def test_bach_chorales_are_chorales_only():
    ids = {item.item_id for item in datasets.list_items("bach_chorales", "/nonexistent")}
    assert "bach/bwv66.6.mxl" in ids
    assert "bach/bwv846.mxl" not in ids  # a Well-Tempered Clavier prelude
    assert not any(i.endswith(".krn") or "choraleAnalyses" in i for i in ids)  # duplicates, analyses
    assert len(ids) > 350


def test_quartet_collections_hold_quartets_only():
    mozart = {item.item_id for item in datasets.list_items("mozart_quartets", "/nonexistent")}
    assert not any("k545" in i for i in mozart)  # a piano sonata
    assert any(i.startswith("mozart/k458/") for i in mozart)
    beethoven = datasets.list_items("beethoven_quartets", "/nonexistent")
    assert all(item.format == "musicxml" for item in beethoven)  # not the opus18no1 Humdrum copies
    monteverdi = datasets.list_items("monteverdi", "/nonexistent")
    assert all(item.item_id.endswith(".mxl") for item in monteverdi)  # not the .rntxt analyses


def test_get_info_unknown_name_lists_known_names():
    with pytest.raises(KeyError, match="bach_chorales"):
        datasets.get_info("no_such_dataset")


def test_list_datasets_covers_every_kind(tmp_path):
    registry = tmp_path / "local.json"
    datasets.register_local("mine", tmp_path, registry)
    infos = {info.name: info for info in datasets.list_datasets(registry)}
    assert {"bach_chorales", "lmd", "maestro", "hymnal", "mine"} <= set(infos)
    assert {info.kind for info in infos.values()} == {"music21", "remote", "local"}


# --- local folders --------------------------------------------------------------------------


@pytest.fixture
def user_folder(tmp_path):
    folder = tmp_path / "scores"
    write_midi(folder / "a.mid")
    write_midi(folder / "deep" / "B.MIDI")
    (folder / "tunes.abc").write_text(ABC_TWO_TUNES)
    (folder / "deep" / "piece.krn").write_text(KERN)
    (folder / "notes.txt").write_text("not music")
    (folder / "README").write_text("no suffix")
    (folder / ".hidden.mid").write_bytes(b"skip me")
    (folder / ".git").mkdir()
    (folder / ".git" / "x.mid").write_bytes(b"skip me")
    return folder


def test_local_folder_lists_every_visible_file(tmp_path, user_folder):
    registry = tmp_path / "local.json"
    datasets.register_local("mine", user_folder, registry)
    items = datasets.list_items("mine", tmp_path / "raw", registry_file=registry)
    by_id = {item.item_id: item for item in items}
    assert list(by_id) == sorted(by_id)
    assert set(by_id) == {
        "README", "a.mid", "deep/B.MIDI", "deep/piece.krn", "notes.txt", "tunes.abc#X3", "tunes.abc#X7",
    }
    assert by_id["deep/B.MIDI"].format == "midi"
    assert by_id["deep/piece.krn"].format == "humdrum"
    assert by_id["notes.txt"].format == by_id["README"].format == "unknown"
    assert by_id["tunes.abc#X7"].number == 7
    assert by_id["a.mid"].path == str((user_folder / "a.mid").resolve())


def test_registry_persists_and_is_found_through_the_environment(tmp_path, user_folder, monkeypatch):
    registry = tmp_path / "home" / "local_datasets.json"
    datasets.register_local("mine", user_folder, registry)
    datasets.register_local("other", user_folder / "deep", registry)
    assert json.loads(registry.read_text()) == {"mine": str(user_folder), "other": str(user_folder / "deep")}
    monkeypatch.setenv("BATON_LOCAL_DATASETS", str(registry))
    assert [i.item_id for i in datasets.list_items("other", tmp_path)] == ["B.MIDI", "piece.krn"]
    assert datasets.get_info("other").kind == "local"
    monkeypatch.delenv("BATON_LOCAL_DATASETS")
    with pytest.raises(KeyError):
        datasets.get_info("other")


@pytest.mark.parametrize("name", ["essen", "incoming_x", "Bad Name", "a/b"])
def test_register_local_rejects_reserved_or_invalid_names(tmp_path, name):
    with pytest.raises(ValueError, match="invalid local dataset name"):
        datasets.register_local(name, tmp_path, tmp_path / "r.json")


def test_register_local_needs_an_existing_folder(tmp_path):
    with pytest.raises(NotADirectoryError):
        datasets.register_local("gone", tmp_path / "missing", tmp_path / "r.json")


def test_incoming_batch_maps_to_raw_incoming_folder(tmp_path):
    write_midi(tmp_path / "raw" / "incoming" / "batch1" / "drop.mid")
    items = datasets.list_items("incoming_batch1", tmp_path / "raw")
    assert items == [ScoreItem("incoming_batch1", "drop.mid", str(tmp_path / "raw/incoming/batch1/drop.mid"), "midi")]
    with pytest.raises(FileNotFoundError):
        datasets.list_items("incoming_missing", tmp_path / "raw")
    with pytest.raises(KeyError):
        datasets.list_items("incoming_..", tmp_path / "raw")


def test_unreadable_abc_file_stays_one_item_for_the_reader_to_reject(tmp_path):
    (tmp_path / "locked.abc").write_text(ABC_TWO_TUNES)
    (tmp_path / "locked.abc").chmod(0)
    datasets.register_local("locked", tmp_path, tmp_path / "r.json")
    items = datasets.list_items("locked", tmp_path, tmp_path / "r.json")
    if os.access(tmp_path / "locked.abc", os.R_OK):  # root reads it whatever its mode
        assert [(i.item_id, i.number) for i in items] == [("locked.abc#X3", 3), ("locked.abc#X7", 7), ("r.json", None)]
    else:
        assert [(i.item_id, i.number) for i in items] == [("locked.abc", None), ("r.json", None)]


# --- remote archives, served from a loopback HTTP server ------------------------------------


def _score_bytes(suffix: str, tmp_path: Path) -> bytes:
    if suffix in (".mid", ".midi"):
        return write_midi(tmp_path / f"x{suffix}").read_bytes()
    if suffix == ".abc":
        return ABC_TWO_TUNES.encode()
    if suffix == ".hrm":
        return KERN.encode()
    score = music21.converter.parseData(ABC_TWO_TUNES, format="abc", number=3)
    return Path(score.write("mxl", fp=tmp_path / "x.mxl")).read_bytes()


def _build_archive(source, folder: Path, tmp_path: Path) -> Path:
    """An archive with the source's name holding two score files, a metadata file and macOS debris."""
    suffix = source.suffixes[0]
    members = {
        f"top/2004/one{suffix}": _score_bytes(suffix, tmp_path),
        f"top/2005/two{suffix}": _score_bytes(suffix, tmp_path),
        "top/metadata.csv": b"a,b\n",
        f"__MACOSX/top/2004/._one{suffix}": b"\x00\x05\x16\x07",
    }
    archive = folder / source.filename
    archive.parent.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        staging = tmp_path / "staging"
        for name, data in members.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        with tarfile.open(archive, "w:gz") as tf:
            for name in members:
                tf.add(staging / name, arcname=name)
    return archive


def _serve_source(monkeypatch, name, served: Path, base_url: str, **changes):
    data = served.read_bytes()
    source = muspy_sources.REMOTE_SOURCES[name]
    fields = {
        "url": f"{base_url}/{urllib.parse.quote(served.name)}",
        "md5": hashlib.md5(data).hexdigest() if source.md5 else None,
        "sha256": hashlib.sha256(data).hexdigest() if source.sha256 else None,
    }
    source = dataclasses.replace(source, **(fields | changes))
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, name, source)
    return source


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("name", ARCHIVES)
def test_download_extracts_and_lists_every_archive_dataset(name, tmp_path, serve, monkeypatch):
    source = muspy_sources.REMOTE_SOURCES[name]
    archive = _build_archive(source, tmp_path / "www", tmp_path)
    _serve_source(monkeypatch, name, archive, serve(tmp_path / "www"))
    raw = tmp_path / "raw"
    with pytest.raises(FileNotFoundError, match=f"baton datasets download {name}"):
        datasets.list_items(name, raw)

    out = datasets.download(name, raw, progress=False)

    assert Path(out) == raw / name / "extracted" and (raw / name / ".complete").is_file()
    items = datasets.list_items(name, raw)
    ids = [item.item_id for item in items]
    suffix = source.suffixes[0]
    if suffix == ".abc":
        assert ids == [f"top/2004/one.abc#X{n}" for n in (3, 7)] + [f"top/2005/two.abc#X{n}" for n in (3, 7)]
    else:
        assert ids == [f"top/2004/one{suffix}", f"top/2005/two{suffix}"]
    music = read_item(items[0])
    # write_midi's three notes; the ABC, kern and MusicXML fixtures hold eight
    assert sum(len(t.notes) for t in music.tracks) == (3 if suffix in (".mid", ".midi") else 8)


def test_download_is_idempotent_and_needs_no_network_once_complete(tmp_path, serve, monkeypatch):
    archive = _build_archive(muspy_sources.REMOTE_SOURCES["lmd"], tmp_path / "www", tmp_path)
    source = _serve_source(monkeypatch, "lmd", archive, serve(tmp_path / "www"))
    first = datasets.download("lmd", tmp_path / "raw", progress=False)
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, "lmd", dataclasses.replace(source, url=_dead_url() + "/x"))
    assert datasets.download("lmd", tmp_path / "raw", progress=False) == first


def test_checksum_mismatch_fails_and_leaves_nothing_extracted(tmp_path, serve, monkeypatch):
    archive = _build_archive(muspy_sources.REMOTE_SOURCES["maestro"], tmp_path / "www", tmp_path)
    _serve_source(monkeypatch, "maestro", archive, serve(tmp_path / "www"), sha256="0" * 64)
    with pytest.raises(ChecksumError, match="sha256 checksum mismatch"):
        datasets.download("maestro", tmp_path / "raw", progress=False)
    assert sorted(p.name for p in (tmp_path / "raw" / "maestro").iterdir()) == []
    with pytest.raises(FileNotFoundError):
        datasets.list_items("maestro", tmp_path / "raw")


def test_unreachable_server_gives_one_clear_error(tmp_path, monkeypatch):
    source = muspy_sources.REMOTE_SOURCES["nes"]
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, "nes", dataclasses.replace(source, url=_dead_url() + "/n.tgz"))
    target = tmp_path / "raw" / "nes" / "nesmdb_midi.tar.gz"
    with pytest.raises(DownloadError) as error:
        datasets.download("nes", tmp_path / "raw", progress=False)
    message = str(error.value)
    assert message.startswith("cannot download nes from http://127.0.0.1:")
    assert message.endswith(f"Download it on a machine with internet and place the archive at {target}")
    assert not target.exists() and not target.with_name(target.name + ".part").exists()


def test_archive_placed_by_hand_is_verified_and_used_offline(tmp_path, monkeypatch):
    archive = _build_archive(muspy_sources.REMOTE_SOURCES["wikifonia"], tmp_path / "raw" / "wikifonia", tmp_path)
    _serve_source(monkeypatch, "wikifonia", archive, _dead_url())
    datasets.download("wikifonia", tmp_path / "raw", progress=False)
    assert [i.item_id for i in datasets.list_items("wikifonia", tmp_path / "raw")] == [
        "top/2004/one.mxl", "top/2005/two.mxl",
    ]


def test_wrong_archive_placed_by_hand_is_refused(tmp_path, monkeypatch):
    archive = _build_archive(muspy_sources.REMOTE_SOURCES["emopia"], tmp_path / "raw" / "emopia", tmp_path)
    _serve_source(monkeypatch, "emopia", archive, _dead_url(), md5="f" * 32)
    with pytest.raises(ChecksumError, match="delete or replace it"):
        datasets.download("emopia", tmp_path / "raw", progress=False)
    assert archive.exists() and not (tmp_path / "raw" / "emopia" / "extracted").exists()


def test_single_file_source_is_kept_as_downloaded(tmp_path, serve, monkeypatch):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "data.json").write_text('{"train": [[60, 64]]}')
    _serve_source(
        monkeypatch, "jsb_chorales", tmp_path / "www" / "data.json", serve(tmp_path / "www"),
        filename="data.json", archive=False,
    )
    out = Path(datasets.download("jsb_chorales", tmp_path / "raw", progress=False))
    assert json.loads((out / "data.json").read_text()) == {"train": [[60, 64]]}


@pytest.mark.parametrize("scheme", ["file", "data"])
def test_only_http_urls_are_fetched(scheme, tmp_path, serve, monkeypatch):
    archive = _build_archive(muspy_sources.REMOTE_SOURCES["lmd"], tmp_path / "www", tmp_path)
    url = archive.as_uri() if scheme == "file" else "data:application/gzip;base64,AAAA"
    # matching checksums, so only the scheme check can stop a file:// fetch
    _serve_source(monkeypatch, "lmd", archive, "unused", url=url)
    with pytest.raises(UnsupportedURL, match=r"only http\(s\) URLs are downloaded") as error:
        datasets.download("lmd", tmp_path / "raw", progress=False)
    assert url in str(error.value) and isinstance(error.value, ValueError)  # the CLI's usage error
    assert not (tmp_path / "raw").exists()

    _serve_source(monkeypatch, "lmd", archive, serve(tmp_path / "www"))
    assert (Path(datasets.download("lmd", tmp_path / "raw", progress=False)) / "top/2004/one.mid").is_file()


def test_download_refuses_non_remote_datasets(tmp_path):
    with pytest.raises(ValueError, match="not remote"):
        datasets.download("essen", tmp_path)


# --- hymnal.net crawl -----------------------------------------------------------------------


def _hymnal_handler(files: dict[str, bytes]):
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, body: bool):
            data = files.get(self.path)
            self.send_response(200 if data else 404)
            self.send_header("Content-Type", "audio/midi" if data else "text/html")
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            if body and data:
                self.wfile.write(data)

        def do_HEAD(self):
            self._answer(body=False)

        def do_GET(self):
            self._answer(body=True)

        def log_message(self, *args):
            pass

    return Handler


@pytest.mark.parametrize("name, file_type", [("hymnal", "mid"), ("hymnal_tune", "tune")])
def test_hymnal_crawl_lists_midi_items(name, file_type, tmp_path, serve, monkeypatch):
    midi = write_midi(tmp_path / "h.mid").read_bytes()
    paths = [f"/en/hymn/h/{n}/f={file_type}" for n in (1, 2, 4)] + [f"/en/hymn/c/1/f={file_type}"]
    base = serve(handler=_hymnal_handler({p: midi for p in paths}))
    source = muspy_sources.REMOTE_SOURCES[name]
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, name, dataclasses.replace(source, base_url=base))

    datasets.download(name, tmp_path / "raw", progress=False)

    ids = [item.item_id for item in datasets.list_items(name, tmp_path / "raw")]
    assert ids == ["Children/1.mid", "Classic/1.mid", "Classic/2.mid", "Classic/4.mid"]
    assert [n.pitch for n in read_item(datasets.list_items(name, tmp_path / "raw")[0]).tracks[0].notes] == [60, 64, 67]


def test_hymnal_crawl_offline_error(tmp_path, monkeypatch):
    source = muspy_sources.REMOTE_SOURCES["hymnal"]
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, "hymnal", dataclasses.replace(source, base_url=_dead_url()))
    with pytest.raises(DownloadError, match="cannot download hymnal from http://127.0.0.1"):
        datasets.download("hymnal", tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw" / "hymnal" / ".complete").exists()
