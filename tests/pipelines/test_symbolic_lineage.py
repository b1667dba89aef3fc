"""The symbolic lineage end to end in a real Dagster instance with MLflow on sqlite (smoke profile)."""

import glob
import os
import shutil

import dagster as dg
import music21
import pytest
import torch

from assets.cross_dataset import language_model
from assets.scores import tables
from models import music_lm
from pipelines.definitions import build_defs
from storage import shards, tracking

CORPUS = os.path.join(os.path.dirname(music21.__file__), "corpus")
LM = {"profile": "smoke", "max_steps": 12}


def make_batch(home, batch, files, bad=False):
    folder = os.path.join(home.raw, "incoming", batch)
    os.makedirs(folder)
    for path in files:
        shutil.copy(path, folder)
    if bad:
        with open(os.path.join(folder, "broken.mid"), "wb") as f:
            f.write(b"MThd\x00\x00\x00\x06garbage")
        with open(os.path.join(folder, "notes.txt"), "w") as f:
            f.write("not a score")
    return f"incoming_{batch}"


@pytest.fixture
def lineage(home):
    chorales = sorted(glob.glob(os.path.join(CORPUS, "bach", "bwv2[0-9]*.mxl")))[:18]
    madrigals = sorted(glob.glob(os.path.join(CORPUS, "monteverdi", "madrigal.3.*.mxl")))[:10]
    with dg.instance_for_test() as instance:
        keys = [make_batch(home, "chorales", chorales, bad=True), make_batch(home, "madrigals", madrigals)]
        instance.add_dynamic_partitions("datasets", keys)
        yield build_defs(home), instance, keys, home


def run(defs, instance, job, partition=None, config=None):
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition, run_config=config or {})
    assert result.success
    return result


def test_lineage_from_files_to_registered_models(lineage):
    defs, instance, (chorales, madrigals), home = lineage
    root = home.datasets
    result = run(defs, instance, "symbolic_dataset", chorales, {"ops": {"music_lm": {"config": LM}}})

    songs = shards.read_table(root, "songs", chorales).to_pandas()
    assert len(songs) == 18 and (songs["n_notes"] > 0).all()
    rejects = shards.read_table(root, "notes_rejects", chorales).to_pandas()
    assert sorted(rejects["item"].str.rsplit("/", n=1).str[-1]) == ["broken.mid", "notes.txt"]
    notes_manifest = shards.read_manifest(root, "notes", chorales)
    assert notes_manifest.rows == songs["n_notes"].sum()
    assert notes_manifest.schema == tables.NOTES.to_string()
    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {"notes_schema", "notes_shards_intact", "notes_reject_rate"}
    assert all(c.passed for c in checks)
    events = shards.read_table(root, "event_sequences", chorales).to_pandas()
    assert set(events["split"]) == {"train", "valid", "test"} and (events["n_events"] > 10).all()
    stats_meta = result.asset_materializations_for_node("dataset_stats")[0].metadata
    assert stats_meta["songs"].value == 18 and "data:image/png;base64" in stats_meta["plots"].value

    uri = tracking.default_tracking_uri(home)
    version = tracking.get_alias_version(uri, f"music_lm-{chorales}", "candidate")
    assert str(version.version) == "1"
    model, cfg = music_lm.load_model(tracking.fetch_version(uri, version, home.cache), "cpu")
    rescored = language_model.perplexity_on_tests(root, model, [chorales], cfg.seq_len, torch.device("cpu"))
    assert tracking.metric_of(uri, version, "test_perplexity") == pytest.approx(rescored, rel=1e-4)

    # Re-materializing gives byte-identical shards.
    run(defs, instance, "ingest_scores_job", chorales)
    again = shards.read_manifest(root, "notes", chorales)
    assert [s.sha256 for s in again.shards] == [s.sha256 for s in notes_manifest.shards]

    run(defs, instance, "symbolic_dataset", madrigals, {"ops": {"music_lm": {"config": LM}}})
    for mode in ("all", "stratified"):
        run(defs, instance, "music_lm_combined_job", mode, {"ops": {"music_lm_combined": {"config": LM}}})
    result = run(defs, instance, "cross_dataset_perplexity_job")
    matrix = shards.read_table(root, "cross_dataset_perplexity", "__all__").to_pandas()
    assert len(matrix) == 4 * 2
    assert set(matrix["trained_on"]) == {chorales, madrigals, "all", "stratified"}
    in_domain = matrix.set_index(["trained_on", "tested_on"])["perplexity"][(chorales, chorales)]
    assert in_domain == pytest.approx(tracking.metric_of(uri, version, "test_perplexity"), rel=1e-4)
    meta = result.asset_materializations_for_node("cross_dataset_perplexity")[0].metadata
    assert sorted(meta["promoted_to_champion"].value) == sorted([chorales, madrigals])
    assert str(tracking.get_alias_version(uri, f"music_lm-{chorales}", "champion").version) == str(version.version)


def test_reject_rate_check_blocks_downstream(lineage, home):
    defs, instance, _, home = lineage
    key = make_batch(home, "junk", [], bad=True)
    instance.add_dynamic_partitions("datasets", [key])
    result = defs.resolve_job_def("ingest_scores_job").execute_in_process(
        instance=instance, partition_key=key, raise_on_error=False
    )
    assert not result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["notes_reject_rate"] is False
    assert shards.read_manifest(home.datasets, "event_sequences", key) is None
    assert shards.read_table(home.datasets, "notes_rejects", key).num_rows == 2


def test_score_files_downloads_a_remote_dataset_when_asked(home, tmp_path, serve, monkeypatch):
    import dataclasses
    import hashlib
    import zipfile

    from assets.scores.datasets import muspy_sources

    www = tmp_path / "www"
    www.mkdir()
    source = muspy_sources.REMOTE_SOURCES["emopia"]
    with zipfile.ZipFile(www / source.filename, "w") as zf:
        for path in sorted(glob.glob(os.path.join(CORPUS, "bach", "bwv2[0-9]*.mxl")))[:2]:
            zf.write(path, f"EMOPIA/midis/{os.path.basename(path)}")
    data = (www / source.filename).read_bytes()
    mirror = dataclasses.replace(
        source,
        url=f"{serve(www)}/{source.filename}",
        md5=hashlib.md5(data).hexdigest() if source.md5 else None,
        sha256=hashlib.sha256(data).hexdigest() if source.sha256 else None,
        suffixes=(".mxl",),
    )
    monkeypatch.setitem(muspy_sources.REMOTE_SOURCES, "emopia", mirror)
    defs = build_defs(home)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("datasets", ["emopia"])
        job = defs.resolve_job_def("ingest_scores_job")
        not_yet = job.execute_in_process(instance=instance, partition_key="emopia", raise_on_error=False)
        assert not not_yet.success  # never downloaded unless asked
        config = {"ops": {"score_files": {"config": {"download": True}}}}
        assert job.execute_in_process(instance=instance, partition_key="emopia", run_config=config).success
    assert shards.read_table(home.datasets, "songs", "emopia").num_rows == 2
