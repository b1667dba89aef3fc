"""`baton demo`: every branch's experiment at demo settings."""

from __future__ import annotations

import argparse

from pipelines.cli.launch import check_datasets, instance_for, launch_experiment, print_summary
from storage.home import BatonHome

DEMO_DATASETS = ("bach_chorales", "monteverdi", "trecento")
DEMO_VIDEOS_PER_INSTRUMENT = 6


def demo_configs(datasets: list[str]) -> dict[str, dict]:
    """branch -> run config: the `demo` profile where a branch has one (instrumentation, CLIPSep and CLIPSonic, the
    video branches with the small offline CLIP), else `smoke`."""
    from models.clip_embed import SMALL_CLIP

    return {
        "muspy": {"profile": "smoke", "arch": "lstm", "datasets": datasets},
        "mmt": {"profile": "smoke", "datasets": datasets},
        # the online LSTM at its demo profile, trained enough to beat the zone baseline on the test chorales
        "instrumentation": {"profile": "demo", "archs": ["lstm"],
                            "datasets": [d for d in datasets if d == "bach_chorales"] or datasets[:1]},
        # smoke: no synthesis model trained in CPU minutes follows the score (one that beats the aligned FluidSynth
        # rendering's mel MSE has learnt the average spectrum), so `baton perform` plays that rendering instead
        "performance": {"profile": "smoke"},
        # CLIPSep and the PIT baseline; CLIPSep-NIT, which the synthetic set's clean videos do not need, is left out
        "video": {"profile": "demo", "clip_model": SMALL_CLIP, "per_instrument": DEMO_VIDEOS_PER_INSTRUMENT,
                  "methods": ["clipsep", "pit"]},
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


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser(
        "demo", help="every experiment at demo settings on the embedded data, one Dagster run each",
        description="Runs each branch's experiment job once (the Dagster UI shows every run): MusPy and MMT on the "
        "smoke profile, the part-separation LSTM (demo profile), the Deep Performer on the violin sample (smoke), "
        "CLIPSep and PIT on the synthetic videos (demo profile, the small offline CLIP), CLIPSonic on the same videos "
        "(demo profile); then prints what ran and where the results are. About 14 minutes on 2 idle cores.",
    )  # fmt: skip
    demo.add_argument("--datasets", nargs="*", default=list(DEMO_DATASETS), help="symbolic datasets of the demo")
    demo.set_defaults(func=cmd_demo)
