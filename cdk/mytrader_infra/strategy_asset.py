"""The configured strategy, deployed: a file of the user's is packaged into the code of the functions that load it.

Where the strategy comes from (the config's strategy.name):
- a bundled name, or `module:Class` whose module is in the Lambda layer (`mytrader....`): nothing to package;
- a file, `path/to/my_strategy.py[:Class]`: relative to the current folder, else to the config file's folder
  (the CLI's backtest and demo read it from the current folder);
- `my_module:Class` whose module is not in the layer: the file my_module.py next to the config file. A package of
  the user's (`pkg.module:Class`) is not supported: only one file is deployed.

The file is copied into the function's code as user_strategy/<file name> (staged under .build/strategy-assets/,
content addressed) and TRADING_JSON names it there: `user_strategy/my_strategy.py`, relative to the function's
folder /var/task (LAMBDA_TASK_ROOT, where the loader looks for a relative path; see mytrader/strategies/loader.py).
It goes into the decision cycle (it decides with it) and the executor (admission reads the strategy's time limit;
without the file it would fall back to the config's). Every function gets the same TRADING_JSON, so one config
version (part of every decision id) across the stack; the deployed one names the packaged path.

At synth, before anything is built, the file is checked: every module it imports (top level, in functions, not
under `if TYPE_CHECKING:` nor in a `try` that catches ImportError) must be in the layer (the standard library of
Python 3.13, mytrader, and the packages of layers/core/requirements.txt); a relative import or a module next to it
is refused (only the one file is deployed). Modules imported by name at run time (importlib) are not seen. Then the
strategy is loaded and validated as the functions will (load_strategy). Each failure is one line
(StrategyDeployError, an InputError: `cdk synth` prints it without a traceback).
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from mytrader.app.project_config import InputError

from .bundling import CACHE, REQUIREMENTS

PACKAGE_DIR = "user_strategy"  # the strategy's folder in the function's code (/var/task/user_strategy/)
STAGING = CACHE / "strategy-assets"
LAYER_PACKAGE = "mytrader"
# in this Python's sys.stdlib_module_names but not in the runtime's 3.13 (PEP 594, and lib2to3)
REMOVED_IN_313 = frozenset({"aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "lib2to3", "mailcap",
                            "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau",
                            "telnetlib", "uu", "xdrlib"})
IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


class StrategyDeployError(InputError):
    """The configured strategy cannot be deployed; one line naming the file and the reason."""


@dataclass(frozen=True)
class PackagedStrategy:
    """A strategy file of the user's as the functions get it: its checked content and the spec they load."""
    source: Path  # the user's file (resolved), for messages
    content: bytes  # what was checked is what is deployed
    spec: str  # TRADING_JSON's strategy.name: user_strategy/<file>[:Class], relative to the function's folder

    @property
    def relative_path(self) -> str:
        return f"{PACKAGE_DIR}/{self.source.name}"


def package_strategy(trading_json: str, config_dir: Path,
                     cwd: Path | None = None) -> tuple[str, PackagedStrategy | None]:
    """TRADING_JSON for the deployed functions and the file to package (None: the layer has the strategy). The
    strategy is checked first (imports, then load and validation); StrategyDeployError otherwise."""
    blob = json.loads(trading_json)
    choice = blob.get("strategy") or {}
    spec, params = str(choice.get("name", "")).strip(), dict(choice.get("params") or {})
    if not spec:
        return trading_json, None
    located = locate(spec, config_dir, cwd or Path.cwd())
    if located is None:
        _check_loads(spec, params, spec)
        return trading_json, None
    path, cls_name = located
    content = path.read_bytes()
    check_imports(path, content.decode("utf-8", errors="replace"), layer_modules())
    suffix = f":{cls_name}" if cls_name else ""
    _check_loads(f"{path}{suffix}", params, str(path))
    packaged = PackagedStrategy(source=path, content=content, spec=f"{PACKAGE_DIR}/{path.name}{suffix}")
    blob["strategy"] = {**choice, "name": packaged.spec}
    return json.dumps(blob, sort_keys=True, separators=(",", ":")), packaged


def locate(spec: str, config_dir: Path, cwd: Path) -> tuple[Path, str] | None:
    """The user's file the spec names and its class name ('' when it names none); None for a bundled strategy or
    a module in the layer."""
    from mytrader.strategies.loader import is_builtin, names_file, split_spec

    if is_builtin(spec):
        return None
    where, cls_name = split_spec(spec)
    if names_file(where):
        path = Path(where).expanduser()
        candidates = [path] if path.is_absolute() else [cwd / path, config_dir / path]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            folders = " and ".join(str(p.parent) for p in candidates)
            raise StrategyDeployError(f"strategy file {where} not found (looked in {folders})")
        return found.resolve(), cls_name
    if not cls_name or where.split(".")[0] in layer_modules():
        return None  # a module in the layer, or not a strategy at all: the load check says which
    if "." in where:
        raise StrategyDeployError(f"strategy {spec}: {where} is not in the Lambda layer and only a single file can "
                                  f"be deployed: name the file (path/to/file.py:{cls_name})")
    path = config_dir / f"{where}.py"
    if not path.is_file():
        raise StrategyDeployError(f"strategy {spec}: module {where} is not in the Lambda layer and {path} (next to "
                                  f"the config file) does not exist")
    return path.resolve(), cls_name


