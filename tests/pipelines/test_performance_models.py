"""The Deep Performer half of the violin lineage in a real Dagster instance and MLflow store: one sample
recording's clips train the smoke models, the evaluation holds the synthesis model back because the
aligned FluidSynth rendering beats it, and `baton perform` plays a score with that rendering instead,
or with models chosen by alias, at -1 dBFS."""

from dataclasses import dataclass

import dagster as dg
import librosa
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import soundfile as sf

from assets.core.tools import missing_tools, soundfont_path
from assets.deep_performer import performing
from assets.deep_performer.rendering import LABEL as RENDERING
from assets.violin.scores import score_notes
from assets.violin.sources import SAMPLE_NAME, shared_data_dir
from pipelines import cli
from pipelines.definitions import build_defs
from storage import shards, tracking
from storage.home import BatonHome

SAMPLE = shared_data_dir() / SAMPLE_NAME
RECORDING = "john-garner_bwv1002_mov6"
SCORE = SAMPLE / "scores" / "bwv1002_mov6.mxl"
SMOKE = {"config": {"profile": "smoke"}}
PEAK = 10 ** (-1 / 20) + 1e-4  # -1 dBFS, and a 16-bit step

pytestmark = [
    pytest.mark.skipif(not (SAMPLE / "info.csv").is_file(), reason=f"no Bach Violin Dataset sample at {SAMPLE}"),
    pytest.mark.skipif(bool(missing_tools()), reason=f"missing system packages {missing_tools()}"),
]


def run(defs, instance, job, partition=None, ops=None):
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition, run_config={"ops": ops or {}})
    assert result.success
    return result


def metadata(result, asset: str) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def test_perform_without_champions_is_a_clear_error(home, tmp_path, capsys):
    assert cli.main(["perform", str(SCORE), str(tmp_path / "out.wav")]) == 2
    err = capsys.readouterr().err
    assert "no performance_synthesis@champion or performance_alignment@champion" in err and "baton experiment" in err
    assert not (tmp_path / "out.wav").exists()


@dataclass(frozen=True)
class Lineage:
    home: BatonHome
    clips: pa.Table
    table: pd.DataFrame  # performance_eval
    meta: dict  # performance_eval's metadata
    griffin_lim: float  # the vocoder asset's Griffin-Lim error


@pytest.fixture(scope="module")
def lineage(module_home) -> Lineage:
    """The smoke models trained on one sample recording's clips and evaluated."""
    home = module_home
    with dg.instance_for_test() as instance:
        defs = build_defs(home)
        run(defs, instance, "violin_recordings_job")
        run(defs, instance, "violin_data_job", RECORDING)
        clips = shards.read_table(home.datasets, "performance_clips", RECORDING)
        aligner = run(defs, instance, "performance_alignment_train", ops={"performance_alignment_model": SMOKE})
        assert metadata(aligner, "performance_alignment_model")["registered_model"] == "performance_alignment"
        vocoder = run(defs, instance, "performance_vocoder_train", ops={"performance_vocoder": SMOKE})
        for variant in ("full", "no_notewise_pe", "no_performer"):
            trained = run(defs, instance, "performance_synthesis_train", variant, {"performance_synthesis_model": SMOKE})
            valid = clips.column("split").to_pylist().count("valid")
            assert valid >= 1
            assert metadata(trained, "performance_synthesis_model")["train_clips"] == clips.num_rows - valid
        evaluated = run(defs, instance, "performance_eval_job")
    table = shards.read_table(home.datasets, "performance_eval", "__all__").to_pandas()
    griffin_lim = metadata(vocoder, "performance_vocoder")["griffin_lim_mel_l1"]
    return Lineage(home, clips, table, metadata(evaluated, "performance_eval"), griffin_lim)


def test_the_evaluation_holds_back_a_synthesis_model_that_loses_to_the_rendering(lineage):
    table, meta = lineage.table, lineage.meta
    mse = table[table.metric == "mel MSE"].set_index("model")["value"]
    assert list(mse.index) == [
        "Deep Performer", "w/o note-wise positional encoding", "w/o performer embedding", RENDERING,
    ]  # fmt: skip
    assert (mse > 0).all() and np.isfinite(mse).all()
    assert {"onset MAE (ms)", "duration MAE (ms)", "resynthesis mel L1"} <= set(table.metric)
    assert meta["champion_baselines"] == {RENDERING: pytest.approx(mse[RENDERING])}
    # 30 smoke steps leave the model far from the recordings; a General MIDI violin on the aligned notes is closer
    assert mse["Deep Performer"] > mse[RENDERING]
    assert "performance_synthesis" not in meta["promoted"] and "performance_alignment" in meta["promoted"]
    assert meta["below_baseline"] == {"full": f"{RENDERING} {mse[RENDERING]:.4g}"}
    assert meta["samples"].count("data:image/png") == 2

    uri = tracking.default_tracking_uri(lineage.home)
    assert tracking.get_alias_version(uri, "performance_synthesis", "champion") is None
    full = tracking.newest_by_tag(uri, "performance_synthesis", "variant")["full"]
    assert full.tags["performers"] == "John Garner" and full.tags[tracking.BELOW_BASELINE_TAG].startswith(RENDERING)
    gl, hifigan = table[table.metric == "resynthesis mel L1"].set_index("model")["value"][["Griffin-Lim", "HiFi-GAN"]]
    assert gl == pytest.approx(lineage.griffin_lim)  # the same validation clips, the same reproducible Griffin-Lim
    assert ("performance_vocoder" in meta["promoted"]) == (hifigan < gl)  # one worse than Griffin-Lim never serves


