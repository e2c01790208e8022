"""The default strategy is the original rule set: identical signals on the bundled data, so no demo number moves.

The digests were taken from `strategy_arrays` as it was before the strategy interface (commit 9da6e8a): for every
bar, the action, the rounded confidence and the reason of `signal_at`, and the raw bytes of the action and
confidence arrays.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mytrader.features import compute_features
from mytrader.market.sources import parse_price_csv
from mytrader.strategies import BUILTINS, DEFAULT_STRATEGY, default_strategy, load_strategy, signal_at
from mytrader.strategy import strategy_arrays
from tests.conftest import PACKAGED_DATA, shared_file

ORIGINAL = {  # symbol: (bars, BUY bars, SELL bars, digest of the signals, digest of the arrays' bytes)
    "NVDA": (4012, 189, 354, "06bc4901294c86cf", "76d85194c56d75ef"),
    "ORCL": (5036, 230, 480, "a13aac391841698f", "fb30299e7617ec26"),
    "DJIA": (1107, 60, 90, "beed16e1cc2a257d", "c064a4e850ecf63b"),
}
FILES = {"NVDA": "nvda-daily-1999-2014.csv", "ORCL": "orcl-daily-1995-2014.csv", "DJIA": "djia-daily-2008-2012.csv"}


def _path(symbol: str):
    return shared_file(FILES[symbol]) if symbol == "DJIA" else PACKAGED_DATA / FILES[symbol]


def digests(arrays) -> tuple[int, int, int, str, str]:
    h = hashlib.sha256()
    for i in range(len(arrays.action)):
        sig = signal_at(arrays, i)
        h.update(f"{sig.action.value}|{sig.confidence!r}|{sig.reason}\n".encode())
    raw = hashlib.sha256(arrays.action.tobytes() + arrays.confidence.tobytes()).hexdigest()[:16]
    return (len(arrays.action), int((arrays.action == 1).sum()), int((arrays.action == -1).sum()),
            h.hexdigest()[:16], raw)


@pytest.mark.parametrize("symbol", sorted(ORIGINAL))
def test_the_default_strategy_gives_the_original_signals_on_the_bundled_data(symbol):
    # Given a bundled price history
    frame = compute_features(parse_price_csv(_path(symbol).read_text(), symbol))
    # When the library's default strategy and the old entry point compute the signals
    wrapped = load_strategy(DEFAULT_STRATEGY).arrays(frame)
    old_entry = strategy_arrays(frame)
    # Then both equal the original rule set's, bar for bar
    assert digests(wrapped) == ORIGINAL[symbol]
    assert np.array_equal(old_entry.action, wrapped.action) and np.array_equal(old_entry.confidence,
                                                                               wrapped.confidence)


def test_the_default_opens_on_every_signal_as_before_and_keeps_the_config_time_limit():
    # Given the default strategy: an exit also opened a short when shorting was allowed, and 10 bars was the limit
    frame = compute_features(parse_price_csv((PACKAGED_DATA / FILES["NVDA"]).read_text(), "NVDA"))
    arrays = default_strategy().arrays(frame)
    # Then every signal bar may open a position, and the time limit is the config's
    assert np.array_equal(arrays.opens, arrays.action != 0)
    assert default_strategy().time_limit(10) == 10 and default_strategy().warmup == 0
    assert load_strategy("default").strategy_name() == DEFAULT_STRATEGY
    assert set(BUILTINS) >= {"momentum_reversion", "sma_crossover", "rsi_reversion", "donchian_breakout"}
