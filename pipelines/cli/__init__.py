"""Baton: generative-music research systems as one Dagster asset lineage with MLflow tracking.

What it holds today:
  - the MusPy datasets (music21 corpus, MusPy's remote sets, your own folders) and the cross-dataset
    language-model experiment (perplexity of every model on every dataset);
  - the Multitrack Music Transformer (MMT): training, generation in three modes, evaluation;
  - automatic instrumentation: part separation of a solo score (Table 4.2), arrangements;
  - the Deep Performer on the Bach Violin Dataset: alignment, synthesis variants, HiFi-GAN (Table 5.1);
  - CLIPSep: text- or image-queried source separation trained on videos, with its SDR evaluation;
  - CLIPSonic: text- or image-queried audio synthesis learned from videos, with Tables 7.1 and 7.2.

Every experiment is one Dagster job: `baton experiment` launches the same run the Dagster UI does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap

from pipelines.cli import datasets, demo, experiment, inference, ingest, interrupts, report, ui
from pipelines.cli.launch import UsageError
from storage.home import BatonHome

COMMANDS = (demo, experiment, ingest, datasets, report, inference, ui)  # each adds its subcommands
JOB_COMMANDS = ("demo", "experiment", "ingest")  # they run Dagster jobs: the `baton` command runs them in a worker


class Parser(argparse.ArgumentParser):
    """Every default in the help; a usage mistake is one line on stderr and exit status 2.
    `before_help(parser)`, when set, fills in help texts only when help is asked for."""

    before_help = None

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        if self.before_help is not None:
            self.before_help(self)
        return super().format_help()

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in every option's help; a description's paragraphs and "- " items are wrapped one by one."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        blocks: list[str | None] = []  # None: a blank line
        for line in textwrap.dedent(text).strip().splitlines():
            if not line.strip():
                blocks.append(None)
            elif not blocks or blocks[-1] is None or line.lstrip().startswith("- "):
                blocks.append(line.rstrip())
            else:
                blocks[-1] += " " + line.strip()
        lines = []
        for block in blocks:
            if block is None:
                lines.append("")
                continue
            lead = indent + block[: len(block) - len(block.lstrip())]
            hang = "  " if block.lstrip().startswith("- ") else ""
            lines.append(textwrap.fill(block.strip(), width, initial_indent=lead, subsequent_indent=lead + hang))
        return "\n".join(lines)


def parser() -> Parser:
    top = Parser(prog="baton", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    """The `baton` command (argv None: the process's own arguments). A stop signal ends any command with
    one line on stderr; the `baton` command runs the JOB_COMMANDS in a worker process that a stop kills
    (pipelines.cli.interrupts says why), callers passing `argv` run every command in their own process."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per model download drowns the output
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial MLflow database tables..."
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else 2
    if argv is None and args.command in JOB_COMMANDS:
        return interrupts.run_in_worker(lambda: run(args), BatonHome.from_env())
    return interrupts.run_stoppable(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
