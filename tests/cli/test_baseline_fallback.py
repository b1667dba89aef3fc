"""Inference when the champion rule held every model back: `instrument` arranges by the zone baseline
and `separate` writes the mixture back, each saying so in one line; a model that is used is named with
its profile, and a registry where nothing was evaluated is an error with the command that trains one."""

import mlflow
import muspy
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from assets.instrumentation import evaluation
from models import part_separation as ps
from models.part_separation import PartSong
from pipelines import cli
from storage import tracking


def chorale(name: str, split: str = "train") -> PartSong:
    onset = np.repeat(np.arange(16) * 24, 4)
    label = np.tile(np.arange(4), 16)
    return PartSong("toy", name, split, "satb", ("Soprano", "Alto", "Tenor", "Bass"), onset, np.full(64, 24), 76 - 7 * label, label)


def registered_model(home, tmp_path, name: str, tags: dict, metrics: dict, save) -> object:
    """A version of `name` registered from a real training run of the home's registry."""
    uri = tracking.default_tracking_uri(home)
    with tracking.start_run(uri, "baton", tracking.default_artifact_root(home), f"{name}-train", {}) as run:
        mlflow.log_metrics(metrics)
        model_dir = tmp_path / f"{name}-model"
        save(str(model_dir))
        mlflow.log_artifacts(str(model_dir), "model")
    tracking.register_version(uri, name, run.info.run_id, "model", tags=tags)
    return tracking.get_alias_version(uri, name, "candidate")


def evaluated(home, eval_run: str, name: str, version, record: dict) -> None:
    """An evaluation run that logged its baseline record and applied the champion rule."""
    uri = tracking.default_tracking_uri(home)
    with tracking.start_run(uri, "baton", tracking.default_artifact_root(home), eval_run, {}):
        mlflow.log_dict(record, tracking.BASELINE_ARTIFACT)
        tracking.promote_if_better(uri, name, version, record["metric"], False, record["baselines"])


@pytest.fixture
def part_model(home, tmp_path):
    cfg = ps.configure(ps.PROFILES["smoke"], [chorale("a")])
    tags = {"arch": cfg.arch, "part_names": "Soprano,Alto,Tenor,Bass", "scheme": "satb", "profile": "smoke"}
    return registered_model(home, tmp_path, "part_separation", tags, {"test_accuracy_no_hints": 0.31},
                            lambda folder: ps.save_model(ps.build_model(cfg), cfg, folder))  # fmt: skip


@pytest.fixture
def solo(tmp_path):
    notes = [muspy.Note(24 * i, pitch, 24, 80) for i in range(4) for pitch in (55, 62, 69, 76)]
    path = tmp_path / "solo.mid"
    muspy.write_midi(path, muspy.Music(resolution=24, tempos=[muspy.Tempo(0, 100.0)], tracks=[muspy.Track(notes=notes)]))
    return str(path)


def test_instrument_without_any_evaluation_names_the_command_that_trains(home, solo, tmp_path, capfd):
    assert cli.main(["instrument", solo, str(tmp_path / "o.mid")]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "no model part_separation@champion" in err and "baton experiment --branch instrumentation" in err


def test_instrument_arranges_by_the_zone_baseline_when_no_model_beats_it(home, part_model, solo, tmp_path, capfd):
    train = [chorale("a"), chorale("b")]
    record = tracking.baseline_record(
        "test_accuracy_no_hints", False, {"zone-based": 0.70, "closest-pitch": 0.25}, f"lstm v{part_model.version}", 0.31,
        **evaluation.zone_baseline(train, train[0].part_names, "satb"),
    )  # fmt: skip
    evaluated(home, "part_separation_eval", "part_separation", part_model, record)
    assert tracking.get_alias_version(tracking.default_tracking_uri(home), "part_separation", "champion") is None
    out = tmp_path / "arranged.mid"
    assert cli.main(["instrument", solo, str(out)]) == 0
    printed = capfd.readouterr()
    assert printed.err == (f"note: no part_separation model beats the zone-based baseline (best, lstm v{part_model.version}, "
                           "31.0 % vs 70.0 %); arranged by the zone baseline\n")  # fmt: skip
    assert "arranged by the zone baseline" in printed.out
    parts = {t.name: sorted({n.pitch for n in t.notes}) for t in muspy.read_midi(out).tracks if t.notes}
    assert parts == {"Soprano": [76], "Alto": [69], "Tenor": [62], "Bass": [55]}  # the zones fitted on the chorales

    # another alias asks for a model, not the baseline: the candidate is used, named with its profile
    assert cli.main(["instrument", solo, str(out), "--alias", "candidate"]) == 0
    printed = capfd.readouterr()
    assert f"arranged by part_separation v{part_model.version} (smoke profile" in printed.out
    assert printed.err.count("\n") == 1 and printed.err.startswith(f"warning: part_separation v{part_model.version} is a smoke-profile")
    assert "baton experiment --branch instrumentation --profile paper" in printed.err


def test_instrument_uses_a_champion_that_beats_the_baselines(home, part_model, solo, tmp_path, capfd):
    record = tracking.baseline_record("test_accuracy_no_hints", False, {"zone-based": 0.30}, "lstm v1", 0.31,
                                      **evaluation.zone_baseline([chorale("a")], chorale("a").part_names, "satb"))  # fmt: skip
    evaluated(home, "part_separation_eval", "part_separation", part_model, record)
    assert cli.main(["instrument", solo, str(tmp_path / "o.mid")]) == 0
    printed = capfd.readouterr()
    assert f"arranged by part_separation v{part_model.version} (smoke profile" in printed.out
    assert "zone baseline" not in printed.err and "smoke-profile" in printed.err


def test_separate_writes_the_mixture_back_when_no_model_beats_it(home, tmp_path, capfd):
    from models import clipsep as cs

    cfg = cs.PROFILES["smoke"]
    version = registered_model(home, tmp_path, "clipsep", {"method": "nit", "clip_model": "small", "profile": "smoke"},
                               {"test_sdri_image": -1.5}, lambda folder: cs.save_model(cs.build_model(cfg), cfg, folder))  # fmt: skip
    record = tracking.baseline_record("test_sdri_image", False, {"mixture": 0.0}, f"CLIPSep-NIT v{version.version}", -1.5)
    evaluated(home, "clipsep_eval", "clipsep", version, record)
    mixture = (0.1 * np.sin(np.arange(16_000) * 2 * np.pi * 440 / 16_000)).astype(np.float32)
    sf.write(tmp_path / "mix.wav", mixture, 16_000)
    Image.new("RGB", (32, 32), "red").save(tmp_path / "flute.png")
    out = tmp_path / "flute.wav"
    assert cli.main(["separate", str(tmp_path / "mix.wav"), str(out), "--image", str(tmp_path / "flute.png")]) == 0
    printed = capfd.readouterr()
    assert printed.err == (f"note: no clipsep model beats the mixture baseline (best, CLIPSep-NIT v{version.version}, "
                           "-1.50 dB SDRi vs 0.00 dB SDRi); wrote the mixture unseparated\n")  # fmt: skip
    written, rate = sf.read(out, dtype="float32")
    assert rate == 16_000 and "unseparated" in printed.out
    np.testing.assert_allclose(written, mixture, atol=1e-4)
