"""`baton datasets list|download|add-local`: the symbolic-dataset registry."""

from __future__ import annotations

import argparse
import os
import sys

from pipelines.cli.launch import UsageError, instance_for
from storage.home import BatonHome


def add_dataset_partitions(home: BatonHome, name: str) -> None:
    """Make a dataset just downloaded a `datasets` partition (one per shard) in the catalog at once,
    without waiting for the sensor's next tick."""
    from assets.core.partitions import DATASETS, add_partitions
    from assets.scores.datasets import partition_keys

    with instance_for(home) as instance:
        keys = partition_keys(name, home.local_datasets)
        added = add_partitions(instance, DATASETS, keys)
    print(f"{name}: {len(keys)} `datasets` partition(s) in the catalog ({len(added)} new)")


def cmd_datasets(args: argparse.Namespace) -> int:
    from assets.scores import datasets

    home = BatonHome.from_env().ensure()
    try:
        if args.action == "list":
            for info in datasets.list_datasets(home.local_datasets):
                shards = f" ({info.shards} shards)" if info.shards > 1 else ""
                print(f"{info.name:22} {info.kind:8} {info.title}{shards}")
        elif args.action == "download":
            print(datasets.download(args.name, home.raw))
            add_dataset_partitions(home, args.name)
        elif args.action == "add-local":
            datasets.register_local(args.name, os.path.abspath(args.path), home.local_datasets, shards=args.shards)
            print(f"registered {args.name} -> {args.path}; ingest it with: baton ingest {args.name} "
                  f"(or run an experiment on it: baton experiment --datasets {args.name})")  # fmt: skip
    except (KeyError, ValueError, NotADirectoryError) as exc:  # an unknown or not remote name, a bad name or folder
        raise UsageError(exc.args[0]) from None
    except (datasets.DownloadError, datasets.ChecksumError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ds = sub.add_parser(
        "datasets", help="list, download or add symbolic datasets",
        description="The registry of symbolic datasets: the music21 corpus collections, MusPy's remote datasets "
        "(downloaded only when asked) and your own folders of scores.",
    )  # fmt: skip
    actions = ds.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every dataset: name, kind (music21, remote, local) and title")
    download = actions.add_parser("download", help="fetch, verify and extract a remote dataset under <home>/raw")
    download.add_argument("name", help="a remote dataset (see `baton datasets list`)")
    add = actions.add_parser("add-local", help="register a folder of scores (MIDI, MusicXML, ABC, Humdrum) as a dataset")
    add.add_argument("name", help="the dataset's name (its partition key)")
    add.add_argument("path", help="the folder")
    add.add_argument(
        "--shards", type=int, default=1, metavar="N",
        help="split the folder into N partitions (shards of files by a stable hash); default: 1",
    )  # fmt: skip
    ds.set_defaults(func=cmd_datasets)
