"""`baton report`: the README's result tables and figures, from the latest evaluation materializations.

Each section is printed and written to ``<out>/<section>.md`` next to its figure, ``<out>`` being
``<home>/reports`` unless ``--out`` names another folder (``--out docs`` refreshes the README's
figures). Tables carry the README's column names and layout.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from pipelines.cli.launch import UsageError, write_png
from storage.home import BatonHome

if TYPE_CHECKING:
    import pandas as pd

BRANCH_OF = {"perplexity": "muspy", "clipsep": "video"}  # report section -> the experiment that fills it
FIGURES = {
    "perplexity": "cross_dataset_perplexity.png",
    "instrumentation": "part_separation_confusion.png",
    "clipsonic": "clipsonic_guidance_sweep.png",
}  # section -> the file name of its figure in the output folder
HOME_REPORTS = "<home>/reports"  # the default output folder, as the help shows it
ARCH_LABELS = {"lstm": "LSTM", "bilstm": "BiLSTM", "transformer_decoder": "transformer decoder",
               "transformer_encoder": "transformer encoder"}  # fmt: skip
MODE_LABELS = {"unconditioned": "unconditioned", "instrument": "instrument-informed", "continuation": "continuation"}
MMT_METRICS = {"pitch_class_entropy": "pitch-class entropy", "scale_consistency": "scale consistency",
               "groove_consistency": "groove consistency"}  # fmt: skip


def clipsep_layout(table: pd.DataFrame) -> pd.DataFrame:
    """The README's CLIPSep table: SDR and SDR improvement as mean ± SEM and median, in dB."""
    import pandas as pd

    columns = ["model", "query", "SDR (dB), mean ± SEM", "median", "SDR improvement (dB), mean ± SEM", "median"]
    rows = [
        [r.model, r.query or ("" if r.model == "mixture" else "(none; best assignment)"),
         f"{r.sdr_mean:.2f} ± {r.sdr_sem:.2f}", f"{r.sdr_median:.2f}",
         f"{r.sdri_mean:.2f} ± {r.sdri_sem:.2f}", f"{r.sdri_median:.2f}"]
        for r in table.itertuples(index=False)
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def report_clipsep(home: BatonHome, out: str) -> str:
    from assets.core.metadata import markdown_table
    from storage import shards

    return markdown_table(clipsep_layout(shards.read_table(home.datasets, "clipsep_eval", "__all__").to_pandas()))


def report_perplexity(home: BatonHome, out: str) -> str:
    from assets.core.metadata import markdown_table
    from assets.cross_dataset.language_model import heatmap_png
    from storage import shards

    long = shards.read_table(home.datasets, "cross_dataset_perplexity", "__all__").to_pandas()
    matrix = long.pivot(index="trained_on", columns="tested_on", values="perplexity")
    order = [c for c in matrix.columns] + [r for r in matrix.index if r not in matrix.columns]
    matrix = matrix.reindex(order)
    matrix.index.name, matrix.columns.name = "trained on", "tested on"
    png = figure(out, "perplexity", heatmap_png(matrix))
    return markdown_table(matrix.round(2).reset_index(), digits=4) + f"\n\n![cross-dataset perplexity]({png})"


def instrumentation_layout(table: pd.DataFrame) -> pd.DataFrame:
    """Table 4.2 as the README shows it: architectures by name, accuracy with two decimals."""
    import pandas as pd

    return pd.DataFrame({
        "model": [ARCH_LABELS.get(m, m) for m in table["model"]], "setting": table["setting"],
        "accuracy": [f"{a:.2f}" for a in table["accuracy"]],
    })  # fmt: skip


def report_instrumentation(home: BatonHome, out: str) -> str:
    """Table 4.2 from the latest part_separation_eval, and the champion's confusion matrix."""
    import mlflow

    from assets.core.metadata import markdown_table
    from storage import shards, tracking

    table = shards.read_table(home.datasets, "part_separation_eval", "__all__").to_pandas()
    text = markdown_table(instrumentation_layout(table))
    uri = tracking.default_tracking_uri(home)
    champion = tracking.get_alias_version(uri, "part_separation", "champion")
    run = tracking.latest_run(uri, "baton", "part_separation_eval")
    if run is not None and champion is not None:
        name = f"confusion_{champion.tags.get('arch')}.png"
        local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=name, tracking_uri=uri, dst_path=home.cache)
        with open(local, "rb") as f:
            png = figure(out, "instrumentation", f.read())
        text += f"\n\n![part separation confusion matrix]({png})"
    return text


