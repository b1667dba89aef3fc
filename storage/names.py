"""Safe names for files, folders and partition keys built from outside input.

Every name Baton builds from a manifest field, URL, id or partition key goes through
``check_name`` (refused unless it is one plain path component) or ``hashed_name`` (any text
mapped to a fixed-length hex name), and every path built from one through ``inside``, so no
input can reach a folder outside the one it belongs in.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

MAX_NAME = 128
_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*")


class UnsafeName(ValueError):
    """A name or path from outside input that could escape its folder or is not a plain name."""


def check_name(name: object, what: str = "name") -> str:
    """``name`` itself when it is one plain component: letters, digits and ``_ . = + -``, not
    starting with ``.`` (hidden names are Baton's own), no ``..``, at most 128 characters;
    UnsafeName otherwise."""
    if not isinstance(name, str) or not name:
        raise UnsafeName(f"{what} must be a non-empty string, not {name!r}")
    if len(name) > MAX_NAME:
        raise UnsafeName(f"{what} {name[:40]!r}... is longer than {MAX_NAME} characters")
    if not _SAFE.fullmatch(name) or ".." in name:
        raise UnsafeName(
            f"{what} {name!r} is not a plain name (letters, digits and _ . = + -, not starting with '.')"
        )
    return name


def is_safe_name(name: object) -> bool:
    try:
        check_name(name)
    except UnsafeName:
        return False
    return True


def hashed_name(text: str, length: int = 16) -> str:
    """A fixed-length hex name for any text (a URL, a free-form id): safe, and distinct per text."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=length // 2 + length % 2).hexdigest()[
        :length
    ]


def inside(folder: str | os.PathLike, *parts: str) -> Path:
    """``folder/parts...`` resolved (symlinks too), refused with UnsafeName unless it stays inside ``folder``."""
    root = Path(folder).resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise UnsafeName(f"{os.path.join(*parts) if parts else ''!r} resolves to {path}, outside {root}")
    return path
