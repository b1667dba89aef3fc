import itertools
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from models.mmt import (
    MMT,
    PROFILES,
    MMTConfig,
    collate,
    continuation_prompt,
    evaluate,
    generate,
    generate_many,
    instrument_prompt,
    load_model,
    lr_multiplier,
    make_batches,
    save_model,
    train,
    unconditioned_prompt,
    val_batches,
    window,
)
from models.mmt.encoding import (
    FIELD_SIZES,
    TYPE_END,
    TYPE_INSTRUMENT,
    TYPE_NOTE,
    TYPE_START_NOTES,
    encode_arrays,
    validate,
)

TINY = MMTConfig(
    dim=32,
    layers=2,
    heads=2,
    dropout=0.0,
    max_seq_len=96,
    max_beat=32,
    batch_size=4,
    lr=3e-3,
    warmup_steps=5,
    decay_end_step=200,
    pitch_shift_min=0,
    pitch_shift_max=0,
    max_steps=80,
    eval_every=20,
    checkpoint_every=40,
    patience=100,
)


def song(seed: int, n_notes: int = 40, n_beats: int = 24) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return encode_arrays(
        onset=rng.integers(0, n_beats * 12, n_notes),
        duration=rng.choice([6, 12, 24], n_notes),
        pitch=rng.integers(48, 84, n_notes),
        program=rng.choice([0, 40, 73], n_notes),
        is_drum=np.zeros(n_notes, dtype=bool),
        resolution=12,
    )


SONGS = [song(i) for i in range(6)]


def no_log(metrics, step):
    pass


@pytest.fixture(scope="module")
def trained(one_thread, tmp_path_factory):
    model, result = train(TINY, SONGS, SONGS, str(tmp_path_factory.mktemp("ckpt")), no_log, device="cpu")
    return model.eval(), result


def check_rules(seq: np.ndarray, prompt: np.ndarray, max_len: int) -> None:
    assert validate(seq) == []
    assert len(seq) <= max_len
    np.testing.assert_array_equal(seq[: len(prompt)], prompt)
    types = seq[:, 0]
    assert (np.diff(types) >= 0).all()
    instruments = seq[types == TYPE_INSTRUMENT, 5]
    assert (np.diff(instruments) > 0).all()  # distinct and ascending, as the encoding lists them
    notes = seq[types == TYPE_NOTE]
    assert set(notes[:, 5]) <= set(instruments)
    onsets = (notes[:, 1] - 1) * 12 + notes[:, 2] - 1
    assert (np.diff(notes[:, 1]) >= 0).all() and (np.diff(onsets) >= 0).all()


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = PROFILES["paper"]
    assert lr_multiplier(0, cfg) == pytest.approx(1 / 5000)
    assert lr_multiplier(4999, cfg) == pytest.approx(1.0)
    assert lr_multiplier(52_500, cfg) == pytest.approx(0.55)
    assert lr_multiplier(100_000, cfg) == pytest.approx(0.1)
    assert lr_multiplier(150_000, cfg) == pytest.approx(0.1)


def test_make_batches_are_deterministic_padded_and_augmented():
    cfg = replace(TINY, pitch_shift_min=-5, pitch_shift_max=6)
    a = list(itertools.islice(make_batches(SONGS, cfg, seed=7), 6))
    b = list(itertools.islice(make_batches(SONGS, cfg, seed=7), 6))
    c = list(itertools.islice(make_batches(SONGS, cfg, seed=8), 6))
    for x, y in zip(a, b):
        assert torch.equal(x["codes"], y["codes"]) and torch.equal(x["mask"], y["mask"])
    assert any(not torch.equal(x["codes"], z["codes"]) for x, z in zip(a, c))
    for batch in a:
        codes, mask = batch["codes"], batch["mask"]
        assert codes.shape[0] == cfg.batch_size and codes.shape[1] <= cfg.max_seq_len
        assert mask.shape == codes.shape[:2] and mask[:, 0].all()
        for row, m in zip(codes.numpy(), mask.numpy()):
            assert (row[~m] == 0).all() and validate(row[m]) == []
    # every song's pitches move by one shift in [-5, 6] (other fields untouched), and shifts vary
    originals = {tuple(s[s[:, 0] == TYPE_NOTE][:, [1, 2, 4, 5]].ravel()): s for s in SONGS}
    shifts = set()
    for batch in a:
        for row, m in zip(batch["codes"].numpy(), batch["mask"].numpy()):
            notes = row[m][row[m][:, 0] == TYPE_NOTE]
            source = originals[tuple(notes[:, [1, 2, 4, 5]].ravel())]
            delta = set((notes[:, 3] - source[source[:, 0] == TYPE_NOTE, 3]).tolist())
            assert len(delta) == 1 and -5 <= min(delta) <= 6
            shifts |= delta
    assert len(shifts) > 1


def test_val_batches_cover_every_song_once_without_augmentation():
    batches = val_batches(SONGS, TINY)
    rows = [r[m] for b in batches for r, m in zip(b["codes"].numpy(), b["mask"].numpy())]
    assert len(rows) == len(SONGS)
    for row, codes in zip(rows, SONGS):
        np.testing.assert_array_equal(row, window(codes, TINY.max_beat, TINY.max_seq_len))


def test_model_is_causal_and_has_six_heads():
    torch.manual_seed(0)
    model = MMT(TINY).eval()
    codes = collate([SONGS[0][:20]])["codes"]
    changed = codes.clone()
    changed[0, 12, 3] += 1
    with torch.no_grad():
        before, after = model(codes), model(changed)
    assert [out.shape for out in before] == [(1, 20, size) for size in FIELD_SIZES]
    for x, y in zip(before, after):
        torch.testing.assert_close(x[:, :12], y[:, :12])
        assert not torch.allclose(x[:, 12:], y[:, 12:])


