"""The `--strategy` option of `mytrader backtest` and `mytrader demo`: which strategy decides, over the config's."""
from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from mytrader.config import StrategyChoice
from mytrader_tools.cli._errors import UserError

if TYPE_CHECKING:
    from mytrader.app.project_config import ProjectConfig
    from mytrader.strategies import Strategy

STRATEGY = typer.Option(None, "--strategy", show_default=False, metavar="NAME|PATH.py|module:Class",
                        help="the strategy: a bundled one (mytrader strategy list), a .py file or module:Class, with "
                             "its default parameters (config strategy.name and strategy.params)")


def choose_strategy(cfg: ProjectConfig, spec: str | None) -> ProjectConfig:
    """`cfg` with the strategy `spec` names. The config's strategy.params stay only when it names the same
    strategy (they are another strategy's otherwise)."""
    if spec is None or spec == cfg.strategy.name:
        return cfg
    if not spec.strip():
        raise UserError("--strategy is empty: give a bundled name (mytrader strategy list), a .py file or "
                        "module:Class")
    return cfg.model_copy(update={"strategy": StrategyChoice(name=spec)})


def checked_strategy(cfg: ProjectConfig) -> Strategy:
    """The config's strategy loaded and checked before any work: a defect is one line (StrategyError)."""
    from mytrader.strategies import load_strategy

    return load_strategy(cfg.strategy.name, cfg.strategy.params)


def strategy_text(cfg: ProjectConfig, strategy: Strategy) -> str:
    """The run header's line: what decides, where from, its parameters and fingerprint."""
    spec = cfg.strategy.name
    where = "" if spec == strategy.strategy_name() else f" from {spec}"
    params = ", ".join(f"{k}={v!r}" for k, v in sorted(cfg.strategy.params.items()))
    return (f"{strategy.label}{where}" + (f" ({params})" if params else " (default parameters)")
            + f", fingerprint {strategy.fingerprint()}")
