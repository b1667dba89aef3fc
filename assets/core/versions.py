"""Asset code versions derived from the source of what each asset runs.

Dagster flags an asset as "code changed" when its code version differs from the one its last
materialization recorded. A hand-kept constant is never bumped, so the version here is a hash of
the asset's compute function and of everything in the project it reaches: the helpers of its own
module function by function, and the other project modules it uses, whole and transitively.
Editing a helper that one asset uses flags that asset alone; editing a shared model flags every
asset that trains or loads it; editing nothing flags nothing.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import types
from collections.abc import Iterable, Iterator

import dagster as dg

PROJECT = ("assets", "models", "storage")
LITERALS = (str, int, float, bool, tuple, list, dict, frozenset, type(None))


def _in_project(module_name: str | None, project: tuple[str, ...]) -> bool:
    return bool(module_name) and module_name.split(".")[0] in project


def _names(code: types.CodeType) -> Iterator[str]:
    """Global names a function's code (nested functions and comprehensions included) refers to."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _unwrap(value: object) -> object:
    """The plain function behind an asset, op or decorated helper."""
    if isinstance(value, dg.AssetsDefinition):
        return value.op.compute_fn.decorated_fn
    return inspect.unwrap(value) if callable(value) else value


def _module_source(name: str) -> str:
    module = sys.modules[name]
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):  # a namespace package has no file of its own
        return ""


def _references(module: types.ModuleType, project: tuple[str, ...]) -> Iterator[str]:
    """Project modules a module uses: imported modules and the homes of imported functions and classes."""
    for value in vars(module).values():
        if isinstance(value, types.ModuleType):
            home = value.__name__
        else:
            home = getattr(value, "__module__", None)
        if _in_project(home, project) and home != module.__name__:
            yield home


def source_version(fn: object, project: tuple[str, ...] = PROJECT) -> str:
    """A 16-hex-digit hash of ``fn``'s source and of every project function, class, constant and
    module it reaches (see the module docstring)."""
    fn = _unwrap(fn)
    home = fn.__module__
    parts: dict[str, str] = {}
    pending_fns: list[object] = [fn]
    pending_modules: list[str] = []
    while pending_fns:
        current = pending_fns.pop()
        key = f"{home}:{current.__qualname__}"
        if key in parts:
            continue
        parts[key] = inspect.getsource(current)
        code = getattr(current, "__code__", None)
        names = set(_names(code)) if code is not None else set()
        if isinstance(current, type):  # a Config class: its defaults are in its source already
            names = set()
        for name in sorted(names):
            if name not in fn.__globals__:
                continue
            value = _unwrap(fn.__globals__[name])
            if isinstance(value, types.ModuleType):
                if _in_project(value.__name__, project):
                    pending_modules.append(value.__name__)
            elif getattr(value, "__module__", None) == home and (inspect.isfunction(value) or inspect.isclass(value)):
                pending_fns.append(value)
            elif _in_project(getattr(value, "__module__", None), project) and (inspect.isfunction(value) or inspect.isclass(value)):
                pending_modules.append(value.__module__)
            elif isinstance(value, LITERALS) and " at 0x" not in repr(value):
                parts[f"{home}:{name}"] = repr(value)
    seen: set[str] = set()
    while pending_modules:
        name = pending_modules.pop()
        if name in seen or name not in sys.modules:
            continue
        seen.add(name)
        parts[name] = _module_source(name)
        pending_modules.extend(_references(sys.modules[name], project))
    digest = hashlib.sha256()
    for key in sorted(parts):
        digest.update(f"{key}\0{parts[key]}\0".encode())
    return digest.hexdigest()[:16]


def with_code_versions(assets: Iterable[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """Every asset (each key of a multi-asset alike) versioned by ``source_version`` of its compute function."""
    versioned = []
    for asset in assets:
        version = source_version(asset)
        versioned.append(asset.map_asset_specs(lambda spec, v=version: spec.replace_attributes(code_version=v)))
    return versioned


def code_version(context: dg.AssetExecutionContext) -> str:
    """The running asset's code version, recorded in the manifests of the shard sets it writes."""
    return next(v for v in context.assets_def.code_versions_by_key.values() if v)
