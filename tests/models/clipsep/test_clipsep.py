from dataclasses import replace

import numpy as np
import pytest
import torch

from models.checkpoints import seed_everything
from models.clipsep import (
    CLIP_SAMPLES,
    EMBED_DIM,
    N_LINEAR,
    N_WARPED,
    PROFILES,
    SAMPLE_RATE,
    Source,
    apply_mask,
    assignment_losses,
    binary_masks,
    build_model,
    deterministic_mixtures,
    evaluate,
    load_model,
    lr_multiplier,
    mixture_batches,
    nit_candidates,
    noise_regularizer,
    objective,
    query_vector,
    save_model,
    sdr,
    sdri,
    separate,
    separate_pit,
    stft,
    train,
    unwarp,
    validate,
    warp,
)

SMOKE = PROFILES["smoke"]
F0 = (196.0, 440.0, 1046.5)  # one harmonic tone family per class, in separate frequency ranges


def _sources(n_per_class: int, seed: int) -> list[Source]:
    """Harmonic tones with random detuning, phase and tremolo; each class has its own random query
    direction, and every clip's three frame embeddings scatter around it."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).standard_normal((len(F0), EMBED_DIM))
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    out = []
    for c, f0 in enumerate(F0):
        for _ in range(n_per_class):
            f = f0 * 2 ** (rng.uniform(-0.5, 0.5) / 12)
            tone = sum(np.sin(2 * np.pi * f * h * t + rng.uniform(0, 2 * np.pi)) / h for h in (1, 2, 3))
            envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t + rng.uniform(0, 2 * np.pi))
            query = centers[c] + 0.1 * rng.standard_normal((3, EMBED_DIM))
            out.append(Source((0.2 * tone * envelope).astype(np.float32), query.astype(np.float32), f"class{c}"))
    return out


def quiet(metrics: dict[str, float], step: int) -> None:
    pass


@pytest.fixture(scope="module")
def data() -> tuple[list[Source], list[Source]]:
    return _sources(4, seed=0), _sources(2, seed=1)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """CLIPSep-NIT (the smoke profile) and a shorter-trained PIT baseline, each with its validation
    losses: before training, then at every evaluation."""
    models, val_losses = {}, {}
    for method, steps in (("nit", SMOKE.max_steps), ("pit", 40)):
        cfg = replace(SMOKE, method=method, max_steps=steps, eval_every=steps // 2, checkpoint_every=steps)
        seed_everything(cfg.seed)
        untrained = build_model(cfg).eval()
        losses = [validate(untrained, deterministic_mixtures(data[1], cfg.n_val_mixtures, cfg.seed))["val_loss"]]
        log = lambda metrics, step, out=losses: out.append(metrics["val_loss"]) if "val_loss" in metrics else None  # noqa: E731
        models[method], _ = train(cfg, *data, str(tmp_path_factory.mktemp(method)), log, device="cpu")
        val_losses[method] = losses
    return models, val_losses


def test_all_ones_mask_reconstructs_the_mixture():
    audio = np.random.default_rng(0).standard_normal(CLIP_SAMPLES).astype(np.float32) * 0.1
    spec = stft(torch.from_numpy(audio)[None])
    assert spec.shape == (1, N_LINEAR, 256)
    ones = torch.ones(1, N_WARPED, spec.shape[-1])
    assert torch.allclose(unwarp(ones), torch.ones(1, N_LINEAR, spec.shape[-1]))
    out = apply_mask(spec, ones, CLIP_SAMPLES)[0].numpy()
    assert sdr(audio, out) > 100  # measured 139 dB: float32 round-off only


def test_warp_is_log_spaced():
    """A tone's energy lands in the warped row that its frequency maps to."""
    t = np.arange(CLIP_SAMPLES) / SAMPLE_RATE
    rows = []
    for freq in (250.0, 4000.0):
        mag = warp(stft(torch.from_numpy(np.sin(2 * np.pi * freq * t).astype(np.float32))).abs())
        rows.append(int(mag.mean(-1).argmax()))
        linear_bin = freq / (SAMPLE_RATE / 2) * (N_LINEAR - 1)
        assert rows[-1] == pytest.approx(255 * np.log1p(20 * linear_bin / 512) / np.log(21), abs=1.5)
    assert rows[0] > 256 * 250 / 8000 * 3  # low frequencies get far more rows than on a linear axis


