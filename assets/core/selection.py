"""Which materialized dataset partitions a training or evaluation asset reads, named the same way
by every system: the ones asked for, else the system's defaults that exist, else a fallback."""

from __future__ import annotations

from collections.abc import Sequence


class NotMaterialized(ValueError):
    """Datasets asked for (or, with none asked for, any dataset) whose partitions do not exist yet."""

    def __init__(self, asset: str, missing: Sequence[str]):
        super().__init__(f"{asset} not materialized for {list(missing) or 'any dataset'}: materialize those partitions first")
        self.missing = list(missing)


def pick_datasets(
    asset: str, requested: Sequence[str], available: Sequence[str], defaults: Sequence[str], fallback: Sequence[str]
) -> list[str]:
    """``requested`` when given, else the ``defaults`` that are ``available``, else ``fallback`` (a
    subset of ``available``); ``NotMaterialized`` when one asked for is missing or nothing is left."""
    datasets = list(requested) or [d for d in defaults if d in available] or list(fallback)
    missing = [d for d in datasets if d not in available]
    if missing or not datasets:
        raise NotMaterialized(asset, missing)
    return datasets
