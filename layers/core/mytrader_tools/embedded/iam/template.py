"""The synthesized CloudFormation template, cached by the hash of its inputs.

The inputs are everything the CDK app reads: cdk/** (its constructs and cdk.json's context), the lambdas, the
library modules the app imports (stack_spec, config, models, the fine-tuning ASL), the CDK versions and the
environment that names the account and region. Grants follow the deploy settings (market data from S3 or Alpaca,
news or none, ...), so a template is made per set of context overrides: the deployed one (cdk.json as it is)
and the embedded stack's (VARIANTS: one node process synthesizes them all). The cache lives in
.build/template-cache/<hash>/<variant>/, each a whole cloud assembly; a file lock makes concurrent sessions (two
xdist workers, a test run beside `make demo`) synthesize once, the others wait and read. The synth runs in a
subprocess (jsii's node process ends with it), with asset bundling skipped (the layer is never built here: only its
asset hash is in the template, and it is not an input of any policy) and path metadata on (resources carry their
construct path).

`python -m mytrader_tools.embedded.iam.template` prints the cached template's path (synthesizing if needed).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[5]
CACHE = REPO / ".build" / "template-cache"
STACK_TEMPLATE = "MyTrader.template.json"
LIBRARY = REPO / "layers" / "core" / "mytrader"
INPUT_FILES = ("cdk.json", "layers/core/mytrader/stack_spec.py", "layers/core/mytrader/config.py",
               "layers/core/mytrader/models.py", "layers/core/mytrader/data/finetune.asl.json",
               "layers/core/mytrader_tools/embedded/iam/template.py")
INPUT_TREES = ("cdk", "lambdas")
SKIPPED = {"__pycache__", "node_modules", ".mypy_cache"}
ENV = ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")
PACKAGES = ("aws-cdk-lib", "constructs", "cdk-nag")
CONTEXT = {"aws:cdk:bundling-stacks": [], "aws:cdk:enable-path-metadata": True}
# Context overrides synthesized together: the deployed settings and the embedded stacks' (stack.py: market data
# from S3, paper or Alpaca broker, news from S3 or none).
VARIANTS: dict[str, dict[str, Any]] = {
    "deployed": {},
    "local": {"market_data": "s3", "news_source": "none", "broker": "paper"},
    "local-news": {"market_data": "s3", "news_source": "s3", "broker": "paper"},
    "local-alpaca": {"market_data": "s3", "news_source": "none", "broker": "alpaca"},
}


def _files() -> list[Path]:
    out = [REPO / f for f in INPUT_FILES]
    for tree in INPUT_TREES:
        out.extend(p for p in (REPO / tree).rglob("*") if p.is_file() and not SKIPPED.intersection(p.parts)
                   and p.suffix not in (".pyc",))
    return sorted(out)


def inputs_hash() -> str:
    h = hashlib.sha256()
    for path in _files():
        h.update(str(path.relative_to(REPO)).encode() + b"\0")
        h.update(path.read_bytes() if path.exists() else b"<missing>")
        h.update(b"\0")
    for name in ENV:
        h.update(f"{name}={os.environ.get(name, '')}\0".encode())
    for pkg in PACKAGES:
        h.update(f"{pkg}=={metadata.version(pkg)}\0".encode())
    return h.hexdigest()[:20]


def variant_name(overrides: Mapping[str, Any]) -> str:
    known = next((name for name, ctx in VARIANTS.items() if ctx == dict(overrides)), None)
    return known or "ctx-" + hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:12]


def assembly_dir(overrides: Mapping[str, Any] | None = None) -> Path:
    """The cached cloud assembly for the current inputs and these context overrides, synthesized first if there
    is none (with every known variant, when it is one of them)."""
    overrides = dict(overrides or {})
    key, name = inputs_hash(), variant_name(overrides)
    root = CACHE / key
    if (root / name / STACK_TEMPLATE).exists():
        return root / name
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be synthesizing the same inputs: wait for it
        if not (root / name / STACK_TEMPLATE).exists():
            wanted = VARIANTS if name in VARIANTS else {name: overrides}
            _synthesize(root, {n: ctx for n, ctx in wanted.items() if not (root / n / STACK_TEMPLATE).exists()})
    return root / name


def _synthesize(root: Path, variants: Mapping[str, Mapping[str, Any]]) -> None:
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.monotonic()
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "mytrader_tools.embedded.iam.template", "--synth", str(tmp),
                           json.dumps(variants)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not all((tmp / n / STACK_TEMPLATE).exists() for n in variants):
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"cdk synth failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    root.mkdir(parents=True, exist_ok=True)
    for n in variants:
        (tmp / n / "synth-seconds.txt").write_text(f"{time.monotonic() - started:.1f} ({len(variants)} variants)\n")
        shutil.rmtree(root / n, ignore_errors=True)
        (tmp / n).rename(root / n)
    shutil.rmtree(tmp, ignore_errors=True)
    _prune(keep=root)


def _prune(keep: Path, max_entries: int = 5) -> None:
    """Keep the newest few assemblies (inputs change while one works)."""
    entries = sorted((p for p in CACHE.iterdir() if p.is_dir() and ".tmp" not in p.name),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[max_entries:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)
            (CACHE / f"{old.name}.lock").unlink(missing_ok=True)


@cache
def _inputs_once() -> str:
    return inputs_hash()


def load_template(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The synthesized template for these context overrides (shared: do not mutate it; copy first). The inputs are
    hashed once per process: inputs changed while it runs take effect in the next one, so a test session
    synthesizes at most once."""
    return _load(_inputs_once(), json.dumps(dict(overrides or {}), sort_keys=True))


@cache
def _load(_key: str, overrides: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((assembly_dir(json.loads(overrides)) / STACK_TEMPLATE).read_text())
    return data


def _synth_here(outdir: str, variants: Mapping[str, Mapping[str, Any]]) -> None:
    sys.path[:0] = [str(REPO / "cdk"), str(REPO / "layers" / "core")]
    from app import build_app  # cdk/app.py

    for name, overrides in variants.items():
        build_app(context={**CONTEXT, **overrides}, outdir=str(Path(outdir) / name)).synth()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--synth"]:
        _synth_here(sys.argv[2], json.loads(sys.argv[3]))
    else:
        print(assembly_dir() / STACK_TEMPLATE)
