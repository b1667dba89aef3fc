"""`baton report`: the README's result tables and figures, from the latest evaluation materializations."""

from __future__ import annotations

import argparse

from pipelines.cli.launch import write_png
from storage.home import BatonHome

BRANCH_OF = {"perplexity": "muspy", "clipsep": "video"}  # report section -> the experiment that fills it


def report_clipsep(home: BatonHome) -> None:
    from assets.core.metadata import markdown_table
    from storage import shards

    print(markdown_table(shards.read_table(home.datasets, "clipsep_eval", "__all__").to_pandas(), digits=3))


def report_perplexity(home: BatonHome, png: str) -> None:
    from assets.core.metadata import markdown_table
    from assets.cross_dataset.language_model import heatmap_png
    from storage import shards

    long = shards.read_table(home.datasets, "cross_dataset_perplexity", "__all__").to_pandas()
    matrix = long.pivot(index="trained_on", columns="tested_on", values="perplexity")
    order = [c for c in matrix.columns] + [r for r in matrix.index if r not in matrix.columns]
    matrix = matrix.reindex(order)
    matrix.index.name, matrix.columns.name = "trained on", "tested on"
    write_png(png, heatmap_png(matrix))
    print(markdown_table(matrix.round(2).reset_index(), digits=4))
    print(f"\n![cross-dataset perplexity]({png})")


def report_instrumentation(home: BatonHome, png: str) -> None:
    """Table 4.2 from the latest part_separation_eval, and the champion's confusion matrix."""
    import mlflow

    from assets.core.metadata import markdown_table
    from storage import shards, tracking

    table = shards.read_table(home.datasets, "part_separation_eval", "__all__").to_pandas()
    print(markdown_table(table, digits=4))
    uri = tracking.default_tracking_uri(home)
    champion = tracking.get_alias_version(uri, "part_separation", "champion")
    run = tracking.latest_run(uri, "baton", "part_separation_eval")
    if run is not None and champion is not None:
        name = f"confusion_{champion.tags.get('arch')}.png"
        local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=name, tracking_uri=uri, dst_path=home.cache)
        with open(local, "rb") as f:
            write_png(png, f.read())
        print(f"\n![part separation confusion matrix]({png})")


def report_mmt(home: BatonHome) -> None:
    from assets.core.metadata import markdown_table
    from storage import shards

    table = shards.read_table(home.datasets, "mmt_eval", "__all__").to_pandas()
    columns = ["mode", *[c for c in table.columns if c.startswith(("generated_", "truth_"))], "notes_per_second"]
    print(markdown_table(table[columns], digits=3))


def report_performance(home: BatonHome) -> None:
    from assets.core.metadata import markdown_table
    from storage import shards

    print(markdown_table(shards.read_table(home.datasets, "performance_eval", "__all__").to_pandas(), digits=4))


def report_clipsonic(home: BatonHome, png: str) -> None:
    """Table 7.1 and Table 7.2 from the latest clipsonic_eval, and the guidance sweep of Figure 7.3."""
    from assets.clipsonic import evaluation as ev
    from assets.core.metadata import markdown_table
    from storage import shards

    table = shards.read_table(home.datasets, "clipsonic_eval", "__all__").to_pandas()
    print(markdown_table(ev.table_7_1(table), digits=3))
    print("\nQuery embeddings against the ground-truth image embeddings (Table 7.2):\n")
    print(markdown_table(ev.table_7_2(table), digits=3))
    sweep = ev.rows_of(table, "sweep")
    if len(sweep):
        write_png(png, ev.sweep_png(sweep))
        print(f"\n![CLIPSonic guidance sweep]({png})")


def cmd_report(args: argparse.Namespace) -> int:
    """The README's result tables and figures, from the latest evaluation materializations."""
    from storage import shards

    home = BatonHome.from_env()
    sections = {
        "perplexity": ("cross_dataset_perplexity", lambda: report_perplexity(home, args.png)),
        "instrumentation": ("part_separation_eval", lambda: report_instrumentation(home, args.confusion_png)),
        "mmt": ("mmt_eval", lambda: report_mmt(home)),
        "performance": ("performance_eval", lambda: report_performance(home)),
        "clipsep": ("clipsep_eval", lambda: report_clipsep(home)),
        "clipsonic": ("clipsonic_eval", lambda: report_clipsonic(home, args.guidance_png)),
    }
    chosen = list(sections) if args.section == "all" else [args.section]
    for name in chosen:
        asset, show = sections[name]
        print(f"### {name}\n")
        if shards.read_manifest(home.datasets, asset, "__all__") is None:
            print(f"(no {asset} yet: run `baton experiment --branch {BRANCH_OF.get(name, name)}`)\n")
            continue
        show()
        print()
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report", help="the result tables (markdown) and figures (PNG) of every experiment, for the README",
        description="Prints each section's table from the latest evaluation materialization (cross-dataset "
        "perplexity, Table 4.2, MMT, Table 5.1, CLIPSep SDR, CLIPSonic Tables 7.1 and 7.2) and writes the heatmap, "
        "confusion-matrix and guidance-sweep PNGs; "
        "a section without results says which experiment fills it.",
    )  # fmt: skip
    report.add_argument("--section", default="all", choices=["all", "perplexity", "instrumentation", "mmt", "performance", "clipsep", "clipsonic"],
                        help="the section to print")
    report.add_argument("--png", default="docs/cross_dataset_perplexity.png", help="where the perplexity heatmap goes")
    report.add_argument("--confusion-png", default="docs/part_separation_confusion.png",
                        help="where the champion part-separation model's confusion matrix goes")
    report.add_argument("--guidance-png", default="docs/clipsonic_guidance_sweep.png",
                        help="where CLIPSonic's guidance sweep (Figure 7.3) goes")
    report.set_defaults(func=cmd_report)
