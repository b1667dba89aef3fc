import json
from dataclasses import replace

import librosa
import numpy as np
import pytest
import torch

from models.checkpoints import seed_everything
from models.vocoder import (
    CLIPSONIC_PROFILES,
    PROFILES,
    Generator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    discriminator_loss,
    feature_loss,
    generator_loss,
    griffin_lim,
    hifigan_vocode,
    invert,
    load_vocoder,
    resynthesis_l1,
    save_vocoder,
    SpecMismatch,
    segment_batch,
    train_hifigan,
    validate,
)
from models.mel import CLIPSONIC, HOP, N_MELS, PERFORMANCE, SAMPLE_RATE, log_mel, log_mel_torch

SMOKE = PROFILES["smoke"]
CLIPSONIC_SMOKE = CLIPSONIC_PROFILES["smoke"]
CPU = torch.device("cpu")


def _sine(freq: float, n: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / SAMPLE_RATE)).astype(np.float32)


def _tone(freq: float, n: int) -> np.ndarray:
    """Three harmonics with a 50 ms fade-in: a little more like an instrument than a sine."""
    t = np.arange(n) / SAMPLE_RATE
    audio = sum(0.3 / k * np.sin(2 * np.pi * freq * k * t) for k in (1, 2, 3))
    return (audio * np.minimum(1.0, t * 20)).astype(np.float32)


@pytest.fixture(scope="module")
def clips() -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [_tone(440, 8000), _tone(660, 8000)], [_tone(550, 4096)]


def test_log_mel_torch_matches_numpy_log_mel():
    noise = 0.1 * np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    sine = _sine(440, 5000)  # quiet bins near the floor are where float32 FFTs would disagree
    batch = log_mel_torch(torch.from_numpy(np.stack([noise, sine])))
    assert batch.shape == (2, 1 + 5000 // HOP, N_MELS) and batch.dtype == torch.float32
    for row, audio in enumerate((noise, sine)):
        np.testing.assert_allclose(batch[row].numpy(), log_mel(audio), atol=1e-3)
    np.testing.assert_array_equal(log_mel_torch(torch.from_numpy(sine))[0].numpy(), batch[1].numpy())


@pytest.mark.parametrize(
    ("spec", "mean_bound"),
    # measured 1.18 and 1.50, mostly quiet bins near the floor, which sits deeper below the sine's
    # peak in the CLIPSonic mel (n_fft 2048 doubles the magnitudes; 74% of its bins are at the floor)
    [(PERFORMANCE, 1.5), (CLIPSONIC, 1.8)],
    ids=["performance", "clipsonic"],
)
def test_griffin_lim_recovers_a_sine(spec, mean_bound):
    freq = 1000.0
    mel = log_mel(_sine(freq, 8192), spec)
    audio = griffin_lim(mel, spec)
    assert audio.dtype == np.float32 and len(audio) == (len(mel) - 1) * spec.hop
    spectrum = np.abs(librosa.stft(audio, n_fft=spec.n_fft, hop_length=spec.hop)).mean(axis=1)
    assert abs(spectrum.argmax() - freq / (SAMPLE_RATE / spec.n_fft)) <= 1
    error = np.abs(log_mel(audio, spec) - mel)
    loud = mel > mel.max() - np.log(100)  # within 40 dB of the peak
    assert error.mean() < mean_bound
    assert error[loud].mean() < 0.4  # measured 0.18 and 0.09


def test_resynthesis_l1_scores_inversions_on_the_clips_own_length():
    clips = [_sine(440.0, 4096), _sine(880.0, 3000)]
    exact = iter(clips)
    assert resynthesis_l1(clips, lambda mel: np.concatenate([next(exact), np.ones(500, np.float32)])) == 0.0
    silence = resynthesis_l1(clips, lambda mel: np.zeros(1, np.float32))  # padded to the clip: the log floor
    assert 0 < resynthesis_l1(clips, griffin_lim) < silence / 2


@pytest.mark.parametrize("profile", ["paper", "smoke"])
def test_generator_output_is_hop_samples_per_frame(profile):
    generator = Generator(PROFILES[profile])
    audio = generator(torch.randn(2, N_MELS, 7))
    assert audio.shape == (2, 1, 7 * HOP)
    assert audio.abs().max() <= 1
    with pytest.raises(ValueError, match="HOP"):
        Generator(replace(SMOKE, upsample_rates=(8, 8, 2)))


@pytest.mark.parametrize("profile", ["paper", "smoke"])
def test_clipsonic_generator_maps_64_band_frames_to_hop_512_blocks(profile):
    generator = Generator(CLIPSONIC_PROFILES[profile])
    assert generator.spec == CLIPSONIC
    audio = generator(torch.randn(2, 64, 7))
    assert audio.shape == (2, 1, 7 * 512)
    with pytest.raises(ValueError, match="HOP=512"):
        Generator(replace(CLIPSONIC_SMOKE, upsample_rates=(8, 8, 2, 2)))


def test_discriminators_return_scores_and_feature_maps():
    audio = torch.randn(2, 2048)
    for discriminator, n_subs, n_layers in (
        (MultiPeriodDiscriminator(SMOKE), len(SMOKE.periods), 6),
        (MultiScaleDiscriminator(SMOKE), SMOKE.n_scales, 8),
    ):
        scores, fmaps = discriminator(audio)
        assert len(scores) == len(fmaps) == n_subs
        for score, fmap in zip(scores, fmaps):
            assert score.shape[0] == 2 and score.ndim == 2
            assert len(fmap) == n_layers and torch.equal(fmap[-1].flatten(1), score)


def test_losses_vanish_at_their_optimum():
    ones, zeros = [torch.ones(2, 5)] * 2, [torch.zeros(2, 5)] * 2
    assert discriminator_loss(ones, zeros).item() == 0 and discriminator_loss(zeros, ones).item() == 4
    assert generator_loss(ones).item() == 0
    fmaps = [[torch.randn(2, 3, 4)]]
    assert feature_loss(fmaps, fmaps).item() == 0


def test_segment_batches_are_seeded_by_step(clips):
    train, _ = clips
    short = [train[0][:100]]
    batch = segment_batch(train, SMOKE, step=3)
    assert batch.shape == (SMOKE.batch_size, SMOKE.segment)
    assert torch.equal(batch, segment_batch(train, SMOKE, step=3))
    assert not torch.equal(batch, segment_batch(train, SMOKE, step=4))
    padded = segment_batch(short, SMOKE, step=0)
    assert torch.equal(padded[:, 100:], torch.zeros(SMOKE.batch_size, SMOKE.segment - 100))


def test_smoke_training_lowers_validation_mel_error(tmp_path, clips):
    train, valid = clips
    seed_everything(SMOKE.seed)
    untrained = validate(Generator(SMOKE), valid)["val_mel_l1"]
    logged = []

    def log(metrics: dict[str, float], step: int) -> None:
        logged.append((step, metrics))

    generator, result = train_hifigan(SMOKE, train, valid, str(tmp_path), log, device=CPU)
    assert result.steps == SMOKE.max_steps and result.resumed_from is None
    assert result.best_metric < 0.8 * untrained  # measured 1.76 against 3.01
    assert validate(generator, valid)["val_mel_l1"] == pytest.approx(result.best_metric)
    assert [s for s, _ in logged] == list(range(1, SMOKE.max_steps + 1))
    assert {"d_loss", "g_loss", "g_adv", "g_fm", "mel_l1", "lr"} <= logged[0][1].keys()


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, clips):
    train, valid = clips
    cfg = replace(SMOKE, max_steps=6, eval_every=3, checkpoint_every=2, patience=10)
    reference, expected = train_hifigan(cfg, train, valid, str(tmp_path / "a"), lambda m, s: None, device=CPU)

    def crash_at_5(metrics, step):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_hifigan(cfg, train, valid, str(tmp_path / "b"), crash_at_5, device=CPU)
    resumed, result = train_hifigan(cfg, train, valid, str(tmp_path / "b"), lambda m, s: None, device=CPU)

    assert result.resumed_from == 4
    assert replace(result, resumed_from=None) == expected
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    last_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    last_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for part in ("model", "discriminators"):  # the generator in the single-model layout, the discriminators by name
        for key, value in last_a[part].items():
            assert torch.equal(value, last_b[part][key]), key
    for prefix in ("", "discriminators_"):
        assert last_a[f"{prefix}scheduler"] == last_b[f"{prefix}scheduler"]
        moments_a, moments_b = last_a[f"{prefix}optimizer"]["state"], last_b[f"{prefix}optimizer"]["state"]
        assert moments_a.keys() == moments_b.keys() and len(moments_a) > 0
        for index, moments in moments_a.items():
            for key, value in moments.items():
                assert torch.equal(value, moments_b[index][key]), (prefix, index, key)


