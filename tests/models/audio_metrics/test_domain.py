from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
import torch

from assets.core.tools import missing_tools, soundfont_path
from assets.videos import synthetic as syn
from models import mel
from models.audio_metrics import domain as dm

INSTRUMENTS = ("violin", "piano", "flute", "trumpet")
pytestmark = pytest.mark.skipif(bool(missing_tools()), reason="FluidSynth and its SoundFont are needed")


@pytest.fixture(scope="module")
def crops():
    """Log-mel crops of one 6 s rendering per instrument: its first 3 s to train on, the rest held out.

    One rendering each keeps the test fast (FluidSynth's start-up dominates a short render); the halves
    share no frame, so the held-out crops are notes the classifier never heard."""
    with ThreadPoolExecutor(2) as pool:
        audio = list(pool.map(lambda name: syn.render_audio(name, 0, 6.0, soundfont_path()), INSTRUMENTS))
    half = 3 * mel.CLIPSONIC.sample_rate // mel.CLIPSONIC.hop
    sets = {0: ([], []), 1: ([], [])}
    for name, clip in zip(INSTRUMENTS, audio):
        log_mel = mel.log_mel(clip, mel.CLIPSONIC)
        for part, frames in ((0, log_mel[:half]), (1, log_mel[half:])):
            clip_crops = dm.crop_mels(frames, hop=4)
            sets[part][0].append(clip_crops)
            sets[part][1].extend([name] * len(clip_crops))
    return {part: (np.concatenate(m), labels) for part, (m, labels) in sets.items()}


CFG = replace(dm.DOMAIN_PROFILES["smoke"], max_steps=60, eval_every=20, checkpoint_every=20)


def test_crops_cover_the_clip():
    log_mel = np.arange(130 * 64, dtype=np.float32).reshape(130, 64)
    crops = dm.crop_mels(log_mel, hop=32)
    assert crops.shape == (3, 64, 64)
    np.testing.assert_array_equal(crops[2], log_mel[64:128])
    assert dm.crop_mels(log_mel[:10]).shape == (0, 64, 64)


def test_classifier_names_held_out_instruments(crops, tmp_path):
    (train_mels, train_labels), (test_mels, test_labels) = crops[0], crops[1]
    logged = []
    classifier, result = dm.train_domain_classifier(
        CFG, train_mels, train_labels, test_mels, test_labels, str(tmp_path), lambda m, s: logged.append(m), "cpu"
    )
    predicted = dm.classify(classifier, test_mels)
    accuracy = np.mean(np.array(predicted) == np.array(test_labels))
    assert accuracy > 0.6  # chance is 0.25
    assert {"val_loss", "val_accuracy"} <= set(logged[-1]) and result.steps >= CFG.eval_every
    # louder or quieter audio is the same crop after standardisation (log-mel shifts by a constant)
    assert dm.classify(classifier, test_mels + 3.0) == predicted

    embeds = dm.domain_embed(classifier, test_mels)
    assert embeds.shape == (len(test_mels), CFG.embed_dim) and embeds.dtype == np.float32
    dm.save_classifier(classifier, CFG, str(tmp_path / "saved"))
    loaded, cfg = dm.load_classifier(str(tmp_path / "saved"), "cpu")
    assert cfg == CFG and loaded.labels == sorted(INSTRUMENTS)
    np.testing.assert_array_equal(dm.domain_embed(loaded, test_mels), embeds)


def test_resume_is_identical(crops, tmp_path):
    (mels, labels), (valid, valid_labels) = crops[0], crops[1]
    cfg = replace(CFG, max_steps=20, eval_every=10, checkpoint_every=10)
    full, _ = dm.train_domain_classifier(
        cfg, mels, labels, valid, valid_labels, str(tmp_path / "a"), lambda m, s: None, "cpu"
    )
    dm.train_domain_classifier(replace(cfg, max_steps=10), mels, labels, valid, valid_labels, str(tmp_path / "b"),
                               lambda m, s: None, "cpu")
    resumed, result = dm.train_domain_classifier(cfg, mels, labels, valid, valid_labels, str(tmp_path / "b"),
                                                 lambda m, s: None, "cpu")
    assert result.resumed_from == 10
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_unknown_validation_label_is_refused(tmp_path):
    mels = np.zeros((2, 64, 64), np.float32)
    with pytest.raises(ValueError, match="cello"):
        dm.train_domain_classifier(CFG, mels, ["violin", "piano"], mels, ["violin", "cello"], str(tmp_path),
                                   lambda m, s: None, "cpu")
