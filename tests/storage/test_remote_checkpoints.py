"""Checkpoint folders mirrored to S3 (moto's server): a run that loses its local folder, or is killed,
resumes from the bucket and ends with the weights of a run never interrupted."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fsspec
import torch

from models.checkpoints import safe_load
from storage.remote_dirs import mirrored, pull_dir

REPO = Path(__file__).resolve().parents[2]

TRAIN = """
import os, time
import torch
import torch.nn.functional as F
from torch import nn
from models.training import LoopConfig, fit

def batches():
    g = torch.Generator().manual_seed(1)
    while True:
        x = torch.randn(8, 4, generator=g)
        yield x, x.sum(1, keepdim=True)

VALID = torch.randn(16, 4, generator=torch.Generator().manual_seed(2))
STEP_S = float(os.environ.get("STEP_S", "0"))

def step_loss(model, batch):
    time.sleep(STEP_S)
    return F.mse_loss(model(batch[0]), batch[1])

def validate(model):
    return {"val_loss": F.mse_loss(model(VALID), VALID.sum(1, keepdim=True)).item()}

def train(folder, steps):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loop = LoopConfig(max_steps=steps, eval_every=4, checkpoint_every=2, patience=100)
    result = fit(model, optimizer, batches(), step_loss, validate, folder, loop, lambda metrics, step: None)
    return model, result
"""
namespace: dict = {}
exec(textwrap.dedent(TRAIN), namespace)  # noqa: S102 - the one setup this test and its subprocess both train
train = namespace["train"]
STEPS = 24


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_lost_local_folder_is_restored_from_the_bucket(s3_bucket, tmp_path):
    reference, _ = train(str(tmp_path / "reference"), STEPS)
    folder, remote = tmp_path / "run", f"{s3_bucket}/checkpoints/lm/abc"
    with mirrored(str(folder), remote, "last.pt", every_s=0.05):
        train(str(folder), STEPS // 2)
    fs, _ = fsspec.core.url_to_fs(remote)
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(remote)) == ["best.pt", "last.pt"]
    assert not pull_dir(remote, str(folder), "last.pt"), "a folder just pushed is already current"

    shutil.rmtree(folder)
    assert pull_dir(remote, str(folder), "last.pt")
    assert safe_load(folder / "last.pt")["step"] == STEPS // 2
    model, result = train(str(folder), STEPS)
    assert result.resumed_from == STEPS // 2
    assert same_weights(model, reference)
    assert not pull_dir(remote, str(folder), "last.pt"), "a newer local checkpoint is kept"


def test_an_older_local_folder_is_replaced_by_a_newer_remote_one(s3_bucket, tmp_path):
    folder, remote = tmp_path / "run", f"{s3_bucket}/checkpoints/lm/abc"
    train(str(folder), 4)
    stale = tmp_path / "stale"
    shutil.copytree(folder, stale, copy_function=shutil.copy)  # written before the remote copy below
    time.sleep(1.1)  # S3 keeps whole seconds
    with mirrored(str(folder), remote, "last.pt", every_s=0.05):
        train(str(folder), 8)
    assert pull_dir(remote, str(stale), "last.pt")
    assert safe_load(stale / "last.pt")["step"] == 8
    assert (stale / "best.pt").read_bytes() == (folder / "best.pt").read_bytes()


KILLED = TRAIN + """
import sys
from storage.remote_dirs import mirrored
with mirrored(sys.argv[1], sys.argv[2], "last.pt", every_s=0.02):
    train(sys.argv[1], int(sys.argv[3]))
os._exit(0)
"""


def test_a_run_killed_mid_training_resumes_from_the_bucket(s3_bucket, s3_env, tmp_path):
    """Killed at any moment, pushes included, the bucket holds a checkpoint that loads and resumes."""
    reference, _ = train(str(tmp_path / "reference"), STEPS)
    remote = f"{s3_bucket}/checkpoints/lm/abc"
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED))
    env = {**os.environ, **s3_env, "PYTHONPATH": str(REPO), "STEP_S": "0.3"}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed"), remote, str(STEPS)], env=env, stderr=subprocess.PIPE, text=True)
    fs, _ = fsspec.core.url_to_fs(remote, use_listings_cache=False)
    deadline = time.monotonic() + 120
    while not fs.exists(f"{remote}/last.pt"):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint reached the bucket"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # at once: a push of a later checkpoint may be under way
    proc.wait(timeout=60)

    folder = tmp_path / "elsewhere"
    assert pull_dir(remote, str(folder), "last.pt")
    resumed_at = safe_load(folder / "last.pt")["step"]
    assert 0 < resumed_at < STEPS
    model, result = train(str(folder), STEPS)
    assert result.resumed_from == resumed_at
    assert same_weights(model, reference)


def test_a_training_asset_resumes_from_the_bucket_after_losing_its_local_checkpoints(home, s3_bucket, monkeypatch):
    import glob

    import dagster as dg
    import music21

    from pipelines.definitions import build_defs

    remote = f"{s3_bucket}/checkpoints"
    monkeypatch.setenv("BATON_CHECKPOINTS_URI", remote)
    folder = Path(home.raw, "incoming", "chorales")
    folder.mkdir(parents=True)
    corpus = os.path.join(os.path.dirname(music21.__file__), "corpus")
    for path in sorted(glob.glob(os.path.join(corpus, "bach", "bwv2[0-9]*.mxl")))[:18]:
        shutil.copy(path, folder)
    key = "incoming_chorales"

    def lm(job: str, steps: int) -> dict:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, partition_key=key, run_config={"ops": {"music_lm": {"config": {"profile": "smoke", "max_steps": steps}}}}
        )
        assert result.success
        return result.asset_materializations_for_node("music_lm")[0].metadata

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("datasets", [key])
        defs = build_defs(home)
        first = lm("symbolic_dataset", 12)
        assert first["steps"].value == 12 and first["resumed_from"].value == -1
        fs, _ = fsspec.core.url_to_fs(remote, use_listings_cache=False)
        pushed = fs.glob(f"{remote}/music_lm/{key}/*/last.pt")
        assert len(pushed) == 1
        shutil.rmtree(home.checkpoints)
        again = lm("music_lm_retrain", 16)
    assert again["resumed_from"].value == 12 and again["steps"].value == 16
    local = list(Path(home.checkpoints, "music_lm", key).glob("*/last.pt"))
    assert [p.parent.name for p in local] == [pushed[0].rsplit("/", 2)[-2]]
    assert safe_load(local[0])["step"] == 16
