"""Strategies by name: a bundled one, a file (`path/to/my_strategy.py`, or `...py:ClassName` when it defines
several) or an importable class (`package.module:ClassName`). Every strategy is checked at load: its class (the
methods it must have, its settings), its parameters (types, ranges) and one run over synthetic bars (the shape,
length and range of what it returns, its hooks; the bundled ones are tested instead). Any defect is one
StrategyError line."""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from mytrader.strategies.base import Strategy, StrategyParams
from mytrader.strategies.errors import StrategyError
from mytrader.strategies.library import ALIASES, BUILTINS, DEFAULT_STRATEGY

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,39}")
CHECK_BARS = 300


def load_strategy(spec: str = DEFAULT_STRATEGY, params: Mapping[str, Any] | None = None) -> Strategy:
    """The strategy `spec` names, with `params` over its defaults, checked (see the module docstring)."""
    cls = strategy_class(spec)
    strategy = cls(params)
    if cls not in BUILTINS.values():  # the bundled ones have their own tests
        validate_strategy(strategy)
    return strategy


def strategy_class(spec: str) -> type[Strategy]:
    spec = ALIASES.get(spec.strip(), spec.strip())
    if spec in BUILTINS:
        return BUILTINS[spec]
    path, cls_name = split_spec(spec)
    if names_file(path):
        module = _import_file(Path(path))
        return check_class(_pick(module, cls_name, path), spec)
    if cls_name:
        try:
            module = importlib.import_module(path)
        except Exception as exc:  # the user's module may fail in any way while importing
            raise StrategyError(f"strategy {spec}: import of {path} failed: {type(exc).__name__}: {exc}") from exc
        return check_class(_pick(module, cls_name, path), spec)
    raise StrategyError(f"unknown strategy {spec!r}: not a bundled one ({', '.join(sorted(BUILTINS))}), "
                        f"a .py file or package.module:ClassName")


def is_builtin(spec: str) -> bool:
    return ALIASES.get(spec.strip(), spec.strip()) in BUILTINS


def split_spec(spec: str) -> tuple[str, str]:
    """(file or module, class name or '') of a spec that is not a bundled name."""
    path, _, cls_name = spec.rpartition(":") if spec.count(":") == 1 else (spec, "", "")
    return path or spec, cls_name


def names_file(path: str) -> bool:
    """A file path (`x.py`, `dir/x`), not a module name."""
    return path.endswith(".py") or "/" in path or "\\" in path


def check_class(cls: object, spec: str) -> type[Strategy]:
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyError(f"strategy {spec}: {getattr(cls, '__name__', cls)!r} is not a subclass of "
                            f"mytrader.strategies.Strategy")
    name = cls.strategy_name()
    if cls.signals is Strategy.signals:
        raise StrategyError(f"strategy {name}: missing method signals(self, data) -> Signals")
    if not isinstance(cls.name, str) or not NAME.fullmatch(name):
        raise StrategyError(f"strategy {spec}: name {name!r} must be a letter then up to 39 letters, digits or _.-")
    if not isinstance(cls.version, str) or not cls.version.strip():
        raise StrategyError(f"strategy {name}: version must be a non-empty string, got {cls.version!r}")
    if not (isinstance(cls.params_model, type) and issubclass(cls.params_model, StrategyParams)):
        raise StrategyError(f"strategy {name}: params_model must subclass mytrader.strategies.StrategyParams")
    for setting, least in (("warmup_bars", 0), ("time_limit_bars", 1)):
        value = getattr(cls, setting)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise StrategyError(f"strategy {name}: {setting} must be None or an integer >= {least}, got {value!r}")
    return cls


def validate_strategy(strategy: Strategy) -> None:
    """One run over synthetic bars: the arrays and, on the first entry, the hooks, as the engine calls them."""
    from mytrader.features import compute_features
    from mytrader.market.sources import synthetic_series

    series = synthetic_series("CHECK", max(CHECK_BARS, strategy.warmup + 100), seed=7)
    arrays = strategy.arrays(compute_features(series))
    entries = arrays.opens.nonzero()[0]
    if entries.size and arrays.data is not None:
        i = int(entries[0])
        price, side = float(series.close[i]), int(arrays.action[i])
        strategy.levels(arrays.data, i, side, price)
        strategy.sizing(arrays.data, i, float(arrays.confidence[i]), 20.0)


def _import_file(path: Path) -> ModuleType:
    path = _located(path)
    if not path.is_file():
        raise StrategyError(f"strategy file {path} not found")
    source = path.read_bytes()
    name = f"_mytrader_strategy_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{hashlib.sha256(source).hexdigest()[:10]}"
    if name in sys.modules:  # the same file, unchanged: imported once
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise StrategyError(f"strategy file {path.name} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic and dataclasses look the module up while it executes
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file may fail in any way while importing
        del sys.modules[name]
        raise StrategyError(f"strategy file {path.name} failed to import: {type(exc).__name__}: {exc}"[:300]) from exc
    return module


def _located(path: Path) -> Path:
    """A relative path is the current folder's, or in a Lambda function its code folder's (LAMBDA_TASK_ROOT) when
    the file is there: where the CDK app packages a strategy file (cdk/mytrader_infra/strategy_asset.py)."""
    path = path.expanduser()
    root = os.environ.get("LAMBDA_TASK_ROOT")
    if root and not path.is_absolute() and (Path(root) / path).is_file():
        path = Path(root) / path
    return path.resolve()


def _pick(module: ModuleType, cls_name: str, where: str) -> object:
    if cls_name:
        if not hasattr(module, cls_name):
            raise StrategyError(f"strategy {where}: no class {cls_name!r} in it")
        return getattr(module, cls_name)
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, Strategy) and v.__module__ == module.__name__]
    if not found:
        raise StrategyError(f"strategy {where}: defines no subclass of mytrader.strategies.Strategy")
    if len(found) > 1:
        names = ", ".join(c.__name__ for c in found)
        raise StrategyError(f"strategy {where}: defines {len(found)} strategies ({names}); name one as "
                            f"{where}:{found[0].__name__}")
    return found[0]
