"""`mytrader backtest` as a new user meets it: every mistake is one line on stderr and exit 2, the rest works.

Each test runs the CLI in process (typer's runner) on a few hundred synthetic bars; nothing reaches AWS."""
from __future__ import annotations

import json
from datetime import date, timedelta

from tests.unit import cli_support
from tests.unit.cli_support import csv_text, one_line_error, prices, run

here, no_aws = cli_support.here, cli_support.no_aws  # fixtures

def test_symbols_come_from_the_file_names(here):
    # Given files named as downloads often are
    args = ["--prices", prices(here, "DJIA_table.csv"), "--prices", prices(here, "nvda_2011.csv", seed=4)]
    # When backtested / Then each symbol is the leading letters of its name, upper-cased
    res = run("backtest", *args, "--mode", "baseline", "--json", "out.json")
    assert res.exit_code == 0, res.output
    assert json.loads((here / "out.json").read_text())["symbols"] == ["DJIA", "NVDA"]
    assert "DJIA from DJIA_table.csv" in res.stdout


def test_a_name_without_leading_letters_needs_a_symbol(here):
    name = prices(here, "2006-01-02-volume-min-001.txt")
    # Given a file name a symbol cannot be derived from / Then one line says how to give it
    one_line_error(run("backtest", "--prices", name), "cannot derive a symbol from the file name",
                   "--symbol SYMBOL", f"--prices SYMBOL={name}")
    # and both ways work
    for args in (["--prices", name, "--symbol", "spy"], ["--prices", f"SPY={name}"]):
        res = run("backtest", *args, "--mode", "baseline", "--json", "o.json")
        assert res.exit_code == 0, res.output
        assert json.loads((here / "o.json").read_text())["symbols"] == ["SPY"]
    one_line_error(run("backtest", "--prices", name, "--symbol", "s p y"), "is not a symbol")
    one_line_error(run("backtest", "--prices", name, "--prices", name, "--symbol", "SPY"),
                   "--symbol given 1 time(s) for 2 --prices file(s)")


def test_two_files_for_one_symbol_is_an_error(here):
    one_line_error(run("backtest", "--prices", prices(here, "nvda.csv"), "--prices", prices(here, "nvda_2011.csv")),
                   "two price files for NVDA: nvda.csv and nvda_2011.csv")


def test_too_little_data_names_the_bars_needed(here):
    one_line_error(run("backtest", "--prices", prices(here, "abc.csv", n=40)),
                   "ABC (abc.csv): 40 bars, the backtest needs at least 62: 60 warm-up bars")
    # and so does a window that leaves too few
    one_line_error(run("backtest", "--prices", prices(here, "abc.csv"), "--end", "2000-02-15"),
                   "bars up to --end", "needs at least 62")


def test_unreadable_inputs_are_one_line_and_a_byte_order_mark_is_accepted(here):
    # Given a directory, a missing file, a Latin-1 file, a malformed CSV, and a UTF-8 file with a byte-order mark
    (here / "folder").mkdir()
    (here / "latin.csv").write_bytes(csv_text().replace("Volume", "Volumé").encode("latin-1"))
    (here / "bad.csv").write_text("Date,Close\n2011-01-03,1\n")
    (here / "bom.csv").write_bytes(b"\xef\xbb\xbf" + csv_text().encode())
    one_line_error(run("backtest", "--prices", "folder"), "price file folder is a directory")
    one_line_error(run("backtest", "--prices", "none.csv"), "price file none.csv does not exist")
    one_line_error(run("backtest", "--prices", "latin.csv"), "is not UTF-8 text (byte 0xe9", "save it as UTF-8")
    one_line_error(run("backtest", "--prices", "bad.csv"), "price file bad.csv (BAD): price file lacks columns")
    one_line_error(run("backtest", "--prices", "bom.csv", "--news", "folder"), "news file folder is a directory")
    res = run("backtest", "--prices", "bom.csv", "--mode", "baseline")
    assert res.exit_code == 0, res.output


def test_output_paths_are_checked_before_the_run(here):
    name = prices(here, "abc.csv")
    (here / "out").mkdir()
    (here / "file").write_text("")
    one_line_error(run("backtest", "--prices", name, "--report", "out"), "--report out is a directory",
                   "out/report.html")
    one_line_error(run("backtest", "--prices", name, "--json", "file/x.json"), "file is a file")
    one_line_error(run("backtest", "--prices", name, "--json", "r.html", "--report", "r.html"), "the same file")


