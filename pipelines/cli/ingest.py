"""`baton ingest DATASET|FOLDER...`: score files to songs, notes and rejects, nothing trained."""

from __future__ import annotations

import argparse
import os
import re

from pipelines.cli.launch import UsageError, instance_for
from storage.home import BatonHome


def folder_dataset(path: str) -> str:
    """The local dataset name of a folder given on the command line: its name, lowercased, with
    anything but letters, digits, '_' and '-' as '_'."""
    return re.sub(r"[^a-z0-9_\-]", "_", os.path.basename(os.path.abspath(path)).lower())


def resolve(home: BatonHome, names: list[str], shards: int | None) -> list[str]:
    """The dataset of every argument: a known name, else a folder, registered as a local dataset.
    ``--shards`` splits the folders and registered local folders named (and is kept in the registry);
    built-in datasets keep their own shard counts and incoming batches stay one partition. Every
    argument is checked before anything is registered."""
    from assets.scores import datasets
    from assets.scores.datasets.local import INCOMING_PREFIX, load_shards

    if shards is not None and shards < 1:
        raise UsageError(f"--shards must be at least 1, not {shards}")
    chosen = []  # (dataset, folder to register or None, shard count)
    for name in names:
        try:
            info = datasets.get_info(name, home.local_datasets)
        except KeyError as exc:
            if not os.path.isdir(name):
                raise UsageError(exc.args[0]) from None
            dataset = folder_dataset(name)
            chosen.append((dataset, os.path.abspath(name), shards or load_shards(home.local_datasets).get(dataset, 1)))
            continue
        if info.kind != "local" or name.startswith(INCOMING_PREFIX):
            if shards not in (None, info.shards):
                raise UsageError(f"--shards: {name} has a fixed {info.shards} shard(s); --shards splits local folders")
            chosen.append((name, None, info.shards))
        else:
            chosen.append((name, info.url if shards not in (None, info.shards) else None, shards or info.shards))
    for dataset, folder, count in chosen:
        if folder is not None:
            try:
                datasets.register_local(dataset, folder, home.local_datasets, shards=count)
            except (ValueError, NotADirectoryError) as exc:
                raise UsageError(exc.args[0]) from None
            print(f"registered {dataset} -> {folder} ({count} shard(s))", flush=True)
    return [dataset for dataset, _, _ in chosen]


def cmd_ingest(args: argparse.Namespace) -> int:
    from assets.core.partitions import DATASETS, add_partitions
    from assets.scores.datasets import partition_keys
    from pipelines.definitions import build_defs
    from pipelines.experiments import QUIET
    from storage import shards

    home = BatonHome.from_env().ensure()
    names = resolve(home, args.datasets, args.shards)
    keys = [key for name in names for key in partition_keys(name, home.local_datasets)]
    config = {**QUIET, "ops": {"score_files": {"config": {"download": args.download}}}}
    results = {}
    with instance_for(home) as instance:
        job = build_defs(home).resolve_job_def("score_notes_job")
        add_partitions(instance, DATASETS, keys)
        for key in keys:
            print(f"== {key}: score files -> songs, notes, rejects", flush=True)
            results[key] = job.execute_in_process(instance=instance, partition_key=key, run_config=config, raise_on_error=False)
    print("\nResults:")
    for key, result in results.items():
        rows = [getattr(shards.read_manifest(home.datasets, asset, key), "rows", 0) for asset in ("songs", "notes", "notes_rejects")]
        print(f"  {'ok  ' if result.success else 'FAIL'} score_notes_job[{key}]  run {result.run_id}  "
              "{} songs, {} notes, {} rejects".format(*rows))  # fmt: skip
    print(f"\nShard sets: {home.datasets}/{{songs,notes,notes_rejects}}/<partition>/   Dagster UI: baton ui")
    return 0 if all(result.success for result in results.values()) else 1


def register(sub: argparse._SubParsersAction) -> None:
    ingest = sub.add_parser(
        "ingest", help="score files to songs, notes and rejects for datasets (nothing trained)",
        description="Runs score_notes_job (score_files, songs, notes, notes_rejects and the notes checks) once per "
        "partition on the persistent Dagster instance: once per dataset, or once per shard of a sharded one. "
        "The MMT and instrumentation branches start from these notes.",
    )  # fmt: skip
    ingest.add_argument(
        "datasets", nargs="+", metavar="DATASET",
        help="dataset names (see `baton datasets list`) or folders, registered as local datasets named after them",
    )  # fmt: skip
    ingest.add_argument("--download", action="store_true", help="fetch a remote dataset first when it is not downloaded")
    ingest.add_argument(
        "--shards", type=int, default=None, metavar="N",
        help="split the folders and local datasets named into N partitions (shards of files by a stable hash)",
    )  # fmt: skip
    ingest.set_defaults(func=cmd_ingest)
