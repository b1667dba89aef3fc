"""Dagster IO manager that stores small tabular asset outputs as shard sets."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow as pa

from storage import shards

UNPARTITIONED = "__all__"


def _as_arrow(obj: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(obj, pd.DataFrame):
        return pa.Table.from_pandas(obj, preserve_index=False)
    if isinstance(obj, pa.Table):
        return obj
    raise TypeError(f"ShardIOManager stores pandas.DataFrame or pyarrow.Table, got {type(obj).__name__}")


class ShardIOManager(dg.ConfigurableIOManager):
    """Asset `<key>[-1]` partition `p` lives at `<datasets_root>/<key>[-1]/<p>` (`__all__` when unpartitioned)."""

    datasets_root: str

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | pa.Table) -> None:
        asset = context.asset_key.path[-1]
        partition = context.partition_key if context.has_partition_key else UNPARTITIONED
        manifest = shards.write_table(
            self.datasets_root, asset, partition, _as_arrow(obj), code_version=context.asset_spec.code_version or ""
        )
        context.add_output_metadata(
            {
                "rows": manifest.rows,
                "shards": len(manifest.shards),
                "bytes": manifest.bytes,
                "data_version": manifest.version,
                "path": dg.MetadataValue.path(f"{self.datasets_root.rstrip('/')}/{asset}/{partition}"),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | pa.Table:
        """A pyarrow Table where the input is annotated as one (nested columns survive), else pandas."""
        asset = context.asset_key.path[-1]
        partitions = sorted(context.asset_partition_keys) if context.has_asset_partitions else [UNPARTITIONED]
        table = shards.read_table(self.datasets_root, asset, partitions)
        return table if context.dagster_type.typing_type is pa.Table else table.to_pandas()