def mmt_layout(table: pd.DataFrame) -> pd.DataFrame:
    """The README's MMT table: each metric as generated / truth, sample length and generation speed."""
    import pandas as pd

    shown = pd.DataFrame({"mode": [MODE_LABELS.get(m, m) for m in table["mode"]]})
    for key, label in MMT_METRICS.items():
        pairs = zip(table[f"generated_{key}"], table[f"truth_{key}"])
        shown[f"{label} (generated / truth)"] = [f"{g:#.3g} / {t:#.3g}" for g, t in pairs]
    shown["notes per sample"] = [f"{n:.0f}" for n in table["generated_n_notes"]]
    shown["notes/s"] = [f"{v:.0f}" for v in table["notes_per_second"]]
    return shown


def report_mmt(home: BatonHome, out: str) -> str:
    from assets.core.metadata import markdown_table
    from storage import shards

    return markdown_table(mmt_layout(shards.read_table(home.datasets, "mmt_eval", "__all__").to_pandas()))


def report_performance(home: BatonHome, out: str) -> str:
    """Table 5.1 as the README shows it; each row's model version is in performance_eval's metadata."""
    from assets.core.metadata import markdown_table
    from storage import shards

    table = shards.read_table(home.datasets, "performance_eval", "__all__").to_pandas()
    return markdown_table(table[["model", "metric", "value"]], digits=4)


def report_clipsonic(home: BatonHome, out: str) -> str:
    """Table 7.1 and Table 7.2 from the latest clipsonic_eval, and the guidance sweep of Figure 7.3."""
    from assets.clipsonic import evaluation as ev
    from assets.core.metadata import markdown_table
    from storage import shards

    table = shards.read_table(home.datasets, "clipsonic_eval", "__all__").to_pandas()
    text = markdown_table(ev.table_7_1(table), digits=3)
    text += "\n\nQuery embeddings against the ground-truth image embeddings (Table 7.2):\n\n"
    text += markdown_table(ev.table_7_2(table), digits=3)
    sweep = ev.rows_of(table, "sweep")
    if len(sweep):
        text += f"\n\n![CLIPSonic guidance sweep]({figure(out, 'clipsonic', ev.sweep_png(sweep))})"
    return text


SECTIONS = {
    "perplexity": ("cross_dataset_perplexity", report_perplexity),
    "instrumentation": ("part_separation_eval", report_instrumentation),
    "mmt": ("mmt_eval", report_mmt),
    "performance": ("performance_eval", report_performance),
    "clipsep": ("clipsep_eval", report_clipsep),
    "clipsonic": ("clipsonic_eval", report_clipsonic),
}  # section -> (the evaluation asset it reads, what renders it)


def figure(out: str, section: str, png: bytes) -> str:
    """Write the section's figure into the output folder; its path, for the markdown."""
    path = os.path.join(out, FIGURES[section])
    write_png(path, png)
    return path


def output_folder(home: BatonHome, out: str) -> str:
    """``<home>/reports``, or the folder ``--out`` names (made if missing, inside a folder that exists)."""
    if out == HOME_REPORTS:
        return os.path.join(home.root, "reports")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out: {out} is not a folder")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UsageError(f"--out: there is no folder {parent} to make {os.path.basename(out)} in")
    return out


def cmd_report(args: argparse.Namespace) -> int:
    """The README's result tables and figures, from the latest evaluation materializations."""
    from storage import shards

    home = BatonHome.from_env()
    out = output_folder(home, args.out)
    for name in list(SECTIONS) if args.section == "all" else [args.section]:
        asset, render = SECTIONS[name]
        print(f"### {name}\n")
        if shards.read_manifest(home.datasets, asset, "__all__") is None:
            print(f"(no {asset} yet: run `baton experiment --branch {BRANCH_OF.get(name, name)}`)\n")
            continue
        text = render(home, out)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"{name}.md"), "w") as f:
            f.write(text + "\n")
        print(text + "\n")
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report", help="the result tables (markdown) and figures (PNG) of every experiment, for the README",
        description="Prints each section's table from the latest evaluation materialization (cross-dataset "
        "perplexity, Table 4.2, MMT, Table 5.1, CLIPSep SDR, CLIPSonic Tables 7.1 and 7.2) with the README's "
        "column names, and writes each as <section>.md with the heatmap, confusion-matrix and guidance-sweep PNGs "
        f"({', '.join(FIGURES.values())}) into one folder; "
        "a section without results says which experiment fills it.",
    )  # fmt: skip
    report.add_argument("--section", default="all", choices=["all", *SECTIONS], help="the section to print")
    report.add_argument("--out", metavar="DIR", default=HOME_REPORTS,
                        help="the folder for the tables and figures (--out docs updates the README's figures)")
    report.set_defaults(func=cmd_report)
