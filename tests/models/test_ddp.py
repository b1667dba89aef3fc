"""Data-parallel training under a real ``torchrun`` (gloo, CPU): two processes keep identical weights
and take the steps one process takes on the same global batches.

Run as a script (``python tests/models/test_ddp.py OUT``, under torchrun or alone), this file is the
training process: a tiny MMT through models.training.fit with dropout 0 (DDP gives each process its
own dropout masks, so only without dropout can two processes match one), writing each process's
weights at every validation and its first local batch to OUT, and the main process's logged steps.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from models import clipsep, deep_performer, distributed, mmt
from models.mmt.encoding import encode_arrays
from models.mmt.training import evaluate, loss, lr_multiplier
from models.train_worker import load_data, save_data
from models.training import LoopConfig, fit
from storage import shards, tracking
from storage.shards import ShardIterableDataset

TINY = replace(
    mmt.PROFILES["smoke"], dim=32, layers=1, heads=2, dropout=0.0, max_seq_len=64, max_beat=16, batch_size=4,
    warmup_steps=2, decay_end_step=20, max_steps=10, eval_every=5, checkpoint_every=5, patience=5,
)  # fmt: skip
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def song(seed: int) -> np.ndarray:
    """A song whose windows hold different numbers of events, so padding differs across rows."""
    rng = np.random.default_rng(seed)
    n_notes, n_beats = (80 if seed % 2 else 6), 24
    return encode_arrays(
        onset=rng.integers(0, n_beats * 12, n_notes),
        duration=rng.choice([6, 12, 24], n_notes),
        pitch=rng.integers(48, 84, n_notes),
        program=rng.choice([0, 40, 73], n_notes),
        is_drum=np.zeros(n_notes, dtype=bool),
        resolution=12,
    )


SONGS = [song(i) for i in range(6)]


def train_process(out: Path) -> None:
    ctx = distributed.init_from_env()
    torch.set_num_threads(1)
    torch.manual_seed(TINY.seed)
    model = mmt.MMT(TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=TINY.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(step, TINY))
    val = mmt.val_batches(SONGS, TINY)
    seen, steps = [], []

    def step_loss(m, batch):
        seen.append(batch["codes"])
        return loss(m, batch)

    def validate(m):
        torch.save(m.state_dict(), out / f"rank{ctx.rank}_eval{len(seen)}.pt")
        return evaluate(m, val)

    loop = LoopConfig(TINY.max_steps, TINY.eval_every, TINY.checkpoint_every, TINY.patience, TINY.grad_clip)
    batches = mmt.make_batches(SONGS, TINY, TINY.seed)
    fit(model, optimizer, batches, step_loss, validate, str(out / "ckpt"), loop, lambda m, s: steps.append(m), scheduler)
    torch.save(seen[0], out / f"rank{ctx.rank}_first_batch.pt")
    if ctx.is_main:
        (out / "steps.json").write_text(json.dumps(steps))
    distributed.shutdown()


def run(command: list[str], out: Path) -> float:
    out.mkdir()
    started = time.perf_counter()
    done = subprocess.run(
        [*command, __file__, str(out)], check=False, capture_output=True, text=True, timeout=300,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return time.perf_counter() - started


def load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def test_two_processes_keep_one_model_and_match_one_process(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    seconds = run(TORCHRUN, two)
    run([sys.executable], one)

    first = next(mmt.make_batches(SONGS, TINY, TINY.seed))["codes"]
    halves = [load(two / f"rank{r}_first_batch.pt") for r in range(2)]
    assert [len(h) for h in halves] == [2, 2] and torch.equal(torch.cat(halves), first)  # each its own rows
    for step in (TINY.eval_every, TINY.max_steps):
        rank0, rank1 = load(two / f"rank0_eval{step}.pt"), load(two / f"rank1_eval{step}.pt")
        assert all(torch.equal(rank0[name], rank1[name]) for name in rank0), f"weights differ at step {step}"
        alone = load(one / f"rank0_eval{step}.pt")
        assert all(torch.allclose(rank0[name], alone[name], rtol=1e-4, atol=1e-6) for name in rank0)

    steps_two, steps_one = (json.loads((d / "steps.json").read_text()) for d in (two, one))
    assert len(steps_two) == len(steps_one) == TINY.max_steps
    for key in ("train_loss", "lr"):
        np.testing.assert_allclose([s[key] for s in steps_two], [s[key] for s in steps_one], rtol=1e-4)
    val = [i for i, s in enumerate(steps_one) if "val_loss" in s]
    np.testing.assert_allclose([steps_two[i]["val_loss"] for i in val], [steps_one[i]["val_loss"] for i in val], rtol=1e-4)
    differences = [abs(a["train_loss"] - b["train_loss"]) for a, b in zip(steps_two, steps_one)]
    print(f"two processes: {seconds:.1f} s; train_loss max abs difference {max(differences):.2e}")


def test_examples_reach_the_training_processes_as_they_left(tmp_path):
    clip = deep_performer.Clip(
        np.zeros((5, 80), np.float32), np.array([60, 62]), np.array([0.0, 1.0], np.float32), np.array([1.0, 1.0], np.float32),
        np.array([0, 3]), np.array([3, 5]), performer=np.int64(1), qpm=120.0,
    )  # fmt: skip
    source = clipsep.Source(np.linspace(-1, 1, 7, dtype=np.float32), np.ones((3, 512), np.float32), "violin")
    for examples, make in (([SONGS[0]], None), ([clip], deep_performer.Clip), ([source], clipsep.Source)):
        save_data(tmp_path / "data.pt", examples, examples[::-1])
        train, valid = load_data(tmp_path / "data.pt", make)
        for got, sent in zip(train + valid, examples * 2):
            got, sent = (vars(x) if make else {"codes": x} for x in (got, sent))
            assert got.keys() == sent.keys()
            for name, value in sent.items():
                assert type(got[name]) is (np.ndarray if isinstance(value, np.ndarray) else type(np.asarray(value).item()))
                np.testing.assert_array_equal(got[name], value)
                assert np.asarray(got[name]).dtype == np.asarray(value).dtype


def _id_of(row: dict) -> int:
    return row["id"]


def test_ranks_and_workers_split_the_shards_between_them(tmp_path):
    root = str(tmp_path / "datasets")
    shards.write_table(root, "notes", "p", pa.table({"id": pa.array(range(53), pa.int64())}), rows_per_shard=4)
    paths = shards.shard_paths(root, "notes", "p")
    per_rank = []
    for rank in range(2):
        dataset = ShardIterableDataset(paths, columns=["id"], transform=_id_of, shuffle_shards_seed=5, rank=rank, world_size=2)
        per_rank.append({int(i) for i in torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)})
    assert not per_rank[0] & per_rank[1]
    assert sorted(per_rank[0] | per_rank[1]) == list(range(53))
    assert len(per_rank[0]) > 0 and len(per_rank[1]) > 0


def test_mmt_model_trains_in_two_processes_from_the_asset(home):
    # Imported here: the training processes this file also runs as need none of them.
    import dagster as dg
    from mlflow.tracking import MlflowClient

    from assets.core.resources import HomeResource
    from assets.mmt import codes as mmt_data
    from assets.mmt.defs import mmt_model

    rows = [
        {"dataset": "toy", "song": f"s{i}", "split": split, "n_events": len(codes), "n_notes": int((codes[:, 0] == 3).sum()),
         "n_beats": 24, "codes": codes.tolist()}
        for i, (codes, split) in enumerate(zip(SONGS, ["train"] * 4 + ["valid"] * 2))
    ]  # fmt: skip
    shards.write_table(home.datasets, mmt_data.ASSET, "toy", pa.Table.from_pylist(rows, schema=mmt_data.CODES))
    uri = tracking.default_tracking_uri(home)
    started = time.perf_counter()
    result = dg.materialize(
        [mmt_model], instance=dg.DagsterInstance.ephemeral(),
        resources={"home": HomeResource(root=home.root), "tracking": tracking.MlflowResource(tracking_uri=uri)},
        run_config={"ops": {"mmt_model": {"config": {"profile": "smoke", "datasets": ["toy"], "max_steps": 10, "nproc": 2}}}},
    )  # fmt: skip
    seconds = time.perf_counter() - started
    assert result.success
    metadata = result.asset_materializations_for_node("mmt_model")[0].metadata
    assert metadata["steps"].value == 10
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias("mmt", "candidate")
    run = client.get_run(version.run_id)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [10]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [10]
    assert run.data.metrics["steps"] == 10
    model, cfg = mmt.load_model(client.download_artifacts(run.info.run_id, "model", str(home.root)), "cpu")
    assert asdict(cfg)["max_steps"] == 10 and sum(p.numel() for p in model.parameters()) > 0
    print(f"mmt_model with nproc=2: {seconds:.1f} s")


if __name__ == "__main__":
    train_process(Path(sys.argv[1]))
    os._exit(0)  # skip interpreter teardown, which can abort in torch's and pyarrow's threads
