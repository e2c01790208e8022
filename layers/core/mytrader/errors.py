"""Errors shared across the domain without heavy imports (the executor imports these, not numpy)."""
from __future__ import annotations


class DataQualityError(ValueError):
    """Market data that must not be traded on. The message says what and where."""

    retryable = False  # bad data stays bad; DataUnavailable (below) is the one to try again later

    def __init__(self, symbol: str, problem: str):
        super().__init__(f"{symbol}: {problem}")
        self.symbol = symbol
        self.problem = problem


class DataUnavailable(DataQualityError):
    """The data could not be read now (the provider throttled us, failed or could not be reached, after the
    adapter's bounded retries): not bad data, so a caller tries again later instead of rejecting for good."""

    retryable = True
