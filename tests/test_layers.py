"""Imports run one way: pipelines -> assets -> models -> storage, and inside assets from the systems
down to the data sources and the shared core, never sideways between two systems."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"storage": 0, "models": 1, "assets": 2, "pipelines": 3}
# Inside assets/: the shared core, then the data sources in the order they build on each other,
# then the systems, each of which may use any source but no other system.
ASSET_RANKS = {"core": 0, "scores": 1, "violin": 2, "videos": 3}
SYSTEM_RANK = 4


def imported_modules(source: str) -> list[tuple[int, str]]:
    """Every absolute module an import names, with its line: function-level imports count too."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def asset_rank(package: str) -> int:
    return ASSET_RANKS.get(package, SYSTEM_RANK)


def violation(importer: str, imported: str) -> str | None:
    """Why importing ``imported`` from module ``importer`` breaks the layering, or None."""
    src, dst = importer.split("."), imported.split(".")
    if dst[0] not in LAYERS:
        return None
    if LAYERS[dst[0]] > LAYERS[src[0]]:
        return f"{src[0]} must not import {dst[0]}"
    if src[0] == dst[0] == "assets" and len(src) > 2 and len(dst) > 2 and src[1] != dst[1]:
        here, there = asset_rank(src[1]), asset_rank(dst[1])
        if there > here or (here == there == SYSTEM_RANK):
            return f"assets.{src[1]} must not import assets.{dst[1]}"
    return None


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def violations(root: Path) -> list[str]:
    found = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            importer = module_name(path, root)
            for line, imported in imported_modules(path.read_text()):
                why = violation(importer, imported)
                if why:
                    found.append(f"{path.relative_to(root)}:{line}: imports {imported}: {why}")
    return found


def test_no_import_runs_up_the_layers():
    assert violations(ROOT) == []


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("models/net.py", "from assets.core import plots\n", "models must not import assets"),
        ("storage/shards.py", "def f():\n    import pipelines.cli\n", "storage must not import pipelines"),
        ("assets/core/stages.py", "from pipelines import jobs\n", "assets must not import pipelines"),
        ("assets/scores/ingest.py", "from assets.violin import render\n", "assets.scores must not import assets.violin"),
        ("assets/mmt/codes.py", "from assets.cross_dataset.events import encode\n",
         "assets.mmt must not import assets.cross_dataset"),
    ],
)
def test_an_upward_or_sideways_import_is_caught(tmp_path, name, text, expected):
    tree = write_tree(tmp_path, {name: text, "models/ok.py": "from storage import shards\n",
                                 "assets/mmt/ok.py": "from assets.scores import tables\nfrom models import mmt\n"})
    found = violations(tree)
    assert len(found) == 1 and expected in found[0] and found[0].startswith(name)


def test_only_defs_and_core_modules_import_dagster():
    """Pure modules stay testable without Dagster: the wiring lives in each package's defs.py."""
    wired = []
    for path in sorted((ROOT / "assets").rglob("*.py")):
        package, name = path.relative_to(ROOT / "assets").parts[0], path.stem
        if package == "core" or name == "defs":
            continue
        if any(imported.split(".")[0] == "dagster" for _, imported in imported_modules(path.read_text())):
            wired.append(str(path.relative_to(ROOT)))
    assert wired == []


def test_every_package_says_what_it_holds():
    packages = sorted(p for layer in ("assets", "models") for p in (ROOT / layer).rglob("__init__.py") if p.parent != ROOT / layer)
    silent = [str(p.relative_to(ROOT)) for p in packages if not ast.get_docstring(ast.parse(p.read_text()))]
    assert packages and silent == []
