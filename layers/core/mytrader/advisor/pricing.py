"""USD prices per million tokens, keyed by model or inference-profile id (longest matching key wins)."""
from __future__ import annotations

# (input, output) USD per 1M tokens, on-demand list prices.
PRICES: dict[str, tuple[float, float]] = {
    "anthropic.claude-haiku-4-5": (1.0, 5.0),
    "anthropic.claude-sonnet-4-5": (3.0, 15.0),
    "amazon.nova-micro": (0.035, 0.14),
    "amazon.nova-lite": (0.06, 0.24),
    "amazon.nova-pro": (0.80, 3.20),
}
REFERENCE_MODEL = "anthropic.claude-haiku-4-5"  # what the local advisor's estimated cost is priced as


def price_for(model_id: str) -> tuple[float, float] | None:
    matches = [k for k in PRICES if k in model_id]
    return PRICES[max(matches, key=len)] if matches else None


def cost_usd(model_id: str, input_tokens: int, output_tokens: int) -> float:
    """Cost of one call. Local and custom models are priced as the reference model (an estimate of what
    the same traffic would cost on Bedrock), so backtests report a meaningful figure."""
    price = price_for(model_id) or PRICES[REFERENCE_MODEL]
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000


def estimate_tokens(text: str) -> int:
    """About 4 characters a token for English and JSON; used where no service reports usage."""
    return tokens_for_chars(len(text))


def tokens_for_chars(chars: int) -> int:
    """estimate_tokens for a text known only by its length."""
    return max(1, (chars + 3) // 4)
