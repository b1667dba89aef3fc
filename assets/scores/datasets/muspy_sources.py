"""Remote datasets MusPy knows, with URLs and checksums copied from muspy 0.5.0 (muspy/datasets/).

Every entry is a public dict value, so a mirror (or a test's loopback server) can
replace one with ``dataclasses.replace(source, url=..., sha256=...)``.
After extraction the score files are found recursively by suffix (skipping hidden
entries and macOS ``__MACOSX`` folders), so the folder layout inside each archive
does not matter. jsb_chorales is the MIDI release muspy 0.5.0 downloads, not the
pickled pitch lists; haydn_op20 is Humdrum (.hrm) with harmonic annotations.
hymnal and hymnal_tune are not archives: they are crawled from hymnal.net (see hymnal.py).
The Lakh MIDI datasets (over 100,000 files each) are split into shards (``DatasetInfo.shards``),
one partition each; the others are small enough to stay one partition.
"""

from __future__ import annotations

from dataclasses import dataclass

from .items import DatasetInfo

CC_BY = "CC BY 4.0"


@dataclass(frozen=True)
class ArchiveSource:
    """One checksummed file to fetch and unpack."""

    info: DatasetInfo
    url: str
    filename: str  # name of the downloaded file under <raw_dir>/<name>/
    suffixes: tuple[str, ...]  # score files to list after extraction
    md5: str | None = None
    sha256: str | None = None
    archive: bool = True  # False: a single file (json, pkl) kept as downloaded


@dataclass(frozen=True)
class CrawlSource:
    """hymnal.net serves one MIDI file per hymn, with no archive and no checksum."""

    info: DatasetInfo
    base_url: str
    file_type: str  # "mid" (full arrangement) or "tune" (melody only)
    suffixes: tuple[str, ...] = (".mid",)


def _info(
    name: str, title: str, description: str, url: str, license: str = "see homepage", shards: int = 1
) -> DatasetInfo:
    return DatasetInfo(name, title, "remote", description, license, url, shards)


_LMD = "https://colinraffel.com/projects/lmd/"
_MAESTRO = "https://magenta.tensorflow.org/datasets/maestro"
_HYMNAL = "https://www.hymnal.net/"

