import pandas as pd
import pyarrow as pa

from pipelines.cli import main
from storage import shards


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


def test_report_writes_heatmap_and_table(home, tmp_path, capsys):
    rows = [
        {"trained_on": t, "tested_on": s, "perplexity": 10.0 + i}
        for i, (t, s) in enumerate((t, s) for t in ("a", "b", "all") for s in ("a", "b"))
    ]
    shards.write_table(home.datasets, "cross_dataset_perplexity", "__all__", pa.Table.from_pandas(pd.DataFrame(rows)))
    png = tmp_path / "heatmap.png"
    assert main(["report", "--png", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["### perplexity", "", "| trained on | a | b |"]
    assert [line.split(" | ")[0] for line in out[4:7]] == ["| a", "| b", "| all"]
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "(no part_separation_eval yet: run `baton experiment --branch instrumentation`)" in out
