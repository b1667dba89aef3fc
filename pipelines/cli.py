"""The `baton` command: the demo, the UIs, dataset management and the symbolic experiment."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from storage.home import BatonHome

DEMO_DATASETS = ("bach_chorales", "monteverdi", "trecento")
PAPER_DATASETS = ("bach_chorales", "monteverdi", "oneills", "palestrina", "ryans_mammoth", "trecento")


def instance_for(home: BatonHome):
    """The persistent Dagster instance under <home>/dagster, the same one `baton ui` shows."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = home.dagster
    return dg.DagsterInstance.get()


def run_experiment(home: BatonHome, datasets: list[str], profile: str, arch: str, steps: int | None = None) -> dict:
    """Every dataset through its lineage, then the combined models and the perplexity matrix."""
    from pipelines.definitions import build_defs

    defs = build_defs(home)
    instance = instance_for(home)
    known = set(instance.get_dynamic_partitions("datasets"))
    instance.add_dynamic_partitions("datasets", [d for d in datasets if d not in known])
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # step events stay in the UI
    lm = {"profile": profile, "arch": arch, **({f"{profile}_steps": steps} if steps else {})}
    results = {}
    for dataset in datasets:
        print(f"== {dataset}: score files -> notes -> event sequences -> music_lm ({profile})", flush=True)
        result = defs.resolve_job_def("symbolic_dataset").execute_in_process(
            instance=instance, partition_key=dataset, run_config={**quiet, "ops": {"music_lm": {"config": lm}}}, raise_on_error=False
        )
        results[dataset] = result.success
    ok = [d for d in datasets if results[d]]
    for mode in ("all", "stratified"):
        print(f"== music_lm_combined[{mode}] over {', '.join(ok)}", flush=True)
        config = {**quiet, "ops": {"music_lm_combined": {"config": {**lm, "datasets": ok}}}}
        results[mode] = defs.resolve_job_def("music_lm_combined_job").execute_in_process(
            instance=instance, partition_key=mode, run_config=config, raise_on_error=False
        ).success
    print("== cross_dataset_perplexity", flush=True)
    results["cross_dataset_perplexity"] = defs.resolve_job_def("cross_dataset_perplexity_job").execute_in_process(
        instance=instance, run_config={**quiet, "ops": {"cross_dataset_perplexity": {"config": {"datasets": ok}}}}, raise_on_error=False
    ).success
    return results


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.tools import require_tools

    require_tools()
    home = BatonHome.from_env().ensure()
    results = run_experiment(home, list(args.datasets or DEMO_DATASETS), "smoke", "lstm")
    print_summary(home, results)
    return 0 if all(results.values()) else 1


def cmd_experiment(args: argparse.Namespace) -> int:
    home = BatonHome.from_env().ensure()
    results = run_experiment(home, list(args.datasets or PAPER_DATASETS), args.profile, args.arch, args.steps)
    print_summary(home, results)
    return 0 if all(results.values()) else 1


def print_summary(home: BatonHome, results: dict) -> None:
    from storage.tracking import MlflowResource, default_tracking_uri, latest_run_url

    ui = MlflowResource.model_fields["ui_url"].default
    run = latest_run_url(default_tracking_uri(home), "baton", "cross_dataset_perplexity", ui)
    print("\nResults:")
    for name, ok in results.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    print(
        f"""
Where to look:
  Dagster UI and MLflow UI:  make ui   (Dagster http://127.0.0.1:3000, MLflow http://127.0.0.1:5000)
  Dataset plots:             {home.cache}/plots/dataset_stats/<dataset>/
  Cross-dataset heatmap:     {run or "no run yet"} (artifact cross_dataset_perplexity.png)
  Shard sets:                {home.datasets}/
  MLflow store:              {home.mlflow}/mlflow.db"""
    )


