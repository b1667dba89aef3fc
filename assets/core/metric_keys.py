"""Evaluation results as MLflow metrics: names MLflow accepts, and only the values a chart can draw."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping


def metric_key(name: str) -> str:
    """MLflow metric names allow no parentheses: "zone-based (oracle)" becomes "zone-based_oracle"."""
    return re.sub(r"[^\w\-. ]+", "_", name).replace(" ", "").strip("_")


def finite(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics as floats, without NaN or infinite ones (an empty comparison has no score, not a bad one)."""
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}
