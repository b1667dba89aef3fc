"""The violin data lineage in a real Dagster instance: the shared sample aligned and cut into clips,
and a manifest of bad recordings that each end in a rejects table while the good one completes."""

import csv
import io
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from assets.core.resources import HomeResource
from assets.core.tools import missing_tools
from assets.violin import confidence
from assets.violin import defs as violin
from assets.violin.sources import SAMPLE_NAME, shared_data_dir
from pipelines.cli import launch
from pipelines.definitions import build_defs
from storage import shards

SAMPLE = shared_data_dir() / SAMPLE_NAME
SAMPLE_IDS = [f"john-garner_bwv1002_mov{m}" for m in (6, 7, 8)]
REJECTS = ("recording_audio_rejects", "violin_scores_rejects", "score_renders_rejects")

pytestmark = [
    pytest.mark.skipif(not (SAMPLE / "info.csv").is_file(), reason=f"no Bach Violin Dataset sample at {SAMPLE}"),
    pytest.mark.skipif(bool(missing_tools()), reason=f"missing system packages {missing_tools()}"),
]


def materialization(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    """Metadata of the latest materialization of one partition, as plain values."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def rows(home, asset: str, partition: str) -> list[dict]:
    return shards.read_table(home.datasets, asset, partition).to_pylist()


def run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, partition: str | None = None, ops: dict | None = None):
    job_def = defs.resolve_job_def(job)
    result = job_def.execute_in_process(instance=instance, partition_key=partition, run_config={"ops": ops or {}})
    assert result.success
    return result


def test_sample_recording_is_aligned_like_the_dataset_and_cut_into_clips(home):
    with dg.instance_for_test() as instance:
        defs = build_defs(home)
        run(defs, instance, "violin_recordings_job")
        assert sorted(instance.get_dynamic_partitions("recordings")) == SAMPLE_IDS
        manifest = rows(home, "recordings", "__all__")
        assert [r["id"] for r in manifest] == SAMPLE_IDS and all(r["published_alignment"] for r in manifest)
        run(defs, instance, "violin_recordings_job")  # idempotent: no new partitions, same rows
        assert sorted(instance.get_dynamic_partitions("recordings")) == SAMPLE_IDS
        assert rows(home, "recordings", "__all__") == manifest

        mov6 = SAMPLE_IDS[0]
        data_run = run(defs, instance, "violin_data_job", mov6, {"alignments": {"config": {"method": "v1"}}})

        audio = rows(home, "recording_audio", mov6)[0]
        assert (audio["sample_rate"], audio["seconds"], len(audio["audio"])) == (16_000, 105.0, 105 * 16_000 * 4)
        assert audio["attribution"] == "John Garner, CC BY 3.0, musopen.org"
        assert not any(rows(home, name, mov6) for name in REJECTS)
        render = rows(home, "score_renders", mov6)[0]
        assert render["qpm"] == pytest.approx(164.5714, abs=1e-3)  # the dataset's tempos/ value

        aligned = materialization(instance, "alignments", mov6)
        assert aligned["method"] == "v1" and aligned["notes"] == len(rows(home, "violin_scores", mov6))
        assert aligned["published_alignment"] == str(SAMPLE / "alignments" / f"{mov6}.csv")
        assert aligned["published_median_abs_s"] <= 0.032 + 1e-6
        assert aligned["published_within_100ms"] >= 0.95
        assert 0.6 <= aligned["confidence_mean"] <= 1 and 0 < aligned["confidence_p10"] <= aligned["confidence_mean"]
        assert aligned["confidence_low_share"] <= 0.02 and aligned["confidence_low"] == confidence.LOW
        assert aligned["low_stretch_notes"] < confidence.STRETCH_NOTES
        assert aligned["low_stretch_seconds"] < confidence.STRETCH_SECONDS
        plot = Path(home.cache) / "plots" / "alignments" / f"{mov6}.png"
        assert Image.open(io.BytesIO(plot.read_bytes())).size[0] > 800 and "data:image/png" in aligned["figure"]
        notes = rows(home, "alignments", mov6)
        assert all(n["end"] >= n["start"] >= 0 for n in notes) and {n["method"] for n in notes} == {"v1"}
        trust = np.array([n["confidence"] for n in notes])
        assert trust.mean() == pytest.approx(aligned["confidence_mean"])
        assert np.mean(trust < confidence.LOW) == pytest.approx(aligned["confidence_low_share"])

        clips = shards.read_table(home.datasets, "performance_clips", mov6)
        clip_meta = materialization(instance, "performance_clips", mov6)
        assert clips.num_rows == clip_meta["clips"] >= 20  # 105 s in 5 s clips
        assert {"recording", "clip", "split", "mel", "audio", "onset_frame"} <= set(clips.column_names)
        assert set(clips.column("split").to_pylist()) == {"train", "valid"}
        assert sum(clip_meta["splits"].values()) == clips.num_rows and "data:image/png" in clip_meta["preview"]
        check_alignment_confidence(data_run, home, mov6)


def check_alignment_confidence(data_run: dg.ExecuteInProcessResult, home, recording: str) -> None:
    """The confidence check runs in the data job with the alignments it checks and passes on the recording's;
    on a stored alignment with a stretch of low-confidence notes it warns (severity WARN: never a gate)."""
    [evaluation] = data_run.get_asset_check_evaluations()
    assert (evaluation.check_name, evaluation.passed, evaluation.severity) == (
        "alignment_confidence", True, dg.AssetCheckSeverity.WARN
    )
    assert evaluation.metadata["low_stretches"].value == 0 and evaluation.metadata["notes"].value > 500

    table = shards.read_table(home.datasets, "alignments", recording)
    lowered = table.column("confidence").to_numpy().copy()
    lowered[100:112] = 0.1
    shards.write_table(home.datasets, "alignments", recording, table.set_column(
        table.schema.get_field_index("confidence"), "confidence", [lowered]))
    warned = violin.confidence_check(HomeResource(root=home.root), recording)
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    [stretch] = warned.metadata["stretches"].value
    assert (stretch["first"], stretch["notes"]) == (100, 12) and warned.metadata["low_stretches"].value == 1


def tone(path: Path, seconds: float, source: str = "sine=frequency=440") -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}:duration={seconds}", str(path)],
        check=True, timeout=60,
    )


def bad_manifest(folder: Path, missing_url: str) -> Path:
    """info.csv and audio.csv in the dataset's layout: the real mov7 and one recording per kind of failure."""
    for sub in ("audio", "scores", "alignments"):
        (folder / sub).mkdir(parents=True)
    for name in ("bwv1002_mov6.mxl", "bwv1002_mov7_10.mxl"):
        shutil.copy(SAMPLE / "scores" / name, folder / "scores" / name)
    shutil.copy(SAMPLE / "alignments" / f"{SAMPLE_IDS[1]}.csv", folder / "alignments")
    for movement in (6, 7):
        name = f"john-garner_bwv1002_mov{movement}.mp3"
        shutil.copy(SAMPLE / "audio" / name, folder / "audio" / name)  # a symlink out of audio/ is refused
    tone(folder / "audio" / "silent.wav", 3.0, "anullsrc=r=44100:cl=mono")
    tone(folder / "audio" / "short.wav", 3.0)
    (folder / "audio" / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(50_000))

    with open(SAMPLE / "info.csv", newline="") as f:
        sample = {row["filename"]: row for row in csv.DictReader(f)}
    mov6, mov7 = sample[SAMPLE_IDS[0]], sample[SAMPLE_IDS[1]]
    test = {"collection": "test", "violinist": "test", "violinist_name": "Test Player"}
    info = [
        mov7,
        mov6 | test | {"filename": "silent", "source_filename": "silent.wav", "start": "0", "end": "3"},
        mov6 | test | {"filename": "not-audio", "source_filename": "noise.mp3", "start": "0", "end": "3"},
        mov6 | test | {"filename": "too-short", "source_filename": "short.wav", "start": "0", "end": "10"},
        mov6 | test | {"filename": "wrong-slice", "source_filename": mov6["source_filename"], "start": "1", "end": "6"},
        mov7 | test | {"filename": "wrong-repeats", "source_filename": mov7["source_filename"], "repeat2": "1"},
        mov6 | test | {"filename": "unreachable", "source_filename": "missing.mp3"},
    ]
    with open(SAMPLE / "audio.csv", newline="") as f:
        sources = {row["filename"]: row for row in csv.DictReader(f)}
    audio = [
        sources[mov6["source_filename"]], sources[mov7["source_filename"]],
        *({**sources[mov6["source_filename"]], "filename": name, "collection": "test", "url": ""}
          for name in ("silent.wav", "noise.mp3", "short.wav")),
        {**sources[mov6["source_filename"]], "filename": "missing.mp3", "collection": "test", "url": missing_url},
    ]
    for name, table in (("info.csv", info), ("audio.csv", audio)):
        with open(folder / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    return folder / "info.csv"


def test_bad_recordings_are_rejects_and_the_others_complete(home, tmp_path, serve, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", home.dagster)  # launch.instance_for sets it; restored afterwards
    (tmp_path / "site").mkdir()
    info = bad_manifest(tmp_path / "manifest", f"{serve(tmp_path / 'site')}/missing.mp3")

    instance = launch.instance_for(home)
    outcome = launch.launch_experiment(instance, "performance", {"stage": "data", "manifest": str(info), "method": "v2"}, home)

    expected = {
        "silent": ("recording_audio_rejects", "slice", "SilentAudio"),
        "not-audio": ("recording_audio_rejects", "slice", "UnreadableAudio"),
        "too-short": ("recording_audio_rejects", "slice", "TruncatedAudio"),
        "unreachable": ("recording_audio_rejects", "download", "DownloadError"),
        "wrong-repeats": ("violin_scores_rejects", "score", "ScoreError"),
        "wrong-slice": ("score_renders_rejects", "render", "LengthMismatch"),
    }
    recordings = [SAMPLE_IDS[1], *expected]
    assert not outcome.ok  # the reject-rate gate fails the experiment; every recording still completed
    assert {(c.job, c.partition): c.ok for c in outcome.children} == {
        ("violin_recordings_job", None): True,
        **{("violin_data_job", r): True for r in recordings},
        ("violin_reject_rate_job", None): False,
    }
    assert sorted(instance.get_dynamic_partitions("recordings")) == sorted(recordings)

    for recording, (table, stage, error_type) in expected.items():
        found = rows(home, table, recording)
        assert [(r["item"], r["stage"], r["error_type"]) for r in found] == [(recording, stage, error_type)], found
        assert found[0]["message"]
        assert not rows(home, "alignments", recording) and not rows(home, "performance_clips", recording)
        for asset in ("alignments", "performance_clips"):
            assert error_type in materialization(instance, asset, recording)["skipped"]
    assert "404" in rows(home, "recording_audio_rejects", "unreachable")[0]["message"]
    assert "repeat 2" in rows(home, "violin_scores_rejects", "wrong-repeats")[0]["message"]
    assert materialization(instance, "recording_audio", "silent")["rejects"] == 1

    good = SAMPLE_IDS[1]
    aligned = materialization(instance, "alignments", good)
    # the published starts carry their method's lag (frame rounding, half a tick); v2 is compared without it
    assert aligned["method"] == "v2" and aligned["published_lag_removed_within_100ms"] >= 0.99
    assert aligned["published_lag_removed_median_abs_s"] < aligned["published_median_abs_s"]
    assert aligned["published_alignment"] == str(info.parent / "alignments" / f"{good}.csv")
    assert aligned["confidence_mean"] >= 0.6 and aligned["low_stretch_notes"] < confidence.STRETCH_NOTES
    assert not any(rows(home, name, good) for name in REJECTS)
    assert len(rows(home, "performance_clips", good)) >= 25  # 141 s in 5 s clips

    key = dg.AssetCheckKey(dg.AssetKey("performance_clips"), "violin_reject_rate")
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    evaluation = check.event.dagster_event.event_specific_data
    assert not evaluation.passed and evaluation.metadata["reject_rate"].value == pytest.approx(6 / 7)