def cmd_ui(args: argparse.Namespace) -> int:
    from storage.tracking import default_tracking_uri

    home = BatonHome.from_env().ensure()
    env = {**os.environ, "DAGSTER_HOME": home.dagster, "BATON_HOME": home.root}
    bin_dir = os.path.dirname(sys.executable)
    procs = [
        subprocess.Popen([os.path.join(bin_dir, "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.dagster_port)], env=env),
        subprocess.Popen(
            [os.path.join(bin_dir, "mlflow"), "ui", "--backend-store-uri", default_tracking_uri(home),
             "--default-artifact-root", f"{home.mlflow}/artifacts", "--host", "127.0.0.1", "--port", str(args.mlflow_port), "--workers", "1"],
            env=env,
        ),
    ]
    print(f"Dagster: http://127.0.0.1:{args.dagster_port}   MLflow: http://127.0.0.1:{args.mlflow_port}   (Ctrl-C stops both)")
    try:
        return max(p.wait() for p in procs)
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from assets.symbolic import datasets

    home = BatonHome.from_env().ensure()
    if args.action == "list":
        for info in datasets.list_datasets(home.local_datasets):
            print(f"{info.name:22} {info.kind:8} {info.title}")
    elif args.action == "download":
        print(datasets.download(args.name, home.raw))
    elif args.action == "add-local":
        datasets.register_local(args.name, os.path.abspath(args.path), home.local_datasets)
        print(f"registered {args.name} -> {args.path}; materialize it with: baton experiment --datasets {args.name}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The README's perplexity table and heatmap, from the latest cross_dataset_perplexity materialization."""
    from assets.symbolic.language_model import heatmap_png
    from pipelines.metadata import markdown_table
    from storage import shards

    home = BatonHome.from_env()
    long = shards.read_table(home.datasets, "cross_dataset_perplexity", "__all__").to_pandas()
    matrix = long.pivot(index="trained_on", columns="tested_on", values="perplexity")
    order = [c for c in matrix.columns] + [r for r in matrix.index if r not in matrix.columns]
    matrix = matrix.reindex(order)
    matrix.index.name, matrix.columns.name = "trained on", "tested on"
    os.makedirs(os.path.dirname(args.png) or ".", exist_ok=True)
    with open(args.png, "wb") as f:
        f.write(heatmap_png(matrix))
    print(markdown_table(matrix.round(2).reset_index(), digits=4))
    print(f"\n![cross-dataset perplexity]({args.png})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baton", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the default lineage on the embedded data (smoke profile)")
    demo.add_argument("--datasets", nargs="*")
    demo.set_defaults(func=cmd_demo)
    exp = sub.add_parser("experiment", help="the MusPy cross-dataset experiment")
    exp.add_argument("--datasets", nargs="*")
    exp.add_argument("--profile", default="paper", choices=["smoke", "paper"])
    exp.add_argument("--arch", default="lstm", choices=["rnn", "lstm", "gru", "transformer"])
    exp.add_argument("--steps", type=int, help="training steps per model (default: the profile's)")
    exp.set_defaults(func=cmd_experiment)
    ui = sub.add_parser("ui", help="Dagster and MLflow UIs on 127.0.0.1 over the same BATON_HOME")
    ui.add_argument("--dagster-port", type=int, default=3000)
    ui.add_argument("--mlflow-port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)
    ds = sub.add_parser("datasets", help="list, download or add symbolic datasets")
    ds_sub = ds.add_subparsers(dest="action", required=True)
    ds_sub.add_parser("list")
    dl = ds_sub.add_parser("download")
    dl.add_argument("name")
    add = ds_sub.add_parser("add-local")
    add.add_argument("name")
    add.add_argument("path")
    ds.set_defaults(func=cmd_datasets)
    report = sub.add_parser("report", help="perplexity table (markdown) and heatmap PNG for the README")
    report.add_argument("--png", default="docs/cross_dataset_perplexity.png")
    report.set_defaults(func=cmd_report)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
