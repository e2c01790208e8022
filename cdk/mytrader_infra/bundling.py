"""Local bundling without Docker: the Lambda layer is built with pip for the Lambda platform.

`python -m mytrader_infra.bundling layer` (make layer) builds it once into .build/, keyed by the hash
of its inputs (requirements, domain sources, the byte-code compiler); synth copies the cached build. pip's
--platform matches tags exactly, so every manylinux tag the runtime accepts is passed (with only
manylinux_2_28 pip silently resolved pydantic 1.10). The layer ships Python 3.13 byte code (bytecode.py) and
no test suites of its dependencies.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling

from mytrader_infra.bytecode import PYODIDE_PROJECT, compile_tree

REPO = Path(__file__).resolve().parents[2]
LAYER_SRC = REPO / "layers" / "core"
PACKAGE = LAYER_SRC / "mytrader"
REQUIREMENTS = LAYER_SRC / "requirements.txt"
CACHE = REPO / ".build"
PYTHON_VERSION = "3.13"
PRUNED = ("numpy/**/tests",)  # numpy's own test suite: 15 MB, never imported at run time
PLATFORMS = {"arm64": ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64"),
             "x86_64": ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")}


def _ignored(path: Path) -> bool:
    """The layer ships the library package `mytrader` whole (the tools are a package of their own), minus byte
    code compiled on this machine."""
    rel = path.relative_to(PACKAGE).parts
    return bool(rel) and ("__pycache__" in rel or path.suffix == ".pyc")


def inputs_hash(arch: str) -> str:
    h = hashlib.sha256(f"{arch}|{PYTHON_VERSION}".encode())
    h.update(REQUIREMENTS.read_bytes())
    h.update(repr(PRUNED).encode())
    for name in ("package-lock.json", "compile_layer.js"):
        h.update((PYODIDE_PROJECT / name).read_bytes())
    for p in sorted(PACKAGE.rglob("*")):
        if p.is_file() and not _ignored(p):
            h.update(str(p.relative_to(PACKAGE)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build_layer(arch: str = "arm64") -> Path:
    """Returns the folder holding python/ (the layer's content), building it if the cache misses. Processes that
    ask at once (test workers, a synth beside a bench) wait for one build instead of racing on the same folder."""
    import fcntl

    out = CACHE / f"layer-{arch}-{inputs_hash(arch)}"
    if (out / ".complete").exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".layer-{arch}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / ".complete").exists():
            return out
        return _build_layer(arch, out)


def _build_layer(arch: str, out: Path) -> Path:
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    target = tmp / "python"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
           "--python-version", PYTHON_VERSION, "-r", str(REQUIREMENTS)]
    for tag in PLATFORMS[arch]:
        cmd += ["--platform", tag]
    subprocess.run(cmd, check=True)
    shutil.copytree(PACKAGE, target / "mytrader", ignore=lambda d, names: [
        n for n in names if _ignored(Path(d) / n)])
    for junk in target.rglob("__pycache__"):
        shutil.rmtree(junk, ignore_errors=True)
    for pattern in PRUNED:
        for junk in list(target.glob(pattern)):
            shutil.rmtree(junk, ignore_errors=True)
    report = compile_tree(target)
    (tmp / "bytecode.json").write_text(json.dumps(report, indent=1))
    (tmp / ".complete").write_text(inputs_hash(arch))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


@jsii.implements(ILocalBundling)
class LocalLayerBundling:
    def __init__(self, arch: str):
        self.arch = arch

    def try_bundle(self, output_dir: str, *, image, **_kw) -> bool:
        shutil.copytree(build_layer(self.arch), output_dir, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".complete", "bytecode.json"))
        return True


def layer_bundling(arch: str) -> BundlingOptions:
    # The image is never pulled: local bundling always succeeds, and no Docker engine is needed.
    return BundlingOptions(image=DockerImage.from_registry("local-bundling-only"), local=LocalLayerBundling(arch))


if __name__ == "__main__":
    if sys.argv[1:2] == ["layer"]:
        print(build_layer(sys.argv[2] if len(sys.argv) > 2 else "arm64"))