REMOTE_SOURCES: dict[str, ArchiveSource | CrawlSource] = {
    s.info.name: s
    for s in (
        ArchiveSource(
            _info("lmd", "Lakh MIDI Dataset (full)", "176,581 deduplicated MIDI files.", _LMD, CC_BY, shards=64),
            "http://hog.ee.columbia.edu/craffel/lmd/lmd_full.tar.gz", "lmd_full.tar.gz", (".mid",),
            md5="2536ce3fd2cede53ddaa264f731859ab",
            sha256="6fcfe2ac49ca08f3f214cec86ab138d4fc4dabcd7f27f491a838dae6db45a12b",
        ),
        ArchiveSource(
            _info("lmd_matched", "Lakh MIDI Dataset (matched)", "MIDI files matched to the Million Song Dataset.",
                  _LMD, CC_BY, shards=32),
            "http://hog.ee.columbia.edu/craffel/lmd/lmd_matched.tar.gz", "lmd_matched.tar.gz", (".mid",),
            md5="fb80d01c22020295bb3eeef31f1aa63a",
            sha256="621ff830aed771f469e5bfa13dc12a33c6ed69090adeda63d0b5c47783af0191",
        ),
        ArchiveSource(
            _info("lmd_aligned", "Lakh MIDI Dataset (aligned)", "Matched MIDI files aligned to audio previews.",
                  _LMD, CC_BY, shards=16),
            "http://hog.ee.columbia.edu/craffel/lmd/lmd_aligned.tar.gz", "lmd_aligned.tar.gz", (".mid",),
            md5="d36ca9159966d81d97e1e37d10ed4584",
            sha256="2bf5400e82eba73204644946515489b68811e1e656b0cfd854efc14377f6e53b",
        ),
        ArchiveSource(
            _info("maestro", "MAESTRO v3 (MIDI)", "About 200 hours of virtuosic piano performances.", _MAESTRO,
                  "CC BY-NC-SA 4.0"),
            "https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/maestro-v3.0.0-midi.zip",
            "maestro-v3.0.0-midi.zip", (".midi", ".mid"),
            sha256="70470ee253295c8d2c71e6d9d4a815189e35c89624b76d22fce5a019d5dde12c",
        ),
        ArchiveSource(
            _info("nes", "NES Music Database (MIDI)", "Multi-instrumental NES game music.",
                  "https://github.com/chrisdonahue/nesmdb"),
            "http://deepyeti.ucsd.edu/cdonahue/nesmdb/nesmdb_midi.tar.gz", "nesmdb_midi.tar.gz", (".mid",),
            md5="3f3e8ab4f660dd1b19350e5a8a91f3e6",
            sha256="37610e2ca5fe70359c85170cf1f4982596783bb304c59d9c439f68c24ff4ee93",
        ),
        ArchiveSource(
            _info("nottingham_remote", "Nottingham Database", "About 1,200 British and American folk tunes (ABC).",
                  "https://ifdo.ca/~seymour/nottingham/nottingham.html"),
            "http://ifdo.ca/~seymour/nottingham/nottingham_database.zip", "nottingham_database.zip", (".abc",),
            md5="f55c354aaf08bcb6e9b2b3b8d52e4df3",
            sha256="f79a4bffe78b16d630d4d69f9c62775a7aa246d0973c4d8714ab6c5139ff5a3b",
        ),
        ArchiveSource(
            _info("jsb_chorales", "JSB Chorales", "382 four-part Bach chorales with train/valid/test splits (MIDI).",
                  "http://www-etud.iro.umontreal.ca/~boulanni/icml2012"),
            "http://www-etud.iro.umontreal.ca/~boulanni/JSB%20Chorales.zip", "JSB Chorales.zip", (".mid",),
            md5="2fb72faf2659e82e9de08b16f2cca1e9",
            sha256="69924294546a71620c06374085cd6b0300665ea215e2f854f65a11929f1e723c",
        ),
        CrawlSource(
            _info("hymnal", "Hymnal", "Hymns from hymnal.net (MIDI arrangements).", _HYMNAL), _HYMNAL.rstrip("/"), "mid"
        ),
        CrawlSource(
            _info("hymnal_tune", "Hymnal (tunes)", "Hymn melodies from hymnal.net (MIDI).", _HYMNAL),
            _HYMNAL.rstrip("/"), "tune",
        ),
        ArchiveSource(
            _info("wikifonia", "Wikifonia", "6,675 lead sheets (compressed MusicXML).", "http://www.wikifonia.org/"),
            "http://www.synthzone.com/files/Wikifonia/Wikifonia.zip", "Wikifonia.zip", (".mxl",),
            md5="d26e22562e67eb7d37535e96cc5eebba",
            sha256="e7bce509462a73cee175308b6a3cdafa9effd6e8958b3ce03b4edb293cc6b691",
        ),
        ArchiveSource(
            _info("emopia", "EMOPIA", "1,087 pop piano clips with emotion labels (MIDI).",
                  "https://annahung31.github.io/EMOPIA/", CC_BY),
            "https://zenodo.org/record/5257995/files/EMOPIA_2.2.zip", "EMOPIA_2.2.zip", (".mid",),
            md5="bad5171786a4898f37fc2678e99afd94",
        ),
        ArchiveSource(
            _info("haydn_op20", "Haydn Op. 20", "Haydn's 'Sun' quartets with harmonic analysis (Humdrum).",
                  "https://doi.org/10.5281/zenodo.1095630"),
            "https://github.com/napulen/haydn_op20_harm/releases/download/v1.3/haydnop20v1.3_annotated.zip",
            "haydnop20v1.3_annotated.zip", (".hrm",),
            md5="1c65c8da312e1c9dda681d0496bf527f",
            sha256="96986cccebfd37a36cc97a2fc0ebcfbe22d5136e622b21e04ea125d589f5073b",
        ),
        ArchiveSource(
            _info("musicnet", "MusicNet (MIDI)", "330 classical pieces with aligned note labels (MIDI).",
                  "https://homes.cs.washington.edu/~thickstn/musicnet.html"),
            "https://zenodo.org/record/5120004/files/musicnet_midis.tar.gz", "musicnet_midis.tar.gz", (".mid",),
            md5="b5fa98a113bfc51c8a445def9f24dc7e",
            sha256="943cc47731ec5f397bd6fbab4dff78342472890cd484bd30ffb2e16047eef908",
        ),
    )
}
