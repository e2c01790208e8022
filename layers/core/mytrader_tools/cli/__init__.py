"""`mytrader` command line: backtests, the local demo, operations and fine-tuning (typer + rich).

One module per subcommand group: `backtest`, `demo`, `ops`, `finetune` and `model`; `_console` holds the shared
rich console, the progress bar and the `--prefix` option. The console script is `mytrader_tools.cli:app`.
"""
from __future__ import annotations

import typer

from mytrader_tools.cli.backtest import backtest
from mytrader_tools.cli.demo import demo
from mytrader_tools.cli.finetune import finetune_app
from mytrader_tools.cli.model import model_app
from mytrader_tools.cli.ops import ops_app

app = typer.Typer(help="MyTrader: LLM-assisted trading, backtests and the local serverless demo.",
                  no_args_is_help=True)


@app.callback()
def _root() -> None:
    """MyTrader command line."""


# Registration order is the order `mytrader --help` lists them: commands first, then the groups.
app.command()(backtest)
app.command()(demo)
app.add_typer(ops_app, name="ops")
app.add_typer(finetune_app, name="finetune")
app.add_typer(model_app, name="model")

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover
    app()
