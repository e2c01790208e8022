"""Errors shared across the domain without heavy imports (the executor imports these, not numpy)."""
from __future__ import annotations


class DataQualityError(ValueError):
    """Market data that must not be traded on. The message says what and where."""

    def __init__(self, symbol: str, problem: str):
        super().__init__(f"{symbol}: {problem}")
        self.symbol = symbol
        self.problem = problem
