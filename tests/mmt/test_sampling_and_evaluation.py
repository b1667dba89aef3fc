import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from assets.mmt import evaluation, sampling
from models import mmt
from models.mmt import metrics as mmt_metrics
from models.mmt.encoding import encode_arrays

SMOKE = mmt.PROFILES["smoke"]


def song(seed: int, n_notes: int = 30, n_beats: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return encode_arrays(
        onset=rng.integers(0, n_beats * 12, n_notes), duration=rng.choice([6, 12, 24], n_notes),
        pitch=rng.integers(48, 84, n_notes), program=rng.choice([0, 40, 73], n_notes),
        is_drum=np.zeros(n_notes, dtype=bool), resolution=12,
    )  # fmt: skip


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> tuple[pa.Table, Path]:
    """Two samples a mode, written without a SoundFont; speeds set by hand."""
    out = tmp_path_factory.mktemp("samples")
    made = [
        sampling.Sample(mode, index, f"test{index}", song(10 * m + index), 0, seconds=float(m + 1))
        for m, mode in enumerate(sampling.MODES) for index in range(2)
    ]  # fmt: skip
    return sampling.samples_table(made, out, None, "7"), out


def test_samples_table_writes_every_sample_and_keeps_its_model_version(samples):
    table, out = samples
    assert table.schema == sampling.SAMPLES and table.num_rows == 6
    assert set(table.column("model_version").to_pylist()) == {"7"}
    assert set(table.column("render_error").to_pylist()) == {"no SoundFont installed"}
    assert all(Path(p).is_file() for p in table.column("midi").to_pylist())
    assert table.column("notes_per_second").to_pylist()[:2] == [30.0, 30.0]  # 30 notes in 1 s


def test_piano_rolls_are_the_first_sample_of_each_mode(samples):
    rolls = sampling.piano_rolls(samples[0])
    assert [name for name, _ in rolls] == [f"{mode} 0" for mode in sampling.MODES]
    assert all(Image.open(io.BytesIO(png)).format == "PNG" for _, png in rolls)


def test_mode_table_compares_each_modes_samples_with_the_test_songs(samples):
    table, _ = samples
    truth = [song(100 + i) for i in range(3)]
    modes = evaluation.mode_table(table, truth, n_beats=16)
    assert list(modes["mode"]) == list(sampling.MODES)
    assert list(modes["notes_per_second"]) == pytest.approx([30.0, 15.0, 10.0])
    expected = mmt_metrics.compare([song(0), song(1)], truth, n_beats=16)  # the unconditioned samples
    assert modes.iloc[0].drop(["mode", "notes_per_second"]).to_dict() == pytest.approx(expected, nan_ok=True)


def test_eval_metrics_are_the_loss_the_speed_and_every_finite_mode_value(samples):
    table, _ = samples
    modes = evaluation.mode_table(table, [song(100)], n_beats=16)
    modes.loc[1, "gap_groove_consistency"] = float("nan")
    metrics = evaluation.eval_metrics(modes, 2.5, table)
    assert metrics["test_loss"] == 2.5 and metrics["notes_per_second"] == pytest.approx((30 + 15 + 10) / 3)
    assert metrics["continuation.notes_per_second"] == pytest.approx(10.0)
    assert "instrument.gap_groove_consistency" not in metrics and "unconditioned.gap_groove_consistency" in metrics


def test_test_loss_is_the_models_loss_on_the_first_window_of_each_test_song():
    torch.manual_seed(0)
    model = mmt.MMT(SMOKE).eval()
    songs = [song(i, n_notes=150, n_beats=200) for i in range(3)]  # longer than the smoke window of 64 beats
    loss = evaluation.test_loss(model, SMOKE, songs)
    first = [mmt.window(s, SMOKE.max_beat, SMOKE.max_seq_len) for s in songs]
    later = [mmt.window_at(s, 100, SMOKE.max_beat, SMOKE.max_seq_len) for s in songs]
    assert evaluation.test_loss(model, SMOKE, first) == pytest.approx(loss)
    assert evaluation.test_loss(model, SMOKE, later) != pytest.approx(loss)
    assert loss == pytest.approx(mmt.evaluate(model, [mmt.collate(first)])["val_loss"], rel=1e-5)


@pytest.mark.filterwarnings("error::ResourceWarning")
def test_piano_rolls_close_the_files_they_read(samples):
    import gc

    table, _ = samples
    rolls = sampling.piano_rolls(table)
    gc.collect()  # an unclosed file warns when it is collected, which this test turns into an error
    assert [name for name, _ in rolls] == [f"{mode} 0" for mode in sampling.MODES]
