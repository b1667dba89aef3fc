import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from models.music_lm import (
    ARCHS,
    IGNORE_INDEX,
    LMConfig,
    build_model,
    crop_batches,
    evaluate,
    load_model,
    save_model,
    train,
)

TINY = LMConfig(
    vocab_size=24, embedding_dim=16, hidden_dim=16, num_heads=2, dropout=0.1, seq_len=16, batch_size=8, lr=1e-2
)


def _ramp_source(offset: int, lengths: list[int], calls: list[int] | None = None):
    """Songs of consecutive integers, so a crop shows where it came from and that it is contiguous."""

    def factory():
        if calls is not None:
            calls.append(1)
        for length in lengths:
            yield np.arange(offset, offset + length)

    return factory


def _repetitive(n_songs: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    pattern = np.arange(1, 9)
    return [np.tile(pattern, 12)[rng.integers(8) :][: int(rng.integers(30, 90))] for _ in range(n_songs)]


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shape(arch):
    model = build_model(replace(TINY, arch=arch))
    logits = model(torch.randint(0, TINY.vocab_size, (3, TINY.seq_len)))
    assert logits.shape == (3, TINY.seq_len, TINY.vocab_size)


def test_unknown_arch_is_rejected():
    with pytest.raises(ValueError, match="unknown arch"):
        build_model(replace(TINY, arch="mamba"))


def test_transformer_is_causal():
    torch.manual_seed(0)
    model = build_model(replace(TINY, arch="transformer")).eval()
    tokens = torch.randint(0, TINY.vocab_size, (2, TINY.seq_len))
    changed = tokens.clone()
    changed[:, 10] = (changed[:, 10] + 1) % TINY.vocab_size
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[:, :10], after[:, :10])
    assert not torch.allclose(before[:, 10:], after[:, 10:])


def test_crop_batches_shapes_padding_and_contiguity():
    source = _ramp_source(0, [1, 5, 40, 100])
    batches = crop_batches([source], seq_len=16, batch_size=4, seed=0, shuffle_buffer=2)
    for batch in itertools.islice(batches, 50):
        assert batch.shape == (4, 17) and batch.dtype == torch.long
        for row in batch.numpy():
            tokens = row[row != IGNORE_INDEX]
            assert len(tokens) in (5, 17)  # the 1-token song is skipped, the 5-token one padded
            assert (row[len(tokens) :] == IGNORE_INDEX).all()
            assert (np.diff(tokens) == 1).all()


def test_crop_batches_are_deterministic_per_seed():
    sources = [_ramp_source(0, [30, 50, 70]), _ramp_source(1000, [40, 60])]

    def take(seed, stratified):
        return torch.stack(list(itertools.islice(crop_batches(sources, 8, 4, seed, stratified, 3), 10)))

    for stratified in (False, True):
        assert torch.equal(take(1, stratified), take(1, stratified))
        assert not torch.equal(take(1, stratified), take(2, stratified))


@pytest.mark.parametrize(("stratified", "expected_small_share"), [(True, 0.5), (False, 2 / 32)])
def test_source_mixing(stratified, expected_small_share):
    small_calls: list[int] = []
    small = _ramp_source(0, [20, 20], small_calls)
    large = _ramp_source(1000, [20] * 30)
    batches = crop_batches([small, large], seq_len=8, batch_size=32, seed=0, stratified=stratified, shuffle_buffer=8)
    crops = torch.cat(list(itertools.islice(batches, 100)))
    share = (crops[:, 0] < 1000).float().mean().item()
    assert share == pytest.approx(expected_small_share, abs=0.03)
    assert len(small_calls) > 10  # the exhausted small source was restarted again and again


def test_source_without_usable_songs_is_an_error():
    batches = crop_batches([_ramp_source(0, [1, 1])], seq_len=8, batch_size=2, seed=0)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        next(batches)


class ConstantLM(torch.nn.Module):
    def __init__(self, probs: torch.Tensor):
        super().__init__()
        self.logits = torch.nn.Parameter(probs.log())

    def forward(self, tokens):
        return self.logits.expand(*tokens.shape, -1)


def test_evaluate_constant_model_gives_analytic_perplexity():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    songs = [np.array([0, 3]), np.array([1]), np.arange(37) % 4, np.full(16, 2), np.full(17, 3)]
    result = evaluate(ConstantLM(probs), songs, seq_len=8, device="cpu", batch_size=3)
    targets = np.concatenate([s[1:] for s in songs])  # every token but each song's first, once
    expected = -np.log(probs.numpy()[targets]).mean()
    assert result["tokens"] == len(targets)
    assert result["loss"] == pytest.approx(expected, rel=1e-6)
    assert result["perplexity"] == pytest.approx(math.exp(expected), rel=1e-6)


