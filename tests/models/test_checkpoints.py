import os
import random
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from models.checkpoints import (
    Checkpoint,
    CheckpointInUse,
    UnsafeModelFile,
    atomic_save,
    capture_rng_state,
    keep_only,
    load_checkpoint,
    load_weights,
    locked_folder,
    prune_folders,
    restore_rng_state,
    save_checkpoint,
    save_weights,
    seed_everything,
)


def _draws() -> tuple:
    return random.random(), np.random.rand(3).tolist(), np.random.randn(), torch.rand(3).tolist()


def _trained(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(3):
        model(torch.randn(5, 4)).pow(2).sum().backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler


def test_rng_state_roundtrip_replays_every_generator():
    seed_everything(3)
    np.random.randn()  # leaves a cached gaussian in NumPy's legacy state
    state = capture_rng_state()
    first = _draws()
    restore_rng_state(state)
    assert _draws() == first


def test_checkpoint_roundtrip_restores_model_optimizer_scheduler_and_rng(tmp_path):
    model, optimizer, scheduler = _trained(0)
    seed_everything(7)
    path = tmp_path / "ckpt" / "last.pt"
    save_checkpoint(path, model, optimizer, Checkpoint(step=42, best_metric=1.5, extra={"stale": 2}), scheduler)
    expected_draws = _draws()

    fresh, fresh_opt, fresh_sched = _trained(1)
    restored = load_checkpoint(path, fresh, fresh_opt, fresh_sched)

    assert restored == Checkpoint(step=42, best_metric=1.5, extra={"stale": 2})
    assert _draws() == expected_draws
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert fresh_sched.state_dict() == scheduler.state_dict()
    assert fresh_opt.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    saved = optimizer.state_dict()["state"]
    loaded = fresh_opt.state_dict()["state"]
    assert saved.keys() == loaded.keys()
    for key in saved:
        assert saved[key]["step"] == loaded[key]["step"]
        assert torch.equal(saved[key]["exp_avg"], loaded[key]["exp_avg"])
        assert torch.equal(saved[key]["exp_avg_sq"], loaded[key]["exp_avg_sq"])


def test_checkpoint_files_load_with_weights_only(tmp_path):
    model, optimizer, _ = _trained(0)
    save_checkpoint(tmp_path / "c.pt", model, optimizer, Checkpoint(step=1))
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["step"] == 1 and state["scheduler"] is None


def test_weights_roundtrip(tmp_path):
    model, _, _ = _trained(0)
    other, _, _ = _trained(1)
    save_weights(tmp_path / "w.pt", model)
    load_weights(tmp_path / "w.pt", other)
    x = torch.randn(2, 4)
    assert torch.equal(model(x), other(x))


def test_failed_save_keeps_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)
    with pytest.raises(Exception):
        atomic_save({"step": 2, "unpicklable": lambda: None}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_checkpoint_keeps_further_named_states_beside_the_model(tmp_path):
    model, optimizer, scheduler = _trained(0)
    critic, critic_opt, critic_sched = _trained(2)
    others = {"critic": critic, "critic_optimizer": critic_opt, "critic_scheduler": critic_sched, "unused": None}
    save_checkpoint(tmp_path / "c.pt", model, optimizer, Checkpoint(step=3), scheduler, others)
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["unused"] is None and state["critic_scheduler"] == critic_sched.state_dict()

    fresh_critic, fresh_opt, fresh_sched = _trained(3)
    load_checkpoint(tmp_path / "c.pt", _trained(4)[0], others={"critic": fresh_critic, "critic_optimizer": fresh_opt,
                                                                 "critic_scheduler": fresh_sched})  # fmt: skip
    for a, b in zip(critic.state_dict().values(), fresh_critic.state_dict().values()):
        assert torch.equal(a, b)
    assert fresh_sched.state_dict() == critic_sched.state_dict()
    assert fresh_opt.param_groups[0]["lr"] == critic_opt.param_groups[0]["lr"]
    with pytest.raises(ValueError, match="step"):
        save_checkpoint(tmp_path / "d.pt", model, optimizer, Checkpoint(step=3), others={"step": critic})


class _Payload:
    """Pickles as a call to ``os.system``: what a tampered model file runs under plain unpickling."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_with_code_is_refused_naming_the_file_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    torch.save(_Payload(marker), tmp_path / "model.pt")
    model, optimizer, _ = _trained(0)
    with pytest.raises(UnsafeModelFile, match=r"^model file is not a safe state dict: .*model\.pt$"):
        load_weights(tmp_path / "model.pt", model)
    with pytest.raises(UnsafeModelFile, match="model.pt"):
        load_checkpoint(tmp_path / "model.pt", model, optimizer)
    assert not marker.exists()


def test_keep_only_leaves_the_resume_files_and_the_lock(tmp_path):
    for name in ["last.pt", "best.pt", ".last.pt.abc.tmp"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pt").write_bytes(b"x")
    with locked_folder(tmp_path):
        keep_only(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "best.pt", "last.pt"]


def aged(folder, days: float):
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(b"x")
    when = time.time() - days * 24 * 3600
    os.utime(folder, (when, when))
    return folder


def test_prune_keeps_the_newest_recent_folders_and_the_current_one(tmp_path):
    current = aged(tmp_path / "current", 100)
    recent = [aged(tmp_path / f"r{i}", i + 1) for i in range(4)]  # r0 is the newest
    old = aged(tmp_path / "old", 30)
    removed = prune_folders(tmp_path, "current", keep_newest=3, max_age_s=14 * 24 * 3600)
    assert sorted(removed) == sorted([recent[3], old])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([current.name, "r0", "r1", "r2"])


def hold_lock(folder) -> subprocess.Popen:
    """Another process holding ``folder``'s lock until its stdin closes."""
    code = textwrap.dedent(f"""
        import sys
        from models.checkpoints import locked_folder
        with locked_folder({str(folder)!r}):
            print("locked", flush=True)
            sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_locked_folder_is_refused_to_a_second_process_and_never_pruned(tmp_path):
    busy = aged(tmp_path / "busy", 30)
    holder = hold_lock(busy)
    try:
        with pytest.raises(CheckpointInUse, match="in use by another training run"):
            with locked_folder(busy):
                pass
        assert prune_folders(tmp_path, "current", keep_newest=0, max_age_s=0) == []
        assert (busy / "last.pt").exists()
    finally:
        holder.communicate("")
    with locked_folder(busy):  # released when its holder exits
        pass
    assert prune_folders(tmp_path, "current", keep_newest=0, max_age_s=0) == [busy]