def test_cached_logits_match_full_recomputation_at_every_step():
    torch.manual_seed(0)
    model = MMT(TINY).eval()
    codes = torch.from_numpy(SONGS[1][:40])[None]
    with torch.no_grad():
        full = model(codes)
        cache = model.new_cache()
        chunks = [(0, 5), (5, 6), (6, 9), *((i, i + 1) for i in range(9, 40))]  # prefill, steps, a multi-row step
        for start, end in chunks:
            step = model(codes[:, start:end], cache)
            for f, s in zip(full, step):
                torch.testing.assert_close(s, f[:, start:end], atol=1e-5, rtol=1e-5)
    assert cache[0].length == 40


def test_training_overfits_a_few_songs(trained):
    torch.manual_seed(TINY.seed)
    untrained = evaluate(MMT(TINY).eval(), val_batches(SONGS, TINY))["val_loss"]
    model, result = trained
    assert result.steps == TINY.max_steps and result.best_step > 0
    assert result.best_metric < 0.5 * untrained
    with torch.no_grad():
        assert evaluate(model, val_batches(SONGS, TINY))["val_loss"] == pytest.approx(result.best_metric, rel=1e-5)


def test_greedy_and_seeded_generation_match_with_and_without_cache(trained):
    model, _ = trained
    for prompt in (unconditioned_prompt(), continuation_prompt(SONGS[0], 4)):
        for temperature in (0.0, 1.0):
            kwargs = {"temperature": temperature, "seed": 3}
            cached = generate(model, prompt, TINY.max_seq_len, use_cache=True, **kwargs)
            uncached = generate(model, prompt, TINY.max_seq_len, use_cache=False, **kwargs)
            np.testing.assert_array_equal(cached, uncached)
            assert len(cached) > len(prompt) + 1


@pytest.mark.parametrize("mode", ["unconditioned", "instrument", "continuation"])
def test_generated_songs_are_valid_in_every_mode(trained, mode):
    model, _ = trained
    codes = SONGS[2]
    prompt = {
        "unconditioned": unconditioned_prompt(),
        "instrument": instrument_prompt(codes),
        "continuation": continuation_prompt(codes, 4),
    }[mode]
    samples = generate_many(model, prompt, TINY.max_seq_len, 4, seed=1)
    assert len(samples) == 4
    for seq in samples:
        check_rules(seq, prompt, TINY.max_seq_len)
    assert len({seq.tobytes() for seq in samples}) > 1
    if mode != "unconditioned":
        assert (prompt[:, 0] < TYPE_NOTE).sum() == (codes[:, 0] < TYPE_NOTE).sum()
        assert prompt[-1, 0] == (TYPE_START_NOTES if mode == "instrument" else TYPE_NOTE)


def test_prompts_select_the_right_rows():
    codes = SONGS[3]
    np.testing.assert_array_equal(instrument_prompt(codes), codes[codes[:, 0] < TYPE_NOTE])
    cont = continuation_prompt(codes, 4)
    notes = codes[codes[:, 0] == TYPE_NOTE]
    np.testing.assert_array_equal(cont, codes[: len(instrument_prompt(codes)) + int((notes[:, 1] <= 4).sum())])


def test_constraints_hold_for_an_untrained_model_sampling_everything():
    """A random model with sharp logits and no top-k filter tries every value; the rules must hold."""
    torch.manual_seed(1)
    model = MMT(TINY).eval()
    with torch.no_grad():
        for head in model.heads:
            head.weight.mul_(50)
    for prompt, max_len in (
        (unconditioned_prompt(), 3),
        (unconditioned_prompt(), 40),
        (continuation_prompt(SONGS[4], 8), 90),
    ):
        for seq in generate_many(model, prompt, max_len, 8, top_k_fraction=1.0, seed=2):
            check_rules(seq, prompt, max_len)


def test_generation_rejects_prompts_without_room():
    model = MMT(TINY)
    with pytest.raises(ValueError):
        generate(model, unconditioned_prompt(), TINY.max_seq_len + 1)
    with pytest.raises(ValueError):
        generate(model, instrument_prompt(SONGS[0]), len(instrument_prompt(SONGS[0])))
    with pytest.raises(ValueError):
        generate(model, SONGS[0][1:], 50)


def test_training_resumes_to_the_same_weights(tmp_path):
    cfg = replace(
        TINY, dropout=0.1, pitch_shift_min=-5, pitch_shift_max=6, max_steps=12, eval_every=4, checkpoint_every=4
    )
    train(cfg, SONGS, SONGS[:2], str(tmp_path / "whole"), no_log, device="cpu")
    _, first = train(replace(cfg, max_steps=8), SONGS, SONGS[:2], str(tmp_path / "split"), no_log, device="cpu")
    _, second = train(cfg, SONGS, SONGS[:2], str(tmp_path / "split"), no_log, device="cpu")
    assert first.steps == 8 and second.resumed_from == 8 and second.steps == 12
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    split = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert whole["model"].keys() == split["model"].keys()
    for name, tensor in whole["model"].items():
        torch.testing.assert_close(split["model"][name], tensor, rtol=0, atol=0)


def test_save_load_round_trip_gives_identical_outputs(trained, tmp_path):
    model, _ = trained
    save_model(model, TINY, tmp_path / "model")
    loaded, cfg = load_model(tmp_path / "model", device="cpu")
    assert asdict(cfg) == asdict(TINY) and not loaded.training
    codes = collate(SONGS[:2])["codes"]
    with torch.no_grad():
        for a, b in zip(model(codes), loaded(codes)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(
        generate(model, unconditioned_prompt(), 60, seed=5), generate(loaded, unconditioned_prompt(), 60, seed=5)
    )