def test_boolean_options_are_flags(here):
    name = prices(here, "abc.csv")
    assert run("backtest", "--prices", name, "--mode", "consensus", "--anonymise").exit_code == 0
    assert run("backtest", "--prices", name, "--mode", "baseline", "--no-allow-short").exit_code == 0
    one_line_error(run("backtest", "--prices", name, "--anonymise", "true"), "unexpected extra argument",
                   "backtest --help")


def test_options_and_defaults(here):
    name = prices(here, "abc.csv", n=400)
    # Given no option: the defaults are stated in the run header
    res = run("backtest", "--prices", name, "--mode", "baseline", "--json", "d.json")
    assert res.exit_code == 0, res.output
    assert "capital 100,000 USD, fee 1 bp and slippage 2 bp per fill" in res.stdout
    assert "built-in defaults" in res.stdout
    default = json.loads((here / "d.json").read_text())
    # When the account and the window are set on the command line
    res = run("backtest", "--prices", name, "--mode", "baseline", "--cash", "5000", "--fee-bps", "0",
              "--slippage-bps", "3", "--start", "2000-06-01", "--end", "2001-03-30", "--json", "w.json")
    assert res.exit_code == 0, res.output
    # Then the header and the JSON say so, trading starts at --start (60 bars before it warm up)
    assert "capital 5,000 USD, fee 0 bp and slippage 3 bp per fill" in res.stdout
    data = json.loads((here / "w.json").read_text())
    assert (data["capital"], data["fee_bps"], data["slippage_bps"]) == (5000, 0, 3)
    assert (data["start"], data["end"]) == ("2000-06-01", "2001-03-30")
    assert all("2000-06-01" <= t["entry_ts"][:10] <= "2001-03-30" for t in data["trades"].get("baseline", []))
    assert data["runs"]["baseline"] != default["runs"]["baseline"]
    # Returns are percentages in the table and fractions in the JSON
    total = default["runs"]["buy_and_hold"]["total_return"]
    assert abs(total) < 20 and f"{total * 100:+,.1f}%" in run("backtest", "--prices", name, "--mode",
                                                               "baseline").stdout


def test_llm_off_runs_the_baseline_and_never_calls_an_advisor(here, monkeypatch):
    import mytrader.backtest as bt

    name = prices(here, "abc.csv", n=400)
    assert run("backtest", "--prices", name, "--mode", "baseline", "--json", "base.json").exit_code == 0
    # Given llm.enabled = false (and a Bedrock advisor in the file), and any advisor call failing the test
    (here / "off.toml").write_text('[llm]\nenabled = false\n[backtest]\nadvisor = "bedrock"\n')

    def no_call(*_a, **_k):
        raise AssertionError("an advisor was asked")

    monkeypatch.setattr(bt, "advisor_client", no_call)
    # When every mode is asked for
    res = run("backtest", "--prices", name, "--config", "off.toml", "--json", "off.json")
    # Then only the baseline runs, its results are the strategy-only baseline's, and no call was made
    assert res.exit_code == 0, res.output
    off, base = (json.loads((here / f).read_text()) for f in ("off.json", "base.json"))
    assert set(off["runs"]) == {"baseline", "buy_and_hold"}
    assert off["runs"]["baseline"] == base["runs"]["baseline"]
    def fills(data):  # the decision ids differ: llm.enabled is part of the config hash
        return [{k: v for k, v in t.items() if k != "decision_id"} for t in data["trades"]["baseline"]]

    assert fills(off) == fills(base) and off["config_version"] != base["config_version"]
    assert "llm.enabled = false" in off["advisor"]
    # and a mode that needs the LLM is a one-line error
    one_line_error(run("backtest", "--prices", name, "--config", "off.toml", "--mode", "override"),
                   "--mode override asks the LLM, but llm.enabled = false (off.toml)")


def test_config_errors_name_the_key_and_line(here):
    name = prices(here, "abc.csv")
    (here / "mytrader.toml").write_text("[llm]\nmin_confidence = 2\n")
    one_line_error(run("backtest", "--prices", name), "mytrader.toml:2: llm.min_confidence")
    one_line_error(run("backtest", "--prices", name, "--config", "nope.toml"), "config file nope.toml does not exist")
    one_line_error(run("backtest", "--prices", name, "--cash", "0", "--config", "nope.toml"), "does not exist")


