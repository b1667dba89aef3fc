"""`baton demo`: every branch's experiment at demo settings; `baton ui`: the Dagster and MLflow UIs."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from pipelines.cli.launch import check_datasets, instance_for, launch_experiment, print_summary
from storage.home import BatonHome

DEMO_DATASETS = ("bach_chorales", "monteverdi", "trecento")
DEMO_VIDEOS_PER_INSTRUMENT = 6


def demo_configs(datasets: list[str]) -> dict[str, dict]:
    """branch -> run config: the smoke profile (`demo` for CLIPSep, with the small offline CLIP)."""
    from models.clip_embed import SMALL_CLIP

    return {
        "muspy": {"profile": "smoke", "arch": "lstm", "datasets": datasets},
        "mmt": {"profile": "smoke", "datasets": datasets},
        "instrumentation": {"profile": "smoke", "datasets": [d for d in datasets if d == "bach_chorales"] or datasets[:1]},
        "performance": {"profile": "smoke"},
        "video": {"profile": "demo", "clip_model": SMALL_CLIP, "per_instrument": DEMO_VIDEOS_PER_INSTRUMENT},
        # the image-queried model only, inverted by Griffin-Lim, without the 1,000-step sampler's row (10 CPU
        # minutes): the baselines, a vocoder and that row would more than double its time
        "clipsonic": {"profile": "demo", "clip_model": SMALL_CLIP, "per_instrument": DEMO_VIDEOS_PER_INSTRUMENT,
                      "conditions": ["iq"], "vocoder_profile": "none", "per_label": 2, "ddpm_per_label": 0,
                      "sweep_per_label": 1},
    }


def cmd_demo(args: argparse.Namespace) -> int:
    from assets.core.tools import require_tools

    require_tools()
    home = BatonHome.from_env().ensure()
    datasets = list(args.datasets or DEMO_DATASETS)
    check_datasets(home, datasets)
    with instance_for(home) as instance:
        outcomes = []
        for branch, config in demo_configs(datasets).items():
            print(f"== {branch}_experiment: {config}", flush=True)
            outcomes.append(launch_experiment(instance, branch, config, home))
    print_summary(home, outcomes)
    return 0 if all(outcome.ok for outcome in outcomes) else 1


def cmd_ui(args: argparse.Namespace) -> int:
    from storage.tracking import default_tracking_uri, is_server

    home = BatonHome.from_env().ensure()
    env = {**os.environ, "DAGSTER_HOME": home.dagster, "BATON_HOME": home.root}
    bin_dir = os.path.dirname(sys.executable)
    uri, mlflow_url = default_tracking_uri(home), f"http://127.0.0.1:{args.mlflow_port}"
    procs = [
        subprocess.Popen([os.path.join(bin_dir, "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.dagster_port)], env=env),
    ]
    if is_server(uri):  # BATON_MLFLOW_URI: the tracking server is its own UI
        mlflow_url = uri
    else:
        procs.append(subprocess.Popen(
            [os.path.join(bin_dir, "mlflow"), "ui", "--backend-store-uri", uri,
             "--default-artifact-root", f"{home.mlflow}/artifacts", "--host", "127.0.0.1", "--port", str(args.mlflow_port), "--workers", "1"],
            env=env,
        ))  # fmt: skip
    print(f"Dagster: http://127.0.0.1:{args.dagster_port}   MLflow: {mlflow_url}   (Ctrl-C stops both)")
    try:
        return max(p.wait() for p in procs)
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGINT)
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo", help="every experiment at demo settings on the embedded data, one Dagster run each",
        description="Runs each branch's experiment job once (the Dagster UI shows every run): MusPy, MMT and "
        "instrumentation on the smoke profile, the Deep Performer on the violin sample (smoke), CLIPSep on the "
        "synthetic videos (demo profile, the small offline CLIP), CLIPSonic on the same videos (demo profile); then "
        "prints what ran and where the results are.",
    )  # fmt: skip
    demo.add_argument("--datasets", nargs="*", default=list(DEMO_DATASETS), help="symbolic datasets of the demo")
    demo.set_defaults(func=cmd_demo)
    ui = sub.add_parser(
        "ui", help="the Dagster and MLflow UIs on 127.0.0.1 over the same BATON_HOME",
        description="Starts `dagster dev` (the code location, its runs, assets, sensors) and the MLflow UI; Ctrl-C stops both.",
    )  # fmt: skip
    ui.add_argument("--dagster-port", type=int, default=3000, help="port of the Dagster UI")
    ui.add_argument("--mlflow-port", type=int, default=5000, help="port of the MLflow UI")
    ui.set_defaults(func=cmd_ui)
