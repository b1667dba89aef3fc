"""The dask executor on one sharded ingestion, with 1 and with 2 workers.

A folder of music21-corpus scores (MusicXML and Humdrum, parsed through music21: seconds of CPU
per file, so the steps are real work) is registered as a local dataset split into shards. Every
shard's `score_notes_job` run is submitted at once, each run's steps going to the same dask cluster
(`execution: {config: {dask: {cluster: {existing: {address}}}}}`), and the wall time until the last
run ends is measured for a LocalCluster of each size. Each step parses with one process
(`workers: 1`), so the cluster's workers are the only parallelism. The shard sets of the two
configurations are compared: the same files give the same rows whatever the cluster.

    .venv/bin/python bench/dask_ingest.py --files 240 --shards 8 --workers 1 2
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATASET = "bench_dask"


def score_notes():
    """Baton's score_notes_job, loaded by each dask worker from this file."""
    from pipelines.definitions import defs

    return defs.resolve_job_def("score_notes_job")


def corpus(folder: Path, files: int) -> list[Path]:
    """`files` scores of the music21 corpus, spread over it (every k-th MusicXML or Humdrum file)."""
    from music21 import corpus as m21

    paths = sorted(str(p) for p in m21.getPaths() if str(p).endswith((".mxl", ".krn", ".xml", ".musicxml")))
    step = max(1, len(paths) // files)
    chosen = [Path(p) for p in paths[::step][:files]]
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(chosen):
        shutil.copy(path, folder / f"{i:05d}-{path.name}")
    return chosen


def run_one(key: str, address: str, go: Path) -> None:
    """One shard's run, its steps on the cluster at `address`, started once `go` exists."""
    import dagster as dg

    job = dg.reconstructable(score_notes)
    instance = dg.DagsterInstance.get()
    config = {
        "ops": {"ingest_scores": {"config": {"workers": 1}}},
        "execution": {"config": {"dask": {"cluster": {"existing": {"address": address}}}}},
    }
    Path(go.parent, f"ready-{key}").write_text("")
    while not go.exists():
        time.sleep(0.05)
    result = dg.execute_job(job, instance, run_config=config, tags={"dagster/partition": key})
    os._exit(0 if result.success else 1)


def run_all(workers: int, home: Path, scores: Path, shards: int) -> dict:
    import dagster as dg
    import dask
    from dask.distributed import Client, LocalCluster

    from assets.core.dataset_shards import partition_keys
    from assets.core.partitions import DATASETS, add_partitions
    from assets.scores.datasets import register_local
    from storage import shards as store
    from storage.home import BatonHome

    os.environ["BATON_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    paths = BatonHome(str(home))
    paths.ensure()
    register_local(DATASET, scores, paths.local_datasets, shards=shards)
    instance = dg.DagsterInstance.get()
    keys = partition_keys(DATASET, shards)
    add_partitions(instance, DATASETS, keys)
    # Dagster sets up logging per run, which is not safe across threads of one process, so each
    # run orchestrates from its own process: started and imported first, then all released at once.
    # Steps parse in child processes, which daemonic (the default) dask workers may not start.
    with dask.config.set({"distributed.worker.daemon": False}), LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster, Client(cluster) as client:
        client.run(importlib.import_module, "pipelines.definitions")  # every worker loads the code before timing
        go = home / "go"
        procs = [
            subprocess.Popen([sys.executable, __file__, "--run", key, "--address", cluster.scheduler_address, "--go", str(go)])
            for key in keys
        ]
        while len(list(home.glob("ready-*"))) < len(keys):
            time.sleep(0.2)
        start = time.perf_counter()
        go.write_text("")
        ok = [proc.wait() == 0 for proc in procs]
        seconds = time.perf_counter() - start
    rows = {key: store.read_manifest(paths.datasets, "notes", key).rows for key in keys}
    songs = sum(store.read_manifest(paths.datasets, "songs", key).rows for key in keys)
    digest = {key: [s.sha256 for s in store.read_manifest(paths.datasets, "notes", key).shards] for key in keys}
    return {"workers": workers, "runs": len(keys), "succeeded": sum(ok), "seconds": round(seconds, 2),
            "songs": songs, "notes": sum(rows.values()), "sha256": digest}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=160)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "dask_ingest.json"))
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_one(args.run, args.address, Path(args.go))
    with tempfile.TemporaryDirectory(prefix="baton-dask-bench-") as tmp:
        scores = Path(tmp, "scores")
        chosen = corpus(scores, args.files)
        print(f"{len(chosen)} scores, {args.shards} shards", flush=True)
        results = []
        for workers in args.workers:
            result = run_all(workers, Path(tmp, f"home-{workers}"), scores, args.shards)
            print({k: v for k, v in result.items() if k != "sha256"}, flush=True)
            results.append(result)
    base = results[0]
    for result in results:
        result["speedup"] = round(base["seconds"] / result["seconds"], 2)
        result["same_shards_as_first"] = result["sha256"] == base["sha256"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"files": len(chosen), "shards": args.shards, "results": results}, indent=2) + "\n")
    for result in results:
        print(f"{result['workers']} workers: {result['seconds']} s, {result['speedup']}x, same shards: {result['same_shards_as_first']}")
    os._exit(0)


if __name__ == "__main__":
    main()
