"""Infra tests synthesize the CDK app once (bundling skipped; one test builds the real layer)."""
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
def cdk_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cdk.out")
    synth(out)
    return out


@pytest.fixture(scope="session")
def template(cdk_out) -> dict:
    return json.loads((cdk_out / "MyTrader.template.json").read_text())


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}
