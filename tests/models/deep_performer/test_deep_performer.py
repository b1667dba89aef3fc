import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from models.deep_performer import (
    FRAME_RATE,
    PROFILES,
    Clip,
    align,
    alignment_metrics,
    build_model,
    clip_batches,
    collate,
    crop,
    load_model,
    mel_mse,
    polyphonic_mix,
    save_model,
    synthesize,
    train,
)

SMOKE = PROFILES["smoke"]
LEAD = 3  # frames of silence before a synthetic clip's first note


def _clip(seed: int, n_frames: int = 80, legato: float = 1.0) -> Clip:
    """Random melody with occasional two-note soundings at a random tempo, played ``legato`` of each
    score duration; the mel is a fixed function of the sounding pitches (one bright bin per pitch)."""
    rng = np.random.default_rng(seed)
    qpm = float(rng.uniform(90, 150))
    fpb = 60.0 / qpm * FRAME_RATE
    steps = rng.choice([0.5, 1.0], size=16)
    onset = np.repeat(np.r_[0.0, np.cumsum(steps[:-1])], 2)[:24].astype(np.float32)
    sounding = np.r_[True, onset[1:] != onset[:-1]] | (rng.random(len(onset)) < 0.3)
    onset = onset[sounding]
    duration = np.repeat(steps, 2)[:24][sounding].astype(np.float32)
    pitch = rng.integers(60, 76, size=len(onset))
    onset_frame = LEAD + np.rint(onset * fpb).astype(np.int64)
    offset_frame = onset_frame + np.maximum(np.rint(legato * duration * fpb), 1).astype(np.int64)
    keep = onset_frame < n_frames
    mel = np.full((n_frames, 80), -6.0, np.float32)
    for p, a, b in zip(pitch[keep], onset_frame[keep], offset_frame[keep]):
        mel[a:b, p - 40] = 2.0
    notes = (pitch[keep], onset[keep], duration[keep], onset_frame[keep], offset_frame[keep])
    return Clip(mel, *notes, performer=seed % SMOKE.n_performers, qpm=qpm)


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    return [_clip(seed) for seed in range(12)]


def quiet(metrics: dict[str, float], step: int) -> None:
    pass