def test_bedrock_is_checked_before_any_work(here, no_aws, monkeypatch):
    name = prices(here, "abc.csv")
    # Given no region / Then one line says what to set, before the run starts (nothing on stdout)
    one_line_error(run("backtest", "--prices", name, "--advisor", "bedrock"),
                   "--advisor bedrock needs an AWS region: set AWS_REGION")
    # Given only AWS_REGION / Then one line says the credentials are missing
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    one_line_error(run("backtest", "--prices", name, "--advisor", "bedrock"), "no AWS credentials found",
                   "AWS_PROFILE")


def test_debug_shows_the_traceback_and_usage_errors_are_one_line(here):
    (here / "folder").mkdir()
    res = run("--debug", "backtest", "--prices", "folder")
    assert res.exit_code == 1 and "is a directory" in str(res.exception)
    one_line_error(run("backtest", "--prices", "x.csv", "--bogus"), "No such option: --bogus",
                   "backtest --help)")
    one_line_error(run("backtest"), "Missing option '--prices'")


def test_a_weekend_row_is_an_error_and_a_weekend_bar_with_a_time_is_quarantined(here):
    """Given a daily file with a row dated on a Saturday, when it is backtested, then one line names the line and
    the day; given the same bar stamped with a time (a feed's export), then the run goes on and the console names
    the data guard's quarantined bars for that symbol."""
    lines = csv_text(300).splitlines()
    row = lines[150].split(",")
    day = date.fromisoformat(row[0])
    saturday = day + timedelta(days=(5 - day.weekday()) % 7 or 7)
    (here / "abc.csv").write_text("\n".join(lines + [",".join([saturday.isoformat(), *row[1:]])]) + "\n")
    one_line_error(run("backtest", "--prices", "abc.csv", "--mode", "baseline"),
                   f"line 302 is dated {saturday.isoformat()} (Saturday), a day the NYSE was closed")
    stamped = [lines[0]] + [f"{r.split(',', 1)[0]} 16:00:00,{r.split(',', 1)[1]}" for r in lines[1:]]
    (here / "abc.csv").write_text("\n".join(stamped + [f"{saturday.isoformat()} 16:00:00,{','.join(row[1:])}"]))
    res = run("backtest", "--prices", "abc.csv", "--mode", "baseline")
    assert res.exit_code == 0, res.output
    assert "Data guard, quarantined bars (no decision on them): ABC 1" in res.stdout
    assert f"ABC first: not a session: {saturday.isoformat()} (Saturday) is no NYSE trading day" in res.stdout


def test_entries_refused_by_the_risk_limits_are_named_on_the_console(here):
    """Given capital too small for one share at the default position size, when backtested, then the console says
    the entries were refused and why, not just 0 trades."""
    res = run("backtest", "--prices", prices(here, "abc.csv", n=400), "--mode", "baseline", "--cash", "10")
    assert res.exit_code == 0, res.output
    assert "baseline: entries refused by the risk limits or the price collar: " in res.stdout


def test_a_narrow_terminal_gets_every_figure_whole(here, monkeypatch):
    """Given a 50-column terminal, when backtested, then no figure is cut short: each run's figures come as lines."""
    from mytrader_tools.cli._console import console

    monkeypatch.setattr(console, "width", 50)
    res = run("backtest", "--prices", prices(here, "abc.csv", n=400), "--mode", "baseline", "--json", "n.json")
    assert res.exit_code == 0, res.output
    total = json.loads((here / "n.json").read_text())["runs"]["buy_and_hold"]["total_return"]
    assert "buy_and_hold:" in res.stdout and f"  return: {total * 100:+,.1f}%" in res.stdout
    assert "…" not in res.stdout


def test_the_report_states_the_runs_settings(here):
    """Given a backtest with a window and an account, when it writes a report, then the page states the data and its
    window, the account and the strategy, as the console header does."""
    res = run("backtest", "--prices", prices(here, "abc.csv", n=400), "--mode", "baseline", "--start", "2000-09-01",
              "--cash", "5000", "--report", "r.html")
    assert res.exit_code == 0, res.output
    page = (here / "r.html").read_text()
    assert "data: ABC from abc.csv: 400 bars" in page and "decisions from 2000-09-01" in page
    assert "account: capital 5,000 USD" in page and "strategy: momentum_reversion v1" in page
