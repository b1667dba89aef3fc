"""The video data lineage in a real Dagster instance: synthetic instrument videos, served and local,
to audio, frames and CLIP embeddings, with every kind of bad video a reject and the rest complete."""

import csv
import io
import os
import shutil
import subprocess
import time

import dagster as dg
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from assets.core.resources import HomeResource
from assets.core.tools import missing_tools
from assets.videos import media, synthetic
from models.clip_embed import SMALL_CLIP
from pipelines import cli, sensors
from pipelines.cli import launch
from pipelines.definitions import build_defs
from storage import shards, tracking

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"missing system packages {missing_tools()}")
BATCH = "mixed"


def lavfi(path, *inputs: str, seconds: float = 2.0) -> None:
    args = [a for source in inputs for a in ("-f", "lavfi", "-i", f"{source}:duration={seconds}")]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args, "-shortest", str(path)], check=True, timeout=60)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Two synthetic instrument videos and one file of each kind of bad video."""
    folder = tmp_path_factory.mktemp("videos")
    rows = synthetic.make_dataset(folder / "synthetic", per_instrument=1, instruments=["violin", "flute", "trumpet"], seconds=3.0)
    lavfi(folder / "silent_film.mp4", "testsrc=size=320x240:rate=8")
    lavfi(folder / "radio.m4a", "sine=frequency=440")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(4000))
    return folder, rows


def manifest(folder, rows, site: str) -> str:
    """violin and flute as local files, trumpet over HTTP, and the bad ones."""
    synth = folder / "synthetic"
    entries = [
        {"id": r["id"], "url": "", "path": str(synth / r["path"]), "start": "0", "duration": "", "label": r["label"]}
        for r in rows if r["label"] != "trumpet"
    ]  # fmt: skip
    trumpet = next(r for r in rows if r["label"] == "trumpet")
    entries += [
        {"id": trumpet["id"], "url": f"{site}/synthetic/{trumpet['path']}", "path": "", "start": "0", "duration": "", "label": "trumpet"},
        {"id": "silent_film", "url": "", "path": str(folder / "silent_film.mp4"), "start": "0", "duration": "", "label": ""},
        {"id": "radio", "url": "", "path": str(folder / "radio.m4a"), "start": "0", "duration": "", "label": ""},
        {"id": "broken", "url": "", "path": str(folder / "broken.mp4"), "start": "0", "duration": "", "label": ""},
        {"id": "gone", "url": f"{site}/missing.mp4", "path": "", "start": "0", "duration": "", "label": ""},
    ]  # fmt: skip
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(entries[0]))
        writer.writeheader()
        writer.writerows(entries)
    return str(path)


def rows(home, asset):
    return shards.read_table(home.datasets, asset, BATCH).to_pylist()


def test_videos_to_embeddings_with_rejects(home, made, serve, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", home.dagster)
    folder, made_rows = made
    source = manifest(folder, made_rows, serve(folder))

    with launch.instance_for(home) as instance:
        outcome = launch.launch_experiment(
            instance, "video", {"stage": "data", "source": source, "batch": BATCH, "clip_model": SMALL_CLIP}, home
        )
    assert outcome.ok and [(c.job, c.partition, c.ok) for c in outcome.children] == [("video_data_job", BATCH, True)]

    videos = {v["id"]: v for v in rows(home, "videos")}
    good = {r["id"] for r in made_rows}
    assert set(videos) == good
    assert all(abs(v["duration"] - 3.0) < 0.2 and v["split"] in {"train", "valid", "test"} for v in videos.values())
    assert "downloads" in videos[next(r["id"] for r in made_rows if r["label"] == "trumpet")]["path"]  # fetched by yt-dlp
    rejected = {(r["item"], r["stage"], r["error_type"]) for r in rows(home, "videos_rejects")}
    assert rejected == {
        ("silent_film", "probe", "NoAudioStream"),
        ("radio", "probe", "NoVideoFrames"),
        ("broken", "probe", "CorruptVideo"),
        ("gone", "download", "DownloadError"),
    }

    audio = {a["id"]: np.frombuffer(a["audio"], np.float32) for a in rows(home, "video_audio")}
    assert set(audio) == good and all(len(a) == 48_000 and np.abs(a).max() > 0.05 for a in audio.values())
    frames = rows(home, "video_frames")
    assert sorted((f["video"], f["timestamp"]) for f in frames) == sorted((v, t) for v in good for t in (0.0, 1.0, 2.0))
    assert Image.open(io.BytesIO(frames[0]["jpeg"])).size == (224, 224)

    embeddings = rows(home, "clip_embeddings")
    vectors = np.array([e["embedding"] for e in embeddings], dtype=np.float32)
    assert vectors.shape == (9, 512) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert {e["model"] for e in embeddings} == {SMALL_CLIP}
    with launch.instance_for(home) as instance:
        records = instance.fetch_materializations(dg.AssetKey("clip_embeddings"), limit=1).records
        meta = records[0].asset_materialization.metadata
    assert meta["semantic"].value is False and "NOT semantic" in meta["note"].value


def test_missing_clip_weights_fail_the_step_with_instructions(home, made, monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSTER_HOME", home.dagster)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    folder, made_rows = made
    local = tmp_path / "one"
    local.mkdir()
    shutil.copy(folder / "synthetic" / made_rows[0]["path"], local)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("video_batches", [BATCH])
        result = build_defs(home).resolve_job_def("video_data_job").execute_in_process(
            instance=instance, partition_key=BATCH, raise_on_error=False,
            run_config={"ops": {"videos": {"config": {"source": str(local)}}}},
        )  # fmt: skip
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "clip_embeddings" and "huggingface-cli download" in str(failure.event_specific_data.error)
    assert len(rows(home, "video_frames")) == 3  # everything before the embeddings completed


def test_incoming_videos_sensor_claims_a_batch(home, made):
    folder, made_rows = made
    incoming = os.path.join(home.incoming, "videos")
    os.makedirs(incoming, exist_ok=True)
    settled = os.path.join(incoming, made_rows[0]["path"])
    shutil.copy(folder / "synthetic" / made_rows[0]["path"], settled)
    past = time.time() - 60
    os.utime(settled, (past, past))
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"home": HomeResource(root=home.root)})
        result = sensors.incoming_videos_sensor(context)
        (request,) = result.run_requests
        assert request.partition_key.startswith("incoming_") and sensors.incoming_videos_sensor.job_name == "video_data_job"
        assert result.dynamic_partitions_requests[0].partition_keys == [request.partition_key]
        claim = request.run_config["ops"]["videos"]["config"]["claim"]
        assert [f["path"] for f in claim] == [made_rows[0]["path"]] and os.path.exists(settled)
        os.remove(settled)
        assert sensors.incoming_videos_sensor(context).skip_reason.skip_message == f"nothing new in {incoming}"


def test_clipsep_trains_evaluates_promotes_and_separates(home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", home.dagster)
    mixture, frame = tmp_path / "mix.wav", tmp_path / "flute.jpg"
    sf.write(mixture, np.zeros(16_000, np.float32), 16_000)
    Image.new("RGB", (8, 8)).save(frame)
    assert cli.main(["separate", str(mixture), str(tmp_path / "out.wav"), "--image", str(frame)]) == 2
    assert "no model clipsep@champion" in capsys.readouterr().err

    folder = tmp_path / "set"
    synthetic.make_dataset(folder, per_instrument=3, instruments=["violin", "flute", "trumpet"], seconds=5.0)
    config = {"profile": "smoke", "source": str(folder), "batch": "trio", "clip_model": SMALL_CLIP,
              "methods": ["nit", "pit"], "n_mixtures": 12}  # fmt: skip
    with launch.instance_for(home) as instance:
        outcome = launch.launch_experiment(instance, "video", config, home)
    assert outcome.ok, (outcome.errors, [c.name for c in outcome.children if not c.ok])

    table = shards.read_table(home.datasets, "clipsep_eval", "__all__").to_pandas().set_index("model")
    assert list(table.index) == ["mixture", "CLIPSep-NIT", "PIT"]
    assert table.loc["mixture", "sdri_mean"] == 0
    # every model is scored on the same mixtures: its improvement is its SDR less the mixtures' SDR
    np.testing.assert_allclose(table["sdri_mean"], table["sdr_mean"] - table.loc["mixture", "sdr_mean"], atol=1e-3)
    assert table.loc["CLIPSep-NIT", "query"] == "image"  # no text queries: the small CLIP is not semantic
    # the champion rule: NIT becomes champion only if it improves on the mixture (SDRi above 0 dB)
    champion = tracking.get_alias_version(tracking.default_tracking_uri(home), "clipsep", "champion")
    assert (champion is not None) == (table.loc["CLIPSep-NIT", "sdri_mean"] > 0)
    if champion is not None:
        assert champion.tags["method"] == "nit" and champion.tags["clip_model"] == SMALL_CLIP

    videos = shards.read_table(home.datasets, "videos", "trio").to_pylist()
    flute, violin = (next(v for v in videos if v["label"] == label) for label in ("flute", "violin"))
    sound = media.extract_audio(flute["path"]) + media.extract_audio(violin["path"])
    sf.write(mixture, sound, 16_000)
    frame.write_bytes(media.extract_frames(flute["path"], 1.0, 1.0)[0][1])
    out = tmp_path / "flute.wav"
    assert cli.main(["separate", str(mixture), str(out), "--image", str(frame)]) == 0
    separated, rate = sf.read(out)
    assert rate == 16_000 and len(separated) == len(sound) and np.isfinite(separated).all()
    printed = capsys.readouterr()
    if champion is not None:
        assert "separated from" in printed.out and "(smoke profile)" in printed.out
        assert cli.main(["separate", str(mixture), str(out), "--query", "flute"]) == 2
        assert "not semantic" in capsys.readouterr().err
    else:  # the baseline: the mixture itself, said in one line
        assert "unseparated" in printed.out and printed.err.count("\n") == 1
        assert printed.err.startswith("note: no clipsep model beats the mixture baseline")
        np.testing.assert_allclose(separated, sf.read(mixture)[0], atol=1e-3)
    assert cli.main(["separate", str(mixture), str(out), "--query", "flute", "--alias", "candidate"]) == 2
    assert "not semantic" in capsys.readouterr().err
