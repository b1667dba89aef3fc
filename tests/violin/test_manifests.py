from dataclasses import replace
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


def test_published_alignments_are_found_flat_or_under_their_collection(tmp_path: Path):
    (tmp_path / "alignments" / "garner").mkdir(parents=True)
    (tmp_path / "alignments" / "garner" / "r1.csv").write_text("start,end\n")
    (tmp_path / "alignments" / "r2.csv").write_text("start,end\n")
    found = manifests.published_alignments(tmp_path, [RECORDING, replace(RECORDING, id="r2"), replace(RECORDING, id="r3")])
    assert found == {
        "r1": str(tmp_path / "alignments" / "garner" / "r1.csv"), "r2": str(tmp_path / "alignments" / "r2.csv"), "r3": None
    }
