"""Inline images in materialization metadata fit the Dagster UI's metadata dialog."""

import base64
import io
import re

import numpy as np
from PIL import Image

from assets.core.metadata import PANEL_WIDTH, png_markdown
from assets.violin.alignment import BINS_PER_SEMITONE, plot_alignment


def embedded(markdown: str) -> tuple[str, Image.Image]:
    mime, data = re.fullmatch(r"!\[[^\]]*\]\(data:([^;]+);base64,([A-Za-z0-9+/=]+)\)", markdown).groups()
    return mime, Image.open(io.BytesIO(base64.b64decode(data)))


def test_the_wide_alignment_overlay_is_scaled_to_the_panel_keeping_its_aspect():
    rng = np.random.default_rng(0)
    spectrogram = rng.normal(-40, 10, size=(48 * BINS_PER_SEMITONE, 900))
    png = plot_alignment(spectrogram, np.array([1.0, 3.0]), np.array([2.5, 5.0]), np.array([62, 69]), title="overlay")
    original = Image.open(io.BytesIO(png))
    assert original.width > PANEL_WIDTH  # the figure as drawn is wider than the dialog shows

    mime, shown = embedded(png_markdown("overlay", png))
    assert mime == "image/png" and shown.format == "PNG"
    assert shown.width == PANEL_WIDTH
    assert abs(shown.height / shown.width - original.height / original.width) < 2 / PANEL_WIDTH


def test_a_narrow_frame_is_embedded_unchanged():
    buffer = io.BytesIO()
    Image.new("RGB", (224, 224), (10, 200, 30)).save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    markdown = png_markdown("frame", jpeg, "image/jpeg")
    assert markdown == f"![frame](data:image/jpeg;base64,{base64.b64encode(jpeg).decode()})"
    buffer = io.BytesIO()
    Image.new("RGB", (1600, 400), (10, 200, 30)).save(buffer, format="JPEG")
    mime, shown = embedded(png_markdown("wide frame", buffer.getvalue(), "image/jpeg"))
    assert (mime, shown.format, shown.size) == ("image/jpeg", "JPEG", (PANEL_WIDTH, 200))
