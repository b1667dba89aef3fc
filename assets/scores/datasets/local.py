"""User folders as datasets: registered folders and incoming drop batches.

Registered folders persist in a JSON file ``{name: absolute folder}``, or
``{name: {"folder": ..., "shards": n}}`` for a folder split into shards; callers pass
its path, or set BATON_LOCAL_DATASETS (the pipelines pass ``<home>/local_datasets.json``).
``incoming_<batch>`` names the folder ``<raw_dir>/incoming/<batch>`` that the
sensor fills. Every non-hidden file is listed, music or not, so files that
cannot be ingested show up as rejects instead of vanishing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .formats import items_for_file
from .items import DatasetInfo, ScoreItem

REGISTRY_ENV = "BATON_LOCAL_DATASETS"
INCOMING_PREFIX = "incoming_"
_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*")


def registry_path(registry_file: str | Path | None) -> Path | None:
    """The explicit file, else $BATON_LOCAL_DATASETS, else none."""
    chosen = registry_file or os.environ.get(REGISTRY_ENV)
    return Path(chosen) if chosen else None


def _entries(registry_file: str | Path | None) -> dict[str, str | dict]:
    path = registry_path(registry_file)
    if path is None or not path.is_file():
        return {}
    return json.loads(path.read_text())


def load_registry(registry_file: str | Path | None) -> dict[str, str]:
    """``{name: folder}`` of every registered folder."""
    return {name: entry if isinstance(entry, str) else entry["folder"] for name, entry in _entries(registry_file).items()}


def load_shards(registry_file: str | Path | None) -> dict[str, int]:
    """``{name: shard count}`` of every registered folder (1 unless registered with more)."""
    return {name: 1 if isinstance(entry, str) else int(entry["shards"]) for name, entry in _entries(registry_file).items()}


def register_local(
    name: str, folder: str | Path, registry_file: str | Path, reserved: set[str], shards: int = 1
) -> None:
    """Add or update `name` -> `folder` split into `shards`; written atomically so a crash keeps the old registry."""
    if not _NAME.fullmatch(name) or name.startswith(INCOMING_PREFIX) or name in reserved:
        raise ValueError(
            f"invalid local dataset name {name!r}: use lowercase letters, digits, '_' or '-', "
            f"not a built-in name and not starting with {INCOMING_PREFIX!r}"
        )
    if not isinstance(shards, int) or shards < 1:
        raise ValueError(f"local dataset {name}: the shard count must be a whole number of at least 1, not {shards!r}")
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    path = Path(registry_file)
    registry = _entries(path)
    registry[name] = str(folder) if shards == 1 else {"folder": str(folder), "shards": shards}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def local_info(name: str, location: str, shards: int = 1) -> DatasetInfo:
    return DatasetInfo(name, name, "local", f"files under {location}", "unknown (user files)", location, shards)


def incoming_folder(name: str, raw_dir: str | Path) -> Path:
    batch = name.removeprefix(INCOMING_PREFIX)
    if not batch or batch in (".", "..") or "/" in batch or os.sep in batch:
        raise KeyError(f"invalid incoming batch name {name!r}")
    return Path(raw_dir) / "incoming" / batch


def list_folder(dataset: str, folder: str | Path) -> list[ScoreItem]:
    """Every non-hidden file under `folder`, recursively; ids are paths relative to it.

    Symlinked folders are not walked into but listed, like dangling symlinks, as items the reader
    rejects with the reason, so nothing under the folder vanishes unreported.
    """
    root = Path(folder).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset {dataset}: folder {root} does not exist")
    items = []
    for parent, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        linked = [d for d in dirs if (Path(parent) / d).is_symlink()]
        for name in files + linked:
            if not name.startswith("."):
                items.extend(items_for_file(dataset, root, Path(parent) / name))
    return items
