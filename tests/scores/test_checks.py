from pathlib import Path

import pyarrow as pa

from assets.scores import checks
from storage import shards


def notes(n: int) -> pa.Table:
    return pa.table({"pitch": pa.array(range(n), pa.int64())})


def test_an_intact_shard_set_has_no_problem(tmp_path):
    root = str(tmp_path)
    manifest = shards.write_table(root, "notes", "toy", notes(5), rows_per_shard=2)
    assert checks.shard_problems(root, "notes", "toy", manifest) == []


def test_a_corrupt_shard_and_an_empty_set_are_problems(tmp_path):
    root = str(tmp_path)
    manifest = shards.write_table(root, "notes", "toy", notes(5), rows_per_shard=2)
    Path(root, "notes", "toy", manifest.shards[0].name).write_bytes(b"garbage")
    problems = checks.shard_problems(root, "notes", "toy", manifest)
    assert len(problems) == 1 and manifest.shards[0].name in problems[0]

    empty = shards.write_table(root, "notes", "none", notes(0))
    assert checks.shard_problems(root, "notes", "none", empty) == ["notes/none has no rows"]
