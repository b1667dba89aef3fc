"""The Deep Performer half of the violin lineage in a real Dagster instance and MLflow store: one sample
recording's clips train the smoke models, the evaluation promotes them, `baton perform` plays a score."""

import dagster as dg
import numpy as np
import pytest
import soundfile as sf

from assets.core.tools import missing_tools
from assets.violin.sources import SAMPLE_NAME, shared_data_dir
from pipelines import cli
from pipelines.definitions import build_defs
from storage import shards, tracking

SAMPLE = shared_data_dir() / SAMPLE_NAME
RECORDING = "john-garner_bwv1002_mov6"
SCORE = SAMPLE / "scores" / "bwv1002_mov6.mxl"
SMOKE = {"config": {"profile": "smoke"}}

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


def test_models_train_evaluate_promote_and_perform(home, tmp_path, capsys):
    with dg.instance_for_test() as instance:
        defs = build_defs(home)
        run(defs, instance, "violin_recordings_job")
        run(defs, instance, "violin_data_job", RECORDING)
        clips = shards.read_table(home.datasets, "performance_clips", RECORDING)
        valid = clips.column("split").to_pylist().count("valid")
        assert valid >= 1

        aligner = run(defs, instance, "performance_alignment_train", ops={"performance_alignment_model": SMOKE})
        assert metadata(aligner, "performance_alignment_model")["registered_model"] == "performance_alignment"
        vocoder = run(defs, instance, "performance_vocoder_train", ops={"performance_vocoder": SMOKE})
        griffin_lim = metadata(vocoder, "performance_vocoder")["griffin_lim_mel_l1"]
        for variant in ("full", "no_notewise_pe", "no_performer"):
            trained = run(defs, instance, "performance_synthesis_train", variant, {"performance_synthesis_model": SMOKE})
            assert metadata(trained, "performance_synthesis_model")["train_clips"] == clips.num_rows - valid

        evaluated = run(defs, instance, "performance_eval_job")
        table = shards.read_table(home.datasets, "performance_eval", "__all__").to_pandas()
        mse = table[table.metric == "mel MSE"].set_index("model")["value"]
        assert list(mse.index) == ["Deep Performer", "w/o note-wise positional encoding", "w/o performer embedding"]
        assert (mse > 0).all() and np.isfinite(mse).all()
        assert {"onset MAE (ms)", "duration MAE (ms)", "resynthesis mel L1"} <= set(table.metric)
        meta = metadata(evaluated, "performance_eval")
        assert {"performance_synthesis", "performance_alignment"} <= set(meta["promoted"])
        assert meta["samples"].count("data:image/png") == 2

    uri = tracking.default_tracking_uri(home)
    champion = tracking.get_alias_version(uri, "performance_synthesis", "champion")
    assert champion.tags["variant"] == "full" and champion.tags["performers"] == "John Garner"
    vocoder_promoted = "performance_vocoder" in meta["promoted"]
    gl, hifigan = table[table.metric == "resynthesis mel L1"].set_index("model")["value"][["Griffin-Lim", "HiFi-GAN"]]
    assert gl == pytest.approx(griffin_lim)  # the same validation clips, the same reproducible Griffin-Lim
    assert vocoder_promoted == (hifigan < gl)  # a vocoder worse than Griffin-Lim never serves

    capsys.readouterr()
    out, png = tmp_path / "mov6.wav", tmp_path / "mov6.png"
    assert cli.main(["perform", str(SCORE), str(out), "--performer", "john garner", "--qpm", "150", "--png", str(png)]) == 0
    audio, rate = sf.read(out)
    assert rate == 16_000 and np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert "played as John Garner" in capsys.readouterr().out and png.read_bytes().startswith(b"\x89PNG")
    assert cli.main(["perform", str(SCORE), str(out), "--performer", "Itzhak Perlman"]) == 2
    assert "unknown performer 'Itzhak Perlman'; the model knows 0: John Garner" in capsys.readouterr().err
    assert cli.main(["perform", str(tmp_path / "missing.mxl"), str(out)]) == 2
    assert "cannot read score" in capsys.readouterr().err