def _check_loads(spec: str, params: dict[str, object], what: str) -> None:
    from mytrader.strategies import StrategyError, load_strategy

    try:
        load_strategy(spec, params)
    except StrategyError as exc:
        raise StrategyDeployError(f"strategy {what} cannot be deployed: {exc}") from None


@cache
def layer_modules(requirements: Path = REQUIREMENTS) -> frozenset[str]:
    """The top-level modules a function can import: the runtime's standard library, mytrader and the layer's
    pinned requirements (their import names from the installed distributions' metadata; a requirement not
    installed here counts by its own name)."""
    by_dist: dict[str, set[str]] = {}
    for module, dists in metadata.packages_distributions().items():
        for dist in dists:
            by_dist.setdefault(_normalised(dist), set()).add(module)
    names = set(sys.stdlib_module_names) - REMOVED_IN_313 | {LAYER_PACKAGE}
    for line in requirements.read_text().splitlines():
        requirement = re.split(r"[\s=<>!~;\[#@]", line.strip(), maxsplit=1)[0]
        if requirement:
            names |= by_dist.get(_normalised(requirement), {requirement.replace("-", "_")})
    return frozenset(names)


def _normalised(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def check_imports(path: Path, source: str, available: frozenset[str]) -> None:
    """Every module the strategy file imports must be in `available`; otherwise one line naming the file and each
    module (with its line) that the deployed function could not import."""
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise StrategyDeployError(f"strategy file {path}: line {exc.lineno}: {exc.msg}") from None
    found = _Imports()
    found.visit(tree)
    relative, siblings, missing = [], [], []
    for module, level, line in found.imports:
        top = module.split(".")[0]
        if level:
            relative.append(f"from {'.' * level}{module} (line {line})")
        elif top in available:
            continue
        elif (path.parent / f"{top}.py").is_file() or (path.parent / top).is_dir():
            siblings.append(f"{top} (line {line})")
        else:
            missing.append(f"{top} (line {line})")
    problems = []
    if missing:
        problems.append(f"imports {', '.join(missing)}, not in the Lambda layer (it has the standard library, "
                        f"mytrader and the packages of layers/core/requirements.txt)")
    if siblings:
        problems.append(f"imports {', '.join(siblings)} from its folder, but only the strategy file is deployed "
                        f"(put that code in it)")
    if relative:
        problems.append(f"relative import {', '.join(relative)} is not supported: only the strategy file is "
                        f"deployed")
    if problems:
        raise StrategyDeployError(f"strategy file {path}: {'; '.join(problems)}")


class _Imports(ast.NodeVisitor):
    """(module, relative level, line) of every import that runs: not those under `if TYPE_CHECKING:` nor those
    in a `try` whose handlers catch a failed import."""

    def __init__(self) -> None:
        self.imports: list[tuple[str, int, int]] = []

    def visit_Import(self, node: ast.Import) -> None:
        self.imports += [(alias.name, 0, node.lineno) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.imports.append((node.module or "", node.level, node.lineno))

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" not in _caught(node.test):
            self.generic_visit(node)
            return
        for child in node.orelse:
            self.visit(child)

    def visit_Try(self, node: ast.Try) -> None:
        self._visit_try(node)

    def visit_TryStar(self, node: ast.TryStar) -> None:
        self._visit_try(node)

    def _visit_try(self, node: ast.Try | ast.TryStar) -> None:
        guarded = any(h.type is None or bool(_caught(h.type) & IMPORT_ERRORS) for h in node.handlers)
        for child in [*([] if guarded else node.body), *node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)


def _caught(expr: ast.expr | None) -> set[str]:
    """The names an expression spells: `X`, `mod.X` or a tuple of them."""
    if isinstance(expr, ast.Tuple):
        return {name for e in expr.elts for name in _caught(e)}
    if isinstance(expr, ast.Name):
        return {expr.id}
    if isinstance(expr, ast.Attribute):
        return {expr.attr}
    return set()


def function_asset(folder: Path, packaged: PackagedStrategy) -> Path:
    """A copy of the function's code folder with the strategy file in user_strategy/, staged once per content
    (concurrent synths write their own copy and keep the first that lands)."""
    files = sorted(p for p in folder.rglob("*")  # not the byte code local runs leave
                   if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(packaged.relative_path.encode() + b"\0" + packaged.content)
    out = STAGING / f"{folder.name}-{h.hexdigest()[:16]}"
    if out.is_dir():
        return out
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for p in files:
        (tmp / p.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, tmp / p.relative_to(folder))
    (tmp / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    (tmp / packaged.relative_path).write_bytes(packaged.content)
    try:
        tmp.rename(out)
    except OSError:  # another synth staged the same content first
        shutil.rmtree(tmp, ignore_errors=True)
    return out
