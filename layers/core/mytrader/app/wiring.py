"""Builds each function's dependencies from its settings, once per container.

Each builder returns one named, frozen object; the handlers read its attributes. Heavy modules (numpy and
TA-Lib through the decision cycle, the learning use cases) are imported by the builder that needs them only.
"""
from __future__ import annotations

from dataclasses import dataclass
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

    from mytrader.adapters.aws.clients import S3Client
    from mytrader.ports import (
        Broker,
        Clock,
        DeadLetterQueue,
        DecisionQueue,
        MarketData,
        News,
        QuoteSource,
        SentimentCache,
    )
    from mytrader.usecases.decide import CycleDeps
    from mytrader.usecases.learn import FinetuneTasks


@dataclass(frozen=True)
class ExecutorDeps:
    """The executor's dependencies."""
    execution: ExecDeps
    clock: Clock


@dataclass(frozen=True)
class OutcomesDeps:
    """The outcomes function's: the executor's (it closes positions the same way) and the queues."""
    execution: ExecDeps
    clock: Clock
    market: MarketData
    queue: DecisionQueue  # decisions stuck in PENDING are sent again
    dead_letters: DeadLetterQueue | None  # None without a DLQ url


@dataclass(frozen=True)
class ExportDeps:
    """The dataset export's: the trade log, the bars outcomes are labelled from, the clock and the bucket."""
    tradelog: TradeLog
    market: MarketData
    clock: Clock
    s3: S3Client
    bucket: str


@cache
def alpaca_http(key_id: str, secret_key: str) -> requests.Session:
    """One Alpaca HTTP session per container and key pair, shared by market data, news and the broker."""
    from mytrader.adapters.alpaca.session import alpaca_session

    return alpaca_session(key_id, secret_key)


def market_source(settings: PipelineSettings, aws: Aws) -> MarketData:
    if settings.market_data == "alpaca":
        from mytrader.adapters.alpaca.market_data import AlpacaMarketData

        key, secret = broker_credentials(settings, aws)
        return AlpacaMarketData(key, secret, base_url=settings.alpaca_data_url, feed=settings.alpaca_feed,
                                session=alpaca_http(key, secret))
    return S3MarketData(aws.s3, settings.data_bucket)


def news_context(settings: PipelineSettings, aws: Aws) -> News | None:
    if settings.news_source == "none" or not settings.llm_enabled:  # LLM off: no sentiment, no Comprehend call
        return None
    from mytrader.adapters.aws.comprehend import ComprehendScorer
    from mytrader.sentiment.context import NewsContext
    from mytrader.sentiment.scoring import LexiconScorer, Scorer, SentimentAnalyzer

    scorer: Scorer = ComprehendScorer(aws.comprehend) if settings.sentiment_scorer == "comprehend" else LexiconScorer()
    cache: SentimentCache | None = (DynamoSentimentCache(aws.dynamodb, settings.sentiment_table)
                                    if settings.sentiment_table else None)
    if settings.news_source == "alpaca":
        from mytrader.adapters.alpaca.news import AlpacaNewsSource

        key, secret = broker_credentials(settings, aws)
        return NewsContext(AlpacaNewsSource(key, secret, base_url=settings.alpaca_data_url,
                                            session=alpaca_http(key, secret)),
                           SentimentAnalyzer(scorer, cache))
    from mytrader.sentiment.news import CsvHeadlineSource

    raw: bytes = aws.s3.get_object(Bucket=settings.data_bucket, Key="news/headlines.csv")["Body"].read()
    return NewsContext(CsvHeadlineSource(text=raw.decode("utf-8", "replace")), SentimentAnalyzer(scorer, cache),
                       market_wide=True)


def decision_cycle_deps(settings: PipelineSettings, aws: Aws | None = None) -> CycleDeps:
    from mytrader.adapters.aws.queue import SqsDecisionQueue
    from mytrader.usecases.decide import CycleDeps  # numpy/TA-Lib: the decision cycle only

    aws = aws or Aws()
    params = Params(settings, aws.ssm)
    tl = TradeLog(aws.dynamodb, settings.trade_log_table)
    return CycleDeps(tradelog=tl, market=market_source(settings, aws), news=news_context(settings, aws),
                     advisor_client=aws.bedrock_runtime, queue=SqsDecisionQueue(aws.sqs, settings.decisions_queue_url),
                     s3=aws.s3, bucket=settings.data_bucket, params=params, settings=settings,
                     budget=DynamoTokenBudget(tl, settings.trading_config("consensus", "x").advisor.daily_token_budget))


