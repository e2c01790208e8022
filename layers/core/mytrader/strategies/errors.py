"""The one error a strategy raises: at load (a bad file, class, parameter or output) and inside a cycle."""
from __future__ import annotations


class StrategyError(ValueError):
    """Its message is one line that names the strategy and says what is wrong."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))