def test_model_shapes_and_mask_range():
    model = build_model(replace(SMOKE, n_masks=32)).eval()
    log_mag = torch.randn(2, N_WARPED, 256)
    queries = torch.randn(2, 2, EMBED_DIM)
    with torch.no_grad():
        assert model.features(log_mag).shape == (2, 32, N_WARPED, 256)
        out = model(log_mag, queries)
    assert out["query"].shape == (2, 2, N_WARPED, 256) and out["free"].shape == (2, 2, N_WARPED, 256)
    for masks in out.values():
        assert masks.min() >= 0 and masks.max() <= 1
    assert build_model(replace(SMOKE, method="pit")).query is None
    with pytest.raises(ValueError, match="unknown method"):
        build_model(replace(SMOKE, method="mixit"))


def test_query_vector_is_the_normalised_frame_mean():
    frames = np.random.default_rng(0).standard_normal((3, EMBED_DIM))
    q = query_vector(frames)
    np.testing.assert_allclose(q, frames.mean(0) / np.linalg.norm(frames.mean(0)), atol=1e-6)
    np.testing.assert_allclose(query_vector(frames.mean(0) * 7), q, atol=1e-6)


def test_binary_masks_mark_the_loudest_source():
    mags = torch.tensor([[[[3.0, 0.0, 1.0]], [[1.0, 2.0, 1.0]]]])  # (1, 2, 1, 3)
    assert binary_masks(mags).tolist() == [[[[1, 0, 1]], [[0, 1, 1]]]]  # ties mark both


def test_nit_picks_the_better_noise_assignment_and_regularises_only_above_threshold():
    target = torch.zeros(1, 2, 4, 4)
    target[0, 0, :2] = 1  # source 0 owns the top half
    target[0, 1, 2:] = 1
    weight = torch.ones(1, 1, 4, 4)
    query = torch.full((1, 2, 4, 4), 0.01)
    noise = target.flip(1).clone() * 0.98 + 0.01  # noise head 0 fits source 1, head 1 fits source 0
    losses = assignment_losses(nit_candidates(query, noise), target, weight)
    assert losses[0, 1] < losses[0, 0] - 5
    assert losses.amin(1).item() == pytest.approx(losses[0, 1].item())
    assert noise_regularizer(torch.full((3, 2, 4, 4), 0.1), 0.25).tolist() == [0, 0, 0]
    assert noise_regularizer(torch.full((1, 2, 4, 4), 0.5), 0.25).item() == pytest.approx(0.75)


def test_sdr_and_sdri():
    rng = np.random.default_rng(0)
    ref, other = rng.standard_normal((2, 16_000))
    assert sdr(ref, ref) > 100
    noisy = sdr(ref, ref + 0.1 * rng.standard_normal(16_000))
    assert 10 < noisy < 30
    mixture = ref + other
    assert sdri(ref, mixture, mixture) == 0
    assert sdri(ref, ref + 0.1 * other, mixture) > 10


def test_deterministic_mixtures_are_reproducible_per_index(data):
    sources = data[1]
    few, many = deterministic_mixtures(sources, 3, seed=5), deterministic_mixtures(sources, 8, seed=5)
    for a, b in zip(few, many):
        assert a.indices == b.indices
        np.testing.assert_array_equal(a.audio, b.audio)
    assert [m.indices for m in deterministic_mixtures(sources, 8, seed=6)] != [m.indices for m in many]
    for m in many:
        assert sources[m.indices[0]].label != sources[m.indices[1]].label
        np.testing.assert_allclose(m.audio, m.sources.sum(0), atol=1e-6)


def test_training_batches_are_seeded_and_gains_bounded(data):
    cfg = replace(SMOKE, batch_size=3)
    a, b = next(mixture_batches(data[0], cfg, seed=1)), next(mixture_batches(data[0], cfg, seed=1))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert a["mixture"].shape == (3, CLIP_SAMPLES) and a["queries"].shape == (3, 2, EMBED_DIM)
    raw_peak = max(float(np.abs(s.audio).max()) for s in data[0])
    assert float(a["sources"].abs().max()) <= raw_peak * 10 ** (6 / 20) + 1e-6


