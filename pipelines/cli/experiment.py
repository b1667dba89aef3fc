"""`baton experiment --branch B`: one run of the branch's experiment job, the one the Dagster UI launches."""

from __future__ import annotations

import argparse

from pipelines.cli.launch import BRANCHES, UsageError, check_datasets, instance_for, launch_experiment, print_summary
from storage.home import BatonHome

# Every field of the experiments' configs, as the command line spells it (--name-with-dashes); the
# defaults and descriptions are the configs' own (pipelines.experiments), filled into the help on demand.
FLAGS = {
    "stage": {"choices": ["data", "all"]},
    "profile": {"choices": ["smoke", "demo", "paper"]},
    "steps": {"type": int},
    "datasets": {"nargs": "*"},
    "arch": {"choices": ["rnn", "lstm", "gru", "transformer"]},
    "archs": {"nargs": "*"},
    "manifest": {},
    "method": {"choices": ["v1", "v2"]},
    "vocoder_profile": {"choices": ["smoke", "demo", "paper", "none"]},
    "source": {},
    "batch": {},
    "clip_model": {},
    "per_instrument": {"type": int},
    "seconds": {"type": float},
    "methods": {"nargs": "*"},
    "n_mixtures": {"type": int},
    "conditions": {"nargs": "*"},
    "clap_model": {},
    "vggish_weights": {},
    "per_label": {"type": int},
    "ddpm_per_label": {"type": int},
    "sweep_per_label": {"type": int},
}
LISTS_OF_KNOWN = ("archs", "methods", "conditions")  # every value must be one of the config's defaults
DEMO_PROFILE = ("instrumentation", "video", "clipsonic")  # the branches whose models have a CPU demo profile


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else repr(value) if value == "" else str(value)


def fill_help(parser: argparse.ArgumentParser) -> None:
    """Each option's help from the experiment configs: what it is, which branches take it, their defaults."""
    from pipelines.experiments import CONFIGS

    for action in parser._actions:
        if action.dest not in FLAGS:
            continue
        fields = {branch: config.model_fields[action.dest] for branch, config in CONFIGS.items() if action.dest in config.model_fields}
        description = next(iter(fields.values())).description
        defaults = {branch: shown(f.default) for branch, f in fields.items()}
        if len(set(defaults.values())) == 1:
            default = next(iter(defaults.values()))
        else:
            default = "; ".join(f"{branch}: {value}" for branch, value in defaults.items())
        where = "" if len(fields) == len(CONFIGS) else f"[{', '.join(fields)}] "
        action.help = f"{where}{description} (default: {default})".replace("%", "%%")


def experiment_config(args: argparse.Namespace) -> dict:
    """The run config of the branch's job: the options given on the command line, checked against it."""
    from pipelines.experiments import CONFIGS

    fields = CONFIGS[args.branch].model_fields
    config = {}
    for field in FLAGS:
        if field not in vars(args):
            continue
        if field not in fields:
            takes = ", ".join(flag(f) for f in fields if f in FLAGS)
            raise UsageError(f"{flag(field)} does not apply to the {args.branch} branch (it takes {takes})")
        value = getattr(args, field)
        if value == []:  # `--datasets` with no names: the default
            continue
        if field in LISTS_OF_KNOWN and set(value) - set(fields[field].default):
            unknown = " ".join(sorted(set(value) - set(fields[field].default)))
            raise UsageError(f"{flag(field)}: unknown {unknown}; choose from {shown(fields[field].default)}")
        config[field] = value
    if config.get("profile") == "demo" and args.branch not in DEMO_PROFILE:
        raise UsageError(f"only {', '.join(DEMO_PROFILE)} have a demo profile; use smoke or paper for {args.branch}")
    if config.get("vocoder_profile") == "demo" and args.branch not in DEMO_PROFILE:
        raise UsageError(f"the demo vocoder profile is CLIPSonic's; use smoke, paper or none for {args.branch}")
    return config


def check_weights(config: dict, fields: dict) -> None:
    """Load each CLIP, CLAP and VGGish weight the run is configured with once, before the launch, so
    that a missing one is a one-line error now rather than a failed step after the data stages."""
    from models import clip_embed
    from models.audio_metrics import ClapWeightsMissing, VGGishWeightsMissing, load_clap, load_vggish

    def value(field: str) -> str:
        return config.get(field, fields[field].default) if field in fields else ""

    try:
        if value("clip_model"):
            clip_embed.load_clip(value("clip_model"), device="cpu")
        if value("clap_model"):
            load_clap(value("clap_model"), device="cpu")
        if value("vggish_weights"):
            load_vggish(value("vggish_weights"), device="cpu")
    except (clip_embed.ClipWeightsMissing, ClapWeightsMissing, VGGishWeightsMissing) as exc:
        raise UsageError(str(exc).splitlines()[0]) from None


def cmd_experiment(args: argparse.Namespace) -> int:
    from pipelines.experiments import CONFIGS

    home = BatonHome.from_env().ensure()
    config = experiment_config(args)
    fields = CONFIGS[args.branch].model_fields
    if "datasets" in fields:
        check_datasets(home, config.get("datasets", fields["datasets"].default))
    check_weights(config, fields)
    with instance_for(home) as instance:
        outcome = launch_experiment(instance, args.branch, config, home)
    print_summary(home, [outcome])
    return 0 if outcome.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser(
        "experiment", help="one experiment as one Dagster run (MusPy, MMT, instrumentation, Deep Performer, CLIPSep, CLIPSonic)",
        description="Launches the branch's experiment job (muspy_experiment, mmt_experiment, ...) on the persistent "
        "Dagster instance, exactly as the UI's Launchpad does, with the options below as its run config; each stage "
        "is a step whose asset jobs are child runs. Prints every stage's child runs, ok or FAIL; exits 0 only when "
        "the experiment run succeeded. --stage data stops after the data stages (nothing is trained).\n\n"
        "branches: muspy: cross-dataset perplexity; mmt: Multitrack Music Transformer; instrumentation: Table 4.2; "
        "performance: Deep Performer, Table 5.1; video: CLIPSep; clipsonic: CLIPSonic, Table 7.1. An option of another "
        "branch is an error.",
    )  # fmt: skip
    exp.add_argument("--branch", default="muspy", choices=list(BRANCHES), help="the experiment to run")
    for field, kwargs in FLAGS.items():
        exp.add_argument(flag(field), dest=field, default=argparse.SUPPRESS, **kwargs)
    exp.before_help = fill_help
    exp.set_defaults(func=cmd_experiment)
