"""Builds each function's dependencies from its settings, once per container."""
from __future__ import annotations

from datetime import timedelta

from mytrader.pipeline.adapters import (
    Aws,
    DynamoSentimentCache,
    DynamoTokenBudget,
    Params,
    S3MarketData,
    broker_credentials,
    make_clock,
)
from mytrader.pipeline.execution import ExecDeps
from mytrader.pipeline.settings import PipelineSettings
from mytrader.portfolio import Costs
from mytrader.stack_spec import DECISION_MAX_AGE_S
from mytrader.tradelog import TradeLog


def market_source(settings: PipelineSettings, aws: Aws):
    if settings.market_data == "alpaca":
        from mytrader.market.sources import AlpacaMarketData

        key, secret = broker_credentials(settings, aws)
        return AlpacaMarketData(key, secret, base_url=settings.alpaca_data_url)
    return S3MarketData(aws.s3, settings.data_bucket)


def news_context(settings: PipelineSettings, aws: Aws):
    if settings.news_source == "none":
        return None
    from mytrader.sentiment.context import NewsContext
    from mytrader.sentiment.scoring import ComprehendScorer, LexiconScorer, SentimentAnalyzer

    scorer = ComprehendScorer(aws.comprehend) if settings.sentiment_scorer == "comprehend" else LexiconScorer()
    cache = DynamoSentimentCache(aws.dynamodb, settings.sentiment_table) if settings.sentiment_table else None
    if settings.news_source == "alpaca":
        from mytrader.sentiment.news import AlpacaNewsSource

        key, secret = broker_credentials(settings, aws)
        return NewsContext(AlpacaNewsSource(key, secret, base_url=settings.alpaca_data_url),
                           SentimentAnalyzer(scorer, cache))
    from mytrader.sentiment.news import CsvHeadlineSource

    body = aws.s3.get_object(Bucket=settings.data_bucket, Key="news/headlines.csv")["Body"].read().decode("utf-8", "replace")
    return NewsContext(CsvHeadlineSource(text=body), SentimentAnalyzer(scorer, cache), market_wide=True)


def decision_cycle_deps(settings: PipelineSettings, aws: Aws | None = None):
    from mytrader.pipeline.decision_cycle import CycleDeps  # numpy/TA-Lib: the decision cycle only

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
        from mytrader.broker import AlpacaBroker

        key, secret = broker_credentials(settings, aws)
        return AlpacaBroker(key, secret, base_url=settings.alpaca_trading_url)
    from mytrader.broker import PaperBroker

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
    from mytrader.pipeline.learning import FinetuneTasks

    aws = aws or Aws()
    params = Params(settings, aws.ssm)
    tl = TradeLog(aws.dynamodb, settings.trade_log_table)
    tasks = FinetuneTasks(prefix=settings.param_prefix, bedrock=aws.client("bedrock"), runtime=aws.bedrock_runtime,
                          ssm=aws.ssm, s3=aws.s3, sns=aws.client("sns"), sfn=aws.client("stepfunctions"), tl=tl,
                          bucket=settings.data_bucket, role_arn=settings.bedrock_role_arn,
                          topic_arn=settings.alarm_topic_arn)
    return tasks, tl, market_source(settings, aws), make_clock(settings, params), aws
