"""Outcomes: close positions on stop-loss, take-profit or time limit, reconcile broker orders, re-send
decisions stuck in PENDING, and mark dead-lettered decisions."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from mytrader.adapters.aws.queue import send_decision
from mytrader.adapters.tradelog import TradeLog
from mytrader.broker import BROKER_DONE
from mytrader.models import DecisionStatus, Fill, OrderSide, Position
from mytrader.portfolio import exit_on_bar
from mytrader.usecases.execute import ExecDeps, close_position

log = logging.getLogger(__name__)


def run_outcomes(now: datetime, deps: ExecDeps, market, sqs, queue_url: str, dlq_url: str,
                 resend_after: timedelta = timedelta(minutes=10)) -> dict:
    tl = deps.tradelog
    summary = {"closed": 0, "held": 0, "reconciled": 0, "resent": 0, "dead_lettered": 0, "errors": 0,
               "realised_pnl": 0.0}
    for row in tl.position_rows():
        pos = Position.model_validate_json(row["doc"])
        try:
            s = market.full(pos.symbol)
            i = market.bar_at(pos.symbol, now)
            if i < 0 or s.time(i) < pos.opened_at:  # no complete bar since the position opened
                summary["held"] += 1
                continue
            last_checked = row.get("checked_bar")
            if last_checked is not None and int(s.ts[i]) <= int(last_checked):
                continue
            hit = exit_on_bar(pos, float(s.open[i]), float(s.high[i]), float(s.low[i]), float(s.close[i]))
            if hit is None:
                tl.bump_bars_held(pos, int(s.ts[i]))
                summary["held"] += 1
                continue
            price, reason = hit
            closed = close_position(pos, f"{pos.decision_id}-x", now, reason, deps, fill_price=price, quote=price,
                                    exit_ts=s.time(i))
            summary["closed"] += 1
            summary["realised_pnl"] = round(summary["realised_pnl"] + closed.get("pnl", 0.0), 2)
        except Exception as exc:
            log.exception("outcome check failed for %s", pos.symbol)
            summary["errors"] += 1
            summary.setdefault("error_reasons", []).append(f"{pos.symbol}: {exc}"[:200])
    # the paper broker fills at submission, so only a real broker can leave orders open
    summary["reconciled"] = reconcile_open_orders(tl, deps, now) if deps.broker.name != "paper" else 0
    if hasattr(deps.broker, "positions"):
        try:
            summary["position_mismatches"] = position_mismatches(tl, deps.broker)
        except Exception as exc:  # the check must not stop the sweeps below; it is counted
            log.exception("broker positions unavailable")
            summary["errors"] += 1
            summary.setdefault("error_reasons", []).append(f"broker positions: {exc}"[:200])
        for m in summary.get("position_mismatches", []):
            log.error("book and broker disagree on %s: book %s, broker %s", m["symbol"], m["book"], m["broker"])
    cutoff = (now - resend_after).isoformat()
    for row in tl.decisions_by_status("PENDING"):
        if row.get("decided_at", "") < cutoff and "doc" in row:
            d = tl.get_decision(row["pk"][4:])
            if d is not None and d.status == DecisionStatus.PENDING:
                send_decision(sqs, queue_url, d)
                summary["resent"] += 1
    summary["dead_lettered"] = mark_dead_letters(tl, sqs, dlq_url)
    return summary


def position_mismatches(tl: TradeLog, broker) -> list[dict]:
    """Symbols where the book and the broker hold different quantities (a trade made outside MyTrader, a lost
    fill). Symbols with an order still working — an entry awaiting fills or a close under way — are left out:
    there the two legitimately differ until the order ends."""
    held = broker.positions()
    rows = tl.position_rows()
    busy = {r["sk"][4:] for r in rows if "closing_base" in r} | {r["symbol"] for r in tl.open_order_rows()}
    book = {r["sk"][4:]: float(json.loads(r["doc"])["qty"]) for r in rows}
    return [{"symbol": sym, "book": book.get(sym, 0.0), "broker": held.get(sym, 0.0)}
            for sym in sorted((set(book) | set(held)) - busy) if abs(book.get(sym, 0.0) - held.get(sym, 0.0)) > 1e-9]


def reconcile_open_orders(tl: TradeLog, deps: ExecDeps, now: datetime) -> int:
    """Entry orders accepted or partly filled: ask the broker by client_order_id and record the fills since the
    last look — their own quantity at their own price (the broker reports a running average) and their own
    fee. The order row remembers what it has recorded, so a re-run never books a fill twice. Once the broker is
    done with the order it leaves the open set; if nothing ever filled, the position slot reserved for it is
    freed and the decision ends REJECTED with the broker's verdict."""
    n = 0
    for row in tl.open_order_rows():
        placed = deps.broker.get_by_client_order_id(row["client_order_id"])
        if placed is None:
            continue
        decision_id = row["pk"][4:]
        pos_row = tl.position_row(row["symbol"])
        pos = Position.model_validate_json(pos_row["doc"]) if pos_row else None
        # order rows written before they tracked what was recorded: the held position tells it
        recorded_qty = float(row.get("filled_qty", abs(pos.qty) if pos else 0.0))
        recorded_cost = float(row.get("filled_notional", recorded_qty * (pos.avg_price if pos else 0.0)))
        recorded_fee = float(row.get("filled_fee", pos_row.get("entry_fee", 0.0) if pos_row else 0.0))
        new_qty = round(placed.filled_qty - recorded_qty, 9)
        done = placed.status in BROKER_DONE
        if new_qty <= 0 and not done:
            continue
        items, order_row = [], {**row, "status": placed.status}
        if new_qty > 0:
            side = OrderSide(placed.side)
            sign = 1 if side == OrderSide.BUY else -1
            price = (placed.filled_avg_price * placed.filled_qty - recorded_cost) / new_qty
            fee = max(0.0, placed.fee - recorded_fee)
            fill = Fill(client_order_id=placed.client_order_id, symbol=placed.symbol, side=side, qty=new_qty,
                        price=round(price, 6), fee=fee, filled_at=now)
            if pos is not None:
                held = abs(pos.qty)
                avg = (pos.avg_price * held + fill.price * new_qty) / (held + new_qty)
                position = tl.position_grows(pos.model_copy(update={"qty": sign * (held + new_qty),
                                                                    "avg_price": round(avg, 6)}), fee)
            else:
                d = tl.get_decision(decision_id)
                opened = Position(symbol=placed.symbol, qty=sign * new_qty, avg_price=fill.price, opened_at=now,
                                  decision_id=decision_id, stop_loss=d.stop_loss if d else None,
                                  take_profit=d.take_profit if d else None,
                                  time_limit_bars=d.time_horizon_bars if d else 10)
                position = tl.put({"pk": tl.acct_pk, "sk": f"POS#{placed.symbol}", "doc": opened.model_dump_json(),
                                   "entry_fee": fee, "qty": opened.qty}, condition="attribute_not_exists(pk)")
                if recorded_qty > 0:  # earlier fills were held and closed meanwhile (a stop): a new slot is taken
                    items.append(tl.account_update("ADD open_positions :one", {":one": 1}))
            items += [
                tl.put(tl.fill_item(decision_id, fill, seq=int(recorded_qty * 1000) + 2)),
                position,
                tl.account_update("ADD cash :c", {":c": -(sign * new_qty * fill.price) - fee}),
            ]
            order_row.update(filled_qty=placed.filled_qty, filled_notional=recorded_cost + new_qty * fill.price,
                             filled_fee=recorded_fee + fee)
        if done:
            order_row = {k: v for k, v in order_row.items() if k not in ("gsi2pk", "gsi2sk")}
            if placed.filled_qty <= 0:
                items += [tl.account_update("ADD open_positions :m", {":m": -1}),
                          tl.status_update(decision_id, DecisionStatus.REJECTED,
                                           f"broker: order {placed.status}, nothing filled", from_status="EXECUTED")]
        items.append(tl.put(order_row))
        tl.transact(items)
        n += 1
    return n


def mark_dead_letters(tl: TradeLog, sqs, dlq_url: str) -> int:
    """Decisions whose messages reached the DLQ end DEAD_LETTERED; the messages stay for `ops redrive-dlq`."""
    if not dlq_url:
        return 0
    marked = 0
    seen: set[str] = set()
    for _ in range(100):
        resp = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=5, WaitTimeSeconds=0)
        msgs = resp.get("Messages", [])
        fresh = [m for m in msgs if m["MessageId"] not in seen]
        for m in fresh:
            seen.add(m["MessageId"])
            decision_id = _decision_id(m["Body"])
            if decision_id and tl.set_status(decision_id, DecisionStatus.DEAD_LETTERED,
                                             "message reached the DLQ after the configured receives"):
                marked += 1
        for m in msgs:  # leave every message in the DLQ, visible, for `ops redrive-dlq`
            sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        if not fresh:
            break
    return marked


def _decision_id(body: str) -> str | None:
    try:
        value = json.loads(body).get("decision_id")
        return value if isinstance(value, str) else None
    except (ValueError, AttributeError):
        return None
