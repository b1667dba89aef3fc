from pathlib import Path

import pytest

from assets.violin import manifests
from assets.violin.sources import Recording

RECORDING = Recording(
    id="r1", url=None, path=None, start=0.0, end=1.0, performer="P", work="BWV1001", movement=1, title="Adagio",
    score="s", score_path=None, repeat1=None, repeat2=None, baroque_tuning=False, collection="garner",
    source_filename="r1.wav", license="PD",
)  # fmt: skip


def test_an_unknown_manifest_says_what_a_manifest_can_be(tmp_path: Path):
    with pytest.raises(manifests.UnknownManifest, match="'sample', 'release' or an info.csv"):
        manifests.read_recordings(str(tmp_path / "nowhere.csv"), str(tmp_path))


def test_the_sample_is_the_local_part_of_its_own_info_csv(sample_dir: Path, tmp_path: Path):
    sample, folder = manifests.read_recordings(manifests.SAMPLE, str(tmp_path))
    assert folder == sample_dir and len(sample) == 3
    by_path, folder = manifests.read_recordings(str(sample_dir / "info.csv"), str(tmp_path))
    assert folder == sample_dir and {r.id for r in sample} < {r.id for r in by_path}


def write_alignment(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("start,end\n")
    return str(path)


@pytest.mark.parametrize(
    "where",
    [
        "info/alignments/r1.csv",  # flat, beside info.csv
        "info/alignments/garner/r1.csv",  # by collection, as the release has them
        "alignments/garner/r1.csv",  # the release root, info.csv in a subfolder of it
        "alignments/r1.csv",
    ],
)
def test_a_published_alignment_is_found_in_each_layout_of_the_release(tmp_path: Path, where: str):
    path = write_alignment(tmp_path / "release" / where)
    found = manifests.published_alignment(tmp_path / "release" / "info", RECORDING)
    assert found.path == path and found.describe() == path and path in found.searched


def test_the_alignment_nearest_the_manifest_wins(tmp_path: Path):
    write_alignment(tmp_path / "alignments" / "garner" / "r1.csv")
    nearest = write_alignment(tmp_path / "info" / "alignments" / "garner" / "r1.csv")
    assert manifests.published_alignment(tmp_path / "info", RECORDING).path == nearest


def test_no_published_alignment_says_where_it_was_looked_for(tmp_path: Path):
    write_alignment(tmp_path / "info" / "alignments" / "garner" / "r2.csv")  # another recording's
    write_alignment(tmp_path / "a" / "b" / "alignments" / "r1.csv")  # three levels up: too far
    found = manifests.published_alignments(tmp_path / "a" / "b" / "c" / "d" / "info", [RECORDING])["r1"]
    assert found.path is None
    assert found.searched == tuple(
        str(tmp_path / base / "alignments" / sub / "r1.csv")
        for base in ("a/b/c/d/info", "a/b/c/d", "a/b/c") for sub in ("", "garner")
    )
    assert found.describe() == f"none found (searched: {', '.join(found.searched)})"


def test_the_sample_finds_its_published_alignments(sample_dir: Path, tmp_path: Path):
    sample, folder = manifests.read_recordings(manifests.SAMPLE, str(tmp_path))
    found = manifests.published_alignments(folder, sample)
    assert {r.id: found[r.id].path for r in sample} == {
        r.id: str(sample_dir / "alignments" / f"{r.id}.csv") for r in sample
    }
