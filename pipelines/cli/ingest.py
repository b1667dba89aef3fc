"""`baton ingest DATASET...`: score files to songs, notes and rejects, nothing trained."""

from __future__ import annotations

import argparse

from pipelines.cli.launch import check_datasets, instance_for
from storage.home import BatonHome


def cmd_ingest(args: argparse.Namespace) -> int:
    from assets.core.partitions import DATASETS, add_partitions
    from pipelines.definitions import build_defs
    from pipelines.experiments import QUIET
    from storage import shards

    home = BatonHome.from_env().ensure()
    check_datasets(home, args.datasets)
    config = {**QUIET, "ops": {"score_files": {"config": {"download": args.download}}}}
    results = {}
    with instance_for(home) as instance:
        job = build_defs(home).resolve_job_def("score_notes_job")
        add_partitions(instance, DATASETS, args.datasets)
        for dataset in args.datasets:
            print(f"== {dataset}: score files -> songs, notes, rejects", flush=True)
            result = job.execute_in_process(instance=instance, partition_key=dataset, run_config=config, raise_on_error=False)
            results[dataset] = result
    print("\nResults:")
    for dataset, result in results.items():
        rows = [getattr(shards.read_manifest(home.datasets, asset, dataset), "rows", 0) for asset in ("songs", "notes", "notes_rejects")]
        print(f"  {'ok  ' if result.success else 'FAIL'} score_notes_job[{dataset}]  run {result.run_id}  "
              "{} songs, {} notes, {} rejects".format(*rows))  # fmt: skip
    print(f"\nShard sets: {home.datasets}/{{songs,notes,notes_rejects}}/<dataset>/   Dagster UI: baton ui")
    return 0 if all(result.success for result in results.values()) else 1


def register(sub: argparse._SubParsersAction) -> None:
    ingest = sub.add_parser(
        "ingest", help="score files to songs, notes and rejects for datasets (nothing trained)",
        description="Runs score_notes_job (score_files, songs, notes, notes_rejects and the notes checks) once per "
        "dataset on the persistent Dagster instance; the MMT and instrumentation branches start from these notes.",
    )  # fmt: skip
    ingest.add_argument("datasets", nargs="+", metavar="DATASET", help="dataset names (see `baton datasets list`)")
    ingest.add_argument("--download", action="store_true", help="fetch a remote dataset first when it is not downloaded")
    ingest.set_defaults(func=cmd_ingest)
