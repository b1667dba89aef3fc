import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from models.part_separation import (
    ARCHS,
    IGNORE_INDEX,
    NEVER,
    OFFLINE,
    ONLINE,
    PROFILES,
    RESOLUTION,
    Hints,
    PartSepConfig,
    PartSong,
    build_model,
    collate,
    configure,
    crop_batches,
    evaluate,
    features,
    hints_from_labels,
    load_model,
    predict,
    save_model,
    train,
    transpositions,
)

PARTS = ("high", "middle", "low")
RANGES = ((74, 80), (62, 68), (50, 56))  # disjoint pitch ranges, one per part
TINY = replace(
    PROFILES["smoke"], n_parts=3, d_model=32, n_heads=4, d_ff=64, crop_len=48, max_len=64, batch_size=8, lr=1e-2
)


def _song(seed: int, n_notes: int = 30, parts: tuple[int, ...] = (0, 1, 2)) -> PartSong:
    """Parts in disjoint pitch ranges, each with its own random rhythm and a random late entry."""
    rng = np.random.default_rng(seed)
    onsets, durations, pitches, labels = [], [], [], []
    for part in parts:
        steps = rng.choice([RESOLUTION // 2, RESOLUTION, 2 * RESOLUTION], size=n_notes)
        onset = int(rng.integers(0, 4)) * RESOLUTION + np.concatenate([[0], np.cumsum(steps[:-1])])
        onsets.append(onset)
        durations.append(steps)
        pitches.append(rng.integers(*RANGES[part], size=n_notes))
        labels.append(np.full(n_notes, part))
    onset, duration, pitch, label = (np.concatenate(x).astype(np.int64) for x in (onsets, durations, pitches, labels))
    order = np.lexsort((pitch, onset))
    return PartSong(
        dataset="synthetic", song=f"song{seed}", split="train", scheme="ranges", part_names=PARTS,
        onset=onset[order], duration=duration[order], pitch=pitch[order], label=label[order],
    )  # fmt: skip


@pytest.fixture(scope="module")
def songs() -> list[PartSong]:
    return [_song(seed) for seed in range(12)]


def _cfg(songs: list[PartSong], **changes) -> PartSepConfig:
    return configure(replace(TINY, **changes), songs)


def test_hints_from_labels_marks_one_entry_per_present_part():
    song = _song(0, parts=(0, 2))
    hints = hints_from_labels(song.onset, song.pitch, song.label, 3)
    for part in (0, 2):
        assert hints.entry[part] == np.flatnonzero(song.label == part)[0]
        assert hints.pitch[part] == pytest.approx(song.pitch[song.label == part].mean())
    assert hints.entry[1] == NEVER and np.isnan(hints.pitch[1])
    entry = features(song.onset, song.duration, song.pitch, hints, 3)["entry"].reshape(-1, 3, 3)
    assert (entry.sum(-1) == 1).all()  # every note has one state per part
    at = entry[:, :, 1]
    assert at[:, 0].sum() == 1 and at[:, 2].sum() == 1 and at[:, 1].sum() == 0
    assert at[hints.entry[0], 0] == 1 and at[hints.entry[2], 2] == 1
    assert (entry[:, 1, 0] == 1).all()  # the absent part never enters
    first = hints.entry[0]
    assert (entry[:first, 0, 0] == 1).all() and (entry[first + 1 :, 0, 2] == 1).all()


def test_features_are_shift_invariant_and_hint_free_without_hints():
    song = _song(1)
    base = features(song.onset, song.duration, song.pitch, None, 3)
    shifted = features(song.onset + 7 * RESOLUTION, song.duration, song.pitch, None, 3)
    for key in base:
        np.testing.assert_array_equal(base[key], shifted[key])
    assert base["beat"][0] == 0 and (base["position"] == song.onset % RESOLUTION).all()
    assert not base["entry"].any() and not base["pitch_hint"].any()
    assert base["frequency"].max() <= 1 and np.all(np.diff(base["frequency"][np.argsort(song.pitch)]) >= 0)


def test_transpositions_keep_pitches_in_range():
    assert transpositions(np.array([60, 70]), -5, 6).tolist() == list(range(-5, 7))
    assert transpositions(np.array([3, 125]), -5, 6).tolist() == [-3, -2, -1, 0, 1, 2]


def test_crops_transpose_pitch_and_pitch_hints_but_keep_labels(songs):
    high = replace(songs[0], pitch=songs[0].pitch + 47)  # up to 126: only shifts of at most +1 fit
    cfg = _cfg([high], crop_len=1000, hint_dropout=0.0, batch_size=4)
    hints = hints_from_labels(high.onset, high.pitch, high.label, 3)
    seen = set()
    for batch in itertools.islice(crop_batches([high], cfg, seed=0), 10):
        for row in range(4):
            pitch = batch["pitch"][row].numpy() - 1
            shift = set(pitch - high.pitch)
            assert len(shift) == 1
            (s,) = shift
            seen.add(int(s))
            assert -5 <= s <= 1 and pitch.max() <= 127
            np.testing.assert_array_equal(batch["label"][row].numpy(), high.label)
            np.testing.assert_array_equal(batch["pitch_hint"][row].numpy() - 1, np.rint(hints.pitch + s))
    assert len(seen) > 1


def test_crop_batches_pad_crop_and_drop_hints(songs):
    short = _song(3, n_notes=5)
    cfg = _cfg(songs, hint_dropout=0.5, batch_size=16)
    means = np.rint(np.array(cfg.pitch_means)).astype(int) + 1
    batches = list(itertools.islice(crop_batches([short, *songs], cfg, seed=1), 5))
    again = list(itertools.islice(crop_batches([short, *songs], cfg, seed=1), 5))
    dropped = kept = 0
    for batch, other in zip(batches, again):
        for key in batch:
            torch.testing.assert_close(batch[key], other[key])
        assert batch["pitch"].shape == (16, cfg.crop_len)
        for row in range(16):
            length = int(batch["length"][row])
            assert length in (15, cfg.crop_len)
            assert (batch["label"][row, length:] == IGNORE_INDEX).all() and (batch["pitch"][row, length:] == 0).all()
            no_entry = not batch["entry"][row].any()
            dropped += no_entry
            kept += not no_entry
            if no_entry:
                assert batch["pitch_hint"][row].tolist() == means.tolist()
    assert dropped and kept


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_learns_the_synthetic_task(arch, songs, tmp_path):
    cfg = _cfg(songs[:10], arch=arch, transpose_low=0, transpose_high=0, max_steps=40, eval_every=20, patience=5)
    model, result = train(cfg, songs[:10], songs[10:], str(tmp_path), log=quiet, device="cpu")
    assert result.steps == 40
    for use_hints in (True, False):
        assert evaluate(model, cfg, songs[10:], use_hints)["accuracy"] > 0.95


@pytest.mark.parametrize("arch", ARCHS)
def test_padding_never_changes_a_sequence_s_logits(arch):
    torch.manual_seed(0)
    cfg = replace(TINY, arch=arch, pitch_means=(77.0, 65.0, 53.0))
    model = build_model(cfg).eval()
    short, long = _song(6, n_notes=8), _song(7, n_notes=20)
    items = [(features(s.onset, s.duration, s.pitch, None, 3), None) for s in (short, long)]
    alone = model(collate(items[:1]))[0]
    padded = model(collate(items))[0, : len(short.pitch)]
    torch.testing.assert_close(alone, padded, rtol=1e-5, atol=1e-5)


def _changed_after(song: PartSong, k: int) -> tuple[np.ndarray, np.ndarray]:
    pitch, duration = song.pitch.copy(), song.duration.copy()
    pitch[k:] = np.random.default_rng(0).integers(30, 100, size=len(pitch) - k)
    duration[k:] = 1
    return pitch, duration


@pytest.mark.parametrize("arch", ARCHS)
def test_online_models_never_look_ahead(arch):
    torch.manual_seed(0)
    song = _song(5, n_notes=50)  # 150 notes: three inference windows of max_len 64
    cfg = replace(TINY, arch=arch, pitch_means=(77.0, 65.0, None), dropout=0.0)
    model = build_model(cfg)
    k = 100
    pitch, duration = _changed_after(song, k)
    hints = Hints(entry=np.array([0, 1, NEVER]), pitch=np.array([77.0, 65.0, 53.0]))
    for h in (None, hints):
        before = model.eval()(_batch(cfg, song.onset, song.duration, song.pitch, h))[0]
        after = model(_batch(cfg, song.onset, duration, pitch, h))[0]
        if arch in ONLINE:
            torch.testing.assert_close(before[:k], after[:k])
            early = predict(model, cfg, song.onset, song.duration, song.pitch, h)[:k]
            np.testing.assert_array_equal(early, predict(model, cfg, song.onset, duration, pitch, h)[:k])
        else:
            assert arch in OFFLINE and not torch.allclose(before[:k], after[:k])


def _batch(cfg, onset, duration, pitch, hints):
    return collate([(features(onset, duration, pitch, hints, cfg.n_parts), None)])


def test_predict_without_labels_and_window_boundaries(songs):
    cfg = _cfg(songs, max_len=16)
    model = build_model(cfg)
    song = songs[0]
    labels = predict(model, cfg, song.onset, song.duration, song.pitch)
    assert labels.shape == song.pitch.shape and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < 3
    assert predict(model, cfg, song.onset[:0], song.duration[:0], song.pitch[:0]).shape == (0,)


def test_evaluate_reports_micro_accuracy_over_all_notes(songs):
    cfg = _cfg(songs)
    result = evaluate(build_model(cfg), cfg, songs[:3])
    n = sum(len(s.pitch) for s in songs[:3])
    assert result["n_notes"] == n == len(result["predictions"])
    assert result["labels"].tolist() == np.concatenate([s.label for s in songs[:3]]).tolist()
    assert result["accuracy"] == pytest.approx(np.mean(result["predictions"] == result["labels"]))


def quiet(metrics: dict[str, float], step: int) -> None:
    pass


def test_resumed_training_matches_an_uninterrupted_run(songs, tmp_path):
    cfg = _cfg(songs[:6], arch="lstm", max_steps=8, eval_every=2, checkpoint_every=4, patience=100)
    full, _ = train(cfg, songs[:6], songs[6:8], str(tmp_path / "full"), quiet, device="cpu")
    train(replace(cfg, max_steps=4), songs[:6], songs[6:8], str(tmp_path / "cut"), quiet, device="cpu")
    resumed, result = train(cfg, songs[:6], songs[6:8], str(tmp_path / "cut"), quiet, device="cpu")
    assert result.resumed_from == 4 and result.steps == 8
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    last_cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["model"]
    for key in last_full:
        torch.testing.assert_close(last_full[key], last_cut[key], rtol=0, atol=0)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_save_load_round_trip(songs, tmp_path):
    cfg = _cfg(songs, arch="transformer_encoder")
    torch.manual_seed(0)
    model = build_model(cfg)
    save_model(model, cfg, str(tmp_path))
    loaded, loaded_cfg = load_model(str(tmp_path), device="cpu")
    assert loaded_cfg == cfg
    song = songs[0]
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)
    np.testing.assert_array_equal(
        predict(model, cfg, song.onset, song.duration, song.pitch),
        predict(loaded, loaded_cfg, song.onset, song.duration, song.pitch),
    )


def test_training_needs_pitch_means_and_matching_parts(songs, tmp_path):
    with pytest.raises(ValueError, match="pitch_means"):
        train(TINY, songs, songs, str(tmp_path), quiet)
    with pytest.raises(ValueError, match="n_parts"):
        train(replace(_cfg(songs), n_parts=4), songs, songs, str(tmp_path), quiet)
    with pytest.raises(ValueError, match="unknown arch"):
        build_model(replace(TINY, arch="gru"))
