"""External programs Baton shells out to, checked up front with the Debian package that provides them."""

from __future__ import annotations

import glob
import shutil

SOUNDFONT_GLOBS = (
    "/usr/share/sounds/sf3/MuseScore_General*.sf3",
    "/usr/share/sounds/sf2/MuseScore_General*.sf2",
)


def soundfont_path() -> str | None:
    for pattern in SOUNDFONT_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def missing_tools() -> list[str]:
    """Debian packages whose programs or files are absent."""
    missing = [pkg for prog, pkg in (("ffmpeg", "ffmpeg"), ("fluidsynth", "fluidsynth")) if not shutil.which(prog)]
    if soundfont_path() is None:
        missing.append("musescore-general-soundfont-small")
    return missing


def require_tools() -> None:
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"missing system packages: {' '.join(missing)} (install with: apt-get install {' '.join(missing)})")