def test_evaluate_keeps_training_mode_and_rejects_empty_input():
    model = build_model(TINY)
    evaluate(model, _repetitive(2, 0), TINY.seq_len, "cpu")
    assert model.training
    with pytest.raises(ValueError):
        evaluate(model, [np.array([5])], TINY.seq_len, "cpu")


def _run(cfg, ckpt_dir, log=lambda metrics, step: None):
    train_songs, val_songs = _repetitive(32, 0), _repetitive(8, 1)
    batches = crop_batches([lambda: iter(train_songs)], cfg.seq_len, cfg.batch_size, cfg.seed)
    return train(cfg, batches, lambda: iter(val_songs), str(ckpt_dir), log, device=torch.device("cpu"))


@pytest.mark.parametrize("arch", ARCHS)
def test_training_learns_a_repetitive_corpus(tmp_path, arch):
    cfg = replace(TINY, arch=arch, max_steps=60, eval_every=20, checkpoint_every=20, patience=100)
    logged: list[tuple[dict, int]] = []
    model, result = _run(cfg, tmp_path, lambda metrics, step: logged.append((metrics, step)))

    assert [step for _, step in logged] == list(range(1, 61))
    evals = [metrics for metrics, _ in logged if "val_loss" in metrics]
    assert len(evals) == 3 and set(evals[0]) == {"train_loss", "lr", "val_loss", "val_perplexity"}
    assert evals[-1]["val_perplexity"] < 3 < TINY.vocab_size
    assert result.best_metric == min(m["val_loss"] for m in evals)
    assert result.steps == 60 and result.resumed_from is None and not result.stopped_early
    assert evaluate(model, _repetitive(8, 1), cfg.seq_len, "cpu")["loss"] == pytest.approx(result.best_metric)


def test_early_stopping(tmp_path):
    cfg = replace(TINY, lr=0.0, max_steps=100, eval_every=5, checkpoint_every=50, patience=2)
    _, result = _run(cfg, tmp_path)
    assert result.stopped_early and result.steps == 15 and result.best_step == 5


class Crash(Exception):
    pass


def _crash_at(crash_step):
    def log(metrics, step):
        if step == crash_step:
            raise Crash

    return log


def _state(path):
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("arch", ["gru", "transformer"])
def test_resume_matches_an_uninterrupted_run(tmp_path, arch):
    cfg = replace(TINY, arch=arch, max_steps=40, eval_every=10, checkpoint_every=5, patience=100)
    reference, ref_result = _run(cfg, tmp_path / "ref")

    with pytest.raises(Crash):  # dies after step 23, past its last checkpoint at step 20
        _run(cfg, tmp_path / "crash", _crash_at(23))
    _run(replace(cfg, max_steps=30), tmp_path / "extend")  # finishes early, then gets more steps

    for name in ("crash", "extend"):
        model, result = _run(cfg, tmp_path / name)
        assert result.resumed_from == (20 if name == "crash" else 30)
        assert result == replace(ref_result, resumed_from=result.resumed_from)
        for file in ("last.pt", "best.pt"):
            a, b = _state(tmp_path / "ref" / file), _state(tmp_path / name / file)
            model_a, model_b = a.get("model", a), b.get("model", b)
            assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
        for a, b in zip(reference.state_dict().values(), model.state_dict().values()):
            assert torch.equal(a, b)


def test_finished_run_is_not_retrained(tmp_path):
    cfg = replace(TINY, max_steps=10, eval_every=5, checkpoint_every=5)
    _, first = _run(cfg, tmp_path)
    logged = []
    _, again = _run(cfg, tmp_path, lambda metrics, step: logged.append(step))
    assert logged == [] and again == replace(first, resumed_from=10)


@pytest.mark.parametrize("arch", ARCHS)
def test_save_and_load_model_roundtrip(tmp_path, arch):
    cfg = replace(TINY, arch=arch)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    save_model(model, cfg, str(tmp_path / "artifact"))
    loaded, loaded_cfg = load_model(str(tmp_path / "artifact"), device="cpu")
    assert loaded_cfg == cfg and not loaded.training
    tokens = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    with torch.no_grad():
        assert torch.equal(model(tokens), loaded(tokens))


@pytest.mark.gpu
@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_training_on_cuda_with_bf16_autocast(tmp_path, arch):
    cfg = replace(TINY, arch=arch, max_steps=60, eval_every=20, checkpoint_every=20, patience=100)
    train_songs, val_songs = _repetitive(32, 0), _repetitive(8, 1)
    batches = crop_batches([lambda: iter(train_songs)], cfg.seq_len, cfg.batch_size, cfg.seed)
    model, result = train(cfg, batches, lambda: iter(val_songs), str(tmp_path), lambda m, s: None, device=torch.device("cuda"))
    assert next(model.parameters()).is_cuda
    assert evaluate(model, val_songs, cfg.seq_len, torch.device("cuda"))["perplexity"] < 3
