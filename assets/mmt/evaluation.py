"""The MMT evaluation over a loaded model and its samples: test loss, and per generation mode the
paper's objective metrics (pitch-class entropy, scale and groove consistency) of the samples
against the test songs, with generation speed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from assets.core.metric_keys import finite
from assets.mmt import codes as mmt_data
from assets.mmt.sampling import MODES
from models import mmt
from models.mmt import metrics as mmt_metrics


def test_loss(model: mmt.MMT, cfg: mmt.MMTConfig, test_codes: list[np.ndarray]) -> float:
    """The model's loss on the test songs, batched as its validation is; the score promotion compares."""
    return mmt.evaluate(model, mmt.val_batches(test_codes, cfg))["val_loss"]


def mode_table(samples: pa.Table, test_codes: list[np.ndarray], n_beats: int) -> pd.DataFrame:
    """One row per generation mode: ``mmt_metrics.compare`` of its samples with the test songs over
    ``n_beats`` beats, and its mean generated notes per second."""
    generated = mmt_data.to_codes(samples.column("codes").combine_chunks())
    modes = samples.column("mode").to_pylist()
    speeds = pd.Series(samples.column("notes_per_second").to_pylist(), dtype=float)
    rows = []
    for mode in MODES:
        picked = [codes for codes, m in zip(generated, modes) if m == mode]
        speed = speeds[[m == mode for m in modes]].mean()
        rows.append({"mode": mode, **mmt_metrics.compare(picked, test_codes, n_beats=n_beats), "notes_per_second": float(speed)})
    return pd.DataFrame(rows)


def eval_metrics(table: pd.DataFrame, test_loss: float, samples: pa.Table) -> dict[str, float]:
    """Test loss, overall speed and every finite per-mode value as "<mode>.<metric>"."""
    speed = float(np.mean(samples.column("notes_per_second").to_numpy())) if samples.num_rows else float("nan")
    metrics = {"test_loss": test_loss, "notes_per_second": speed}
    for row in table.to_dict("records"):
        metrics |= finite({f"{row['mode']}.{k}": v for k, v in row.items() if k != "mode"})
    return metrics
