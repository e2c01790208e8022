"""Safe start without AWS: the placeholder secret is recognised, and a function that needs it does nothing but say
so once and count it (app/safe_start.py, adapters/aws/secrets.py)."""
from __future__ import annotations

import json
from typing import Any

import pytest

from mytrader.adapters.aws.secrets import SecretNotSet, broker_credentials, parse_broker_secret
from mytrader.app.settings import PipelineSettings
from mytrader.stack_spec import SECRET_NOT_SET_METRIC
from tests.unit.isolated import only_isolated, run_isolated


@pytest.mark.parametrize("raw", [
    json.dumps({"key_id": "set-me", "secret_key": "Xy9-generated"}),  # what `cdk deploy` leaves
    json.dumps({"key_id": "AK1", "secret_key": "set-me"}), json.dumps({"key_id": "AK1"}),
    json.dumps({"key_id": " ", "secret_key": "s"}), json.dumps(["AK1", "s"]), "not json", b"\xff\xfe", 42, None])
def test_anything_but_real_keys_is_secret_not_set(raw):
    with pytest.raises(SecretNotSet):
        parse_broker_secret(raw, "mytrader/broker/paper")


def test_real_keys_are_returned():
    assert parse_broker_secret(json.dumps({"key_id": "AK1", "secret_key": "s3cr3t"}), "x") == ("AK1", "s3cr3t")


class FakeSecrets:
    def __init__(self, value: str) -> None:
        self.value = value

    def get_secret_value(self, **kw: Any) -> dict[str, Any]:
        return {"Name": "mytrader/broker/paper", "SecretString": self.value}


class FakeAws:
    def __init__(self, value: str) -> None:
        self.secretsmanager = FakeSecrets(value)


def test_the_alpaca_market_source_is_not_built_on_the_placeholder():
    from mytrader.app.wiring import market_source

    settings = PipelineSettings(trade_log_table="t", market_data="alpaca", broker_secret_arn="arn:secret")
    aws: Any = FakeAws(json.dumps({"key_id": "set-me", "secret_key": "generated"}))
    with pytest.raises(SecretNotSet):
        broker_credentials(settings, aws)
    with pytest.raises(SecretNotSet):
        market_source(settings, aws)


@only_isolated
def test_started_logs_one_line_counts_the_metric_and_returns_nothing(monkeypatch):
    import io

    from mytrader.app.safe_start import hand_back_batch, not_started, started
    from mytrader.observability import logger, metrics

    out = io.StringIO()  # the shared logger's handler keeps the stdout of whichever test created it
    monkeypatch.setattr(logger.registered_handler, "stream", out)

    def build() -> object:
        raise SecretNotSet("broker secret mytrader/broker/paper still holds the placeholder 'set-me'")

    metrics.clear_metrics()
    try:
        assert started(build) is None
        assert SECRET_NOT_SET_METRIC in metrics.metric_set
    finally:
        metrics.clear_metrics()
    lines = [ln for ln in out.getvalue().splitlines() if "not started" in ln]
    assert len(lines) == 1 and "placeholder" in lines[0] and "doctor" in lines[0]
    assert not_started()["status"] == "not_configured"
    assert started(lambda: "deps") == "deps"
    assert hand_back_batch({"Records": [{"messageId": "a"}, {"messageId": "b"}]}) == {
        "batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}
    assert hand_back_batch({}) == {"batchItemFailures": []}


def test_started_logs_in_a_fresh_process():
    run_isolated(__file__, "test_started_logs_one_line_counts_the_metric_and_returns_nothing")
