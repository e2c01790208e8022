#!/usr/bin/env python3
"""CDK app: `cdk synth` / `cdk deploy` (or `make synth`). Works offline, without credentials or Docker.

Settings come from the project's config file: mytrader.toml at the repository root (when there is one), or
the file `-c config=PATH` names. `-c KEY=VALUE` with a config key overrides it (`-c llm.enabled=false`,
`-c risk.max_open_positions=3`, `-c universe=AAPL,MSFT`); the stack's own context names (`-c mode=...`,
`-c model_id=...`, mytrader_infra.settings.DeploySettings) still win over the file.
"""
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

from mytrader.app.project_config import DEFAULT_FILE, InputError, context_settings  # noqa: E402
from mytrader_infra.settings import DeploySettings  # noqa: E402
from mytrader_infra.stack import MyTraderStack  # noqa: E402

FEATURE_FLAGS = {
    # server access logs are delivered through a bucket policy, not the legacy LogDeliveryWrite ACL
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None, nag: bool = True) -> cdk.App:
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})}, outdir=outdir or None)
    for key, value in context_settings(app.node.try_get_context, REPO / DEFAULT_FILE).items():
        if app.node.try_get_context(key) is None:  # what -c (or cdk.json) sets wins over the file
            app.node.set_context(key, value)
    settings = DeploySettings.from_context(app.node)
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
                          region=os.environ.get("CDK_DEFAULT_REGION", "us-east-1"))
    MyTraderStack(app, "MyTrader" if settings.prefix == "mytrader" else f"MyTrader-{settings.prefix}",
                  settings=settings, env=env)
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    try:
        build_app(outdir=os.environ.get("CDK_OUTDIR", str(REPO / "cdk.out"))).synth()
    except InputError as exc:
        sys.exit(f"mytrader config: {exc}")
