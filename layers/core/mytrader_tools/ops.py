"""Operations against whatever AWS the environment points at (the embedded one or a real account)."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3

from mytrader.adapters.aws.queue import send_decision
from mytrader.adapters.tradelog import TradeLog
from mytrader.models import Action, Mode, StrategySignal, TradeDecision, make_decision_id
from mytrader.stack_spec import DECISIONS_DLQ, DECISIONS_QUEUE, TRADE_LOG, parameter_names


class Ops:
    def __init__(self, prefix: str = "mytrader"):
        self.prefix = prefix
        self.ssm, self.sqs = boto3.client("ssm"), boto3.client("sqs")
        self.tl = TradeLog(boto3.client("dynamodb"), TRADE_LOG.name(prefix))
        self.params = parameter_names(prefix)

    def queue_url(self, spec) -> str:
        return self.sqs.get_queue_url(QueueName=spec.name(self.prefix))["QueueUrl"]

    def _param(self, key: str) -> str:
        try:
            return self.ssm.get_parameter(Name=self.params[key])["Parameter"]["Value"]
        except self.ssm.exceptions.ParameterNotFound:
            return "(unset)"

    def status(self) -> dict:
        depth = {}
        for spec in (DECISIONS_QUEUE, DECISIONS_DLQ):
            attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url(spec), AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            depth[spec.suffix] = (int(attrs["ApproximateNumberOfMessages"])
                                  + int(attrs["ApproximateNumberOfMessagesNotVisible"]))
        try:
            account = self.tl.account_state().model_dump(mode="json")
        except LookupError:
            account = None
        rows = self.tl.position_rows()
        halted = account["kill_switch"] if account else None
        return {"kill_switch": "on" if halted else ("off" if halted is False else "(no account)"),
                "kill_switch_mirror": self._param("KILL_SWITCH"), "mode": self._param("MODE"),
                "active_model": self._param("ACTIVE_MODEL"), "previous_model": self._param("PREVIOUS_MODEL"),
                "account": account, "positions": [json.loads(r["doc"]) for r in rows],
                "closing": [{"symbol": r["sk"][4:], "close_order": r["closing_base"], "reason": r.get("closing_reason"),
                             "attempt": int(r.get("close_attempt", 0)), "closed_qty": float(r.get("closing_qty", 0))}
                            for r in rows if "closing_base" in r],
                "open_orders": [{"client_order_id": r["client_order_id"], "symbol": r["symbol"], "status": r["status"],
                                 "qty": float(r.get("qty", 0)), "filled_qty": float(r.get("filled_qty", 0))}
                                for r in self.tl.open_order_rows()],
                "decisions_by_status": self.tl.count_by_status(), "queue_depth": depth}

    def set_kill_switch(self, on: bool) -> None:
        """The kill switch lives on the account (the reservation of every entry is conditioned on it); the SSM
        parameter is only a mirror for operators and dashboards, never read for a decision."""
        self.tl.set_kill_switch(on)
        self.ssm.put_parameter(Name=self.params["KILL_SWITCH"], Value="on" if on else "off", Type="String",
                               Overwrite=True)

    def flatten(self, now: datetime | None = None) -> list[str]:
        """One reduce-only close decision per open position, through the executor (allowed when halted)."""
        now = now or datetime.now(UTC)
        sent = []
        for pos in self.tl.positions():
            d = TradeDecision(
                decision_id=make_decision_id(pos.symbol, now, "flatten"), symbol=pos.symbol, bar_ts=now, decided_at=now,
                config_version="flatten", mode=Mode.BASELINE, action=Action.SELL if pos.qty > 0 else Action.BUY,
                confidence=1.0, position_size_pct=0.0, reference_price=pos.avg_price, time_horizon_bars=1,
                strategy=StrategySignal(action=Action.HOLD, confidence=1.0, reason="manual flatten"),
                reason="ops flatten: close every position")
            if self.tl.put_decision(d):  # the record first: the executor acts only on what was recorded
                send_decision(self.sqs, self.queue_url(DECISIONS_QUEUE), d)
                sent.append(d.decision_id)
        return sent

    def redrive_dlq(self, limit: int = 1000) -> dict:
        """Archive whatever is still in the DLQ (the outcomes' sweep, run now), then move every DEAD_LETTERED decision
        back to PENDING (conditionally) and re-send its archived pointer. The executor rejects decisions older than
        the configured age; orphans (messages that named no recorded decision) stay archived in the trade log."""
        from mytrader.adapters.aws.queue import SqsDeadLetterQueue, send_pointer
        from mytrader.usecases.dead_letters import redrive_dead_letters, sweep_dead_letters

        now = datetime.now(UTC)
        swept = sweep_dead_letters(self.tl, SqsDeadLetterQueue(self.sqs, self.queue_url(DECISIONS_DLQ)), now)
        main = self.queue_url(DECISIONS_QUEUE)
        result = redrive_dead_letters(self.tl, lambda pointer, dedup: send_pointer(self.sqs, main, pointer, dedup),
                                      stamp=now.strftime("%Y%m%d%H%M%S"), limit=limit)
        return {"swept": swept.deleted, "marked": swept.marked, "orphans": swept.orphans,
                "archive_errors": swept.errors, "redriven": result.redriven, "skipped": result.skipped}
