#!/usr/bin/env python3
"""CDK app: `cdk synth` / `cdk deploy` (or `make synth`). Works offline, without credentials or Docker."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "cdk"), str(REPO / "layers" / "core")]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from mytrader_infra.settings import DeploySettings  # noqa: E402
from mytrader_infra.stack import MyTraderStack  # noqa: E402

FEATURE_FLAGS = {
    # server access logs are delivered through a bucket policy, not the legacy LogDeliveryWrite ACL
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None, nag: bool = True) -> cdk.App:
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})}, outdir=outdir or None)
    settings = DeploySettings.from_context(app.node)
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
                          region=os.environ.get("CDK_DEFAULT_REGION", "us-east-1"))
    MyTraderStack(app, "MyTrader" if settings.prefix == "mytrader" else f"MyTrader-{settings.prefix}",
                  settings=settings, env=env)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    build_app(outdir=os.environ.get("CDK_OUTDIR", str(REPO / "cdk.out"))).synth()
