"""The MyTrader stack: assembles the capability constructs; it creates nothing itself but the layer."""
from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .bundling import LAYER_SRC, layer_bundling
from .decisions import Decisions
from .execution import Execution
from .functions import RUNTIME
from .learning import Learning
from .monitoring import Monitoring
from .nag import acknowledge_findings
from .settings import DeploySettings
from .storage import Storage


class MyTraderStack(Stack):
    def __init__(self, scope: Construct, id: str, *, settings: DeploySettings, **kw: Any) -> None:
        super().__init__(scope, id, **kw)
        s = settings
        Tags.of(self).add("mytrader:stack", s.prefix)
        arch = lambda_.Architecture.ARM_64 if s.architecture == "arm64" else lambda_.Architecture.X86_64
        self.layer = lambda_.LayerVersion(
            self, "core-layer", layer_version_name=f"{s.prefix}-core",
            code=lambda_.Code.from_asset(str(LAYER_SRC), bundling=layer_bundling(s.architecture)),
            compatible_runtimes=[RUNTIME], compatible_architectures=[arch],
            description="mytrader domain library + pinned runtime requirements (boto3, pydantic 2, numpy, TA-Lib)")
        self.storage = Storage(self, "storage", prefix=s.prefix, model_id=s.model_id, mode=s.mode,
                               live_trading=s.live_trading)
        env = {
            "TRADE_LOG_TABLE": self.storage.trade_log.table_name,
            "IDEMPOTENCY_TABLE": self.storage.idempotency.table_name,
            "SENTIMENT_TABLE": self.storage.sentiment_cache.table_name,
            "DATA_BUCKET": self.storage.datasets.bucket_name,
            "PARAM_PREFIX": s.prefix, "CLOCK_SOURCE": "system", "BROKER": s.broker, "MARKET_DATA": s.market_data,
            "NEWS_SOURCE": s.news_source, "SENTIMENT_SCORER": "comprehend",
            "BROKER_SECRET_ARN": self.storage.broker_secret.secret_arn, "ALPACA_TRADING_URL": s.alpaca_trading_url,
            "RISK_JSON": s.risk.model_dump_json(), "LLM_ENABLED": "true" if s.llm_enabled else "false",
            "ALPACA_FEED": s.alpaca_feed, "ALPACA_ORDER_PREFIX": s.order_prefix,
            **({"TRADING_JSON": s.trading_json} if s.trading_json else {}),
        }
        self.monitoring = Monitoring(self, "monitoring", settings=s)
        self.decisions = Decisions(self, "decisions", settings=s, storage=self.storage, layer=self.layer, env=env)
        self.execution = Execution(self, "execution", settings=s, storage=self.storage, decisions=self.decisions,
                                   layer=self.layer, env=env)
        self.learning = Learning(self, "learning", settings=s, storage=self.storage, monitoring=self.monitoring,
                                 layer=self.layer, env=env)
        self.monitoring.wire(decisions=self.decisions, execution=self.execution, learning=self.learning)
        CfnOutput(self, "StateMachineArn", value=self.learning.state_machine.state_machine_arn)
        CfnOutput(self, "DecisionsQueueUrl", value=self.decisions.queue.queue_url)
        CfnOutput(self, "BrokerSecretArn", value=self.storage.broker_secret.secret_arn,
                  description="Put your Alpaca keys here after deploy")
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        acknowledge_findings(self)
