"""The one way a MyTrader function is made: runtime, architecture, the shared layer, Powertools env,
JSON logs, X-Ray tracing, a log group with retention, and the timeout and memory from stack_spec. The functions
that load the strategy get the user's strategy file in their code (strategy_asset.py)."""
from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from mytrader.stack_spec import FUNCTIONS

from .strategy_asset import PackagedStrategy, function_asset

REPO = Path(__file__).resolve().parents[2]
RUNTIME = lambda_.Runtime.PYTHON_3_13  # fixed by the product card
METRICS_NAMESPACE = "MyTrader"
LOCAL_BYTECODE = ["__pycache__", "*.pyc"]  # left by local runs; not for Python 3.13, and it would change the asset hash


def service_name(key: str) -> str:
    """Powertools' service dimension of a function's metrics (the same whatever the stack prefix)."""
    return f"mytrader-{FUNCTIONS[key].name_suffix}"


def make_function(scope: Construct, key: str, *, prefix: str, layer: lambda_.ILayerVersion, arch: str,
                  env: dict[str, str], log_level: str = "INFO",
                  strategy: PackagedStrategy | None = None) -> lambda_.Function:
    """`strategy`: the user's strategy file, packaged into this function's code (for those that load it)."""
    spec = FUNCTIONS[key]
    folder = REPO / "lambdas" / spec.folder
    log_group = logs.LogGroup(scope, f"{key}-logs", log_group_name=f"/aws/lambda/{spec.name(prefix)}",
                              retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY)
    return lambda_.Function(
        scope, f"{key}-fn", function_name=spec.name(prefix), runtime=RUNTIME,
        architecture=lambda_.Architecture.ARM_64 if arch == "arm64" else lambda_.Architecture.X86_64,
        handler="handler.lambda_handler",
        code=lambda_.Code.from_asset(str(function_asset(folder, strategy) if strategy else folder),
                                     exclude=LOCAL_BYTECODE),
        layers=[layer], timeout=Duration.seconds(spec.timeout_s), memory_size=spec.memory_mb,
        tracing=lambda_.Tracing.ACTIVE, log_group=log_group, logging_format=lambda_.LoggingFormat.JSON,
        description=f"MyTrader {key}: {spec.why}",
        environment={"POWERTOOLS_SERVICE_NAME": service_name(key),
                     "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE, "POWERTOOLS_LOG_LEVEL": log_level,
                     **env})