def _eval_model(kind: str, cfg=SMOKE, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(cfg, kind).eval()


def test_crop_and_collate_pad_mask_and_rereference_beats(clips):
    c = crop(clips[0], 20, 40)
    assert len(c.mel) == 40 and np.all(c.offset_frame > 0) and np.all(c.onset_frame < 40)
    empty = replace(clips[1], mel=clips[1].mel[:10], **{k: getattr(clips[1], k)[:0] for k in (
        "pitch", "onset_beat", "duration_beat", "onset_frame", "offset_frame")})  # fmt: skip
    batch = collate([c, empty])
    n = len(c.pitch)
    assert batch["pitch"].shape == (2, n) and batch["mel"].shape == (2, 40, 80)
    assert batch["note_mask"].sum(1).tolist() == [n, 0] and batch["frame_mask"].sum(1).tolist() == [40, 10]
    assert batch["onset_beat"][0, 0] == 0 and torch.allclose(
        batch["onset_beat"][0, :n], torch.from_numpy(c.onset_beat - c.onset_beat[0])
    )
    for kind in ("synthesis", "alignment"):
        assert torch.isfinite(_eval_model(kind)(batch)).all()  # a clip without notes is no problem


def test_clip_batches_are_deterministic_crops(clips):
    cfg = replace(SMOKE, crop_frames=32, batch_size=3)
    a, b = (list(itertools.islice(clip_batches(clips, cfg, seed=1), 4)) for _ in range(2))
    for x, y in zip(a, b):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert all(batch["mel"].shape == (3, 32, 80) for batch in a)
    other = next(clip_batches(clips, cfg, seed=2))
    assert not torch.equal(other["mel"], a[0]["mel"])


def _mix_reference(notes, onset, offset, mask, n_frames, w):
    out = torch.zeros(notes.shape[0], n_frames, notes.shape[2])
    for b in range(notes.shape[0]):
        for i in range(notes.shape[1]):
            if not mask[b, i]:
                continue
            for t in range(max(int(onset[b, i]), 0), min(int(offset[b, i]), n_frames)):
                p = (t - onset[b, i]) / max(int(offset[b, i] - onset[b, i] - 1), 1)
                out[b, t] += notes[b, i] * (1 + p * w) if w is not None else notes[b, i]
    return out


@pytest.mark.parametrize("with_pe", [False, True])
def test_mixer_sums_exactly_the_covering_notes(with_pe):
    torch.manual_seed(0)
    notes = torch.randn(2, 4, 6)
    onset = torch.tensor([[-2, 0, 3, 5], [1, 1, 4, 0]])
    offset = torch.tensor([[2, 4, 4, 12], [3, 8, 5, 0]])
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    w = torch.randn(6) if with_pe else None
    expected = _mix_reference(notes, onset, offset, mask, 10, w)
    torch.testing.assert_close(polyphonic_mix(notes, onset, offset, mask, 10, w), expected)
    assert torch.equal(polyphonic_mix(notes, onset, offset, mask, 10, w)[1, 9], torch.zeros(6))  # nothing sounds


def test_notewise_pe_changes_the_output_only_when_enabled(clips):
    batch = collate(clips[:2])
    plain = _eval_model("synthesis", replace(SMOKE, use_notewise_pe=False))
    with_pe = _eval_model("synthesis")
    assert set(with_pe.state_dict()) - set(plain.state_dict()) == {"pe_weight"}
    with_pe.load_state_dict(plain.state_dict() | {"pe_weight": torch.zeros(SMOKE.d_model)})
    with torch.no_grad():
        torch.testing.assert_close(with_pe(batch), plain(batch), rtol=0, atol=0)  # w = 0 is the plain sum
        with_pe.pe_weight.normal_()
        assert not torch.allclose(with_pe(batch), plain(batch))


@pytest.mark.parametrize("kind", ["synthesis", "alignment"])
def test_without_performer_embedding_the_output_ignores_the_performer(clips, kind):
    batch = collate(clips[:3])
    other = batch | {"performer": (batch["performer"] + 1) % SMOKE.n_performers}
    ablated, full = _eval_model(kind, replace(SMOKE, use_performer=False)), _eval_model(kind)
    with torch.no_grad():
        assert torch.equal(ablated(batch), ablated(other))
        assert not torch.allclose(full(batch), full(other))


def test_forward_shapes(clips):
    batch = collate(clips[:3])
    n_notes, n_frames = batch["pitch"].shape[1], batch["mel"].shape[1]
    with torch.no_grad():
        assert _eval_model("synthesis")(batch).shape == (3, n_frames, 80)
        assert _eval_model("alignment")(batch).shape == (3, n_notes, 2)
    with pytest.raises(ValueError, match="unknown kind"):
        build_model(SMOKE, "vocoder")


def test_synthesis_training_lowers_the_validation_mel_mse(clips, tmp_path):
    cfg = replace(SMOKE, lr=1e-2, max_steps=60, eval_every=20, checkpoint_every=60, patience=100)
    logged = []
    before = mel_mse(build_model(cfg, "synthesis"), cfg, clips[9:])
    model, result = train("synthesis", cfg, clips[:9], clips[9:], str(tmp_path), lambda m, s: logged.append(m), "cpu")
    evals = [m["val_loss"] for m in logged if "val_loss" in m]
    assert len(evals) == 3 and result.steps == 60
    assert result.best_metric == min(evals) < before / 4
    assert mel_mse(model, cfg, clips[9:]) == pytest.approx(result.best_metric, rel=1e-5)


def test_resumed_training_matches_an_uninterrupted_run(clips, tmp_path):
    cfg = replace(SMOKE, max_steps=8, eval_every=2, checkpoint_every=4, patience=100)
    full, _ = train("synthesis", cfg, clips[:9], clips[9:], str(tmp_path / "full"), quiet, "cpu")
    train("synthesis", replace(cfg, max_steps=4), clips[:9], clips[9:], str(tmp_path / "cut"), quiet, "cpu")
    resumed, result = train("synthesis", cfg, clips[:9], clips[9:], str(tmp_path / "cut"), quiet, "cpu")
    assert result.resumed_from == 4 and result.steps == 8
    for file in ("last.pt", "best.pt"):
        a = torch.load(tmp_path / "full" / file, weights_only=True)
        b = torch.load(tmp_path / "cut" / file, weights_only=True)
        a, b = a.get("model", a), b.get("model", b)
        assert all(torch.equal(a[k], b[k]) for k in a)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_alignment_learns_detached_playing_beyond_the_tempo_prior(tmp_path):
    """Every note is held for 60% of its score duration at the clip's tempo: the prior alone is off."""
    train_clips = [_clip(seed, legato=0.6) for seed in range(24)]
    valid_clips = [_clip(seed, legato=0.6) for seed in range(100, 104)]
    cfg = replace(SMOKE, lr=1e-2, max_steps=80, eval_every=20, checkpoint_every=80, patience=100)
    prior_only = build_model(cfg, "alignment")
    torch.nn.init.zeros_(prior_only.head.weight), torch.nn.init.zeros_(prior_only.head.bias)
    prior = alignment_metrics(prior_only, cfg, valid_clips)
    assert prior["val_onset_mae_ms"] < 10  # onsets follow the tempo exactly
    model, result = train("alignment", cfg, train_clips, valid_clips, str(tmp_path), quiet, "cpu")
    learned = alignment_metrics(model, cfg, valid_clips)
    assert learned["val_loss"] == pytest.approx(result.best_metric)
    assert learned["val_loss"] < prior["val_loss"] / 4
    assert learned["val_duration_mae_ms"] < prior["val_duration_mae_ms"] / 2


@pytest.mark.parametrize("kind", ["synthesis", "alignment"])
def test_save_load_round_trip(clips, tmp_path, kind):
    cfg = replace(SMOKE, use_performer=kind == "synthesis")
    model = _eval_model(kind, cfg)
    save_model(model, cfg, str(tmp_path))
    loaded, loaded_cfg = load_model(str(tmp_path), device="cpu")
    assert loaded_cfg == cfg and type(loaded) is type(model) and not loaded.training
    batch = collate(clips[:2])
    with torch.no_grad():
        assert torch.equal(model(batch), loaded(batch))


def test_synthesize_a_long_score_in_cross_faded_windows():
    rng = np.random.default_rng(0)
    n = 120
    onset_beat = np.cumsum(rng.choice([0.5, 1.0], size=n)) - 0.5
    duration_beat = np.full(n, 0.5)
    pitch = rng.integers(55, 90, size=n)
    synthesis, alignment = _eval_model("synthesis"), _eval_model("alignment", seed=1)
    mel = synthesize(synthesis, alignment, SMOKE, pitch, onset_beat, duration_beat, performer=1, qpm=100.0)
    score = Clip(np.zeros((1, 80), np.float32), pitch, onset_beat.astype(np.float32),
                 duration_beat.astype(np.float32), np.zeros(n, np.int64), np.zeros(n, np.int64), 1, 100.0)  # fmt: skip
    onset, offset = align(alignment, SMOKE, score)
    assert onset[0] == 0 and np.all(offset > onset)
    assert mel.shape == (offset.max(), 80) and mel.shape[0] > 5 * SMOKE.crop_frames and np.isfinite(mel).all()
    # the first window's frames before the first overlap are that window's own prediction
    first = crop(replace(score, mel=np.zeros((SMOKE.crop_frames, 80), np.float32), onset_frame=onset,
                         offset_frame=offset), 0, SMOKE.crop_frames)  # fmt: skip
    with torch.no_grad():
        direct = synthesis(collate([first]))[0].numpy()
    head = SMOKE.crop_frames - SMOKE.crop_frames // 4
    np.testing.assert_allclose(mel[:head], direct[:head], rtol=1e-5, atol=1e-5)
    silence = synthesize(synthesis, alignment, SMOKE, pitch[:0], onset_beat[:0], duration_beat[:0], 1, 100.0)
    assert silence.shape == (0, 80)


def test_training_rejects_mismatched_clips(clips, tmp_path):
    with pytest.raises(ValueError, match="n_mels"):
        train("synthesis", replace(SMOKE, n_mels=40), clips, clips, str(tmp_path), quiet, "cpu")
    with pytest.raises(ValueError, match="n_performers"):
        train("alignment", replace(SMOKE, n_performers=2), clips, clips, str(tmp_path), quiet, "cpu")
    with pytest.raises(ValueError, match="no validation clips"):
        train("alignment", SMOKE, clips, [], str(tmp_path), quiet, "cpu")


@pytest.mark.gpu
def test_training_and_synthesis_on_cuda_with_bf16_autocast(clips, tmp_path):
    cfg = replace(SMOKE, lr=1e-2, max_steps=40, eval_every=20, checkpoint_every=40, patience=100)
    before = mel_mse(build_model(cfg, "synthesis"), cfg, clips[9:])
    synthesis, result = train("synthesis", cfg, clips[:9], clips[9:], str(tmp_path / "s"), quiet, torch.device("cuda"))
    alignment, _ = train("alignment", cfg, clips[:9], clips[9:], str(tmp_path / "a"), quiet, torch.device("cuda"))
    assert next(synthesis.parameters()).is_cuda and result.best_metric < before / 2
    clip = clips[0]
    mel = synthesize(synthesis, alignment, cfg, clip.pitch, clip.onset_beat, clip.duration_beat, 0, clip.qpm)
    assert mel.shape[1] == 80 and np.isfinite(mel).all()
