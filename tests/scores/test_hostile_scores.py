"""Crafted score files cost bounded time, memory and reach: each becomes a reject, the rest is ingested."""

import os
import signal
import time
import zipfile
from pathlib import Path

import dagster as dg
import pytest

from assets.core.rejects import Reject
from assets.scores import ingest, readers
from assets.scores.datasets import list_items, register_local
from pipelines.definitions import build_defs
from storage import shards

from .conftest import write_midi

TIMEOUT_S = 5.0  # far above the milliseconds a small MIDI file takes, far below the hang

DOCTYPE = (
    '<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 3.1 Partwise//EN" '
    '"http://www.musicxml.org/dtds/partwise.dtd">'
)


def musicxml(part_name: str = "Violin", title: str = "Air", doctype: str = DOCTYPE) -> str:
    """A real one-part MusicXML file of two notes, with the standard DOCTYPE."""
    notes = "".join(
        f"<note><pitch><step>{step}</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type></note>"
        for step in "CE"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{doctype}<score-partwise version="3.1">'
        f"<work><work-title>{title}</work-title></work>"
        f'<part-list><score-part id="P1"><part-name>{part_name}</part-name></score-part></part-list>'
        f'<part id="P1"><measure number="1"><attributes><divisions>1</divisions></attributes>{notes}</measure></part>'
        "</score-partwise>"
    )


BOMB_DTD = (
    '<!DOCTYPE score-partwise [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
)


