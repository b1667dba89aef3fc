import numpy as np
import pytest
import torch

from models.audio_metrics import vggish as vg


def test_number_of_examples_follows_the_framing():
    # frames = 1 + (L - 400) // 160, examples = frames // 96
    for seconds, expected in ((0.3, 1), (0.975, 1), (1.95, 2), (3.0, 3), (10.0, 10)):
        length = int(seconds * 16_000)
        assert len(vg.vggish_examples(np.zeros(length))) == expected
    assert vg.vggish_examples(np.zeros(16_000)).shape == (1, 96, 64)


def test_one_frame_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(32_000) * 0.1
    examples = vg.vggish_examples(audio)
    example, row = 1, 7  # frame 96 + 7 of the clip
    start = (96 * example + row) * 160
    segment = audio[start : start + 400]
    window = np.array([0.5 - 0.5 * np.cos(2 * np.pi * n / 400) for n in range(400)])
    spectrum = np.abs(np.fft.rfft(segment * window, 512))
    freqs = np.arange(257) * 8000 / 256
    mel = lambda f: 1127.0 * np.log(1 + f / 700.0)
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    bands = np.empty(64)
    for b in range(64):
        total = 0.0
        for k in range(1, 257):
            m = mel(freqs[k])
            rising = (m - edges[b]) / (edges[b + 1] - edges[b])
            falling = (edges[b + 2] - m) / (edges[b + 2] - edges[b + 1])
            weight = max(0.0, min(rising, falling))
            total += weight * spectrum[k]
        bands[b] = np.log(total + 0.01)
    np.testing.assert_allclose(examples[example, row], bands, rtol=1e-5, atol=1e-5)


def test_random_vggish_loads_and_embeds_deterministically(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "vggish.pth"
    torch.save(vg.VGGish().state_dict(), path)
    model = vg.load_vggish(path, device="cpu")
    convs, fcs = (0, 3, 6, 8, 11, 13), (0, 2, 4)  # torchvggish's layer indices
    keys = {f"features.{i}.{p}" for i in convs for p in ("weight", "bias")}
    keys |= {f"embeddings.{i}.{p}" for i in fcs for p in ("weight", "bias")}
    assert set(model.state_dict()) == keys
    clips = [np.random.default_rng(1).standard_normal(24_000) * 0.1, np.zeros(8_000)]
    first = vg.vggish_embed(model, clips, batch_size=1)
    assert first.shape == (2, 128) and first.dtype == np.float32
    np.testing.assert_array_equal(first, vg.vggish_embed(model, clips, batch_size=1))
    np.testing.assert_allclose(first, vg.vggish_embed(model, clips), rtol=1e-4, atol=1e-6)  # batching: rounding only
    assert not np.allclose(first[0], first[1])


def test_flatten_is_channels_last():
    model = vg.VGGish().eval()
    maps = torch.randn(1, 512, 6, 4)
    model.features = torch.nn.Identity()
    model.features.forward = lambda x: maps  # the fc layers read (6, 4, 512) order like TensorFlow
    with torch.no_grad():
        expected = model.embeddings(maps[0].permute(1, 2, 0).reshape(1, -1))
        np.testing.assert_allclose(model(torch.zeros(1, 96, 64)).numpy(), expected.numpy(), rtol=1e-6)


def test_missing_or_bad_weights_name_the_file(tmp_path):
    with pytest.raises(vg.VGGishWeightsMissing, match=r"vggish-10086976\.pth") as missing:
        vg.load_vggish(tmp_path / "absent.pth")
    assert "\n" not in str(missing.value) and "absent.pth" in str(missing.value)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, wrong)
    with pytest.raises(vg.VGGishWeightsMissing, match="could not be loaded"):
        vg.load_vggish(wrong)
