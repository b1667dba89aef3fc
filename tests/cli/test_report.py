"""`baton report`: tables with the README's columns, written with their figures to <home>/reports or --out,
never into the checkout's docs/ unless asked."""

import os

import pandas as pd
import pyarrow as pa

from assets.clipsep import evaluation as clipsep_eval
from assets.instrumentation.evaluation import results_table
from models.mmt import metrics as mmt_metrics
from pipelines.cli import main
from storage import shards


def write_eval(home, asset: str, frame: pd.DataFrame) -> None:
    shards.write_table(home.datasets, asset, "__all__", pa.Table.from_pandas(frame, preserve_index=False))


def perplexity(home) -> None:
    rows = [
        {"trained_on": t, "tested_on": s, "perplexity": 10.0 + i}
        for i, (t, s) in enumerate((t, s) for t in ("a", "b", "all") for s in ("a", "b"))
    ]
    write_eval(home, "cross_dataset_perplexity", pd.DataFrame(rows))


def test_report_writes_tables_and_figures_to_the_home_by_default(home, tmp_path, monkeypatch, capsys):
    perplexity(home)
    monkeypatch.chdir(tmp_path)  # a checkout's docs/ would be here
    assert main(["report"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["### perplexity", "", "| trained on | a | b |"]
    assert [line.split(" | ")[0] for line in out[4:7]] == ["| a", "| b", "| all"]
    reports = os.path.join(home.root, "reports")
    png = os.path.join(reports, "cross_dataset_perplexity.png")
    assert f"![cross-dataset perplexity]({png})" in out
    assert "(no part_separation_eval yet: run `baton experiment --branch instrumentation`)" in out
    with open(png, "rb") as f:
        assert f.read().startswith(b"\x89PNG")
    assert sorted(os.listdir(reports)) == ["cross_dataset_perplexity.png", "perplexity.md"]
    with open(os.path.join(reports, "perplexity.md")) as f:
        assert f.read().splitlines() == out[2 : out.index(f"![cross-dataset perplexity]({png})") + 1]
    assert os.listdir(tmp_path) == ["home"]  # nothing written beside it


def test_report_out_names_the_folder_and_a_missing_parent_is_a_usage_error(home, tmp_path, capsys):
    perplexity(home)
    assert main(["report", "--section", "perplexity", "--out", str(tmp_path / "docs")]) == 0
    assert sorted(os.listdir(tmp_path / "docs")) == ["cross_dataset_perplexity.png", "perplexity.md"]
    assert not os.path.exists(os.path.join(home.root, "reports"))
    capsys.readouterr()

    assert main(["report", "--out", str(tmp_path / "no" / "such")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --out: there is no folder {tmp_path / 'no'} to make such in\n"
    assert not os.path.exists(tmp_path / "no")


def table_lines(out: str) -> list[list[str]]:
    """The cells of every markdown table row, the rule under the header left out."""
    lines = [line for line in out.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in line[1:-1].split("|")] for line in lines]


def test_every_table_has_the_readme_columns(home, capsys):
    stats = zip(clipsep_eval.STATS, (5.871, 0.284, 4.81, 5.87, 0.29, 5.13))
    scores = {f"{p}_{k}": v for k, v in stats for p in ("query", "pit")}
    scores |= {f"mixture_sdr_{stat}": v for stat, v in (("mean", 0.0), ("sem", 0.21), ("median", 0.0))}
    clipsep = [clipsep_eval.mixture_row(scores), clipsep_eval.summary_row("CLIPSep", "image", "3", scores, "query"),
               clipsep_eval.summary_row("PIT", "", "1", scores, "pit")]  # fmt: skip
    write_eval(home, "clipsep_eval", pd.DataFrame(clipsep, columns=clipsep_eval.COLUMNS))
    mmt = {**mmt_metrics.compare([], []), "notes_per_second": 191.4}
    mmt |= {"generated_pitch_class_entropy": 2.241, "truth_pitch_class_entropy": 2.98, "generated_n_notes": 245.8}
    write_eval(home, "mmt_eval", pd.DataFrame([{"mode": "instrument", **mmt}]))
    parts = [{"model": "zone-based", "setting": "offline", "accuracy": 70.254},
             {"model": "bilstm", "setting": "offline", "accuracy": 97.66}]  # fmt: skip
    write_eval(home, "part_separation_eval", results_table(parts))

    assert main(["report", "--section", "clipsep"]) == 0
    rows = table_lines(capsys.readouterr().out)
    sdr, sdri = "SDR (dB), mean ± SEM", "SDR improvement (dB), mean ± SEM"
    assert rows[0] == ["model", "query", sdr, "median", sdri, "median"]
    assert rows[1] == ["mixture", "", "0.00 ± 0.21", "0.00", "0.00 ± 0.00", "0.00"]
    assert rows[2] == ["CLIPSep", "image", "5.87 ± 0.28", "4.81", "5.87 ± 0.29", "5.13"]
    assert rows[3][:2] == ["PIT", "(none; best assignment)"]

    assert main(["report", "--section", "mmt"]) == 0
    rows = table_lines(capsys.readouterr().out)
    assert rows[0] == ["mode", "pitch-class entropy (generated / truth)", "scale consistency (generated / truth)",
                       "groove consistency (generated / truth)", "notes per sample", "notes/s"]  # fmt: skip
    assert [rows[1][i] for i in (0, 1, 4, 5)] == ["instrument-informed", "2.24 / 2.98", "246", "191"]

    assert main(["report", "--section", "instrumentation"]) == 0
    rows = table_lines(capsys.readouterr().out)
    assert rows == [
        ["model", "setting", "accuracy"], ["zone-based", "offline", "70.25"], ["BiLSTM", "offline", "97.66"]
    ]
