import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


def _video(path: Path, seconds: float = 2.0, frequency: int = 440) -> Path:
    """A small mp4 with a test pattern and a tone, written by ffmpeg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=size=160x90:rate=10:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency={frequency}:duration={seconds}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    return path


@pytest.fixture
def make_video() -> Callable[..., Path]:
    """``make_video(path, seconds=2.0, frequency=440)`` writes a small real mp4 and returns its path."""
    return _video
