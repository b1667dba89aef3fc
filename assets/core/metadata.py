"""Materialization metadata that reads well in the Dagster UI: tables, inline plots, shard counts."""

from __future__ import annotations

import base64

import dagster as dg
import pandas as pd
import pyarrow as pa

from storage import shards


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-style table (the UI renders markdown; pandas needs an extra package for this)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}g}"
        return str(value).replace("|", "\\|").replace("\n", " ")[:120]

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def preview(table: pa.Table, rows: int = 10) -> dg.MetadataValue:
    frame = table.slice(0, rows).to_pandas()
    return dg.MetadataValue.md(markdown_table(frame))


def png_markdown(name: str, png: bytes, mime: str = "image/png") -> str:
    return f"![{name}](data:{mime};base64,{base64.b64encode(png).decode()})"


def manifest_metadata(manifest: shards.Manifest) -> dict:
    return {
        "rows": manifest.rows,
        "shards": len(manifest.shards),
        "bytes": manifest.bytes,
        "data_version": manifest.version,
    }
