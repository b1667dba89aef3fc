"""Collections shipped inside the installed music21 package's corpus directory.

Each collection is a folder plus glob patterns. The patterns encode what inspecting
the corpus showed: the bach folder also holds the Well-Tempered Clavier prelude
bwv846 and Humdrum duplicates of three chorales; mozart/k545 is a piano sonata;
beethoven/opus18no1 has Humdrum copies of its MusicXML movements; monteverdi
holds Roman-numeral analyses (.rntxt) next to the madrigals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import music21

from .formats import items_for_file
from .items import DatasetInfo, ScoreItem

CORPUS_DIR = Path(music21.__file__).parent / "corpus"
_LICENSE = "music21 corpus: distributed with permission of the encoders (see music21/corpus/license.txt)"
_HOME = "https://web.mit.edu/music21/doc/about/referenceCorpus.html"


@dataclass(frozen=True)
class Collection:
    info: DatasetInfo
    folder: str  # relative to CORPUS_DIR
    patterns: tuple[str, ...]  # globs relative to folder
    exclude: frozenset[str] = frozenset()  # file names to leave out


def _collection(
    name: str, title: str, description: str, folder: str, *patterns: str, exclude: tuple[str, ...] = ()
) -> Collection:
    info = DatasetInfo(name, title, "music21", description, _LICENSE, _HOME)
    return Collection(info, folder, patterns, frozenset(exclude))


COLLECTIONS: dict[str, Collection] = {
    c.info.name: c
    for c in (
        _collection(
            "bach_chorales", "Bach chorales", "J.S. Bach's four-part chorale harmonizations (MusicXML).",
            "bach", "bwv*.mxl", "bwv*.xml", exclude=("bwv846.mxl",),
        ),
        _collection(
            "palestrina", "Palestrina masses", "Palestrina's mass movements (Humdrum).", "palestrina", "**/*.krn"
        ),
        _collection(
            "ryans_mammoth", "Ryan's Mammoth Collection", "Fiddle tunes from Ryan's Mammoth Collection, 1883 (ABC).",
            "ryansMammoth", "**/*.abc",
        ),
        _collection(
            "essen", "Essen Folksong Collection", "European and Chinese folk songs (ABC).", "essenFolksong", "*.abc"
        ),
        _collection(
            "oneills", "O'Neill's Music of Ireland", "Irish tunes from O'Neill's 1850 collection (ABC).",
            "oneills1850", "*.abc",
        ),
        _collection(
            "nottingham", "Nottingham Music Database (music21 sample)", "British and American folk tunes (ABC).",
            "nottingham-dataset", "*.abc",
        ),
        _collection("monteverdi", "Monteverdi madrigals", "Monteverdi's madrigals (MusicXML).", "monteverdi", "*.mxl"),
        _collection(
            "trecento", "Trecento", "Fourteenth-century Italian songs (MusicXML).", "trecento", "*.xml", "*.mxl",
        ),
        _collection(
            "haydn_quartets", "Haydn string quartets", "Haydn's string quartets op. 1 no. 1 and op. 74 no. 1.",
            "haydn", "opus1no1/*.mxl", "opus74no1/*.mxl",
        ),
        _collection(
            "mozart_quartets", "Mozart string quartets", "Mozart's string quartets K. 80, 155, 156 and 458.",
            "mozart", "k80/*.mxl", "k155/*.mxl", "k156/*.mxl", "k458/*.mxl",
        ),
        _collection(
            "beethoven_quartets", "Beethoven string quartets",
            "Beethoven's string quartets op. 18, 59, 74, 132 and 133 (MusicXML).",
            "beethoven", "*.mxl", "opus18no1/*.mxl", "opus59no*/*.mxl",
        ),
    )
}


def list_collection(name: str) -> list[ScoreItem]:
    """Items of a corpus collection; ids are paths relative to the corpus directory."""
    collection = COLLECTIONS[name]
    folder = CORPUS_DIR / collection.folder
    paths = {p for pattern in collection.patterns for p in folder.glob(pattern) if p.is_file()}
    return [
        item
        for path in sorted(paths)
        if path.name not in collection.exclude
        for item in items_for_file(name, CORPUS_DIR, path)
    ]
