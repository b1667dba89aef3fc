from dataclasses import replace

import numpy as np
import pytest
import torch

from models.checkpoints import safe_load
from models.clip_embed import SMALL_CLIP, embed_prompts, encode_text_tokens, load_clip
from models.clipsonic.prior import (
    PriorInputMismatch,
    build_prior,
    load_prior,
    make_prior_set,
    pick_closest,
    prior_batch,
    sample_prior_candidates,
    sample_prior,
    save_prior,
    train_prior,
)
from models.clipsonic.prior_config import PRIOR_PROFILES

LABELS = ["violin", "cello", "flute", "trumpet", "piano", "drums", "guitar", "harp"]
TEXTS = [f"a photo of {label}" for label in LABELS]
SMOKE = PRIOR_PROFILES["smoke"]


@pytest.fixture(scope="module")
def clip():
    return load_clip(SMALL_CLIP, "cpu")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


CENTRES = unit(np.random.default_rng(0).standard_normal((len(LABELS), 512)))


def frame_embeds(seed: int, per_label: int = 6) -> list[np.ndarray]:
    """Stand-ins for each label's frame embeddings: its fixed random direction plus noise."""
    rng = np.random.default_rng(seed)
    return [unit(centre + 0.03 * rng.standard_normal((per_label, 512))) for centre in CENTRES]


@pytest.fixture(scope="module")
def data(clip):
    return make_prior_set(clip, TEXTS, frame_embeds(1)), make_prior_set(clip, TEXTS, frame_embeds(2))


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    logs = []
    prior, result = train_prior(SMOKE, *data, str(tmp_path_factory.mktemp("prior")), lambda m, s: logs.append(m))
    return prior, result, [m["val_loss"] for m in logs if "val_loss" in m]


def test_text_tokens_are_fixed_length_masked_and_pool_to_the_prompt_embeddings(clip):
    texts = ["a photo of harp", "a photo of a very loud electric guitar"]
    tokens, mask, embeds = encode_text_tokens(clip, texts, batch_size=1)
    assert tokens.shape == (2, 77, 64) and tokens.dtype == np.float32
    assert mask.shape == (2, 77) and mask.dtype == bool
    lengths = [len(clip.tokenizer(t)["input_ids"]) for t in texts]
    assert mask.sum(axis=1).tolist() == lengths and lengths[0] < lengths[1]
    assert all(mask[i, :n].all() and not mask[i, n:].any() for i, n in enumerate(lengths))
    np.testing.assert_allclose(embeds, embed_prompts(clip, texts), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(embeds, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(tokens[0, : lengths[0]], tokens[1, : lengths[0]])


def test_batches_are_seeded_by_step(data):
    train, _ = data
    a, again, other = prior_batch(train, SMOKE, 3), prior_batch(train, SMOKE, 3), prior_batch(train, SMOKE, 4)
    assert all(torch.equal(a[k], again[k]) for k in a)
    assert not torch.equal(a["noise"], other["noise"])
    rows = a["rows"].numpy()
    assert all(any(np.array_equal(img, c) for c in train.image_embeds[r]) for r, img in zip(rows, a["image"].numpy()))


def test_training_reduces_validation_loss_and_keeps_the_stats_fixed(trained, data):
    prior, result, val_losses = trained
    assert result.steps == SMOKE.max_steps and len(val_losses) >= 2
    assert val_losses[-1] < 0.75 * val_losses[0]
    targets = np.concatenate(data[0].image_embeds)
    np.testing.assert_allclose(prior.transformer.clip_mean.detach().numpy()[0], targets.mean(0), atol=1e-6)
    np.testing.assert_allclose(prior.transformer.clip_std.detach().numpy()[0], targets.std(0, ddof=1), atol=1e-6)


def test_sampled_embeddings_land_nearer_their_labels_frames_than_the_text_embeddings(trained, data):
    prior, _, _ = trained
    train, _ = data
    sampled = sample_prior(prior, train.tokens, train.token_mask, train.text_embeds)
    assert sampled.shape == (len(LABELS), 512) and sampled.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(sampled, axis=1), 1.0, atol=1e-5)
    means = unit(np.stack([images.mean(axis=0) for images in train.image_embeds]))
    sd, zs = sampled @ means.T, train.text_embeds @ means.T
    assert (np.diag(sd) > np.diag(zs)).all()  # the thesis's ordering of CLIPSonic-SD over -ZS
    assert (sd.argmax(axis=1) == np.arange(len(LABELS))).sum() >= 6


def test_best_of_two_keeps_the_sample_closer_to_the_text(trained, data):
    prior, _, _ = trained
    train, _ = data
    args = (prior, train.tokens, train.token_mask, train.text_embeds)
    candidates = sample_prior_candidates(*args, steps=8, n_samples=2, seed=5)
    assert not np.allclose(candidates[:, 0], candidates[:, 1])
    closer = np.einsum("nkd,nd->nk", candidates, train.text_embeds).argmax(axis=1)
    expected = candidates[np.arange(len(LABELS)), closer]
    np.testing.assert_array_equal(sample_prior(*args, steps=8, n_samples=2, seed=5), expected)
    toy = unit(np.array([[[1.0, 0.0], [0.6, 0.8]], [[1.0, 0.0], [0.6, 0.8]]]))
    np.testing.assert_array_equal(pick_closest(toy, unit(np.array([[0.0, 1.0], [1.0, 0.0]]))), toy[[0, 1], [1, 0]])


def test_resumed_training_ends_with_the_weights_of_an_uninterrupted_run(data, tmp_path):
    cfg = replace(SMOKE, max_steps=20, eval_every=10, checkpoint_every=10)
    whole, _ = train_prior(cfg, *data, str(tmp_path / "whole"), lambda m, s: None)
    train_prior(replace(cfg, max_steps=10), *data, str(tmp_path / "split"), lambda m, s: None)
    resumed, result = train_prior(cfg, *data, str(tmp_path / "split"), lambda m, s: None)
    assert result.resumed_from == 10
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    last_whole, last_split = safe_load(tmp_path / "whole" / "last.pt"), safe_load(tmp_path / "split" / "last.pt")
    assert all(torch.equal(last_whole["model"][k], last_split["model"][k]) for k in last_whole["model"])


def test_save_and_load_round_trip_gives_identical_samples(trained, data, tmp_path):
    prior, _, _ = trained
    train, _ = data
    save_prior(prior, SMOKE, str(tmp_path))
    loaded, cfg = load_prior(str(tmp_path), "cpu")
    assert cfg == SMOKE and loaded.token_dim == 64 and not loaded.training
    assert torch.equal(loaded.transformer.clip_std, prior.transformer.clip_std)
    args = (train.tokens, train.token_mask, train.text_embeds)
    np.testing.assert_array_equal(sample_prior(loaded, *args, steps=8), sample_prior(prior, *args, steps=8))


def test_text_features_of_another_clip_are_refused(data):
    train, _ = data
    prior = build_prior(SMOKE, 512)  # a ViT-B/32 text width; these tokens are 64 wide
    assert isinstance(prior.token_proj, torch.nn.Identity)
    assert isinstance(build_prior(SMOKE, 64).token_proj, torch.nn.Linear)
    with pytest.raises(PriorInputMismatch, match="encode every text with that CLIP"):
        sample_prior(prior, train.tokens, train.token_mask, train.text_embeds, steps=2)
