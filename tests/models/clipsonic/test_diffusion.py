from dataclasses import replace

import numpy as np
import pytest
import torch

from models import clipsonic as cso
from models.checkpoints import safe_load, seed_everything

CFG = cso.PROFILES["smoke"]


def tiny_set(n: int, seed: int) -> cso.MelSet:
    """Crops of two kinds (a low and a high spectral peak), each with three noisy embeddings of its kind."""
    rng = np.random.default_rng(seed)
    bands = np.arange(cso.SPEC.n_mels)
    directions = np.eye(2, CFG.cond_dim, dtype=np.float32)
    mels, conditions = [], []
    for i in range(n):
        peak = (16, 48)[i % 2]
        envelope = -9 + 8 * np.exp(-(((bands - peak) / 6) ** 2))
        mels.append(envelope + 0.3 * rng.standard_normal((cso.CROP_FRAMES, len(bands))))
        conditions.append(directions[i % 2] + 0.05 * rng.standard_normal((3, CFG.cond_dim)).astype(np.float32))
    return cso.MelSet(np.stack(mels).astype(np.float32), conditions)


@pytest.fixture(scope="module")
def data() -> tuple[cso.MelSet, cso.MelSet]:
    return tiny_set(16, 0), tiny_set(6, 1)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("full")
    model, result = cso.train(CFG, *data, str(ckpt), lambda metrics, step: None, device=torch.device("cpu"))
    return model, result, ckpt


def conditions(rows: int, kind: int) -> np.ndarray:
    return np.repeat(np.eye(2, CFG.cond_dim, dtype=np.float32)[kind : kind + 1], rows, axis=0)


def test_generate_shapes_and_seeds(trained):
    model, _, _ = trained
    first = cso.generate(model, conditions(3, 0), 2.0, CFG.fast_steps, "ddim", seed=0, batch_size=2)
    again = cso.generate(model, conditions(3, 0), 2.0, CFG.fast_steps, "ddim", seed=0, batch_size=2)
    other = cso.generate(model, conditions(3, 0), 2.0, CFG.fast_steps, "ddim", seed=1, batch_size=2)
    assert first.shape == (3, cso.CROP_FRAMES, cso.SPEC.n_mels) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert first.min() >= cso.LOG_MEL_MIN - 1e-4 and first.max() <= cso.LOG_MEL_MAX + 1e-4


@pytest.mark.parametrize("sampler, steps", [("ddpm", CFG.sample_steps), ("ddim", CFG.fast_steps)])
def test_samplers_take_their_steps(trained, sampler, steps):
    model, _, _ = trained
    calls = []
    handle = model.unet.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    try:
        cso.generate(model, conditions(2, 1), 1.5, steps, sampler, seed=0)
    finally:
        handle.remove()
    assert calls == [4] * steps  # conditional and unconditional halves of one doubled batch per step
    timesteps = cso.sampling_scheduler(CFG, sampler, steps).timesteps
    assert len(timesteps) == steps and timesteps[0] == CFG.train_timesteps - 1


def test_guidance_zero_is_the_unconditional_prediction(trained):
    model, _, _ = trained
    low, high = (cso.generate(model, conditions(2, kind), 0.0, CFG.fast_steps, "ddim", seed=0) for kind in (0, 1))
    np.testing.assert_array_equal(low, high)
    low, high = (cso.generate(model, conditions(2, kind), 2.0, CFG.fast_steps, "ddim", seed=0) for kind in (0, 1))
    assert not np.allclose(low, high)


def test_guided_noise_mixes_the_two_predictions(trained):
    model, _, _ = trained
    x, t, c = torch.randn(2, 1, 64, 64), torch.tensor(7), torch.from_numpy(conditions(2, 0))
    with torch.no_grad():
        eps_c = model(x, t.expand(2), c)
        eps_u = model(x, t.expand(2))
        torch.testing.assert_close(cso.guided_noise(model, x, t, c, 3.0), eps_u + 3.0 * (eps_c - eps_u))


def test_training_reduces_val_loss(data, trained):
    _, result, _ = trained
    seed_everything(CFG.seed)
    untrained = cso.build_model(CFG)
    before = cso.validate(untrained, cso.noise_scheduler(CFG), cso.validation_batches(data[1], CFG))["val_loss"]
    assert result.steps == CFG.max_steps
    assert result.best_metric < 0.5 * before


