import importlib
import json
import subprocess
import sys
import textwrap

import pytest

from assets.core.versions import source_version

HELPERS = """
def scale(x):
    return 2 * x
"""
OTHER = """
def offset(x):
    return x + 1
"""
DEFS = """
from toy import helpers
from toy.other import offset

FACTOR = 3


def local_helper(x):
    return helpers.scale(x) * FACTOR


def first_asset():
    return local_helper(1)


def second_asset():
    return offset(1)


def third_asset():
    return 0
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A throwaway project package `toy` whose files a test can edit and re-import."""
    package = tmp_path / "toy"
    package.mkdir()
    for name, text in {"__init__": "", "helpers": HELPERS, "other": OTHER, "defs": DEFS}.items():
        (package / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(edits: dict[str, str] | None = None):
        for name, (old, new) in (edits or {}).items():
            path = package / f"{name}.py"
            path.write_text(path.read_text().replace(old, new))
        for name in [m for m in sys.modules if m == "toy" or m.startswith("toy.")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        defs = importlib.import_module("toy.defs")
        return {f: source_version(getattr(defs, f), project=("toy",)) for f in ("first_asset", "second_asset", "third_asset")}

    yield load
    for name in [m for m in sys.modules if m == "toy" or m.startswith("toy.")]:
        del sys.modules[name]


def test_unchanged_source_keeps_every_version(toy):
    assert toy() == toy()


def test_a_helper_module_change_flags_only_the_assets_that_reach_it(toy):
    before = toy()
    after = toy({"helpers": ("2 * x", "3 * x")})
    assert after["first_asset"] != before["first_asset"]
    assert after["second_asset"] == before["second_asset"] and after["third_asset"] == before["third_asset"]


def test_a_same_module_helper_or_constant_change_flags_its_callers(toy):
    before = toy()
    assert toy({"defs": ("FACTOR = 3", "FACTOR = 4")})["first_asset"] != before["first_asset"]
    changed = toy({"defs": ("return 0", "return 5")})
    assert changed["third_asset"] != before["third_asset"]


def test_an_imported_function_change_flags_its_caller(toy):
    before = toy()
    after = toy({"other": ("x + 1", "x + 2")})
    assert after["second_asset"] != before["second_asset"] and after["first_asset"] == before["first_asset"]


def test_every_asset_of_the_code_location_is_versioned_the_same_in_a_new_process(home):
    from pipelines.definitions import build_defs

    graph = build_defs(home).resolve_asset_graph()
    here = {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}
    assert all(v and len(v) == 16 for v in here.values())
    script = (
        "from pipelines.definitions import build_defs; from storage.home import BatonHome; import json, sys;"
        "g = build_defs(BatonHome(sys.argv[1])).resolve_asset_graph();"
        "print(json.dumps({k.to_user_string(): g.get(k).code_version for k in g.get_all_asset_keys()}))"
    )
    out = subprocess.run([sys.executable, "-c", script, home.root], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == here
