"""One row per item that failed a stage, so a batch completes and nothing is silently dropped.

Every branch writes the same table (item, stage, error type, message) next to its output, which
the UI previews and the reject-rate checks count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pyarrow as pa

SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("item", pa.string()),
        ("stage", pa.string()),
        ("error_type", pa.string()),
        ("message", pa.string()),
    ]
)


@dataclass(frozen=True)
class Reject:
    dataset: str
    item: str
    stage: str
    error_type: str
    message: str


def rejects_table(rejects: Iterable[Reject]) -> pa.Table:
    return pa.Table.from_pylist([asdict(r) for r in rejects], schema=SCHEMA)


def reject_rate(rejected: int, processed: int) -> float:
    """The share of processed items rejected; 0 when nothing was processed, so an empty batch passes."""
    return rejected / max(1, processed)
