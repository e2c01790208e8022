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
def layer_dir(tmp_path_factory) -> Path:
    from app import build_app

    out = tmp_path_factory.mktemp("cdk.out.bundled")
    build_app(outdir=str(out)).synth()
    template = json.loads((out / "MyTrader.template.json").read_text())
    (layer,) = [v for v in template["Resources"].values() if v["Type"] == "AWS::Lambda::LayerVersion"]
    asset_hash = layer["Properties"]["Content"]["S3Key"].split(".")[0]
    manifest = json.loads((out / "MyTrader.assets.json").read_text())
    return out / manifest["files"][asset_hash]["source"]["path"] / "python"


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


def test_layer_ships_the_domain_but_not_the_local_stack_or_cli(layer_dir):
    pkg = layer_dir / "mytrader"
    assert (pkg / "engine.py").exists() and (pkg / "data" / "xnys_sessions.json").exists()
    assert (pkg / "data" / "finetune.asl.json").exists()
    assert not (pkg / "local").exists() and not (pkg / "cli.py").exists()
    assert not list(layer_dir.rglob("pandas")) and not list(layer_dir.rglob("moto"))


def test_layer_fits_lambda_limits(layer_dir):
    size = sum(p.stat().st_size for p in layer_dir.rglob("*") if p.is_file())
    assert size < 150 * 1024 * 1024, size / 1e6
    assert (ROOT / ".build").exists()
