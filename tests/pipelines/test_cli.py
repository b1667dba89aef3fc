import os

import pytest

from pipelines.cli import main


def test_datasets_list_and_add_local(home, tmp_path, capsys):
    assert main(["datasets", "list"]) == 0
    listed = capsys.readouterr().out
    assert "bach_chorales" in listed and "lmd" in listed
    folder = tmp_path / "mine"
    folder.mkdir()
    assert main(["datasets", "add-local", "mine", str(folder)]) == 0
    capsys.readouterr()
    main(["datasets", "list"])
    assert "mine" in capsys.readouterr().out


def test_every_command_still_parses():
    from pipelines.cli import parser

    commands = [
        ["demo"], ["demo", "--datasets", "bach_chorales"], ["ui", "--dagster-port", "3001"], ["datasets", "list"],
        ["datasets", "download", "lmd"], ["datasets", "add-local", "mine", "/tmp"], ["ingest", "bach_chorales"],
        ["experiment", "--branch", "video", "--profile", "demo", "--clip-model", "baton/small-clip", "--per-instrument", "2"],
        ["experiment", "--branch", "performance", "--method", "v1", "--vocoder-profile", "none", "--manifest", "release"],
        ["experiment", "--branch", "instrumentation", "--archs", "lstm", "bilstm", "--steps", "10", "--stage", "data"],
        ["instrument", "a.mid", "b.mid", "--audio", "b.wav"], ["perform", "a.mxl", "a.wav", "--qpm", "90", "--png", "a.png"],
        ["separate", "m.wav", "o.wav", "--query", "violin"], ["report", "--section", "mmt"],
    ]  # fmt: skip
    for argv in commands:
        assert callable(parser().parse_args(argv).func), argv


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["experiment", "--branch", "mmt", "--arch", "gru"], "error: --arch does not apply to the mmt branch"),
        (["experiment", "--branch", "instrumentation", "--archs", "cnn"], "error: --archs: unknown cnn"),
        (["experiment", "--profile", "demo"], "error: only instrumentation, video, clipsonic have a demo profile"),
        (["experiment", "--datasets", "no_such_set"], "error: unknown dataset 'no_such_set'"),
        (["experiment", "--stage", "train"], "baton experiment: error: argument --stage: invalid choice: 'train'"),
        (["ingest", "no_such_set"], "error: unknown dataset 'no_such_set'"),
        (["ingest"], "baton ingest: error: the following arguments are required: DATASET"),
        (["datasets", "download", "bach_chorales"], "error: dataset 'bach_chorales' is not remote"),
        (["bogus"], "baton: error: argument COMMAND: invalid choice: 'bogus'"),
    ],
)
def test_a_usage_error_is_one_line_and_status_2(home, capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and captured.err.count("\n") == 1, captured.err
    assert captured.out == ""


def test_help_shows_what_each_command_does_and_every_default(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for held in ("MusPy datasets", "cross-dataset", "Multitrack Music Transformer", "automatic instrumentation",
                 "Deep Performer", "CLIPSep", "CLIPSonic"):  # fmt: skip
        assert held in out
    assert main(["experiment", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: all)" in out and "(default: paper)" in out and "(default: muspy)" in out
    assert "muspy: bach_chorales monteverdi oneills palestrina ryans_mammoth trecento;" in out
    assert "[video, clipsonic] synthetic videos per instrument (default: 6)" in out
    assert "[clipsonic] CLIPSonic models to train: iq, clip_tta, clap_tta (default: iq clip_tta clap_tta)" in out
    assert main(["report", "--help"]) == 0
    assert "(default: <home>/reports)" in " ".join(capsys.readouterr().out.split())


def test_a_model_file_with_code_is_one_line_and_status_2(home, tmp_path, capsys):
    import mlflow
    import music21
    import torch

    from assets.deep_performer.defs import ALIGNMENT, SYNTHESIS
    from models import deep_performer as dp
    from storage import tracking

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'ran'}",)

    folder = tmp_path / "performance_synthesis"
    cfg = dp.DeepPerformerConfig(d_model=8, d_ff=8, encoder_layers=1, decoder_layers=1, align_layers=1)
    dp.save_model(dp.build_model(cfg, "synthesis"), cfg, str(folder))
    torch.save(Payload(), folder / "model.pt")
    uri = tracking.default_tracking_uri(home)
    with tracking.start_run(uri, "baton", tracking.default_artifact_root(home), "tampered", {}) as run:
        mlflow.log_artifacts(str(folder), artifact_path="model")
    for name in (SYNTHESIS, ALIGNMENT):  # both registered in the real registry; the synthesis model loads first
        tracking.register_version(uri, name, run.info.run_id, "model", alias="champion")
    score = music21.stream.Stream([music21.note.Note("A4")])
    score.write("musicxml", fp=tmp_path / "a.musicxml")  # a score that reads, so the models are what is refused
    capsys.readouterr()  # the registry's own set-up logging
    assert main(["perform", str(tmp_path / "a.musicxml"), str(tmp_path / "a.wav")]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith("error: model file is not a safe state dict: ") and line.endswith("model.pt")
    assert "Traceback" not in captured.out + captured.err
    assert not (tmp_path / "ran").exists()
