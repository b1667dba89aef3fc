"""What every per-item stage of a lineage does the same way: fail fast on missing tools, read the
upstream shard set, and write its output and rejects tables together."""

from collections.abc import Iterator

import dagster as dg
import pyarrow as pa

from assets.core.metadata import manifest_metadata, preview
from assets.core.rejects import Reject, rejects_table
from assets.core.resources import HomeResource
from assets.core.tools import missing_tools
from assets.core.versions import code_version
from storage import shards


def require(*packages: str) -> None:
    """Fail before any item is touched when a needed system package is missing (not a per-item reject)."""
    missing = [p for p in missing_tools() if p in packages]
    if missing:
        raise dg.Failure(f"missing system packages: {' '.join(missing)} (install with: apt-get install {' '.join(missing)})")


def read_shards(home: HomeResource, asset: str, partition: str) -> pa.Table:
    if shards.read_manifest(home.home.datasets, asset, partition) is None:
        raise dg.Failure(f"{asset} is not materialized for {partition!r}: materialize it first")
    return shards.read_table(home.home.datasets, asset, partition)


def read_all(home: HomeResource, asset: str, hint: str = "materialize it first") -> pa.Table:
    """Every partition of ``asset`` as one table, for a consumer that trains on all of them."""
    partitions = shards.list_partitions(home.home.datasets, asset)
    if not partitions:
        raise dg.Failure(f"{asset} is not materialized for any partition: {hint}")
    return shards.read_table(home.home.datasets, asset, partitions)


def with_rejects_specs(asset: str, deps: list[str], description: str, group: str, item: str) -> list[dg.AssetSpec]:
    """A stage's output spec and its rejects spec (code versions come from `versions.with_code_versions`)."""
    return [
        dg.AssetSpec(asset, deps=deps, group_name=group, description=description),
        dg.AssetSpec(
            f"{asset}_rejects", deps=deps, group_name=group,
            description=f"Every {item} that failed at the {asset} stage: item, stage, error type, message.",
        ),
    ]  # fmt: skip


def write_with_rejects(
    context: dg.AssetExecutionContext, home: HomeResource, asset: str, table: pa.Table, rejects: list[Reject], metadata: dict
) -> Iterator[dg.MaterializeResult]:
    """Both shard sets of a stage, always written (an empty one too), so re-materializing replaces both."""
    root, partition, version = home.home.datasets, context.partition_key, code_version(context)
    out = shards.write_table(root, asset, partition, table, code_version=version)
    rejected = rejects_table(rejects)
    rejected_manifest = shards.write_table(root, f"{asset}_rejects", partition, rejected, code_version=version)
    status = {"rejects": len(rejects)} | ({"rejected": f"{rejects[0].error_type}: {rejects[0].message}"} if rejects else {})
    yield dg.MaterializeResult(asset_key=asset, metadata={**manifest_metadata(out), **status, **metadata})
    yield dg.MaterializeResult(
        asset_key=f"{asset}_rejects", metadata={**manifest_metadata(rejected_manifest), "preview": preview(rejected)}
    )


def skipped(context: dg.AssetExecutionContext, home: HomeResource, asset: str, schema: pa.Schema, reason: str) -> dg.MaterializeResult:
    manifest = shards.write_table(
        home.home.datasets, asset, context.partition_key, schema.empty_table(), code_version=code_version(context)
    )
    return dg.MaterializeResult(metadata={**manifest_metadata(manifest), "skipped": reason})
