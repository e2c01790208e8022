"""In-process backtester: replays history through exactly the decision code the Lambdas run, no AWS.

Per tick (bar time t), each step for every symbol with a bar at t, in symbol order (the deployment's day,
usecases/execute.py):
  1. the orders sent after the previous close fill at the open of t (slippage and fees on the open): entries open
     their positions, signal exits close theirs (outcomes' reconciliation, first thing after the close);
  2. open positions are checked against bar t: stop-loss, take-profit, time limit (outcomes);
  3. the decision engine decides as of the close of t (the decision cycle, on the completed bar);
  4. the executor acts on the decisions at once: an entry is risk-checked and sized at the close of t (the quote
     after the close) and takes its slot; entries and signal exits wait for the open of the symbol's next bar.
The pipeline's replay driver runs the same steps through outcomes, decision cycle and executor.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from mytrader import ledger
from mytrader.engine import DecisionContext, DecisionEngine, should_query
from mytrader.features import compute_features
from mytrader.labels import forward_return, label_for_return
from mytrader.market.calendar import session_open_for
from mytrader.market.guard import BarFlags, bar_flags, collar, last_trusted_close
from mytrader.metrics import performance
from mytrader.models import Action, OrderSide, Position, SentimentScore
from mytrader.portfolio import TIME_LIMIT, Costs, exit_on_bar, next_open
from mytrader.risk import AccountState
from mytrader.stack_spec import DECISION_MAX_AGE_S
from mytrader.strategies import default_strategy

if TYPE_CHECKING:
    import numpy.typing as npt

    from mytrader.advisor.costs import CostRecord
    from mytrader.advisor.llm import ConverseClient
    from mytrader.config import TradingConfig
    from mytrader.features import FeatureFrame
    from mytrader.market.series import BarSeries
    from mytrader.models import QueryMemo, TradeDecision, TradeOutcome
    from mytrader.sentiment.context import NewsContext
    from mytrader.strategies import Strategy, StrategyArrays

Progress = Callable[[int, int], None]  # (timeline entries replayed, timeline length)
MAX_AGE = timedelta(seconds=DECISION_MAX_AGE_S)  # the executor's: an entry whose next open comes later is refused
DECIDED_AFTER_CLOSE = timedelta(minutes=10)  # stack_spec.DECISION_SCHEDULE: the decision cycle (and the executor,
# at once) run this long after a regular close; the executor's clock in the backtest


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
    pending: TradeDecision | None = None  # decided at this close, not yet acted on by the executor
    queued: _Queued | None = None  # sent after the close, filling at the next bar's open
    memo: QueryMemo | None = None
    flags: BarFlags | None = None  # the market-data guard's verdict on every bar (set by Backtester.run)


@dataclass(frozen=True)
class _Queued:
    """An order sent after the close, filling at the next open: an entry sized at that close (its slot taken),
    or an exit of the whole position (a signal's, or the time limit's: no decision)."""
    decision: TradeDecision | None
    side: OrderSide
    qty: float
    exit: bool
    reason: str = "signal"


@dataclass
class BacktestResult:
    mode: str
    metrics: Mapping[str, Any]  # performance() figures, plus the advisor's counters and risk rejections
    trades: list[TradeOutcome]
    equity: list[tuple[datetime, float]]
    decisions: list[TradeDecision] = field(default_factory=list)
    rejections: Counter[str] = field(default_factory=Counter)
    llm_scored: list[tuple[float, bool]] = field(default_factory=list)  # (confidence, right) per answered call
    quarantined: dict[str, int] = field(default_factory=dict)  # bars the data guard refused to decide on, by symbol
    unchecked: dict[str, int] = field(default_factory=dict)  # held bars whose stop/target could not be checked
    first_quarantine: dict[str, str] = field(default_factory=dict)  # per symbol: why its first quarantined bar was


@dataclass
class _Run:
    """What one run accumulates; its steps update it in place."""
    account: AccountState
    trades: list[TradeOutcome] = field(default_factory=list)
    decisions: list[TradeDecision] = field(default_factory=list)
    rejections: Counter[str] = field(default_factory=Counter)
    equity_curve: list[tuple[datetime, float]] = field(default_factory=list)
    llm_scored: list[tuple[float, bool]] = field(default_factory=list)
    last_close: dict[str, float] = field(default_factory=dict)
    bars_in_market: int = 0
    unchecked: Counter[str] = field(default_factory=Counter)


def prepare(series: BarSeries, strategy: Strategy | None = None) -> SymbolState:
    """`strategy`: the engine's (`engine.strategy`); None: the bundled default."""
    frame = compute_features(series)
    arrays = (strategy or default_strategy()).arrays(frame)
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
        self.warmup = max(cfg.warmup_bars, engine.strategy.warmup)
        self.keep_decisions = keep_decisions

    def run(self, states: dict[str, SymbolState], progress: Progress | None = None) -> BacktestResult:
        for st in states.values():
            st.position, st.pending, st.queued, st.memo, st.entry_fee = None, None, None, None, 0.0
            st.flags = bar_flags(st.series, self.cfg.data_guard)
        timeline = _timeline(states)
        run = _Run(ledger.new_account(self.cfg.initial_equity))
        total = len(timeline)
        prev_t: int | None = None
        done = 0
        for t, tick in _ticks(timeline):
            self._start_tick(run, states, prev_t, t)
            prev_t = t
            for sym, i in tick:  # 1. what was sent after the previous close fills at this bar's open
                self._fill_queued(states[sym], run, i, t)
            for sym, i in tick:  # 2. stop-loss, take-profit, time limit on this bar
                self._exits_on_bar(states[sym], run, i, t)
                run.last_close[sym] = states[sym].c[i]
            for sym, i in tick:  # 3. decide at the close
                if self._may_decide(states[sym], i, t):
                    self._decide_at_close(states[sym], run, i, t)
            for sym, i in tick:  # 4. the executor: sized at the close, sent for the next open
                self._send(states[sym], run, i, t)
            if progress is not None and (done == 0 or done // 2000 != (done + len(tick)) // 2000):
                progress(done, total)
            done += len(tick)
        if prev_t is not None:
            run.equity_curve.append((datetime.fromtimestamp(prev_t, UTC), self._equity(run.account, states,
                                                                                      run.last_close)))
        self._close_at_end(states, run)
        return self._result(run, total, states)

    # -- steps -------------------------------------------------------------------------------------
    def _start_tick(self, run: _Run, states: dict[str, SymbolState], prev_t: int | None, t: int) -> None:
        """A new bar time: the equity as of the previous one, and a new trading day when the date changes."""
        if prev_t is not None:
            run.equity_curve.append((datetime.fromtimestamp(prev_t, UTC), self._equity(run.account, states,
                                                                                      run.last_close)))
        run.account = ledger.roll_day(run.account, ledger.day_of(datetime.fromtimestamp(t, UTC)))

    def _fill_queued(self, st: SymbolState, run: _Run, i: int, t: int) -> None:
        """The order sent after the previous close fills at this bar's open, slippage and fees on the open price."""
        q, st.queued = st.queued, None
        if q is None:
            return
        opened = session_open_for(datetime.fromtimestamp(t, UTC))
        price = self.costs.fill_price(st.o[i], q.side)
        if q.exit:
            if st.position is not None:
                run.trades.append(self._close(st, st.position, run, price, opened, q.reason))
            return
        d = q.decision
        if d is None:  # never: an entry is queued with its decision
            return
        fee = self.costs.fee(price, q.qty)
        st.position = Position(symbol=st.series.symbol, qty=ledger.signed(q.side, q.qty), avg_price=price,
                               opened_at=opened, decision_id=d.decision_id, stop_loss=d.stop_loss,
                               take_profit=d.take_profit, time_limit_bars=d.time_horizon_bars,
                               llm_action=d.advice.decision if d.advice else None)
        st.entry_fee = fee
        run.account = ledger.book_entry_fill(run.account, q.side, q.qty, price, fee)

    def _exits_on_bar(self, st: SymbolState, run: _Run, i: int, t: int) -> None:
        pos = st.position
        if pos is None:
            return
        run.bars_in_market += 1
        if st.flags is not None and st.flags.jump[i]:  # an untrusted bar: the paper broker's quote decides, which
            quote = st.c[i]  # after the close is the bar's close
            if collar(quote, last_trusted_close(st.series, st.flags, i), self.cfg.data_guard.collar_pct):
                run.unchecked[st.series.symbol] += 1  # not even the quote is trusted: held, unchecked
                return
            hit = exit_on_bar(pos, quote, quote, quote, quote)
        else:
            hit = exit_on_bar(pos, st.o[i], st.h[i], st.lo[i], st.c[i])
        if hit is None:
            st.position = pos.model_copy(update={"bars_held": pos.bars_held + 1})
            return
        price, reason = hit
        side = OrderSide.SELL if pos.qty > 0 else OrderSide.BUY
        if reason == TIME_LIMIT:  # decided on this close: the market order fills at the next open
            st.queued = _Queued(None, side, abs(pos.qty), exit=True, reason=reason)
            return
        fill = self.costs.fill_price(price, side)
        run.trades.append(self._close(st, pos, run, fill, datetime.fromtimestamp(t, UTC), reason))

    def _may_decide(self, st: SymbolState, i: int, t: int) -> bool:
        """Past the warm-up, with a next bar to fill on, every feature defined, inside the trading window."""
        return (i >= self.warmup and i + 1 < len(st.c) and st.valid[i]
                and (self.trade_from is None or t >= self.trade_from)
                and (st.flags is None or st.flags.reason(i) is None))  # the data guard quarantined this bar

    def _decide_at_close(self, st: SymbolState, run: _Run, i: int, t: int) -> None:
        act = st.action[i]
        if act == 0 and self.engine.advisor is None:
            return  # the strategy alone, without a signal: HOLD
        decision = self._decide(st, i, t, run.account, st.position is not None, act)
        if decision is None:
            return
        _score_advice(st, i, decision, run.llm_scored)
        if self.keep_decisions and (decision.llm is not None or decision.action != Action.HOLD):
            run.decisions.append(decision)
        if decision.action != Action.HOLD:
            st.pending = decision

    def _decide(self, st: SymbolState, i: int, t: int, account: AccountState, holding: bool,
                act: int) -> TradeDecision | None:
        engine, cfg = self.engine, self.cfg
        as_of = datetime.fromtimestamp(t, UTC)
        sym = st.series.symbol
        sentiment: SentimentScore
        headlines: list[str]
        if self.news is not None:
            sentiment, headlines = self.news.at(sym, as_of)
        else:
            sentiment, headlines = SentimentScore(score=0.0, n_items=0), []
        if engine.advisor is None and not cfg.allow_short and (act > 0) == holding:
            return None  # strategy alone: a BUY while long or a SELL while flat is a HOLD (engine._combine)
        if act == 0:
            regime = {1: "trend_up", -1: "trend_down"}.get(st.regime[i], "range")
            if engine.advisor is None or not should_query(cfg, 0, holding, i, st.rsi[i], sentiment.score, regime,
                                                          st.memo):
                return None  # HOLD with nothing changed: the engine would decide HOLD without asking
        ctx = DecisionContext(st.frame, st.arrays, i, sentiment, headlines, st.position, account.book_equity, st.memo)
        decision, st.memo = engine.decide(ctx, as_of)
        return decision

    def _send(self, st: SymbolState, run: _Run, i: int, t: int) -> None:
        """The pipeline's executor, in process, right after the close: the same ledger rules for the verdict, at
        the quote it has then (the close of t); the order waits for the next open."""
        d, st.pending = st.pending, None
        if d is None:
            return
        now = datetime.fromtimestamp(t, UTC) + DECIDED_AFTER_CLOSE
        pos = st.position
        if pos is not None and ledger.reduces(d.action, pos.qty):
            if st.queued is None:  # a close already under way (the time limit) is continued, never doubled
                side = OrderSide.SELL if pos.qty > 0 else OrderSide.BUY
                st.queued = _Queued(d, side, abs(pos.qty), exit=True)
            return
        if pos is not None or (d.action == Action.SELL and not self.cfg.allow_short):
            return
        quote = st.c[i]  # the paper quote after the close
        if collar(quote, d.reference_price, self.cfg.data_guard.collar_pct):  # the executor's price collar
            run.rejections["collar"] += 1
            return
        side = OrderSide.BUY if d.action == Action.BUY else OrderSide.SELL
        verdict = ledger.entry_verdict(self.cfg.risk, run.account, size_pct=d.position_size_pct, price=quote, now=now,
                                       opens_in_time=ledger.opens_in_time(next_open(now), d.decided_at, MAX_AGE),
                                       kill_switch=False, decided_equity=d.sizing_equity,
                                       fractional=ledger.sizes_fractional(self.cfg.fractional_shares, side))
        if verdict.trips_daily_loss:
            run.account = ledger.trip_daily_loss(run.account)
        if not verdict.approved:
            run.rejections[verdict.reason.split(":")[0].split(" ")[0]] += 1
            return
        run.account = ledger.reserve(run.account, now)
        st.queued = _Queued(d, side, verdict.qty, exit=False)

    def _close(self, st: SymbolState, pos: Position, run: _Run, price: float, at: datetime,
               reason: str) -> TradeOutcome:
        """Close `pos`, the symbol's open position, by the ledger's rules."""
        done = ledger.book_close(self.cfg.risk, run.account, pos, exit_price=price,
                                 exit_fee=self.costs.fee(price, abs(pos.qty)), entry_fee=st.entry_fee, reason=reason,
                                 at=at)
        run.account = done.account
        st.position, st.entry_fee = None, 0.0
        return done.outcome

    def _close_at_end(self, states: dict[str, SymbolState], run: _Run) -> None:
        """Close what is still open at the last close, so every trade has an outcome."""
        for st in states.values():
            pos = st.position
            if pos is not None:
                last = len(st.c) - 1
                side = OrderSide.SELL if pos.qty > 0 else OrderSide.BUY
                run.trades.append(self._close(st, pos, run, self.costs.fill_price(st.c[last], side),
                                              st.series.time(last), "end_of_data"))

    def _result(self, run: _Run, total: int, states: dict[str, SymbolState]) -> BacktestResult:
        cfg = self.cfg
        if run.equity_curve:
            run.equity_curve[-1] = (run.equity_curve[-1][0], run.account.cash)
        # the figures are the trading window's: the bars before it only warmed up the indicators
        opens = window_start(states, self.warmup, self.trade_from)
        run.equity_curve = in_window(run.equity_curve, opens)
        stats = self.engine.advisor.stats if self.engine.advisor is not None else None
        metrics: dict[str, Any] = dict(performance(
            [e for _, e in run.equity_curve], run.trades, cfg.initial_equity,
            exposure=run.bars_in_market / max(1, sum(  # held symbol-bars per symbol-bar of the trading window
                int(np.count_nonzero(st.series.ts[self.warmup:] >= (self.trade_from or 0))) for st in states.values())),
            llm_scored=run.llm_scored,
            llm_calls=(stats.calls + stats.cache_hits) if stats is not None else 0,
            cost_usd=stats.cost_usd if stats is not None else 0.0))
        if stats is not None:
            metrics.update(llm_fallbacks=stats.fallbacks, llm_cache_hits=stats.cache_hits,
                           llm_input_tokens=stats.input_tokens, llm_output_tokens=stats.output_tokens,
                           injection_flags=stats.injection_flags)
        metrics["rejected_by_risk"] = sum(v for k, v in run.rejections.items() if k != "collar")
        metrics["rejected_by_collar"] = run.rejections["collar"]
        flagged = {sym: (st.flags, int(np.searchsorted(st.series.ts, opens or 0)))  # from the window's first bar
                   for sym, st in sorted(states.items()) if st.flags is not None}
        quarantined = {sym: flags.count(k) for sym, (flags, k) in flagged.items()}
        first = {sym: why for sym, (flags, k) in flagged.items() if (why := flags.first_reason(k)) is not None}
        metrics["quarantined_bars"] = sum(quarantined.values())
        metrics["positions_unchecked"] = sum(run.unchecked.values())
        return BacktestResult(cfg.mode.value, metrics, run.trades, run.equity_curve, run.decisions, run.rejections,
                              run.llm_scored, quarantined, dict(run.unchecked), first)

    @staticmethod
    def _equity(account: AccountState, states: dict[str, SymbolState], last_close: dict[str, float]) -> float:
        return account.cash + sum(st.position.qty * last_close.get(sym, st.position.avg_price)
                                  for sym, st in states.items() if st.position is not None)


def _score_advice(st: SymbolState, i: int, decision: TradeDecision, scored: list[tuple[float, bool]]) -> None:
    """An answered advisor call (no fallback) against the hindsight label of its horizon, once that is known."""
    if decision.llm is None or decision.advice is None or decision.llm.fallback_reason:
        return
    fr = forward_return(st.o, st.c, i, decision.time_horizon_bars)
    if fr is not None:
        scored.append((decision.advice.confidence, decision.advice.decision == label_for_return(fr)))


def _ticks(timeline: list[tuple[int, str, int]]) -> Iterator[tuple[int, list[tuple[str, int]]]]:
    """The timeline by bar time: each time with its (symbol, bar index) pairs, in symbol order."""
    for t, entries in groupby(timeline, key=itemgetter(0)):
        yield t, [(sym, i) for _, sym, i in entries]


def _timeline(states: dict[str, SymbolState]) -> list[tuple[int, str, int]]:
    """Every (bar time, symbol, bar index), ordered by time then symbol: the replay order of both drivers."""
    names = sorted(states)
    ts = np.concatenate([states[n].series.ts for n in names])
    sym = np.concatenate([np.full(len(states[n].series), k) for k, n in enumerate(names)])
    idx = np.concatenate([np.arange(len(states[n].series)) for n in names])
    order = np.lexsort((idx, sym, ts))
    return list(zip(ts[order].tolist(), [names[k] for k in sym[order].tolist()], idx[order].tolist(), strict=True))


def first_decision_bar(ts: npt.NDArray[np.int64], warmup: int, trade_from: int | None) -> int:
    """The index of the first bar a decision can be taken on: past the warm-up and inside the trading window
    (`trade_from`: its first bar time), as `Backtester._may_decide` rules bar by bar."""
    return max(warmup, int(np.searchsorted(ts, trade_from or 0)))


def window_start(states: dict[str, SymbolState], warmup: int, trade_from: int | None) -> int | None:
    """The first bar time a decision can be taken on: past every indicator's warm-up and inside the window."""
    firsts = []
    for st in states.values():
        k = first_decision_bar(st.series.ts, warmup, trade_from)
        if k < len(st.series):
            firsts.append(int(st.series.ts[k]))
    return min(firsts) if firsts else trade_from


def in_window(curve: list[tuple[datetime, float]], trade_from: int | None) -> list[tuple[datetime, float]]:
    """The equity points from the first bar of the trading window on (all of them without a window)."""
    return curve if trade_from is None else [(d, e) for d, e in curve if d.timestamp() >= trade_from]


def buy_and_hold(states: dict[str, SymbolState], cfg: TradingConfig,
                 trade_from: datetime | None = None) -> BacktestResult:
    """Equal weights bought at the first open a strategy could fill at (after the warm-up and the first close of the
    trading window), held to the last close; its curve covers the trading window only."""
    per = cfg.initial_equity / len(states)
    curves: list[dict[int, float]] = []
    window_ts = int(trade_from.timestamp()) if trade_from is not None else None
    for st in states.values():
        start = min(first_decision_bar(st.series.ts, cfg.warmup_bars, window_ts) + 1, len(st.c) - 1)
        shares = per / st.o[start]
        curves.append({int(t): per if k < start else shares * st.c[k] for k, t in enumerate(st.series.ts.tolist())})
    stamps = sorted({t for c in curves for t in c})
    last = [per] * len(curves)
    equity: list[tuple[datetime, float]] = []
    for t in stamps:
        for k, c in enumerate(curves):
            if t in c:
                last[k] = c[t]
        equity.append((datetime.fromtimestamp(t, UTC), sum(last)))
    equity = in_window(equity, window_start(states, cfg.warmup_bars, window_ts))
    metrics: dict[str, Any] = dict(performance([e for _, e in equity], [], cfg.initial_equity, exposure=1.0,
                                               llm_scored=[], llm_calls=0, cost_usd=0.0))
    metrics["trades"] = len(states)
    return BacktestResult("buy_and_hold", metrics, [], equity)


def advisor_client(kind: str, bedrock: Callable[[], ConverseClient] | None = None) -> ConverseClient:
    """`local` (the default everywhere, even with AWS credentials) or `bedrock` (only when asked for). The library
    makes no AWS client here: `bedrock` is the caller's factory of a Bedrock Runtime client."""
    if kind == "local":
        from mytrader.advisor.local_model import LocalAdvisorModel

        return LocalAdvisorModel()
    if kind == "bedrock":
        if bedrock is None:
            raise ValueError("advisor bedrock needs a Bedrock Runtime client factory from the caller")
        return bedrock()
    raise ValueError(f"unknown advisor {kind!r}: use local or bedrock")


def run_modes(series: dict[str, BarSeries], modes: list[str], base: TradingConfig, advisor: str = "local",
              news: NewsContext | None = None, progress: Callable[[str, int, int], None] | None = None,
              bedrock: Callable[[], ConverseClient] | None = None,
              costs: CostRecord | None = None, trade_from: datetime | None = None) -> dict[str, BacktestResult]:
    """Every requested mode on the same data, plus buy-and-hold; one response cache shared by all runs, and one
    cost record (`costs`) in which each mode is its own run, so each mode's figures are what it would cost alone.
    `bedrock` makes the Bedrock Runtime client for `advisor="bedrock"` (called once, only if a mode asks).
    `trade_from`: the first bar time decisions may be taken on; the bars before it warm up the indicators (all of
    them: the same indicator values as a run over the whole file), and the figures cover the window only."""
    from mytrader.advisor.costs import CostRecord
    from mytrader.advisor.llm import InMemoryResponseCache, LlmAdvisor
    from mytrader.config import DEFAULT_MODEL_ID, LOCAL_MODEL_ID
    from mytrader.models import Mode

    wanted = base.advisor.enabled and any(m != "baseline" for m in modes)  # llm.enabled = false: never a call
    client = advisor_client(advisor, bedrock) if wanted else None
    if advisor == "local":
        model_id = LOCAL_MODEL_ID
    else:
        model_id = base.advisor.model_id if base.advisor.model_id != LOCAL_MODEL_ID else DEFAULT_MODEL_ID
    cache = InMemoryResponseCache()
    record = costs if costs is not None else CostRecord()
    results: dict[str, BacktestResult] = {}
    for m in modes:
        settings = base.advisor.model_copy(update={"model_id": model_id})
        cfg = base.model_copy(update={"mode": Mode(m), "advisor": settings})
        llm = None if m == "baseline" or client is None else LlmAdvisor(client, cfg.advisor, cache=cache,
                                                                          costs=record, run=m)
        engine = DecisionEngine(cfg, llm)
        states = {sym: prepare(s, engine.strategy) for sym, s in series.items()}
        results[m] = Backtester(cfg, engine, news, trade_from=trade_from).run(
            states, progress=partial(progress, m) if progress else None)
    results["buy_and_hold"] = buy_and_hold({sym: prepare(s) for sym, s in series.items()}, base, trade_from)
    return results
