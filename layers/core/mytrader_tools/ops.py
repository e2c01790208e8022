"""Operations against whatever AWS the environment points at (the embedded one or a real account)."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3

from mytrader.adapters.aws.queue import send_decision
from mytrader.adapters.tradelog import TradeLog
from mytrader.models import Action, DecisionStatus, Mode, StrategySignal, TradeDecision, make_decision_id
from mytrader.stack_spec import DECISIONS_DLQ, DECISIONS_QUEUE, TRADE_LOG, parameter_names
from mytrader.usecases.admission import MalformedMessage, parse_message


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

    def redrive_dlq(self, max_messages: int = 1000) -> dict:
        """Move dead letters back to the decisions queue; their decisions return to PENDING. The executor
        rejects those older than the configured age."""
        dlq, main = self.queue_url(DECISIONS_DLQ), self.queue_url(DECISIONS_QUEUE)
        moved, unreadable = 0, 0
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        while moved + unreadable < max_messages:
            msgs = self.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                            AttributeNames=["All"],
                                            MessageSystemAttributeNames=["All"]).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                found = self._redrivable(m["Body"])
                if found is not None:
                    record, doc = found
                    self.tl.set_status(record.decision_id, DecisionStatus.PENDING, "redriven from the DLQ",
                                       from_status=DecisionStatus.DEAD_LETTERED.value)
                    # a fresh pointer to the record (whatever the dead letter said), under a new dedup id
                    send_decision(self.sqs, main, record, doc=doc, dedup_id=f"{record.decision_id}-redrive-{stamp}")
                    moved += 1
                else:  # names no recorded decision: back as it was, for the executor to dead-letter again
                    group = m.get("Attributes", {}).get("MessageGroupId", "unreadable")
                    self.sqs.send_message(QueueUrl=main, MessageBody=m["Body"], MessageGroupId=group,
                                          MessageDeduplicationId=f"{m['MessageId']}-redrive-{stamp}"[:128])
                    unreadable += 1
                self.sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
        return {"redriven": moved, "unreadable_redriven": unreadable}

    def _redrivable(self, body: str) -> tuple[TradeDecision, str] | None:
        """The recorded decision a dead letter points to, with the record's stored document: from a pointer, or
        from a whole decision as messages were before pointers (only its id is used). None when the body names no
        readable record."""
        try:
            decision_id = parse_message(body).decision_id
        except MalformedMessage:
            try:
                decision_id = TradeDecision.model_validate_json(body).decision_id
            except ValueError:
                return None
        row = self.tl.get_decision_row(decision_id)
        if row is None or not isinstance(row.get("doc"), str):
            return None
        try:
            return TradeDecision.model_validate_json(row["doc"]), row["doc"]
        except ValueError:
            return None
