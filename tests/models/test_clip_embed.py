import io
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import constants as hub_constants
from PIL import Image
from transformers import CLIPImageProcessorPil, CLIPProcessor

from models.clip_embed import (
    SMALL_CLIP,
    TEMPLATES,
    ClipWeightsMissing,
    embed_images,
    embed_prompts,
    embed_texts,
    load_clip,
)


def jpeg(seed: int, size: tuple[int, int] = (224, 224)) -> bytes:
    """A smooth random colour field with a bright square: JPEG-friendly and distinct per seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BILINEAR)
    x, y = rng.integers(0, min(size) - 40, 2)
    image.paste((255, 255, 255), (int(x), int(y), int(x) + 40, int(y) + 40))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


FRAMES = [jpeg(seed) for seed in range(6)]
QUERIES = ["violin", "acoustic guitar", "dog barking"]


@pytest.fixture(scope="module")
def small():
    return load_clip(SMALL_CLIP, device="cpu")


def test_small_model_is_deterministic_and_leaves_the_global_rng_alone(small):
    state = torch.random.get_rng_state()
    again = load_clip(SMALL_CLIP, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(embed_images(small, FRAMES), embed_images(again, FRAMES))
    np.testing.assert_array_equal(embed_texts(small, QUERIES), embed_texts(again, QUERIES))
    assert not small.semantic and small.dim == 512 and small.model_id == SMALL_CLIP
    assert not small.model.training


def test_image_embeddings_are_unit_float32_rows_of_512(small):
    embeddings = embed_images(small, FRAMES)
    assert embeddings.shape == (len(FRAMES), 512) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert embed_images(small, []).shape == (0, 512)


def test_batching_does_not_change_embeddings(small):
    np.testing.assert_allclose(
        embed_images(small, FRAMES, batch_size=1), embed_images(small, FRAMES, batch_size=4), atol=1e-5
    )
    np.testing.assert_allclose(
        embed_texts(small, QUERIES, batch_size=1), embed_texts(small, QUERIES, batch_size=5), atol=1e-5
    )


def test_different_images_give_different_embeddings(small):
    embeddings = embed_images(small, FRAMES)
    cosine = embeddings @ embeddings.T
    assert np.all(cosine[~np.eye(len(FRAMES), dtype=bool)] < 1 - 1e-4)


def test_frames_of_another_size_are_fit_to_the_model(small):
    wide, square = jpeg(0, (320, 240)), jpeg(1, (224, 224))
    embeddings = embed_images(small, [wide, square])
    assert embeddings.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    alone = np.concatenate([embed_images(small, [wide]), embed_images(small, [square])])
    np.testing.assert_allclose(embeddings, alone, atol=1e-5)  # a batch of mixed sizes embeds each frame as alone


def test_text_embedding_is_the_normalised_mean_of_the_four_templates(small):
    embeddings = embed_texts(small, QUERIES)
    assert embeddings.shape == (len(QUERIES), 512) and embeddings.dtype == np.float32
    for query, embedding in zip(QUERIES, embeddings, strict=True):
        prompts = embed_prompts(small, [template.format(query) for template in TEMPLATES])
        np.testing.assert_allclose(np.linalg.norm(prompts, axis=1), 1.0, atol=1e-5)
        mean = prompts.mean(axis=0)
        np.testing.assert_allclose(embedding, mean / np.linalg.norm(mean), atol=1e-5)
    assert embed_texts(small, []).shape == (0, 512)


def test_unknown_precision_is_rejected(small):
    with pytest.raises(ValueError, match="precision"):
        embed_images(small, FRAMES[:1], precision="int8")


@pytest.mark.parametrize("where", ["id", "empty_folder"])
def test_missing_weights_say_how_to_provide_them(where, tmp_path, monkeypatch):
    connections = []

    def refuse(*args, **kwargs):
        connections.append(args)
        raise OSError("network is off in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    model = "baton-tests/no-such-clip" if where == "id" else str(tmp_path)
    with pytest.raises(ClipWeightsMissing) as error:
        load_clip(model, device="cpu")
    assert connections == []  # not even huggingface_hub's user-agent registry lookup
    message = str(error.value)
    assert "huggingface-cli download" in message and "save_pretrained" in message and SMALL_CLIP in message
    if where == "id":
        assert "models--baton-tests--no-such-clip" in message
    else:
        assert str(tmp_path.resolve()) in message


def save_small(bundle, folder: Path) -> None:
    """The small model's weights as a real checkpoint: CLIPModel plus processor via save_pretrained."""
    bundle.model.save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessorPil(), tokenizer=bundle.tokenizer).save_pretrained(folder)


def test_a_saved_clip_loads_as_semantic_and_its_processor_matches_the_built_in_normalisation(small, tmp_path):
    save_small(small, tmp_path)
    saved = load_clip(str(tmp_path), device="cpu")
    assert saved.semantic and saved.image_processor is not None and saved.model_id == str(tmp_path)
    assert saved.dim == 512 and not saved.model.training
    np.testing.assert_allclose(embed_images(saved, FRAMES), embed_images(small, FRAMES), atol=1e-5)
    np.testing.assert_allclose(embed_texts(saved, QUERIES), embed_texts(small, QUERIES), atol=1e-5)


def test_a_model_id_loads_from_the_hugging_face_cache(small, tmp_path, monkeypatch):
    repo = tmp_path / "models--baton-tests--tiny-clip"
    save_small(small, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    cached = load_clip("baton-tests/tiny-clip", device="cpu")
    assert cached.semantic
    np.testing.assert_allclose(embed_texts(cached, QUERIES), embed_texts(small, QUERIES), atol=1e-5)


def test_a_folder_without_a_processor_is_reported_missing(small, tmp_path):
    small.model.save_pretrained(tmp_path)
    with pytest.raises(ClipWeightsMissing, match="preprocessor_config"):
        load_clip(str(tmp_path), device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_autocast_matches_cpu(small, precision):
    cuda = load_clip(SMALL_CLIP, device="cuda")
    images = embed_images(cuda, FRAMES, precision=precision)
    texts = embed_texts(cuda, QUERIES, precision=precision)
    assert images.dtype == np.float32 and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-4)
    assert np.all(np.sum(images * embed_images(small, FRAMES), axis=1) > 0.99)
    assert np.all(np.sum(texts * embed_texts(small, QUERIES), axis=1) > 0.99)
