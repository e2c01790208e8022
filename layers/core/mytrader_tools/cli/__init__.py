"""`mytrader` command line: the config file, backtests, the local demo, operations and fine-tuning (typer + rich).

One module per command or group: `init`, `backtest`, `demo`, `doctor`, `ops`, `finetune`, `model` and
`strategy`. Shared parts:
`_errors` (a user's mistake is one line on stderr and exit 2; `--debug` shows the traceback), `_config` (the
`--config` option and loader), `_aws` (region, endpoint, the Bedrock check), `_outputs` (output paths checked
before the run), `_prices` (price files and their symbols) and `_console` (the rich console, the progress bar,
`--prefix`). The console script is `mytrader_tools.cli:app`.
"""
from __future__ import annotations

import typer

from mytrader_tools.cli._errors import DEBUG_ENV, CliGroup
from mytrader_tools.cli.backtest import backtest
from mytrader_tools.cli.demo import demo
from mytrader_tools.cli.doctor import doctor
from mytrader_tools.cli.finetune import finetune_app
from mytrader_tools.cli.init import init
from mytrader_tools.cli.model import model_app
from mytrader_tools.cli.ops import ops_app
from mytrader_tools.cli.strategy import app as strategy_app

app = typer.Typer(cls=CliGroup, help="MyTrader: LLM-assisted trading, backtests and the local serverless demo.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", envvar=DEBUG_ENV, metavar="",
                                     help="show the Python traceback of an error instead of one line")) -> None:
    """MyTrader command line."""


# Registration order is the order `mytrader --help` lists them: commands first, then the groups.
app.command()(init)
app.command()(backtest)
app.command()(demo)
app.command()(doctor)
app.add_typer(ops_app, name="ops")
app.add_typer(finetune_app, name="finetune")
app.add_typer(model_app, name="model")
app.add_typer(strategy_app, name="strategy")

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover
    app()