def broker(settings: PipelineSettings, aws: Aws, costs: Costs, tradelog: TradeLog, clock: Clock,
           quotes: QuoteSource) -> Broker:
    """Alpaca, or the paper broker: it queues orders sent while the market is closed and fills them at the next
    open at `quotes`' open price, once `clock` says that open has passed."""
    if settings.broker == "alpaca":
        from mytrader.adapters.alpaca.broker import AlpacaBroker

        key, secret = broker_credentials(settings, aws)
        return AlpacaBroker(key, secret, base_url=settings.alpaca_trading_url, session=alpaca_http(key, secret),
                            order_id_prefix=settings.alpaca_order_prefix)
    from mytrader.adapters.paper_broker import PaperBroker

    return PaperBroker(tradelog, costs, clock, quotes)


def _execution(settings: PipelineSettings, aws: Aws, market: MarketData, clock: Clock) -> ExecDeps:
    # The executor needs the risk limits and costs, not the mode: no parameter is read to build it.
    cfg = settings.trading_config("consensus", "n/a")
    costs = Costs(cfg.fee_bps, cfg.slippage_bps)
    tl = TradeLog(aws.dynamodb, settings.trade_log_table)
    execution = ExecDeps(tradelog=tl, broker=broker(settings, aws, costs, tl, clock, market), quotes=market, cfg=cfg,
                         max_age=timedelta(seconds=DECISION_MAX_AGE_S), universe=settings.universe,
                         max_future=settings.decision_max_future)
    execution.tradelog.ensure_account(cfg.initial_equity)
    return execution


def executor_deps(settings: PipelineSettings, aws: Aws | None = None) -> ExecutorDeps:
    aws = aws or Aws()
    clock = make_clock(settings, Params(settings, aws.ssm))
    return ExecutorDeps(execution=_execution(settings, aws, market_source(settings, aws), clock), clock=clock)


def outcomes_deps(settings: PipelineSettings, aws: Aws | None = None) -> OutcomesDeps:
    """The market data that quotes closes also finds the bars they are checked against (one cache)."""
    from mytrader.adapters.aws.queue import SqsDeadLetterQueue, SqsDecisionQueue  # outcomes only, not the executor

    aws = aws or Aws()
    clock = make_clock(settings, Params(settings, aws.ssm))
    market = market_source(settings, aws)
    return OutcomesDeps(execution=_execution(settings, aws, market, clock), clock=clock, market=market,
                        queue=SqsDecisionQueue(aws.sqs, settings.decisions_queue_url),
                        dead_letters=SqsDeadLetterQueue(aws.sqs, settings.decisions_dlq_url)
                        if settings.decisions_dlq_url else None)


def dataset_export_deps(settings: PipelineSettings, aws: Aws | None = None) -> ExportDeps:
    """The export reads bars from the configured market source: with Alpaca data that reads the broker secret (the
    stack grants it then), with S3 data the `market-data/` prefix."""
    aws = aws or Aws()
    return ExportDeps(tradelog=TradeLog(aws.dynamodb, settings.trade_log_table), market=market_source(settings, aws),
                      clock=make_clock(settings, Params(settings, aws.ssm)), s3=aws.s3, bucket=settings.data_bucket)


def finetune_tasks(settings: PipelineSettings, aws: Aws | None = None) -> FinetuneTasks:
    """The workflow's tasks: Bedrock, SSM, S3, SNS and the trade log only -- no market source, no broker secret."""
    from mytrader.usecases.learn import FinetuneTasks

    aws = aws or Aws()
    return FinetuneTasks(prefix=settings.param_prefix, bedrock=aws.bedrock, runtime=aws.bedrock_runtime_retrying,
                         ssm=aws.ssm, s3=aws.s3, sns=aws.sns, tl=TradeLog(aws.dynamodb, settings.trade_log_table),
                         bucket=settings.data_bucket, role_arn=settings.bedrock_role_arn,
                         topic_arn=settings.alarm_topic_arn)