def mxl(path: Path, xml: str) -> Path:
    """A compressed MusicXML container holding ``xml`` as its root file."""
    container = (
        '<?xml version="1.0"?><container><rootfiles><rootfile full-path="score.xml" '
        'media-type="application/vnd.recordare.musicxml+xml"/></rootfiles></container>'
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("META-INF/container.xml", container)
        archive.writestr("score.xml", xml)
    return path


def by_item(items, results) -> dict:
    assert len(results) == len(items)
    return {item.item_id: result for item, result in zip(items, results)}


def local_items(tmp_path: Path, folder: Path):
    register_local("hostile", folder, tmp_path / "local.json")
    return list_items("hostile", tmp_path / "raw", tmp_path / "local.json")


@pytest.fixture
def hostile_midi(monkeypatch):
    """The MIDI parser, except that it kills its own process on crash.mid, hangs on hang.mid and
    takes ever more memory on hog.mid.

    Patched before any worker starts: the workers are forked, so they run it too."""
    original = readers.PARSERS["midi"]

    def parse(item, resolution):
        name = Path(item.path).name
        if name == "crash.mid":
            os.kill(os.getpid(), signal.SIGKILL)
        if name == "hang.mid":
            time.sleep(3600)
        if name == "hog.mid":
            held = []
            while True:  # 64 MiB a step, written so the pages are resident
                held.append(bytearray(os.urandom(1)) * (64 << 20))
                time.sleep(0.05)
        return original(item, resolution)

    monkeypatch.setitem(readers.PARSERS, "midi", parse)


def test_a_hung_and_a_crashing_parser_become_rejects_and_every_other_file_is_ingested(tmp_path, hostile_midi):
    folder = tmp_path / "scores"
    for i in range(8):
        write_midi(folder / f"{i:02d}.mid", notes=((0, 60 + i, 24),))
    write_midi(folder / "crash.mid")
    write_midi(folder / "hang.mid")
    items = local_items(tmp_path, folder)
    results = by_item(items, list(ingest.parse_all(items, workers=2, limits=ingest.Limits(timeout_s=TIMEOUT_S))))

    crash, hang = results.pop("crash.mid"), results.pop("hang.mid")
    assert (crash.stage, crash.error_type) == ("parse", "WorkerCrashed")
    assert crash.message == "the parser process died (killed by SIGKILL)"
    assert (hang.stage, hang.error_type) == ("parse", "ParseTimeout")
    assert "longer than the limit of 5 s" in hang.message
    assert [r.song["song"] for r in results.values()] == [f"{i:02d}.mid" for i in range(8)]
    assert [r.notes.column("pitch").to_pylist() for r in results.values()] == [[60 + i] for i in range(8)]


def test_a_parser_outgrowing_the_memory_limit_is_killed_and_the_rest_ingested(tmp_path, hostile_midi):
    folder = tmp_path / "scores"
    for i in range(3):
        write_midi(folder / f"{i}.mid", notes=((0, 60 + i, 24),))
    write_midi(folder / "hog.mid")
    items = local_items(tmp_path, folder)
    limits = ingest.Limits(timeout_s=60.0, max_memory_mb=300.0)
    results = by_item(items, list(ingest.parse_all(items, workers=2, limits=limits)))

    hog = results.pop("hog.mid")
    assert (hog.stage, hog.error_type) == ("parse", "ParseMemory")
    assert hog.message == "parsing took more than the limit of 300 MB of memory; the parser was killed"
    assert [r.song["song"] for r in results.values()] == ["0.mid", "1.mid", "2.mid"]


def test_job_run_with_hostile_files_completes_and_reruns_byte_identical(tmp_path, home, hostile_midi):
    batch = Path(home.raw) / "incoming" / "hostile"
    for i in range(3):
        write_midi(batch / f"{i}.mid", notes=((0, 60 + i, 24), (24, 62, 24)))
    write_midi(batch / "crash.mid")
    write_midi(batch / "hang.mid")
    write_midi(batch / "dense.mid", notes=tuple((t, 60, 1) for t in range(50)))
    (batch / "bomb.musicxml").write_text(musicxml(part_name="&c;", doctype=BOMB_DTD))
    partition, defs = "incoming_hostile", build_defs(home)
    config = {"ops": {"ingest_scores": {"config": {"parse_timeout_s": TIMEOUT_S, "max_notes_per_file": 10, "workers": 2}}}}
    manifests = []
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("datasets", [partition])
        for _ in range(2):
            result = defs.resolve_job_def("ingest_scores_job").execute_in_process(
                instance=instance, partition_key=partition, run_config=config, raise_on_error=False
            )
            assert result.success is False  # 4 rejects of 7 files: the reject-rate check blocks downstream
            manifests.append([s.sha256 for s in shards.read_manifest(home.datasets, "notes", partition).shards])
    rejects = shards.read_table(home.datasets, "notes_rejects", partition).to_pandas()
    assert dict(zip(rejects["item"], rejects["error_type"])) == {
        "bomb.musicxml": "XMLEntities",
        "crash.mid": "WorkerCrashed",
        "dense.mid": "TooManyNotes",
        "hang.mid": "ParseTimeout",
    }
    assert "holds 50 notes, more than the limit of 10" in rejects.set_index("item")["message"]["dense.mid"]
    assert shards.read_table(home.datasets, "songs", partition).column("song").to_pylist() == ["0.mid", "1.mid", "2.mid"]
    assert manifests[0] == manifests[1]


@pytest.mark.parametrize("container", ["musicxml", "xml", "mxl"])
def test_xml_declaring_entities_is_refused_and_a_standard_doctype_parses(tmp_path, container):
    folder = tmp_path / "scores"
    folder.mkdir()
    bomb, normal = musicxml(part_name="&c;&c;&c;", doctype=BOMB_DTD), musicxml()
    if container == "mxl":
        mxl(folder / "bomb.mxl", bomb)
        mxl(folder / "normal.mxl", normal)
    else:
        (folder / f"bomb.{container}").write_text(bomb)
        (folder / f"normal.{container}").write_text(normal)
    items = local_items(tmp_path, folder)
    results = by_item(items, list(ingest.parse_all(items, workers=2)))
    refused, parsed = results[f"bomb.{container}"], results[f"normal.{container}"]
    assert isinstance(refused, Reject) and (refused.stage, refused.error_type) == ("parse", "XMLEntities")
    assert "declares XML entities; refused before parsing" in refused.message
    assert isinstance(parsed, ingest.Parsed), parsed
    assert parsed.notes.column("pitch").to_pylist() == [60, 64]
    assert set(parsed.notes.column("part_name").to_pylist()) == {"Violin"}


def test_titles_and_part_names_are_capped_so_no_text_multiplies_into_every_note(tmp_path):
    folder = tmp_path / "scores"
    folder.mkdir()
    (folder / "long.musicxml").write_text(musicxml(part_name="P" * 10_000, title="T" * 10_000))
    (parsed,) = ingest.parse_all(local_items(tmp_path, folder), workers=1)
    assert parsed.song["title"] == "T" * ingest.MAX_TEXT
    assert parsed.notes.column("part_name").to_pylist() == ["P" * ingest.MAX_TEXT] * 2


def test_symlinks_out_of_the_folder_are_refused_unread_and_listing_survives_odd_entries(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.mid"
    secret.write_text("root:SECRET-LINE:0:0\n")
    secret.chmod(0o600)
    write_midi(outside / "real.mid")
    folder = tmp_path / "scores"
    write_midi(folder / "sub" / "good.mid")
    (folder / "x.mid").mkdir()  # a folder named like a score
    write_midi(folder / "x.mid" / "inner.mid")
    (folder / "y.mid").symlink_to(secret)
    (folder / "z.mid").symlink_to(outside / "real.mid")
    (folder / "inside.mid").symlink_to(folder / "sub" / "good.mid")
    (folder / "dangling.mid").symlink_to(folder / "gone.mid")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    items = local_items(tmp_path, folder)
    assert [i.item_id for i in items] == [
        "dangling.mid", "inside.mid", "linked", "sub/good.mid", "x.mid/inner.mid", "y.mid", "z.mid",
    ]  # fmt: skip
    results = by_item(items, list(ingest.parse_all(items, workers=2)))

    for name in ("y.mid", "z.mid", "linked"):
        assert (results[name].stage, results[name].error_type) == ("file", "SymlinkOutsideDataset")
        assert results[name].message == f"symlink points outside the dataset folder: {folder / name}"
    assert (results["dangling.mid"].error_type, results["dangling.mid"].message) == (
        "FileNotFoundError", f"no such file: {folder / 'gone.mid'}",
    )  # fmt: skip
    assert all("SECRET" not in r.message for r in results.values() if isinstance(r, Reject))
    assert results["inside.mid"].song["source_path"] == str(folder / "sub" / "good.mid")
    assert isinstance(results["sub/good.mid"], ingest.Parsed) and isinstance(results["x.mid/inner.mid"], ingest.Parsed)


def test_a_parser_error_quoting_a_file_is_cut_short_and_stripped_of_control_bytes(tmp_path, monkeypatch):
    def quoting(item, resolution):
        raise ValueError("bad token " + Path(item.path).read_text())

    monkeypatch.setitem(readers.PARSERS, "abc", quoting)
    folder = tmp_path / "scores"
    folder.mkdir()
    (folder / "long.abc").write_text("\x1b[2J" + "q" * 5000)
    (reject,) = ingest.parse_all(local_items(tmp_path, folder), workers=1)
    assert reject.message.startswith("cannot parse long.abc: ValueError: bad token ?[2Jqqq")
    assert len(reject.message) < ingest.MAX_REASON + 40 and reject.message.endswith("more characters)")
    assert "\x1b" not in reject.message


def test_midi_claiming_huge_lengths_is_rejected_without_allocating_them(tmp_path):
    folder = tmp_path / "scores"
    write_midi(folder / "good.mid")
    header = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x18"
    sysex = b"\x00\xf0\x8f\xff\xff\x7f"  # a sysex message claiming 2**28 - 1 bytes
    (folder / "sysex.mid").write_bytes(header + b"MTrk\xff\xff\xff\xff" + sysex + b"\x00\xff\x2f\x00")
    (folder / "tracks.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x9c\x40\x00\x18")  # 40000 tracks, none present
    results = by_item(items := local_items(tmp_path, folder), list(ingest.parse_all(items, workers=2)))
    assert isinstance(results["good.mid"], ingest.Parsed)
    assert results["sysex.mid"].stage == "parse" and "exceeds maximum length" in results["sysex.mid"].message
    assert results["tracks.mid"].error_type == "TrackCountMismatch"
