import io
from dataclasses import replace

import pytest
import torch
from PIL import Image

from assets.deep_performer import evaluation
from assets.deep_performer.evaluation import Loaded
from assets.deep_performer.training_sets import clip_audio
from assets.violin.clips import to_clips
from models import deep_performer as dp
from models import vocoder as voc

SMOKE = dp.PROFILES["smoke"]


@pytest.fixture(scope="module")
def models() -> dict[str, Loaded]:
    torch.manual_seed(0)
    performers = ["Anna", "Ben"]
    return {
        "full": Loaded("3", dp.build_model(SMOKE, "synthesis").eval(), SMOKE, performers),
        "no_performer": Loaded("4", dp.build_model(replace(SMOKE, use_performer=False), "synthesis").eval(),
                               replace(SMOKE, use_performer=False), performers),
        "alignment": Loaded("1", dp.build_model(SMOKE, "alignment").eval(), SMOKE, performers),
        "hifigan": Loaded("2", voc.Generator(voc.PROFILES["smoke"]).eval()),
    }  # fmt: skip


def test_table_5_1_has_a_row_per_variant_with_its_mel_mse(models, clip_table):
    variants = {"full": models["full"], "no_performer": models["no_performer"]}
    rows, mse = evaluation.synthesis_rows(variants, clip_table)
    assert [(r["model"], r["version"], r["metric"]) for r in rows] == [
        ("Deep Performer", "3", "mel MSE"), ("w/o performer embedding", "4", "mel MSE")
    ]
    expected = dp.mel_mse(models["full"].model, SMOKE, to_clips(clip_table, ["Anna", "Ben"]))
    assert mse["full"] == pytest.approx(expected) and [r["value"] for r in rows] == list(mse.values())


def test_alignment_rows_are_its_timing_errors_and_its_eval_metrics_include_the_loss(models, clip_table):
    rows, metrics = evaluation.alignment_rows(models["alignment"], clip_table)
    assert [(r["metric"], r["version"]) for r in rows] == [("onset MAE (ms)", "1"), ("duration MAE (ms)", "1")]
    expected = dp.alignment_metrics(models["alignment"].model, SMOKE, to_clips(clip_table, ["Anna", "Ben"]))
    assert metrics == {"eval_" + k.removeprefix("val_"): pytest.approx(v) for k, v in expected.items()}
    assert set(metrics) == {"eval_loss", "eval_onset_mae_ms", "eval_duration_mae_ms"}
    assert [r["value"] for r in rows] == [metrics["eval_onset_mae_ms"], metrics["eval_duration_mae_ms"]]


def test_the_vocoder_scores_put_a_hifigan_beside_griffin_lim_on_the_same_clips(models, clip_table):
    audio = clip_audio(clip_table.slice(0, 2))
    alone = evaluation.vocoder_scores(audio, None)
    assert [r["model"] for r in alone.rows] == ["Griffin-Lim"] and alone.hifigan is None
    both = evaluation.vocoder_scores(audio, models["hifigan"])
    assert [(r["model"], r["version"]) for r in both.rows] == [("Griffin-Lim", ""), ("HiFi-GAN", "2")]
    assert both.griffin_lim == pytest.approx(alone.griffin_lim)
    assert [r["value"] for r in both.rows] == [both.griffin_lim, both.hifigan]


def test_table_metrics_name_each_row_by_model_and_metric():
    rows = [{"model": "Deep Performer", "version": "3", "metric": "mel MSE", "value": 0.5},
            {"model": "alignment model", "version": "1", "metric": "onset MAE (ms)", "value": 20.0}]  # fmt: skip
    table = evaluation.results_table(rows)
    assert list(table.columns) == evaluation.COLUMNS
    assert evaluation.table_metrics(table) == {"DeepPerformer.melMSE": 0.5, "alignmentmodel.onsetMAE_ms": 20.0}
    empty = evaluation.results_table([])
    assert list(empty.columns) == evaluation.COLUMNS and len(empty) == 0


def test_samples_are_the_recording_and_every_synthesis_as_wav_and_one_png(models, clip_table, tmp_path):
    out = tmp_path / "samples"
    pngs = evaluation.write_samples(str(out), clip_table, models["full"], models["alignment"], count=1)
    (name, png), = pngs
    assert name == "anna_bwv1_mov1-clip0" and Image.open(io.BytesIO(png)).format == "PNG"
    expected = [f"{name}-{kind}.wav" for kind in ("griffin_lim", "recorded_timing", "recording", "score_only")]
    assert sorted(p.name for p in out.iterdir()) == [*expected, f"{name}.png"]
    without = evaluation.write_samples(str(tmp_path / "plain"), clip_table, models["full"], None, count=2)
    assert len(without) == 2 and not any(p.name.endswith("score_only.wav") for p in (tmp_path / "plain").iterdir())
