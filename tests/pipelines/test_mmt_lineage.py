"""The MMT branch in a real Dagster instance with MLflow on sqlite: codes, model, samples, evaluation."""

import glob
import os
import shutil

import dagster as dg
import music21
import muspy
import numpy as np
import pytest

from assets.mmt import codes as mmt_data
from assets.mmt import evaluation as mmt_evaluation
from models import mmt
from models.mmt import encoding as mmt_encoding
from models.mmt import metrics as mmt_metrics
from pipelines.definitions import build_defs
from storage import shards, tracking

CORPUS = os.path.join(os.path.dirname(music21.__file__), "corpus")


def write(path, tracks):
    muspy.write_midi(path, muspy.Music(resolution=24, tempos=[muspy.Tempo(0, 100.0)], tracks=tracks))


def notes(pitch=60, n=16):
    return [muspy.Note(24 * i, pitch + i % 5, 24, 90) for i in range(n)]


@pytest.fixture
def lineage(home):
    folder = os.path.join(home.raw, "incoming", "mixed")
    os.makedirs(folder)
    for path in sorted(glob.glob(os.path.join(CORPUS, "bach", "bwv2[0-9]*.mxl")))[:16]:
        shutil.copy(path, folder)
    for path in sorted(glob.glob(os.path.join(CORPUS, "haydn", "opus1no1", "*.mxl")))[:2]:
        shutil.copy(path, os.path.join(folder, "haydn-" + os.path.basename(path)))
    write(os.path.join(folder, "drums.mid"), [muspy.Track(program=0, is_drum=True, notes=notes(38))])
    write(os.path.join(folder, "sound_effects.mid"), [muspy.Track(program=122, notes=notes())])  # seashore: no MMT instrument
    write(os.path.join(folder, "empty.mid"), [muspy.Track(program=0)])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("datasets", ["incoming_mixed"])
        yield build_defs(home), instance, home


def run(defs, instance, job, partition=None, ops=None):
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition, run_config={"ops": ops or {}})
    assert result.success
    return result


def test_mmt_branch_trains_generates_evaluates_and_promotes(lineage):
    defs, instance, home = lineage
    part = "incoming_mixed"
    run(defs, instance, "ingest_scores_job", part)
    ingest_rejects = shards.read_table(home.datasets, "notes_rejects", part).to_pandas()
    assert ingest_rejects["item"].str.endswith("empty.mid").tolist() == [True]

    run(defs, instance, "mmt_codes_job", part)
    codes = shards.read_table(home.datasets, "mmt_codes", part).to_pandas()
    assert len(codes) == 18 and "test" in set(codes["split"]) and set(codes["split"]) <= {"train", "valid", "test"}
    assert (codes["n_notes"] >= 50).all()  # the paper profile's data preparation
    assert codes["n_events"].max() > 1024  # whole songs: the Haydn movement outlasts one window
    rejects = shards.read_table(home.datasets, "mmt_codes_rejects", part).to_pandas().set_index("item")
    assert sorted(os.path.basename(i) for i in rejects.index) == ["drums.mid", "sound_effects.mid"]
    assert all(rejects["error_type"] == "EncodingError")
    assert rejects.filter(like="drums", axis=0)["message"].iloc[0] == (
        "drums only: all 16 notes are on drum tracks, which MMT leaves out"
    )

    ops = {
        "mmt_model": {"config": {"profile": "smoke", "datasets": [part], "max_steps": 6}},
        "mmt_samples": {"config": {"datasets": [part], "per_mode": 1, "max_len": 96}},
        "mmt_eval": {"config": {"datasets": [part]}},
    }
    result = run(defs, instance, "mmt_train_and_evaluate", ops=ops)
    uri = tracking.default_tracking_uri(home)
    candidate = tracking.get_alias_version(uri, "mmt", "candidate")
    champion = tracking.get_alias_version(uri, "mmt", "champion")
    assert candidate is not None and champion is not None and champion.version == candidate.version
    model, cfg = mmt.load_model(tracking.fetch_version(uri, candidate, home.cache), "cpu")
    _, test_codes = mmt_data.read_sequences(home.datasets, [part], "test")
    assert tracking.metric_of(uri, candidate, "test_loss") == pytest.approx(mmt_evaluation.test_loss(model, cfg, test_codes), rel=1e-5)

    samples = shards.read_table(home.datasets, "mmt_samples", "__all__")
    frame = samples.drop_columns(["codes"]).to_pandas()
    assert sorted(frame["mode"]) == ["continuation", "instrument", "unconditioned"]
    for row, rows in zip(frame.itertuples(), samples.column("codes").to_pylist()):
        assert os.path.exists(row.midi) and os.path.exists(row.midi[:-4] + ".png")
        assert mmt_encoding.validate(np.array(rows)) == []
        assert row.n_events <= 96
    evaluation = shards.read_table(home.datasets, "mmt_eval", "__all__").to_pandas().set_index("mode")
    assert set(evaluation.index) == {"unconditioned", "instrument", "continuation"}
    first_windows = [mmt.window(c, cfg.max_beat, cfg.max_seq_len) for c in test_codes]
    truth = mmt_metrics.compare([], first_windows)["truth_pitch_class_entropy"]
    assert evaluation["truth_pitch_class_entropy"].tolist() == pytest.approx([truth] * 3) and truth > 1
    assert result.asset_materializations_for_node("mmt_eval")[0].metadata["promoted_to_champion"].value is True

    # A second model that is no better on test loss does not take over.
    again = run(defs, instance, "mmt_train_and_evaluate", ops={**ops, "mmt_model": {"config": {**ops["mmt_model"]["config"], "max_steps": 1}}})
    assert again.asset_materializations_for_node("mmt_eval")[0].metadata["promoted_to_champion"].value is False
    assert tracking.get_alias_version(uri, "mmt", "champion").version == champion.version