def chroma_similarity(audio: np.ndarray, reference: np.ndarray) -> float:
    """Mean over frames of the cosine between the two signals' chroma vectors: 1 when the same pitch
    classes sound at the same times, about 0.5 for white noise against music."""
    a, b = (librosa.feature.chroma_stft(y=x, sr=16_000, n_fft=2048, hop_length=512) for x in (audio, reference))
    n = min(a.shape[1], b.shape[1])
    a, b = a[:, :n], b[:, :n]
    return float(np.mean((a * b).sum(0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0) + 1e-9)))


def test_perform_plays_the_scores_rendering_while_no_model_beats_it(lineage, tmp_path, capsys):
    capsys.readouterr()
    out, png = tmp_path / "mov6.wav", tmp_path / "mov6.png"
    assert cli.main(["perform", str(SCORE), str(out), "--qpm", "150", "--png", str(png)]) == 0
    printed = capsys.readouterr()
    [note] = printed.err.splitlines()
    assert "no performance_synthesis model beats the FluidSynth rendering, aligned baseline" in note
    assert note.endswith("playing the score with FluidSynth's violin instead")
    assert "at 150 qpm, played by FluidSynth's violin" in printed.out and png.read_bytes().startswith(b"\x89PNG")
    audio, rate = sf.read(out, dtype="float32")
    assert rate == 16_000 and 0.5 < np.abs(audio).max() <= PEAK  # not faint, never clipped

    reference = performing.render_score(score_notes(SCORE), 150.0, soundfont_path())
    noise = np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32)
    followed, unrelated = chroma_similarity(audio, reference), chroma_similarity(noise, reference)
    assert followed > 0.9 and followed > unrelated + 0.3, (followed, unrelated)

    assert cli.main(["perform", str(SCORE), str(out)]) == 0  # the training median, from the evaluation's record
    assert f"at {lineage.clips.column('qpm')[0].as_py():.0f} qpm" in capsys.readouterr().out


def test_perform_with_chosen_models_warns_of_their_profile_and_writes_a_sane_level(lineage, tmp_path, capsys):
    uri = tracking.default_tracking_uri(lineage.home)
    for name in ("performance_alignment", "performance_vocoder"):
        tracking.set_alias(uri, name, "trial", tracking.get_alias_version(uri, name, "candidate").version)
    full = tracking.newest_by_tag(uri, "performance_synthesis", "variant")["full"]
    tracking.set_alias(uri, "performance_synthesis", "trial", full.version)
    capsys.readouterr()
    out = tmp_path / "mov6.wav"
    trial = ["perform", str(SCORE), str(out), "--alias", "trial", "--qpm", "150"]
    assert cli.main([*trial, "--performer", "john garner"]) == 0
    printed = capsys.readouterr()
    assert f"played as John Garner by performance_synthesis v{full.version} (smoke profile)" in printed.out
    warnings = printed.err.splitlines()
    assert len(warnings) == 3 and all("smoke-profile" in w and "--profile paper" in w for w in warnings)
    audio, rate = sf.read(out, dtype="float32")
    assert rate == 16_000 and np.isfinite(audio).all() and 0.5 < np.abs(audio).max() <= PEAK

    assert cli.main([*trial, "--performer", "Itzhak Perlman"]) == 2
    assert "unknown performer 'Itzhak Perlman'; the model knows 0: John Garner" in capsys.readouterr().err
    assert cli.main(["perform", str(tmp_path / "missing.mxl"), str(out)]) == 2
    assert "cannot read score" in capsys.readouterr().err


@pytest.mark.parametrize("qpm", ["0", "-90", "nan"])
def test_perform_refuses_a_tempo_that_is_not_positive(home, tmp_path, capsys, qpm):
    assert cli.main(["perform", str(SCORE), str(tmp_path / "out.wav"), f"--qpm={qpm}"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "--qpm must be a positive tempo" in line and not (tmp_path / "out.wav").exists()
