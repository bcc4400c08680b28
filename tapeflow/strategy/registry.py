"""Which strategies exist: the built-ins and any installed package's, found through the
`tapeflow.strategies` entry points, plus the user's own files named by `TAPEFLOW_STRATEGY_PATH`.

A user's strategy is a Python file (or a folder of them) defining `Strategy` subclasses; it
is listed, backtested, checked for look-ahead and traded by name without editing tapeflow.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections.abc import Iterator
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from tapeflow.config import Settings, load_settings
from tapeflow.model import Timeframe
from tapeflow.strategy.base import Param, Strategy

ENTRY_POINT_GROUP = "tapeflow.strategies"
USER_MODULE_PREFIX = "tapeflow_user_strategies"


class StrategyNotFound(ValueError):
    """No strategy of that name; the message lists the known ones."""


def available() -> dict[str, type[Strategy]]:
    """Every strategy by name: entry points first, then the user's files in path order."""
    found: dict[str, tuple[type[Strategy], str]] = {}
    for cls, origin in [*_entry_point_strategies(), *_from_paths(strategy_path())]:
        if cls.name in found and found[cls.name][0] is not cls:
            raise ValueError(f"two strategies are called {cls.name!r}: {found[cls.name][1]} and {origin}; rename one")
        found[cls.name] = (cls, origin)
    return {name: cls for name, (cls, _) in sorted(found.items())}


def get_strategy(name: str) -> type[Strategy]:
    """The strategy class called `name`, or StrategyNotFound listing the known ones."""
    known = available()
    try:
        return known[name]
    except KeyError:
        hint = "" if strategy_path() else " (your own files: set TAPEFLOW_STRATEGY_PATH)"
        raise StrategyNotFound(f"unknown strategy {name!r}; known: {', '.join(known)}{hint}") from None


def strategy_path(settings: Settings | None = None) -> list[Path]:
    """The files and folders `TAPEFLOW_STRATEGY_PATH` names (separated by the OS path separator)."""
    raw = (settings or load_settings()).strategy_path or ""
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


@cache
def _entry_point_strategies() -> tuple[tuple[type[Strategy], str], ...]:
    """Installed strategies; scanning the installed packages is slow, so once per process."""
    return tuple(_from_entry_points())


def _from_entry_points() -> Iterator[tuple[type[Strategy], str]]:
    for point in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {point.value}"
        try:
            cls = point.load()
        except Exception as exc:
            raise ValueError(f"{origin} failed to load: {type(exc).__name__}: {exc}") from exc
        if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
            raise ValueError(f"{origin} is not a Strategy subclass")
        yield _complete(cls, origin), origin


def _from_paths(paths: list[Path]) -> Iterator[tuple[type[Strategy], str]]:
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
        elif path.is_file() and path.suffix == ".py":
            files = [path]
        else:
            raise ValueError(f"TAPEFLOW_STRATEGY_PATH names {path}, which is neither a .py file nor a folder")
        for file in files:
            module = _load_file(file)
            for cls in vars(module).values():
                # A class without a name of its own is a base for others, not a strategy to run.
                if (inspect.isclass(cls) and issubclass(cls, Strategy) and not inspect.isabstract(cls)
                        and cls.__module__ == module.__name__ and "name" in vars(cls)):
                    yield _complete(cls, str(file)), str(file)


def _complete(cls: type[Strategy], origin: str) -> type[Strategy]:
    """`cls` if it declares what every command needs (name, timeframe, params), else ValueError."""
    missing = [attr for attr in ("name", "timeframe", "params") if not hasattr(cls, attr)]
    if missing:
        raise ValueError(f"strategy {cls.__name__} in {origin} does not set {', '.join(missing)}")
    if not (isinstance(cls.timeframe, Timeframe) and all(isinstance(p, Param) for p in cls.params)):
        raise ValueError(f"strategy {cls.name} in {origin}: timeframe must be a Timeframe and params a tuple of Param")
    return cls


def _load_file(file: Path) -> ModuleType:
    """Import a strategy file by path, once; a broken file is a ValueError naming it."""
    name = f"{USER_MODULE_PREFIX}.{file.resolve().with_suffix('').as_posix().strip('/').replace('/', '.')}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot load strategy file {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # a file that calls sys.exit() must not end the command silently
        del sys.modules[name]
        raise ValueError(f"strategy file {file} failed to load: {type(exc).__name__}: {exc}") from exc
    return module
