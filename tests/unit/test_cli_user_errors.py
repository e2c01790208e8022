"""Mistakes a stranger made with the CLI, each now one line on stderr and exit 2 (or fixed): outputs that would
overwrite an input, commands run when the stack's situation does not allow them, a server that is not AWS,
options blamed on the config file, confusing file-name and CSV messages. Nothing reaches AWS: in-memory fakes."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from mytrader.app.project_config import ConfigError, load_config
from mytrader_tools.cli._errors import aws_message
from tests.unit import cli_support
from tests.unit.cli_support import csv_text, one_line_error, prices, run

here, no_aws = cli_support.here, cli_support.no_aws  # fixtures

HTML = "<html><head><title>Directory listing</title></head><body>" + "<p>not AWS at all</p>" * 30 + "</body></html>"


# -- 1. outputs never overwrite an input, nor an existing file of another kind ---------------------------------------
def test_an_output_that_is_an_input_or_another_kind_of_file_is_refused(here):
    # Given a price file, a news file, the config file and a text file of the user's
    name = prices(here, "nvda_copy.csv")
    (here / "mytrader.toml").write_text("")
    (here / "news.csv").write_text("Date,News\n")
    (here / "notes.txt").write_text("mine")
    before = (here / name).read_text()
    # When an output names one of them / Then one line, and nothing is written
    one_line_error(run("backtest", "--prices", name, "--json", name), "--json nvda_copy.csv is the --prices file")
    one_line_error(run("backtest", "--prices", name, "--report", "mytrader.toml"), "is the config file")
    one_line_error(run("backtest", "--prices", name, "--news", "news.csv", "--json", "./news.csv"),
                   "is the --news file")
    one_line_error(run("backtest", "--prices", name, "--json", "notes.txt"), "notes.txt exists and is not a .json")
    one_line_error(run("backtest", "--prices", name, "--report", "notes.txt"), "not a .html/.htm file")
    assert (here / name).read_text() == before and (here / "notes.txt").read_text() == "mine"
    # and an existing output of the right kind is replaced as before
    (here / "old.json").write_text("{}")
    (here / "old.htm").write_text("")
    res = run("backtest", "--prices", name, "--mode", "baseline", "--json", "old.json", "--report", "old.htm")
    assert res.exit_code == 0, res.output


# -- 2, 5. the stack's situation, not a bug ----------------------------------------------------------------------
class ParameterNotFound(Exception):
    pass


class FakeSsm:
    """SSM with the given parameters, in memory."""
    exceptions = SimpleNamespace(ParameterNotFound=ParameterNotFound)

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get_parameter(self, Name: str) -> dict[str, Any]:  # noqa: N803 (boto3's spelling)
        if Name not in self.values:
            raise ParameterNotFound(Name)
        return {"Parameter": {"Value": self.values[Name]}}


class FakeSfn:
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start_execution(self, **kw: Any) -> dict[str, str]:
        self.started.append(kw)
        return {"executionArn": f"arn:aws:states:us-east-1:123:execution:sm:{kw.get('name')}"}


@pytest.fixture
def fake_aws(monkeypatch):
    ssm, sfn = FakeSsm({"/mytrader/active-model-id": "m1", "/mytrader/previous-model-id": "none"}), FakeSfn()
    monkeypatch.setattr(boto3, "client", lambda name, *a, **kw: {"ssm": ssm, "stepfunctions": sfn}[name])
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return SimpleNamespace(ssm=ssm, sfn=sfn)


def test_rollback_without_a_previous_model_is_one_line(fake_aws):
    one_line_error(run("model", "rollback"), "no previous model to roll back to")


@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_nothing_awaiting_approval_is_one_line(fake_aws, answer):
    one_line_error(run("finetune", answer), "nothing is awaiting approval (no /mytrader/pending-approval parameter)",
                   "start a run with require_approval")


# -- 4. each execution has a name of its own ------------------------------------------------------------------------
def test_finetune_start_names_each_execution(fake_aws, monkeypatch):
    from mytrader_tools.cli import finetune

    monkeypatch.setattr(finetune, "_state_machine_arn", lambda prefix: "arn:sm")
    assert run("finetune", "start").exit_code == 0 and run("finetune", "start").exit_code == 0
    names = [kw["name"] for kw in fake_aws.sfn.started]
    assert all(n.startswith("manual-") for n in names) and len(set(names)) == 2


# -- 3. a server that is not AWS ------------------------------------------------------------------------------------
def test_a_server_that_is_not_aws_is_one_short_line(monkeypatch):
    # Given botocore's errors for an HTML page where AWS XML/JSON was expected
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8765")
    parse = ResponseParserError(f"Unable to parse response, invalid XML received:\nb'{HTML}'")
    refused = ClientError({"Error": {"Code": "404", "Message": HTML}}, "GetParameter")
    # Then each is one line, the server's page cut short
    for exc in (parse, refused):
        line = aws_message(exc)
        assert line is not None and "\n" not in line and len(line) < 320, line
    assert "http://127.0.0.1:8765 did not answer as AWS does" in str(aws_message(parse))


def test_doctor_against_a_server_that_is_not_aws_is_one_line(no_aws, monkeypatch):
    import mytrader_tools.doctor

    def not_aws(*args: Any) -> list[Any]:
        raise ResponseParserError(f"Unable to parse response, invalid XML received:\nb'{HTML}'")

    monkeypatch.setattr(mytrader_tools.doctor, "run_doctor", not_aws)
    one_line_error(run("doctor", "--endpoint-url", "http://127.0.0.1:8765", "--region", "us-east-1"),
                   "did not answer as AWS does")


# -- 6. flatten without a terminal --------------------------------------------------------------------------------
def test_flatten_without_an_answer_ends_the_question_line(monkeypatch):
    import mytrader_tools.ops

    held = SimpleNamespace(positions=lambda: [SimpleNamespace(symbol="NVDA")])
    monkeypatch.setattr(mytrader_tools.ops, "Ops", lambda prefix: SimpleNamespace(tl=held))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    res = run("ops", "flatten")
    assert res.exit_code == 2 and res.stdout.endswith("[y/N]: \n") and res.stderr.startswith("error: ops flatten")


# -- 7, 11. options and config keys named where they were set ----------------------------------------------------
def test_start_after_end_names_the_options_not_the_config(here):
    (here / "mytrader.toml").write_text("[backtest]\ncapital = 50000\n")
    one_line_error(run("backtest", "--prices", prices(here, "abc.csv"), "--start", "2014-06-01", "--end",
                       "2014-01-01"), "--start/--end: backtest: start 2014-06-01 is after end 2014-01-01")


@pytest.mark.parametrize("low,high", [("stop_atr_min", "stop_atr_max"), ("target_atr_min", "target_atr_max")])
def test_an_atr_range_upside_down_is_refused_naming_both_keys(tmp_path, low, high):
    path = tmp_path / "mytrader.toml"
    path.write_text(f"[risk]\n{low} = 9.0\n{high} = 4.0\n")
    with pytest.raises(ConfigError, match=rf"{path}:1: risk: {low} 9 is above {high} 4: set {low} <= {high}"):
        load_config(path, [])


# -- 8, 10. price file names and contents --------------------------------------------------------------------------
def test_file_name_messages_give_the_real_reason(here):
    long = prices(here, "averyveryverylongname.csv")
    one_line_error(run("backtest", "--prices", long), "leading letters AVERYVERYVERYLONGNAME are 21 long",
                   "at most 10", "--symbol SYMBOL")
    one_line_error(run("backtest", "--prices", "2006-01-02-missing.csv"),
                   "price file 2006-01-02-missing.csv does not exist")


def test_a_semicolon_separated_file_names_the_columns_and_the_separator(here):
    (here / "semi.csv").write_text(csv_text(80).replace(",", ";"))
    res = run("backtest", "--prices", "semi.csv")
    one_line_error(res, "lacks columns Date, Open, High, Low, Close, Volume", "Date,Open,High,Low,Close,Volume",
                   "the separator must be a comma")
    assert "'ts'" not in res.stderr


# -- 9. a bundled strategy's name -----------------------------------------------------------------------------------
def test_strategy_new_refuses_a_bundled_name(here):
    res = run("strategy", "new", "sma_crossover")
    assert res.exit_code == 2 and "is the name of a bundled strategy" in res.stderr, res.output
    assert not (here / "sma_crossover.py").exists()


# -- 12. demo --serve: the files are written before serving -----------------------------------------------------
class FakeEmbeddedAws:
    url = "http://127.0.0.1:1"

    def __enter__(self) -> FakeEmbeddedAws:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_the_demo_writes_its_files_before_it_serves(tmp_path, monkeypatch):
    import mytrader_tools.embedded.endpoint as endpoint
    import mytrader_tools.embedded.replay as replay
    import mytrader_tools.embedded.stack as stack
    import mytrader_tools.report as report
    from mytrader_tools.embedded import demo

    # Given a run whose every phase is a fake (the files' timing is what is tested, not the pipeline)
    fake_stack = SimpleNamespace(set_param=lambda *a: None, upload_prices=lambda *a: None, client=lambda name: None,
                                 settings_env={"TRADE_LOG_TABLE": "t"})
    monkeypatch.setattr(endpoint, "EmbeddedAws", FakeEmbeddedAws)
    monkeypatch.setattr(stack, "LocalStack", lambda aws: SimpleNamespace(create=lambda **kw: fake_stack))
    monkeypatch.setattr(replay, "replay", lambda *a, **kw: None)
    monkeypatch.setattr(report, "render_report", lambda *a, **kw: "<html></html>")
    for name, fake in (("load_series", lambda: {}), ("TradeLog", lambda *a: None), ("equity_probe", lambda *a: None),
                       ("summarise", lambda *a: ({"symbols": ["NVDA"], "strategy": "s"}, None)),
                       ("parity", lambda *a: ({"equal": True, "pipeline_fills": 0}, SimpleNamespace(quarantined={}))),
                       ("_last_day", lambda *a: None)):
        monkeypatch.setattr(demo, name, fake)
    seen: list[bool] = []
    # When it serves / Then summary.json and report.html are already there
    demo.run_demo(tmp_path, with_finetune=False, serve=lambda url, summary: seen.append(
        (tmp_path / "summary.json").is_file() and (tmp_path / "report.html").is_file()))
    assert seen == [True]