def test_resumed_training_matches_uninterrupted(data, trained, tmp_path):
    _, _, full = trained
    cso.train(replace(CFG, max_steps=CFG.max_steps // 2), *data, str(tmp_path), lambda m, s: None, torch.device("cpu"))
    _, result = cso.train(CFG, *data, str(tmp_path), lambda m, s: None, torch.device("cpu"))
    assert result.resumed_from == CFG.max_steps // 2
    resumed, uninterrupted = safe_load(tmp_path / "last.pt")["model"], safe_load(full / "last.pt")["model"]
    assert resumed.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0, msg=name)


def test_save_load_round_trip(trained, tmp_path):
    model, _, _ = trained
    cso.save_model(model, CFG, str(tmp_path))
    loaded, cfg = cso.load_model(str(tmp_path), device="cpu")
    assert cfg == CFG
    np.testing.assert_array_equal(
        cso.generate(model, conditions(2, 1), 2.0, CFG.fast_steps, "ddim", seed=5),
        cso.generate(loaded, conditions(2, 1), 2.0, CFG.fast_steps, "ddim", seed=5),
    )


def test_batches_are_seeded_and_drop_about_a_tenth(data):
    cfg = replace(CFG, batch_size=64)
    first, second = cso.batches(data[0], cfg), cso.batches(data[0], cfg)
    drawn = [next(first) for _ in range(50)]
    for a, b in zip(drawn[:3], (next(second) for _ in range(3))):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    drops = torch.cat([b["drop"] for b in drawn]).float()
    assert abs(drops.mean().item() - cfg.cond_dropout) < 0.02  # 3200 draws: three standard deviations
    batch = drawn[0]
    assert batch["mels"].shape == (64, 1, cso.CROP_FRAMES, cso.SPEC.n_mels)
    assert batch["conditions"].shape == (64, cfg.cond_dim)
    assert batch["timesteps"].min() >= 0 and batch["timesteps"].max() < cfg.train_timesteps
    assert batch["mels"].min() >= -1 and batch["mels"].max() <= 1


def test_validation_is_fixed_and_conditioned(data):
    first, second = cso.validation_batches(data[1], CFG), cso.validation_batches(data[1], CFG)
    assert sum(len(b["mels"]) for b in first) == len(data[1].mels)
    assert not any(b["drop"].any() for b in first)
    torch.testing.assert_close(first[0]["noise"], second[0]["noise"], rtol=0, atol=0)


def test_normalisation_round_trips():
    log_mel = np.linspace(cso.LOG_MEL_MIN, cso.LOG_MEL_MAX, 11, dtype=np.float32)
    unit = cso.to_unit(log_mel)
    assert unit[0] == pytest.approx(-1) and unit[-1] == pytest.approx(1)
    np.testing.assert_allclose(cso.from_unit(unit), log_mel, rtol=1e-5, atol=1e-5)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="sampler"):
        cso.sampling_scheduler(CFG, "euler", 10)
    with pytest.raises(ValueError, match="steps"):
        cso.sampling_scheduler(CFG, "ddim", CFG.train_timesteps + 1)
    with pytest.raises(ValueError, match="condition"):
        replace(CFG, condition="audio")
    with pytest.raises(ValueError, match="crops"):
        cso.MelSet(np.zeros((2, 64, 64), np.float32), [np.zeros((1, 512), np.float32)])


class Oracle(torch.nn.Module):
    """A 'network' that answers the exact target of the batch it is handed."""

    def __init__(self, answer):
        super().__init__()
        self.answer = answer

    def forward(self, noisy, timesteps, conditions, drop):
        return self.answer


@pytest.mark.parametrize("prediction", cso.PREDICTIONS)
@pytest.mark.parametrize("gamma", [None, 5.0])
def test_the_loss_is_zero_for_the_exact_target_only(data, prediction, gamma):
    cfg = replace(CFG, prediction=prediction, min_snr_gamma=gamma)
    scheduler = cso.noise_scheduler(cfg)
    batch = cso.validation_batches(data[1], cfg)[0]
    velocity = scheduler.get_velocity(batch["mels"], batch["noise"], batch["timesteps"])
    exact, other = (velocity, batch["noise"]) if prediction == "v_prediction" else (batch["noise"], velocity)
    assert cso.denoising_loss(Oracle(exact), scheduler, batch, gamma).item() == pytest.approx(0.0, abs=1e-10)
    assert cso.denoising_loss(Oracle(other), scheduler, batch, gamma).item() > 1e-3


def test_min_snr_weights_cap_each_step_at_gamma():
    for prediction in cso.PREDICTIONS:
        scheduler = cso.noise_scheduler(replace(CFG, prediction=prediction))
        t = torch.arange(CFG.train_timesteps)
        alpha_bar = scheduler.alphas_cumprod.double()
        snr = alpha_bar / (1 - alpha_bar)
        weights = cso.loss_weights(scheduler, t, 5.0).double()
        scale = snr + 1 if prediction == "v_prediction" else snr
        torch.testing.assert_close(weights * scale, snr.clamp(max=5.0))
        assert weights.max() <= 1 + 1e-6 and weights[0] < 0.2  # the nearly clean steps count for little
        assert torch.equal(cso.loss_weights(scheduler, t, None), torch.ones(len(t)))


def test_lr_warms_up_then_decays_to_its_floor():
    cfg = replace(CFG, max_steps=100, warmup_steps=10, lr_floor=0.1)
    factors = [cso.lr_multiplier(step, cfg) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:])) and factors[100] == pytest.approx(0.1)
    assert cso.lr_multiplier(60, replace(cfg, lr_floor=None)) == 1.0 and cso.lr_multiplier(0, CFG) == 1.0


def test_a_velocity_model_follows_its_condition(data, tmp_path):
    """Two kinds of crop, a low and a high spectral peak: samples queried with each kind peak where it does."""
    cfg = replace(CFG, prediction="v_prediction", max_steps=150, warmup_steps=10, lr_floor=0.05, eval_every=50,
                  checkpoint_every=150, patience=10)  # fmt: skip
    model, _ = cso.train(cfg, *data, str(tmp_path), lambda metrics, step: None, device=torch.device("cpu"))
    for kind, peak in ((0, 16), (1, 48)):
        sample = cso.generate(model, conditions(4, kind), 2.0, 10, "ddim", seed=0)
        assert abs(int(sample.mean((0, 1)).argmax()) - peak) <= 6, kind
