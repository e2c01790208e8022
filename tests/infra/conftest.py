"""Infra tests read the synthesized template from the cache the embedded AWS uses (iam/template.py: synthesized
once per hash of its inputs, under a file lock, so two xdist workers or a parallel `make demo` synthesize it once;
bundling skipped). One test builds the real layer."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
sys.path[:0] = [str(ROOT / "cdk")]


def synth(outdir: Path, context: dict | None = None, nag: bool = True) -> dict:
    from app import build_app

    app = build_app(context={"aws:cdk:bundling-stacks": [], **(context or {})}, outdir=str(outdir), nag=nag)
    assembly = app.synth()
    stack = assembly.stacks[0]
    return json.loads(Path(stack.template_full_path).read_text())


@pytest.fixture(scope="session")
def cdk_out() -> Path:
    """The cloud assembly of the deployed settings (cdk.json as it is): cached, do not write into it."""
    from mytrader_tools.embedded.iam.template import assembly_dir

    return assembly_dir({})


@pytest.fixture(scope="session")
def template(cdk_out) -> dict:
    return json.loads((cdk_out / "MyTrader.template.json").read_text())


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}
