"""One synth with the real layer (built locally with pip for Lambda, cached in .build/), opened and checked."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT

AARCH64 = 183  # ELF e_machine


def elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF", path
    return int.from_bytes(head[18:20], "little")


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> tuple[Path, dict]:
    from app import build_app

    out = tmp_path_factory.mktemp("cdk.out.bundled")
    build_app(outdir=str(out)).synth()
    return out, json.loads((out / "MyTrader.template.json").read_text())


def asset_dir(out: Path, resource: dict) -> Path:
    code = resource["Properties"].get("Content") or resource["Properties"]["Code"]
    manifest = json.loads((out / "MyTrader.assets.json").read_text())
    return out / manifest["files"][code["S3Key"].split(".")[0]]["source"]["path"]


@pytest.fixture(scope="module")
def layer_dir(bundled) -> Path:
    out, template = bundled
    (layer,) = [v for v in template["Resources"].values() if v["Type"] == "AWS::Lambda::LayerVersion"]
    return asset_dir(out, layer) / "python"


def test_each_function_asset_is_its_handler_alone(bundled):
    # Given the bundled app, after local runs have left byte code beside the handlers
    out, template = bundled
    functions = [v for v in template["Resources"].values() if v["Type"] == "AWS::Lambda::Function"
                 and "S3Key" in v["Properties"]["Code"] and v["Properties"].get("Handler") == "handler.lambda_handler"]
    # Then every function ships its handler.py and nothing else
    assert len(functions) == 5
    for fn in functions:
        assert sorted(p.name for p in asset_dir(out, fn).iterdir()) == ["handler.py"], fn["Properties"]["FunctionName"]


def test_layer_holds_pydantic2_with_its_compiled_core_talib_numpy_for_arm64_py313(layer_dir):
    dist = {p.name for p in layer_dir.iterdir() if p.name.endswith(".dist-info")}
    assert any(re.fullmatch(r"pydantic-2\.\d+\.\d+\.dist-info", d) for d in dist), dist
    cores = list((layer_dir / "pydantic_core").glob("_pydantic_core*.so"))
    assert cores and "cpython-313-aarch64" in cores[0].name and elf_machine(cores[0]) == AARCH64
    talib = list((layer_dir / "talib").glob("_ta_lib*.so"))
    assert talib and "cpython-313-aarch64" in talib[0].name and elf_machine(talib[0]) == AARCH64
    numpy_core = list((layer_dir / "numpy" / "_core").glob("_multiarray_umath*.so"))
    assert numpy_core and elf_machine(numpy_core[0]) == AARCH64
    assert any(d.startswith("boto3-1.44.8") for d in dist) and any(d.startswith("botocore-1.44.8") for d in dist)


def test_layer_ships_the_library_package_alone_and_no_tools_module(layer_dir):
    # Given the built layer, when its Python packages are listed
    pkg = layer_dir / "mytrader"
    # Then the library is there with its data, and no module of the tools package is anywhere in it
    assert (pkg / "engine.py").exists() and (pkg / "data" / "xnys_sessions.json").exists()
    assert (pkg / "data" / "finetune.asl.json").exists()
    assert not list(layer_dir.rglob("mytrader_tools*")) and not list(layer_dir.rglob("mytrader_infra*"))
    library_sources = "\n".join(p.read_text() for p in pkg.rglob("*.py"))
    assert "mytrader_tools" not in library_sources, "the library must never import the tools"
    assert not list(layer_dir.rglob("pandas")) and not list(layer_dir.rglob("moto"))


def test_layer_fits_lambda_limits(layer_dir):
    size = sum(p.stat().st_size for p in layer_dir.rglob("*") if p.is_file())
    assert size < 150 * 1024 * 1024, size / 1e6
    assert (ROOT / ".build").exists()


PY313_MAGIC = bytes.fromhex("f30d0d0a")  # CPython 3.13's byte code, as the Lambda python3.13 runtime reads it
UNCHECKED_HASH = 0b01  # hash-based .pyc that the interpreter uses without looking at the source


def test_every_module_ships_unchecked_python313_byte_code(layer_dir):
    # Given the layer as synth packages it
    sources = [p for p in layer_dir.rglob("*.py")]
    # Then each source has its 3.13 byte code beside it, valid whatever the zip does to timestamps
    missing, wrong = [], []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not pyc.exists():
            missing.append(source)
            continue
        head = pyc.read_bytes()[:8]
        if head[:4] != PY313_MAGIC or int.from_bytes(head[4:8], "little") != UNCHECKED_HASH:
            wrong.append(pyc)
    assert len(sources) > 1000 and not missing and not wrong, (missing[:5], wrong[:5])
    assert not list(layer_dir.glob("numpy/**/tests"))


def test_python313_runs_a_layer_module_from_its_byte_code_alone(layer_dir, tmp_path):
    import shutil
    import subprocess

    from mytrader_infra.bytecode import compiler, node

    # Given a pure-Python layer module with its byte code, and its source replaced by something that cannot run
    pkg = tmp_path / "probe"
    shutil.copytree(layer_dir / "mytrader", pkg / "mytrader", ignore=shutil.ignore_patterns("data"))
    (pkg / "mytrader" / "stack_spec.py").write_text("raise SystemExit('the source was executed')\n")
    script = tmp_path / "run.js"
    script.write_text(
        "const { loadPyodide } = require(process.argv[2]);\n"
        "loadPyodide().then((py) => { py.FS.mkdirTree('/probe');\n"
        "  py.FS.mount(py.FS.filesystems.NODEFS, { root: process.argv[3] }, '/probe');\n"
        "  console.log(py.runPython(\"import sys; sys.path.insert(0, '/probe'); import mytrader.stack_spec as s; "
        "f'{sys.version_info[:2]} {len(s.FUNCTIONS)}'\")); });\n")
    # When CPython 3.13 (Pyodide) imports it
    res = subprocess.run([node(), str(script), str(compiler() / "node_modules" / "pyodide"), str(pkg)],
                         capture_output=True, text=True, timeout=120)
    # Then the byte code ran, not the source
    assert res.returncode == 0, res.stderr[-1000:]
    assert res.stdout.strip().splitlines()[-1] == "(3, 13) 5"
