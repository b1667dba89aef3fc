import numpy as np
import pytest
import torch
from tokenizers import pre_tokenizers
from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

from models.audio_metrics import clap


def tiny_tokenizer() -> RobertaTokenizer:
    """RoBERTa's special tokens then the 256 byte-level symbols, no merges: built in memory, nothing downloaded."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    vocab |= {char: len(vocab) + i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    return RobertaTokenizer(vocab=vocab, merges=[])


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    """A random-weight CLAP of the released layout (spec 256 = 4 x 64 bands, so 10 s at 48 kHz fits),
    saved as the release is."""
    tokenizer = tiny_tokenizer()
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 66}
    audio = {"spec_size": 256, "num_mel_bins": 64, "window_size": 8, "depths": [1, 1], "num_attention_heads": [2, 2],
             "patch_embeds_hidden_size": 16, "hidden_size": 32}
    torch.manual_seed(0)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16))
    processor = ClapProcessor(ClapFeatureExtractor(truncation="rand_trunc", padding="repeatpad"), tokenizer)
    folder = tmp_path_factory.mktemp("clap")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bundle(clap_dir):
    return clap.load_clap(clap_dir, device="cpu")


def clips():
    rng = np.random.default_rng(0)
    t = np.arange(32_000) / 16_000
    return [np.sin(2 * np.pi * 440 * t).astype(np.float32) * 0.5, rng.standard_normal(16_000).astype(np.float32) * 0.1,
            rng.standard_normal(16_000 * 11).astype(np.float32) * 0.1]


def test_audio_embeddings_are_unit_norm_and_deterministic(bundle):
    first = clap.clap_audio_embeds(bundle, clips(), batch_size=2)
    assert first.shape == (3, 16) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(first, clap.clap_audio_embeds(bundle, clips(), batch_size=2), atol=1e-6)
    assert not np.allclose(first[0], first[1], atol=1e-3)


def test_text_embeddings_are_unit_norm_and_deterministic(bundle):
    texts = ["a violin playing", "trumpet", "x" * 200]  # the last is truncated to the position table
    first = clap.clap_text_embeds(bundle, texts)
    assert first.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(first, clap.clap_text_embeds(bundle, texts[::-1])[::-1], atol=1e-5)


def test_score_is_the_mean_row_cosine(bundle):
    audio = clap.clap_audio_embeds(bundle, clips())
    text = clap.clap_text_embeds(bundle, ["a sine tone", "noise", "long noise"])
    cosines = [float(a @ t / np.linalg.norm(a) / np.linalg.norm(t)) for a, t in zip(audio, text)]
    assert clap.clap_score(audio, text) == pytest.approx(np.mean(cosines), abs=1e-6)
    assert clap.clap_score(text, text) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        clap.clap_score(audio, text[:2])


def test_missing_folder_says_what_to_provide(tmp_path):
    with pytest.raises(clap.ClapWeightsMissing) as missing:
        clap.load_clap(tmp_path / "absent")
    message = str(missing.value)
    assert "\n" not in message and "laion/clap-htsat-unfused" in message and "save_pretrained" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(clap.ClapWeightsMissing, match="empty"):
        clap.load_clap(tmp_path / "empty")
