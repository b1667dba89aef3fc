"""Where a recording that failed at some stage shows up later: the reason a stage skips it, and the
recordings the lineage-wide reject check counts."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from storage import shards

REJECTING = ("recording_audio", "violin_scores", "score_renders")  # the stages that write rejects


def _rejects(datasets_root: str, stage: str, partitions: list[str]) -> Iterator[dict]:
    for partition in partitions:
        if shards.read_manifest(datasets_root, f"{stage}_rejects", partition) is not None:
            yield from shards.read_table(datasets_root, f"{stage}_rejects", partition).to_pylist()


def skip_reason(
    datasets_root: str, partition: str, inputs: dict[str, pa.Table], stages: tuple[str, ...] = REJECTING
) -> str | None:
    """Why this recording has nothing to work on (an empty input, with the rejects of the earlier
    ``stages`` that emptied it), or None when every input has rows."""
    empty = [name for name, table in inputs.items() if table.num_rows == 0]
    if not empty:
        return None
    causes = [
        f"{r['stage']}: {r['error_type']}: {r['message']}" for stage in stages for r in _rejects(datasets_root, stage, [partition])
    ]
    return f"no {' or '.join(empty)} for this recording ({'; '.join(causes) or 'empty upstream'})"


def rejected_recordings(datasets_root: str, stages: tuple[str, ...] = REJECTING) -> dict[str, str]:
    """Every rejected recording with its first failure ("stage: error type"), over every partition:
    a recording is all or nothing, so it counts once however many stages it failed."""
    rejected: dict[str, str] = {}
    for stage in stages:
        for row in _rejects(datasets_root, stage, shards.list_partitions(datasets_root, f"{stage}_rejects")):
            rejected.setdefault(row["item"], f"{row['stage']}: {row['error_type']}")
    return rejected
