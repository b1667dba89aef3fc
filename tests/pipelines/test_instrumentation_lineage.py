"""Automatic instrumentation end to end: part notes, models, Table 4.2 evaluation, arrangements, CLI."""

import glob
import os
import shutil

import dagster as dg
import music21
import muspy
import pyarrow.compute as pc
import pytest

from assets.instrumentation import evaluation, part_notes
from pipelines import cli
from pipelines.definitions import build_defs
from storage import shards, tracking

CORPUS = os.path.join(os.path.dirname(music21.__file__), "corpus")
PART = "incoming_chorales"


def keyboard_midi(path, tracks=None):
    """A one-track piano part: a chord progression with a moving top voice."""
    notes = [muspy.Note(48 * i, p + (i % 3), 48, 80) for i in range(16) for p in (48, 55, 64, 72)]
    music = muspy.Music(resolution=24, tempos=[muspy.Tempo(0, 90.0)], tracks=tracks or [muspy.Track(program=0, notes=notes)])
    muspy.write_midi(path, music)
    return str(path)


@pytest.fixture
def lineage(home):
    folder = os.path.join(home.raw, "incoming", "chorales", "bach")  # song names become paths: bach/bwv...
    os.makedirs(folder)
    for path in sorted(glob.glob(os.path.join(CORPUS, "bach", "bwv2[0-9]*.mxl")))[:20]:
        shutil.copy(path, folder)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("datasets", [PART])
        yield build_defs(home), instance, home


def songs_table(home, split: str):
    return shards.read_table(home.datasets, "part_notes", [PART], filter=pc.field("split") == split)


def run(defs, instance, job, partition=None, ops=None):
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition, run_config={"ops": ops or {}})
    assert result.success
    return result


def test_instrumentation_from_chorales_to_arrangements(lineage, tmp_path, monkeypatch, capsys):
    defs, instance, home = lineage
    run(defs, instance, "ingest_scores_job", PART)
    run(defs, instance, "part_notes_job", PART, {"part_notes": {"config": {"scheme": "satb"}}})
    songs = shards.read_table(home.datasets, "part_notes", PART).to_pandas()
    rejects = shards.read_table(home.datasets, "part_notes_rejects", PART).to_pandas()
    assert len(songs) + len(rejects) == 20 and len(songs) >= 15
    assert all(list(names) == ["Soprano", "Alto", "Tenor", "Bass"] for names in songs["part_names"])
    assert set(songs["split"]) == {"train", "valid", "test"}

    for arch in ("lstm", "transformer_encoder"):
        config = {"profile": "smoke", "datasets": [PART], "max_steps": 8}
        run(defs, instance, "part_separation_train", arch, {"part_separation_model": {"config": config}})
    uri = tracking.default_tracking_uri(home)
    assert set(tracking.newest_by_tag(uri, "part_separation", "arch")) == {"lstm", "transformer_encoder"}
    assert tracking.get_alias_version(uri, "part_separation", "champion") is None

    piano = keyboard_midi(tmp_path / "piano.mid")
    drums = keyboard_midi(tmp_path / "drums.mid", [muspy.Track(program=0, is_drum=True, notes=[muspy.Note(0, 38, 12, 90)])])
    ops = {
        "part_separation_eval": {"config": {"datasets": [PART]}},
        "instrumentation": {"config": {"datasets": [PART], "inputs": [piano, drums]}},
    }
    result = run(defs, instance, "instrumentation_eval", ops=ops)
    table = shards.read_table(home.datasets, "part_separation_eval", "__all__").to_pandas()
    models = {"zone-based", "zone-based (oracle)", "closest-pitch", "closest-pitch (mono)", "lstm", "transformer_encoder"}
    assert set(table["model"]) == models
    train, test = (part_notes.from_table(songs_table(home, split)) for split in ("train", "test"))
    baselines = evaluation.results_table(evaluation.baseline_rows(train, test, 4))
    assert table.iloc[: len(baselines)].to_dict("records") == baselines.to_dict("records")
    by_model = table.set_index(["model", "setting"])["accuracy"]
    assert by_model[("zone-based (oracle)", "offline")] >= by_model[("zone-based", "offline")]
    no_hints = {arch: by_model[(arch, setting)] for arch, setting in (("lstm", "online"), ("transformer_encoder", "offline"))}
    # the champion rule: the best model without hints is champion only if it beats the zone-based and
    # closest-pitch baselines; every model that does not is named with them in the metadata
    rule = evaluation.champion_baselines(evaluation.baseline_rows(train, test, 4))
    assert set(rule) == {"zone-based", "closest-pitch"}
    beats = {arch: all(acc / 100 > b for b in rule.values()) for arch, acc in no_hints.items()}
    best_arch = max(no_hints, key=no_hints.get)
    champion = tracking.get_alias_version(uri, "part_separation", "champion")
    meta = result.asset_materializations_for_node("part_separation_eval")[0].metadata
    assert set(meta["below_baseline"].value) == {arch for arch, ok in beats.items() if not ok}
    assert (champion is not None) == beats[best_arch]
    if champion is not None:
        assert champion.tags["arch"] == best_arch
        assert 100 * tracking.metric_of(uri, champion, "test_accuracy_no_hints") == pytest.approx(no_hints[best_arch], abs=0.005)
    arranged_by = result.asset_materializations_for_node("instrumentation")[0].metadata["arranged_by"].value
    assert arranged_by.startswith("part_separation v" if champion is not None else "the zone baseline: no part_separation model")
    assert "data:image/png;base64" in meta["confusion_matrix"].value

    arranged = shards.read_table(home.datasets, "instrumentation", "__all__").to_pandas().set_index("input")
    assert arranged.loc["piano", "notes"] == 64 and os.path.exists(arranged.loc["piano", "midi"])
    assert arranged.loc["drums", "error"] == "the input has only drum notes"
    music = muspy.read_midi(arranged.loc["piano", "midi"])
    assert sum(len(t.notes) for t in music.tracks) == 64

    ops["instrumentation"]["config"] = {"datasets": [PART], "examples": 2}  # the test songs' downmixes
    run(defs, instance, "instrumentation_eval", ops=ops)
    examples = shards.read_table(home.datasets, "instrumentation", "__all__").to_pandas()
    assert len(examples) == 2 and all(name.startswith("bach/") for name in examples["input"])
    assert all(os.path.exists(path) and path.endswith(".mid") for path in examples["midi"])

    # The command line uses the same champion (or baseline); a missing alias and an unreadable file are clear errors.
    out = tmp_path / "out" / "arranged.mid"
    out.parent.mkdir()
    assert cli.main(["instrument", piano, str(out)]) == 0
    assert sum(len(t.notes) for t in muspy.read_midi(out).tracks) == 64
    printed = capsys.readouterr()
    assert "Soprano" in printed.out
    assert ("arranged by the zone baseline" in printed.err) == (champion is None)
    assert cli.main(["instrument", piano, str(out), "--alias", "nonexistent"]) == 2
    assert "no model part_separation@nonexistent" in capsys.readouterr().err
    assert cli.main(["instrument", drums, str(out)]) == 2
    assert "only drum notes" in capsys.readouterr().err
