"""In-process backtester: replays history through exactly the decision code the Lambdas run, no AWS.

Per tick (bar time t), for every symbol with a bar at t, in symbol order:
  1. orders decided at the previous close fill at the open of t (fees, slippage, risk engine);
  2. open positions are checked against bar t: stop-loss, take-profit, time limit;
  3. the decision engine decides as of the close of t.
The pipeline's replay driver runs the same three steps through executor, outcomes and decision cycle.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from mytrader.config import TradingConfig
from mytrader.engine import DecisionContext, DecisionEngine, QueryMemo, should_query
from mytrader.features import FeatureFrame, compute_features
from mytrader.labels import forward_return, label_for_return
from mytrader.market.calendar import session_open_for
from mytrader.market.series import BarSeries
from mytrader.metrics import performance
from mytrader.models import Action, OrderSide, Position, SentimentScore, TradeDecision, TradeOutcome
from mytrader.portfolio import Costs, close_outcome, cooldown_end, exit_on_bar
from mytrader.risk import AccountState, check_entry
from mytrader.sentiment.context import NewsContext
from mytrader.strategy import StrategyArrays, strategy_arrays


@dataclass
class SymbolState:
    series: BarSeries
    frame: FeatureFrame
    arrays: StrategyArrays
    o: list[float]
    h: list[float]
    lo: list[float]
    c: list[float]
    rsi: list[float]
    regime: list[int]
    action: list[int]
    valid: list[bool]
    position: Position | None = None
    entry_fee: float = 0.0
    pending: TradeDecision | None = None
    memo: QueryMemo | None = None


@dataclass
class BacktestResult:
    mode: str
    metrics: dict
    trades: list[TradeOutcome]
    equity: list[tuple[datetime, float]]
    decisions: list[TradeDecision] = field(default_factory=list)
    rejections: Counter = field(default_factory=Counter)
    llm_scored: list[tuple[float, bool]] = field(default_factory=list)  # (confidence, right) per answered call


def prepare(series: BarSeries) -> SymbolState:
    frame = compute_features(series)
    arrays = strategy_arrays(frame)
    return SymbolState(series, frame, arrays, series.open.tolist(), series.high.tolist(), series.low.tolist(),
                       series.close.tolist(), frame.cols["rsi"].tolist(), frame.cols["trend"].astype(int).tolist(),
                       arrays.action.astype(int).tolist(), frame.valid_mask)


class Backtester:
    def __init__(self, cfg: TradingConfig, engine: DecisionEngine, news: NewsContext | None = None,
                 keep_decisions: bool = True, trade_from: datetime | None = None):
        self.cfg, self.engine, self.news = cfg, engine, news
        if not keep_decisions:  # a throughput run: nothing reads the decision records afterwards
            engine.record_prompts = False
            if engine.advisor is not None:
                engine.advisor.keep_raw = False
        self.trade_from = int(trade_from.timestamp()) if trade_from else None
        self.costs = Costs(cfg.fee_bps, cfg.slippage_bps)
        self.keep_decisions = keep_decisions

    def run(self, states: dict[str, SymbolState], progress=None) -> BacktestResult:
        cfg, engine = self.cfg, self.engine
        for st in states.values():
            st.position, st.pending, st.memo, st.entry_fee = None, None, None, 0.0
        timeline = _timeline(states)
        account = AccountState(cash=cfg.initial_equity, book_equity=cfg.initial_equity)
        realized_total = 0.0
        trades: list[TradeOutcome] = []
        decisions: list[TradeDecision] = []
        rejections: Counter = Counter()
        equity_curve: list[tuple[datetime, float]] = []
        bars_in_market = 0
        llm_scored: list[tuple[float, bool]] = []
        warm = cfg.warmup_bars
        last_close: dict[str, float] = {}
        total = len(timeline)
        prev_t = None
        for n, (t, sym, i) in enumerate(timeline):
            if prev_t is not None and t != prev_t:
                equity_curve.append((datetime.fromtimestamp(prev_t, UTC), self._equity(account, states, last_close)))
            if t != prev_t:
                day = datetime.fromtimestamp(t, UTC).date().isoformat()
                if account.day != day:
                    account.day, account.day_start_equity, account.realized_today = day, account.book_equity, 0.0
            prev_t = t
            st = states[sym]
            # 1. fill what was decided at the previous close, at this bar's open
            if st.pending is not None:
                d, st.pending = st.pending, None
                realized = self._execute(st, d, account, rejections, t)
                if realized is not None:
                    trades.append(realized)
                    realized_total += realized.pnl
            # 2. exits on this bar
            pos = st.position
            if pos is not None:
                bars_in_market += 1
                hit = exit_on_bar(pos, st.o[i], st.h[i], st.lo[i], st.c[i])
                if hit is not None:
                    price, reason = hit
                    side = OrderSide.SELL if pos.qty > 0 else OrderSide.BUY
                    fill = self.costs.fill_price(price, side)
                    out = self._close(st, account, fill, datetime.fromtimestamp(t, UTC), reason)
                    trades.append(out)
                    realized_total += out.pnl
                else:
                    st.position = pos.model_copy(update={"bars_held": pos.bars_held + 1})
            last_close[sym] = st.c[i]
            # 3. decide at the close
            if i >= warm and i + 1 < len(st.c) and st.valid[i] and (self.trade_from is None or t >= self.trade_from):
                holding = st.position is not None
                act = st.action[i]
                if act != 0 or engine.advisor is not None:
                    decision = self._decide(st, i, t, account, holding, act)
                    if decision is not None:
                        if decision.llm is not None and decision.advice is not None and not decision.llm.fallback_reason:
                            fr = forward_return(st.o, st.c, i, decision.time_horizon_bars)
                            if fr is not None:
                                right = decision.advice.decision == label_for_return(fr)
                                llm_scored.append((decision.advice.confidence, right))
                        if self.keep_decisions and (decision.llm is not None or decision.action != Action.HOLD):
                            decisions.append(decision)
                        if decision.action != Action.HOLD:
                            st.pending = decision
            if progress is not None and n % 2000 == 0:
                progress(n, total)
        if prev_t is not None:
            equity_curve.append((datetime.fromtimestamp(prev_t, UTC), self._equity(account, states, last_close)))
        # close what is still open at the last close, so every trade has an outcome
        for sym, st in states.items():
            if st.position is not None:
                last = len(st.c) - 1
                side = OrderSide.SELL if st.position.qty > 0 else OrderSide.BUY
                trades.append(self._close(st, account, self.costs.fill_price(st.c[last], side), st.series.time(last),
                                          "end_of_data"))
        if equity_curve:
            equity_curve[-1] = (equity_curve[-1][0], account.cash)
        stats = engine.advisor.stats if engine.advisor else None
        metrics = performance([e for _, e in equity_curve], trades, cfg.initial_equity,
                              exposure=bars_in_market / max(1, total), llm_scored=llm_scored,
                              llm_calls=(stats.calls + stats.cache_hits) if stats else 0,
                              cost_usd=stats.cost_usd if stats else 0.0)
        if stats:
            metrics.update(llm_fallbacks=stats.fallbacks, llm_cache_hits=stats.cache_hits,
                           llm_input_tokens=stats.input_tokens, llm_output_tokens=stats.output_tokens,
                           injection_flags=stats.injection_flags)
        metrics["rejected_by_risk"] = sum(rejections.values())
        return BacktestResult(cfg.mode.value, metrics, trades, equity_curve, decisions, rejections, llm_scored)

    # -- steps -------------------------------------------------------------------------------------
    def _decide(self, st: SymbolState, i: int, t: int, account: AccountState, holding: bool, act: int):
        engine, cfg = self.engine, self.cfg
        as_of = datetime.fromtimestamp(t, UTC)
        sym = st.series.symbol
        if self.news is not None:
            sentiment, headlines = self.news.at(sym, as_of)
        else:
            sentiment, headlines = SentimentScore(score=0.0, n_items=0), []
        if engine.advisor is None and not cfg.allow_short and (act > 0) == holding:
            return None  # strategy alone: a BUY while long or a SELL while flat is a HOLD (engine._combine)
        if act == 0:
            regime = {1: "trend_up", -1: "trend_down"}.get(st.regime[i], "range")
            if engine.advisor is None or not should_query(cfg, 0, holding, i, st.rsi[i], sentiment.score, regime, st.memo):
                return None  # HOLD with nothing changed: the engine would decide HOLD without asking
        ctx = DecisionContext(st.frame, st.arrays, i, sentiment, headlines, st.position, account.book_equity, st.memo)
        decision, st.memo = engine.decide(ctx, as_of)
        return decision

    def _execute(self, st: SymbolState, d: TradeDecision, account: AccountState, rejections: Counter, t: int):
        now = session_open_for(datetime.fromtimestamp(t, UTC))  # executions happen at the session's open
        quote = st.o[int(st.series.ts.searchsorted(t))]  # the paper quote is this bar's open
        pos = st.position
        if pos is not None and ((d.action == Action.SELL and pos.qty > 0) or (d.action == Action.BUY and pos.qty < 0)):
            side = OrderSide.SELL if pos.qty > 0 else OrderSide.BUY
            return self._close(st, account, self.costs.fill_price(quote, side), now, "signal")
        if pos is not None or (d.action == Action.SELL and not self.cfg.allow_short):
            return None
        verdict = check_entry(self.cfg.risk, account, d, quote, now, market_open=True, kill_switch=False)
        if verdict.trips_kill_switch:
            account.tripped_day = account.day
        if not verdict.approved:
            rejections[verdict.reason.split(":")[0].split(" ")[0]] += 1
            return None
        side = OrderSide.BUY if d.action == Action.BUY else OrderSide.SELL
        price = self.costs.fill_price(quote, side)
        fee = self.costs.fee(price, verdict.qty)
        qty = verdict.qty if side == OrderSide.BUY else -verdict.qty
        st.position = Position(symbol=st.series.symbol, qty=qty, avg_price=price, opened_at=now, decision_id=d.decision_id,
                               stop_loss=d.stop_loss, take_profit=d.take_profit, time_limit_bars=d.time_horizon_bars,
                               llm_action=d.advice.decision if d.advice else None)
        st.entry_fee = fee
        account.cash -= qty * price + fee
        account.open_positions += 1
        return None

    def _close(self, st: SymbolState, account: AccountState, price: float, at: datetime, reason: str) -> TradeOutcome:
        pos = st.position
        fee = self.costs.fee(price, abs(pos.qty))
        out = close_outcome(pos, price, at, fee, st.entry_fee, reason, pos.bars_held + 1)
        account.cash += pos.qty * price - fee
        account.book_equity += out.pnl
        account.realized_today += out.pnl
        account.open_positions -= 1
        if reason == "stop_loss":
            account.consecutive_stopouts += 1
            if account.consecutive_stopouts >= self.cfg.risk.max_consecutive_stopouts:
                account.cooldown_until = cooldown_end(at, self.cfg.risk.cooldown_bars)
                account.consecutive_stopouts = 0
        else:
            account.consecutive_stopouts = 0
        st.position, st.entry_fee = None, 0.0
        return out

    @staticmethod
    def _equity(account: AccountState, states: dict[str, SymbolState], last_close: dict[str, float]) -> float:
        return account.cash + sum(st.position.qty * last_close.get(sym, st.position.avg_price)
                                  for sym, st in states.items() if st.position is not None)


def _timeline(states: dict[str, SymbolState]) -> list[tuple[int, str, int]]:
    """Every (bar time, symbol, bar index), ordered by time then symbol: the replay order of both drivers."""
    names = sorted(states)
    ts = np.concatenate([states[n].series.ts for n in names])
    sym = np.concatenate([np.full(len(states[n].series), k) for k, n in enumerate(names)])
    idx = np.concatenate([np.arange(len(states[n].series)) for n in names])
    order = np.lexsort((idx, sym, ts))
    return list(zip(ts[order].tolist(), [names[k] for k in sym[order].tolist()], idx[order].tolist()))


def buy_and_hold(states: dict[str, SymbolState], cfg: TradingConfig) -> BacktestResult:
    """Equal weights bought at the first open after warm-up, held to the last close."""
    per = cfg.initial_equity / len(states)
    curves = []
    for st in states.values():
        start = min(cfg.warmup_bars + 1, len(st.c) - 1)
        shares = per / st.o[start]
        curves.append({int(t): per if k < start else shares * st.c[k] for k, t in enumerate(st.series.ts.tolist())})
    stamps = sorted({t for c in curves for t in c})
    last = [per] * len(curves)
    equity = []
    for t in stamps:
        for k, c in enumerate(curves):
            if t in c:
                last[k] = c[t]
        equity.append((datetime.fromtimestamp(t, UTC), sum(last)))
    metrics = performance([e for _, e in equity], [], cfg.initial_equity, exposure=1.0, llm_scored=[], llm_calls=0,
                          cost_usd=0.0)
    metrics["trades"] = len(states)
    return BacktestResult("buy_and_hold", metrics, [], equity)


def advisor_client(kind: str):
    """`local` (the default everywhere, even with AWS credentials) or `bedrock` (only when asked for)."""
    if kind == "local":
        from mytrader.advisor.local_model import LocalAdvisorModel

        return LocalAdvisorModel()
    if kind == "bedrock":
        import boto3

        return boto3.client("bedrock-runtime")
    raise ValueError(f"unknown advisor {kind!r}: use local or bedrock")


def run_modes(series: dict[str, BarSeries], modes: list[str], base: TradingConfig, advisor: str = "local",
              news: NewsContext | None = None, progress=None) -> dict[str, BacktestResult]:
    """Every requested mode on the same data, plus buy-and-hold; one response cache shared by all runs."""
    from mytrader.advisor.llm import InMemoryResponseCache, LlmAdvisor
    from mytrader.config import DEFAULT_MODEL_ID, LOCAL_MODEL_ID
    from mytrader.models import Mode

    client = advisor_client(advisor) if any(m != "baseline" for m in modes) else None
    model_id = LOCAL_MODEL_ID if advisor == "local" else (base.advisor.model_id if base.advisor.model_id != LOCAL_MODEL_ID
                                                          else DEFAULT_MODEL_ID)
    cache = InMemoryResponseCache()
    results: dict[str, BacktestResult] = {}
    for m in modes:
        cfg = base.model_copy(update={"mode": Mode(m), "advisor": base.advisor.model_copy(update={"model_id": model_id})})
        llm = None if m == "baseline" else LlmAdvisor(client, cfg.advisor, cache=cache)
        states = {sym: prepare(s) for sym, s in series.items()}
        results[m] = Backtester(cfg, DecisionEngine(cfg, llm), news).run(
            states, progress=(lambda n, total, m=m: progress(m, n, total)) if progress else None)
    results["buy_and_hold"] = buy_and_hold({sym: prepare(s) for sym, s in series.items()}, base)
    return results
