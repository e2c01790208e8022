"""Price ticks: the increments an order price may have (US equities, SEC Rule 612, "the sub-penny rule").

A price of $1.00 or more is quoted in whole cents; below $1.00, in hundredths of a cent. A broker rejects a
limit or stop price off its tick (Alpaca: HTTP 422 "sub-penny increment does not fulfill minimum pricing
criteria"), so every resting price (a bracket's stop and target) is rounded here first — the paper broker and
the backtest use the same function, so all three rest the same price.
"""
from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

PENNY = Decimal("0.01")
SUB_PENNY = Decimal("0.0001")
ONE_DOLLAR = Decimal(1)


def tick_size(price: float) -> Decimal:
    """The tick of a price: $0.01 from $1.00 up, $0.0001 below."""
    return PENNY if Decimal(repr(float(price))) >= ONE_DOLLAR else SUB_PENNY


def to_tick(price: float) -> Decimal:
    """`price` rounded half-up to its tick, exactly (a Decimal). A price just under $1.00 that rounds to $1.0000
    ends on the cent grid ($1.00). Raises ValueError for a price that is not a positive finite number."""
    if not (isinstance(price, int | float) and math.isfinite(price) and price > 0):
        raise ValueError(f"not a price: {price!r}")
    exact = Decimal(repr(float(price)))  # the shortest decimal that reads back as this float
    rounded = exact.quantize(tick_size(price), ROUND_HALF_UP)
    if rounded >= ONE_DOLLAR:
        rounded = rounded.quantize(PENNY, ROUND_HALF_UP)
    if rounded <= 0:
        raise ValueError(f"price {price!r} rounds to nothing on its tick")
    return rounded


def round_to_tick(price: float) -> float:
    """`to_tick` as a float (for models and the ledger)."""
    return float(to_tick(price))


def price_text(price: float) -> str:
    """The price on its tick as the decimal text a broker API takes ("187.25", "0.5123"), never "1e-05"."""
    return format(to_tick(price), "f")


def on_tick(price: float) -> bool:
    """Whether a price already lies on its tick."""
    try:
        return Decimal(repr(float(price))) == to_tick(price)
    except ValueError:
        return False
