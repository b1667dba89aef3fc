"""What the blocking `notes_shards_intact` check measures, so a partition that fails it stops its downstream."""

from __future__ import annotations

from storage import shards


def shard_problems(datasets_root: str, asset: str, partition: str, manifest: shards.Manifest) -> list[str]:
    """Missing, corrupt or miscounted shards of a committed set, empty shards, and no rows at all
    (a dataset without notes has nothing downstream could train on)."""
    problems = shards.verify(datasets_root, asset, partition)
    problems += [f"{s.name} is empty" for s in manifest.shards if s.rows == 0]
    return problems + ([f"{asset}/{partition} has no rows"] if manifest.rows == 0 else [])
