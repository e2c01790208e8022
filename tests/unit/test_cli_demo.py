"""`mytrader demo`'s display: the embedded functions' own output stays out of the progress bar, and each phase
is a labelled stage. (The demo itself runs in tests/e2e/test_demo.py.)"""
from __future__ import annotations

import io
import logging

from rich.console import Console
from typer.testing import CliRunner

from mytrader_tools.cli import app
from mytrader_tools.cli._console import progress_bar
from mytrader_tools.cli.demo import _Stages, handler_output
from tests.unit.cli_support import one_line_error
from tests.unit.isolated import only_isolated, run_isolated


@only_isolated
def test_the_functions_output_goes_to_the_log_not_the_screen(tmp_path, capsys, monkeypatch):
    from aws_lambda_powertools import Metrics

    # (a Powertools logger an earlier test named "mytrader" stops propagation: the library's records as in a fresh run)
    monkeypatch.setattr(logging.getLogger("mytrader"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("mytrader"), "handlers", [])
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    log = tmp_path / "handlers.log"
    before = logging.getLogger().handlers[:]
    # Given what the embedded functions print: Powertools' cold-start metric (printed even with metrics
    # disabled), a print, a log record and a warning
    with handler_output(log):
        with single_metric(name="ColdStart", unit=MetricUnit.Count, value=1, namespace="MyTrader"):
            pass
        print("a stray line")
        logging.getLogger("mytrader.x").warning("advisor fallback")
        import warnings

        warnings.warn("No application metrics to publish", stacklevel=1)  # Powertools, nothing to flush
        Metrics(namespace="MyTrader")
    # Then none of it reaches the screen, all of it is in the log
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    text = log.read_text()
    assert '"ColdStart"' in text and "a stray line" in text and "advisor fallback" in text
    # and logging is as it was afterwards
    assert logging.getLogger().handlers == before


def test_each_phase_is_a_labelled_stage():
    shown_on = io.StringIO()
    screen = Console(file=shown_on, width=120)
    with progress_bar(screen) as prog:
        stages = _Stages(prog, screen)
        for name in ("replay", "parity", "fine-tuning"):
            stages.start(name)
            assert [t.description for t in prog.tasks] == [stages_label(name)]
            if name == "replay":
                stages.progress(3, 503)
        stages.start(None)
        assert prog.tasks == []
    shown = shown_on.getvalue()
    assert "done replay: the pipeline's handlers, session by session: 502 sessions (and the next one" in shown
    assert "done parity: the backtester on the same data" in shown
    assert "done fine-tuning: the Step Functions workflow" in shown


def stages_label(name: str) -> str:
    from mytrader_tools.cli.demo import STAGES

    return STAGES[name]


def test_an_output_that_is_a_file_is_refused_before_the_run(tmp_path):
    (tmp_path / "f").write_text("")
    one_line_error(CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "f")]), "is a file: give a directory")


def test_demo_summary_lines_say_what_happened() -> None:
    """Finetune without data reads "not run", the terminal states one readable line."""
    from mytrader_tools.cli.demo import finetune_text, terminal_states_text

    # Given a workflow that ended on too little data, and the decisions' final states
    ft = {"execution_status": "SUCCEEDED", "dataset_reason": "not enough data: 36 training records, need 300",
          "evaluation": None, "promoted": False}
    # Then the lines say so in words
    assert finetune_text(ft) == "not run — not enough data: 36 training records, need 300"
    assert terminal_states_text({"FILLED": 4, "SKIPPED": 79, "PENDING": 0}) == \
        "decisions by final state: FILLED 4, SKIPPED 79"


def test_functions_output_in_a_fresh_process():
    run_isolated(__file__, "test_the_functions_output_goes_to_the_log_not_the_screen")
