"""Builds each function's dependencies from its settings, once per container."""
from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING

from mytrader.adapters.aws.clients import Aws
from mytrader.adapters.aws.dynamo_caches import DynamoSentimentCache, DynamoTokenBudget
from mytrader.adapters.aws.parameters import Params, make_clock
from mytrader.adapters.aws.s3_market_data import S3MarketData
from mytrader.adapters.aws.secrets import broker_credentials
from mytrader.adapters.tradelog import TradeLog
from mytrader.app.settings import PipelineSettings
from mytrader.portfolio import Costs
from mytrader.stack_spec import DECISION_MAX_AGE_S
from mytrader.usecases.execute import ExecDeps

if TYPE_CHECKING:
    import requests


@cache
def alpaca_http(key_id: str, secret_key: str) -> requests.Session:
    """One Alpaca HTTP session per container and key pair, shared by market data, news and the broker."""
    from mytrader.adapters.alpaca.session import alpaca_session

    return alpaca_session(key_id, secret_key)


def market_source(settings: PipelineSettings, aws: Aws):
    if settings.market_data == "alpaca":
        from mytrader.adapters.alpaca.market_data import AlpacaMarketData

        key, secret = broker_credentials(settings, aws)
        return AlpacaMarketData(key, secret, base_url=settings.alpaca_data_url, session=alpaca_http(key, secret))
    return S3MarketData(aws.s3, settings.data_bucket)


def news_context(settings: PipelineSettings, aws: Aws):
    if settings.news_source == "none":
        return None
    from mytrader.adapters.aws.comprehend import ComprehendScorer
    from mytrader.sentiment.context import NewsContext
    from mytrader.sentiment.scoring import LexiconScorer, SentimentAnalyzer

    scorer = ComprehendScorer(aws.comprehend) if settings.sentiment_scorer == "comprehend" else LexiconScorer()
    cache = DynamoSentimentCache(aws.dynamodb, settings.sentiment_table) if settings.sentiment_table else None
    if settings.news_source == "alpaca":
        from mytrader.adapters.alpaca.news import AlpacaNewsSource

        key, secret = broker_credentials(settings, aws)
        return NewsContext(AlpacaNewsSource(key, secret, base_url=settings.alpaca_data_url,
                                            session=alpaca_http(key, secret)),
                           SentimentAnalyzer(scorer, cache))
    from mytrader.sentiment.news import CsvHeadlineSource

    body = aws.s3.get_object(Bucket=settings.data_bucket, Key="news/headlines.csv")["Body"].read().decode("utf-8", "replace")
    return NewsContext(CsvHeadlineSource(text=body), SentimentAnalyzer(scorer, cache), market_wide=True)


def decision_cycle_deps(settings: PipelineSettings, aws: Aws | None = None):
    from mytrader.usecases.decide import CycleDeps  # numpy/TA-Lib: the decision cycle only

    aws = aws or Aws()
    params = Params(settings, aws.ssm)
    tl = TradeLog(aws.dynamodb, settings.trade_log_table)
    return CycleDeps(tradelog=tl, market=market_source(settings, aws), news=news_context(settings, aws),
                     advisor_client=aws.bedrock_runtime, sqs=aws.sqs, queue_url=settings.decisions_queue_url,
                     s3=aws.s3, bucket=settings.data_bucket, params=params, settings=settings,
                     budget=DynamoTokenBudget(aws.dynamodb, settings.trade_log_table,
                                              settings.trading_config("consensus", "x").advisor.daily_token_budget),
                     crash_before_send=settings.fault_crash_before_send)


def broker(settings: PipelineSettings, aws: Aws, costs: Costs):
    if settings.broker == "alpaca":
        from mytrader.adapters.alpaca.broker import AlpacaBroker

        key, secret = broker_credentials(settings, aws)
        return AlpacaBroker(key, secret, base_url=settings.alpaca_trading_url, session=alpaca_http(key, secret))
    from mytrader.adapters.paper_broker import PaperBroker

    return PaperBroker(aws.dynamodb, settings.trade_log_table, costs)


def exec_deps(settings: PipelineSettings, aws: Aws | None = None):
    """Executor and outcomes share these; returns (deps, clock, market)."""
    aws = aws or Aws()
    params = Params(settings, aws.ssm)
    cfg = settings.trading_config(params.get("MODE"), "n/a")
    costs = Costs(cfg.fee_bps, cfg.slippage_bps)
    market = market_source(settings, aws)
    deps = ExecDeps(tradelog=TradeLog(aws.dynamodb, settings.trade_log_table), broker=broker(settings, aws, costs),
                    quotes=market, params=params, cfg=cfg, max_age=timedelta(seconds=DECISION_MAX_AGE_S),
                    idempotent=settings.idempotency, crash_after_broker=settings.fault_crash_after_broker,
                    broker_error_rate=settings.fault_broker_error_rate)
    deps.tradelog.ensure_account(cfg.initial_equity)
    return deps, make_clock(settings, params), market, aws


def learning_deps(settings: PipelineSettings, aws: Aws | None = None):
    """Dataset export and fine-tuning tasks: (tasks, tradelog, market, clock, aws)."""
    from mytrader.usecases.learn import FinetuneTasks

    aws = aws or Aws()
    params = Params(settings, aws.ssm)
    tl = TradeLog(aws.dynamodb, settings.trade_log_table)
    tasks = FinetuneTasks(prefix=settings.param_prefix, bedrock=aws.client("bedrock"), runtime=aws.bedrock_runtime,
                          ssm=aws.ssm, s3=aws.s3, sns=aws.client("sns"), sfn=aws.client("stepfunctions"), tl=tl,
                          bucket=settings.data_bucket, role_arn=settings.bedrock_role_arn,
                          topic_arn=settings.alarm_topic_arn)
    return tasks, tl, market_source(settings, aws), make_clock(settings, params), aws
