"""Materialization metadata that reads well in the Dagster UI: tables, inline plots, shard counts."""

from __future__ import annotations

import base64
import io

import dagster as dg
import pandas as pd
import pyarrow as pa
from PIL import Image

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


PANEL_WIDTH = 800
"""Pixels an inline image may be wide. Dagster's markdown shows an image at its pixel size (raw HTML,
so an <img width>, is not rendered) in a dialog 80 % of the window wide, cutting off a wider one;
800 px fits any window from 1,050 px."""


def fit_width(image: bytes, width: int = PANEL_WIDTH) -> bytes:
    """The image (PNG or JPEG) scaled down to `width` pixels, keeping its aspect; a narrower one unchanged."""
    picture = Image.open(io.BytesIO(image))
    if picture.width <= width:
        return image
    height = max(1, round(picture.height * width / picture.width))
    buffer = io.BytesIO()
    picture.resize((width, height), Image.Resampling.LANCZOS).save(buffer, format=picture.format)
    return buffer.getvalue()


def png_markdown(name: str, png: bytes, mime: str = "image/png") -> str:
    """An inline image for markdown metadata, sized to fit the Dagster UI's metadata dialog."""
    return f"![{name}](data:{mime};base64,{base64.b64encode(fit_width(png)).decode()})"


def manifest_metadata(manifest: shards.Manifest) -> dict:
    return {
        "rows": manifest.rows,
        "shards": len(manifest.shards),
        "bytes": manifest.bytes,
        "data_version": manifest.version,
    }