def test_save_load_roundtrip_and_invert(tmp_path):
    seed_everything(1)
    generator, mel = Generator(SMOKE), log_mel(_tone(440, 3000))
    save_vocoder(generator, SMOKE, str(tmp_path))
    loaded, cfg = load_vocoder(str(tmp_path), device="cpu")
    assert cfg == SMOKE and not loaded.training
    audio = hifigan_vocode(generator, mel)
    np.testing.assert_array_equal(hifigan_vocode(loaded, mel), audio)
    np.testing.assert_array_equal(invert(mel, loaded), audio[: (len(mel) - 1) * HOP])
    np.testing.assert_array_equal(invert(mel), griffin_lim(mel))


@pytest.mark.gpu
def test_training_on_cuda_with_bf16_autocast(tmp_path, clips):
    train, valid = clips
    cuda = torch.device("cuda")
    seed_everything(SMOKE.seed)
    untrained = validate(Generator(SMOKE).to(cuda), valid)["val_mel_l1"]
    generator, result = train_hifigan(SMOKE, train, valid, str(tmp_path), lambda m, s: None, device=cuda)
    assert next(generator.parameters()).is_cuda
    assert result.best_metric < untrained


def test_a_saved_clipsonic_vocoder_reloads_with_its_spec(tmp_path):
    seed_everything(1)
    generator, mel = Generator(CLIPSONIC_SMOKE), log_mel(_tone(440, 6000), CLIPSONIC)
    save_vocoder(generator, CLIPSONIC_SMOKE, str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["mel"] == "clipsonic"
    loaded, cfg = load_vocoder(str(tmp_path), device="cpu")
    assert cfg == CLIPSONIC_SMOKE and loaded.spec == CLIPSONIC
    audio = invert(mel, loaded, CLIPSONIC)
    assert len(audio) == (len(mel) - 1) * CLIPSONIC.hop
    np.testing.assert_array_equal(audio, hifigan_vocode(generator, mel)[: len(audio)])
    with pytest.raises(SpecMismatch, match="64-band hop-512"):
        invert(log_mel(_tone(440, 6000)), loaded)  # a performance mel to a CLIPSonic vocoder


def test_a_config_saved_without_a_mel_spec_loads_as_performance(tmp_path):
    save_vocoder(Generator(SMOKE), SMOKE, str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    del config["mel"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded, cfg = load_vocoder(str(tmp_path), device="cpu")
    assert cfg == SMOKE and cfg.mel == "performance" and loaded.spec == PERFORMANCE

