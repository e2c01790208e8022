"""The decision engine: features + strategy + sentiment + LLM advice -> one TradeDecision.

TradeAdvisor rules (the product's modes):
- baseline: the strategy alone; advisory: the strategy decides, the LLM is only logged;
- consensus: entries need the strategy and the LLM to agree; a risk-reducing exit needs either one;
- override: the LLM decides (the strategy when the LLM is unavailable: graceful degradation).
The LLM's advice below the confidence threshold counts as HOLD. Sizes and levels are clamped to the
risk limits and ATR bounds whatever the model or the strategy's hooks say. Both drivers (backtester and
decision-cycle Lambda) call `decide`, so they take identical decisions.

The strategy (mytrader.strategies) gives the signal per bar, may set its own stop/target and size for an
entry, and sets the time limit. Its exit signal is reduce-only: while flat it is a HOLD. Errors of its code
surface as StrategyError (the decision cycle records that symbol's cycle as SKIPPED with the reason).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from mytrader.advisor.prompt import PromptInputs, prepare_headlines, strategy_payload
from mytrader.models import (
    Action,
    Mode,
    QueryMemo,
    RiskLevel,
    TimeHorizon,
    TradeDecision,
    make_decision_id,
)
from mytrader.strategies import StrategyError, load_strategy, signal_at

if TYPE_CHECKING:
    from mytrader.advisor.llm import LlmAdvisor
    from mytrader.config import TradingConfig
    from mytrader.features import FeatureFrame
    from mytrader.models import FeatureVector, LlmAdvice, LlmCall, Position, SentimentScore, StrategySignal
    from mytrader.strategies import Strategy, StrategyArrays, StrategyData

RISK_FACTOR = {RiskLevel.LOW: 1.0, RiskLevel.MEDIUM: 0.75, RiskLevel.HIGH: 0.5}
TARGET_DAILY_VOL = 0.025  # positions shrink when ATR/price exceeds this


def should_query(cfg: TradingConfig, strategy_action: int, holding: bool, i: int, rsi: float, sentiment: float,
                 regime: str, last: QueryMemo | None) -> bool:
    """Conditional querying: skip the LLM when the strategy says HOLD and nothing material changed."""
    if cfg.mode == Mode.BASELINE:
        return False
    if strategy_action != 0 or last is None:
        return True
    age = i - last.bar_index
    if age >= cfg.advisor.requery_max_age_bars * (1 if holding else 2):
        return True
    change = abs(rsi - last.rsi) / 50 + abs(sentiment - last.sentiment) + (0.3 if regime != last.regime else 0.0)
    return change >= cfg.advisor.requery_change_threshold


@dataclass
class DecisionContext:
    frame: FeatureFrame
    arrays: StrategyArrays
    i: int
    sentiment: SentimentScore
    headlines: list[str]
    position: Position | None
    equity: float
    last_query: QueryMemo | None = None


class DecisionEngine:
    def __init__(self, cfg: TradingConfig, advisor: LlmAdvisor | None, record_prompts: bool = True,
                 strategy: Strategy | None = None):
        """`record_prompts`: log what the prompt carries with every decision (the pipeline does, for the
        dataset export); a throughput backtest without an advisor may skip it. `strategy`: the one whose
        arrays the drivers pass in the context (default: the config's, loaded and checked on first use)."""
        self.cfg, self.advisor, self.record_prompts = cfg, advisor, record_prompts
        self._strategy = strategy
        self._version: str | None = None

    @property
    def version(self) -> str:
        """Part of every decision_id: the config's hash with the strategy's fingerprint (its name, version,
        parameters and settings). A strategy that cannot load leaves the config's hash (its cycle is skipped)."""
        if self._version is None:
            try:
                fingerprint = self.strategy.fingerprint()
            except StrategyError:
                return self.cfg.version
            self._version = hashlib.sha256(f"{self.cfg.version}|{fingerprint}".encode()).hexdigest()[:12]
        return self._version

    @property
    def strategy(self) -> Strategy:
        """The strategy of the decisions; loading the config's may raise StrategyError (one line)."""
        if self._strategy is None:
            self._strategy = load_strategy(self.cfg.strategy.name, self.cfg.strategy.params)
        return self._strategy

    def prompt_inputs(self, ctx: DecisionContext, row: FeatureVector | None = None,
                      signal: StrategySignal | None = None) -> tuple[PromptInputs, int]:
        f = row or ctx.frame.row(ctx.i)
        cfg = self.cfg
        headlines, flags = prepare_headlines(ctx.headlines)
        sig = signal or signal_at(ctx.arrays, ctx.i)
        pos = ctx.position
        position: dict[str, str | float | int]
        if pos is None or pos.qty == 0:
            position = {"side": "flat"}
        else:
            position = {"side": "long" if pos.qty > 0 else "short", "bars": pos.bars_held,
                        "pnl_pct": round((f.close / pos.avg_price - 1) * 100 * (1 if pos.qty > 0 else -1), 2)}
        anon = cfg.advisor.anonymise
        inputs = PromptInputs(
            symbol="ASSET" if anon else f.symbol, date=None if anon else f.ts.date().isoformat(),
            price=round(f.close, 4),
            features={"rsi": round(f.rsi, 1), "macd_atr": round(f.macd_hist / f.atr, 3) if f.atr else 0.0,
                      "bb_pct_b": round(f.bb_pct_b, 3), "atr_pct": round(f.atr_pct, 4), "vol": round(f.volatility, 3),
                      "volume_z": round(f.volume_z, 2), "ret_5": round(f.ret_5, 4), "ret_20": round(f.ret_20, 4),
                      "sma_gap": round(f.sma_fast / f.sma_slow - 1, 4), "regime": f.regime_trend,
                      "vol_regime": f.regime_vol},
            strategy=strategy_payload(self.strategy.strategy_name(), sig),
            sentiment={"score": ctx.sentiment.score, "n": ctx.sentiment.n_items},
            position=position,
            limits={"max_pct": cfg.risk.max_position_pct, "allow_short": cfg.allow_short},
            headlines=headlines,
        )
        return inputs, flags

    def decide(self, ctx: DecisionContext, decided_at: datetime) -> tuple[TradeDecision, QueryMemo | None]:
        cfg, i = self.cfg, ctx.i
        source = ctx.arrays.source
        if source and source != self.strategy.fingerprint():
            raise StrategyError(f"the signals come from another strategy ({source}) than the engine's "
                                f"{self.strategy.label} ({self.strategy.fingerprint()})")
        row = ctx.frame.row(i)
        signal = signal_at(ctx.arrays, i)
        holding = ctx.position is not None and ctx.position.qty != 0
        opens = bool(ctx.arrays.opens[i])
        advice: LlmAdvice | None = None
        llm: LlmCall | None = None
        inputs: PromptInputs | None = None
        memo = ctx.last_query
        advisor = self.advisor
        signal_action = int(ctx.arrays.action[i]) if holding or opens else 0  # an exit while flat: nothing new
        if advisor is not None and should_query(
                cfg, signal_action, holding, i, row.rsi, ctx.sentiment.score, row.regime_trend, memo):
            inputs, flags = self.prompt_inputs(ctx, row, signal)
            advice, llm = advisor.advise(inputs, row.ts.date().isoformat(), flags)
            memo = QueryMemo(i, row.rsi, ctx.sentiment.score, row.regime_trend)
        elif self.record_prompts:
            inputs, _ = self.prompt_inputs(ctx, row, signal)
        action, confidence, reason = self._combine(signal, advice, ctx.position, opens)
        size, stop, target, horizon = self._size_and_levels(
            action, confidence, advice, row.close, row.atr, row.atr_pct, ctx.position, ctx.arrays.data, i,
            self.strategy.time_limit(cfg.time_limit_bars))
        decision = TradeDecision(
            decision_id=make_decision_id(row.symbol, row.ts, self.version), symbol=row.symbol, bar_ts=row.ts,
            decided_at=decided_at, config_version=self.version, mode=cfg.mode, action=action,
            confidence=round(confidence, 3), position_size_pct=size, reference_price=row.close, stop_loss=stop,
            take_profit=target, time_horizon_bars=horizon, strategy=signal, advice=advice, llm=llm,
            sentiment=ctx.sentiment, features=row, reason=reason,
            prompt_inputs=inputs.model_dump(mode="json") if inputs is not None and self.record_prompts else None,
            sizing_equity=round(ctx.equity, 2),
        )
        return decision, memo

    def _combine(self, signal: StrategySignal, advice: LlmAdvice | None, position: Position | None,
                 opens: bool = True) -> tuple[Action, float, str]:
        cfg = self.cfg
        side = 0 if position is None or position.qty == 0 else (1 if position.qty > 0 else -1)
        if side == 0 and not opens and signal.action != Action.HOLD:  # a reduce-only exit with nothing to reduce
            signal = signal.model_copy(update={"action": Action.HOLD,
                                               "reason": f"{signal.reason} (an exit: nothing to close)"})
        llm_action = Action.HOLD
        if advice is not None and advice.confidence >= cfg.advisor.min_confidence:
            llm_action = advice.decision
        mode = cfg.mode
        if mode == Mode.OVERRIDE and advice is not None:
            action, conf = llm_action, advice.confidence
            reason = f"llm: {advice.reasoning}"
        elif mode in (Mode.BASELINE, Mode.ADVISORY, Mode.OVERRIDE):  # override without an answer: the strategy
            action, conf = signal.action, signal.confidence
            reason = f"strategy: {signal.reason}" + (" (LLM unavailable)" if mode == Mode.OVERRIDE else "")
        else:
            action, conf, reason = _consensus(signal, advice, llm_action, side)
        # translate to what the position allows: no pyramiding, long-only unless shorting is on
        if action == Action.BUY and side > 0 or action == Action.SELL and side < 0:
            return Action.HOLD, conf, reason + " (already positioned)"
        if action == Action.SELL and side == 0 and not cfg.allow_short:
            return Action.HOLD, conf, reason + " (long-only: nothing to sell)"
        return action, conf, reason

    def _size_and_levels(self, action: Action, confidence: float, advice: LlmAdvice | None, price: float, atr: float,
                         atr_pct: float, position: Position | None, data: StrategyData | None = None, i: int = 0,
                         time_limit: int | None = None) -> tuple[float, float | None, float | None, int]:
        """Size, stop, target and horizon of an entry. `data`/`i`: the strategy's hooks (None: the engine's
        defaults only, as the executor's admission asks); `time_limit`: the strategy's (None: the config's)."""
        cfg = self.cfg
        horizon = time_limit if time_limit is not None else cfg.time_limit_bars
        opening = action != Action.HOLD and (position is None or position.qty == 0)
        if not opening:
            return 0.0, None, None, horizon
        sign = 1 if action == Action.BUY else -1
        lead = advice if advice is not None and cfg.mode in (Mode.CONSENSUS, Mode.OVERRIDE) else None  # LLM-led
        size = self._size(confidence, lead, atr_pct, data, i)
        stop, target = self._levels(sign, lead, price, atr, data, i)
        if lead is not None:
            horizon = {TimeHorizon.INTRADAY: 2, TimeHorizon.DAYS: horizon,
                       TimeHorizon.WEEKS: horizon * 2}[lead.time_horizon]
        return size, stop, target, horizon

    def _size(self, confidence: float, lead: LlmAdvice | None, atr_pct: float, data: StrategyData | None,
              i: int) -> float:
        """The LLM's size when it leads; else the strategy's own (its hook), else max % x confidence scaled
        down in high volatility. Never above the risk limit."""
        risk = self.cfg.risk
        if lead is None and data is not None:
            own = self.strategy.sizing(data, i, confidence, risk.max_position_pct)
            if own is not None:
                return round(min(risk.max_position_pct, own), 2)
        requested = lead.position_size_pct if lead is not None else risk.max_position_pct * confidence
        risk_level = lead.risk_assessment if lead is not None else RiskLevel.MEDIUM
        vol_factor = min(1.0, TARGET_DAILY_VOL / atr_pct) if atr_pct > 0 else 1.0
        return round(min(risk.max_position_pct, requested) * vol_factor * RISK_FACTOR[risk_level], 2)

    def _levels(self, sign: int, lead: LlmAdvice | None, price: float, atr: float, data: StrategyData | None,
                i: int) -> tuple[float, float]:
        """2 and 3 ATRs, or the strategy's own levels (its hook), or the LLM's when it leads and gives them;
        clamped to the risk limits' ATR bounds."""
        risk = self.cfg.risk
        stop_dist, target_dist = 2.0 * atr, 3.0 * atr
        own_stop, own_target = self.strategy.levels(data, i, sign, price) if data is not None else (None, None)
        if own_stop is not None:
            stop_dist = abs(price - own_stop)
        if own_target is not None:
            target_dist = abs(own_target - price)
        if lead is not None and lead.stop_loss is not None:
            stop_dist = abs(price - lead.stop_loss)
        if lead is not None and lead.take_profit is not None:
            target_dist = abs(lead.take_profit - price)
        stop_dist = min(max(stop_dist, risk.stop_atr_min * atr), risk.stop_atr_max * atr)
        target_dist = min(max(target_dist, risk.target_atr_min * atr), risk.target_atr_max * atr)
        return _toward(price - sign * stop_dist, price), _toward(price + sign * target_dist, price)


def _consensus(signal: StrategySignal, advice: LlmAdvice | None, llm_action: Action,
               side: int) -> tuple[Action, float, str]:
    """Consensus mode: an entry needs both, a risk-reducing exit either one."""
    reducing = (side > 0 and Action.SELL in (signal.action, llm_action)) or \
               (side < 0 and Action.BUY in (signal.action, llm_action))
    if reducing:
        conf = max(signal.confidence, advice.confidence if advice else 0.0)
        return Action.SELL if side > 0 else Action.BUY, conf, "exit: strategy or LLM wants out"
    if advice is not None and signal.action == llm_action and signal.action != Action.HOLD:  # llm_action needs advice
        return (signal.action, (signal.confidence + advice.confidence) / 2,
                f"consensus: {signal.reason}; llm: {advice.reasoning}")
    return Action.HOLD, signal.confidence, f"no consensus (strategy {signal.action.value}, llm {llm_action.value})"


def _toward(level: float, price: float, digits: int = 4) -> float:
    """Round a level to `digits` decimals toward the entry price, so rounding never widens a clamped bound."""
    scale: int = 10 ** digits
    return (math.ceil(level * scale) if level < price else math.floor(level * scale)) / scale