def test_lr_warms_up_then_decays():
    cfg = replace(SMOKE, warmup_steps=10, max_steps=110)
    assert lr_multiplier(0, cfg) == pytest.approx(0.1)
    assert lr_multiplier(9, cfg) == pytest.approx(1.0)
    assert lr_multiplier(60, cfg) == pytest.approx(0.5)
    assert lr_multiplier(110, cfg) == 0


def test_every_method_has_a_differentiable_objective(data):
    batch = next(mixture_batches(data[0], replace(SMOKE, batch_size=2), seed=0))
    for method, keys in (("clipsep", {"loss", "query_loss"}), ("nit", {"loss", "query_loss", "noise_reg"}), ("pit", {"loss"})):
        model = build_model(replace(SMOKE, method=method))
        terms = objective(model, batch["mixture"], batch["sources"], batch["queries"])
        assert set(terms) == keys and all(torch.isfinite(v) for v in terms.values())
        terms["loss"].backward()
        assert model.unet.down[0][0].weight.grad.abs().sum() > 0


def test_training_lowers_val_loss_and_separates(trained, data):
    models, val_losses = trained
    for method, losses in val_losses.items():
        assert losses[-1] < losses[0] * 0.5, (method, losses)
    result = evaluate(models["nit"], data[1], n_mixtures=3, seed=0, pit_model=models["pit"])
    assert result["query_sdri_mean"] > 3
    assert result["pit_sdri_mean"] > 6
    assert abs(result["mixture_sdr_mean"]) < 3  # equal-level sources
    assert result["query_sdri_mean"] == pytest.approx(result["query_sdr_mean"] - result["mixture_sdr_mean"])
    assert np.isfinite(result["query_sdr_sem"])


def test_separate_handles_any_length_with_overlap_add():
    """With every mask forced to one, windowed separation must give back the input exactly."""
    model = build_model(SMOKE)
    with torch.no_grad():
        model.scale.zero_()
        model.bias.fill_(40.0)
    rng = np.random.default_rng(0)
    for n in (20_000, CLIP_SAMPLES, 150_000):
        mixture = (0.1 * rng.standard_normal(n)).astype(np.float32)
        out = separate(model, mixture, rng.standard_normal(EMBED_DIM))
        assert out.shape == (n,)
        np.testing.assert_allclose(out, mixture, atol=1e-5)
    with pytest.raises(ValueError, match="separate_pit"):
        separate(build_model(replace(SMOKE, method="pit")), mixture, rng.standard_normal(EMBED_DIM))


def test_resume_matches_an_uninterrupted_run(data, tmp_path):
    cfg = replace(SMOKE, batch_size=2, max_steps=6, eval_every=3, checkpoint_every=3, n_val_mixtures=2)
    full, _ = train(cfg, *data, str(tmp_path / "full"), quiet, device="cpu")

    def crash(metrics: dict[str, float], step: int) -> None:
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, *data, str(tmp_path / "cut"), crash, device="cpu")
    resumed, result = train(cfg, *data, str(tmp_path / "cut"), quiet, device="cpu")
    assert result.resumed_from == 3 and result.steps == 6
    last = [torch.load(tmp_path / d / "last.pt", weights_only=True)["model"] for d in ("full", "cut")]
    for key in last[0]:
        torch.testing.assert_close(last[0][key], last[1][key], rtol=0, atol=0)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_save_load_round_trip(trained, data, tmp_path):
    model = trained[0]["nit"]
    save_model(model, model.cfg, str(tmp_path))
    loaded, cfg = load_model(str(tmp_path), device="cpu")
    assert cfg == model.cfg
    mixture = deterministic_mixtures(data[1], 1, seed=0)[0]
    query = mixture.queries[0]
    np.testing.assert_array_equal(separate(model, mixture.audio, query), separate(loaded, mixture.audio, query))
    pit = trained[0]["pit"]
    save_model(pit, pit.cfg, str(tmp_path / "pit"))
    loaded_pit, _ = load_model(str(tmp_path / "pit"), device="cpu")
    for a, b in zip(separate_pit(pit, mixture.audio), separate_pit(loaded_pit, mixture.audio)):
        np.testing.assert_array_equal(a, b)
