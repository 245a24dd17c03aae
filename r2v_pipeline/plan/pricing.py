"""Prices per billed second, from the manifest's table (the project invents none)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

FOUR_PLACES = Decimal("0.0001")


def rate_for(prices: dict[str, Any] | None, provider: str, model: str, resolution: str, audio: bool, family: str | None = None) -> Decimal | None:
    """The price of one billed second, or None when the table has none. A snapshot
    without a price of its own costs what its model does."""
    if not prices:
        return None
    by_model = prices.get(provider, {})
    rate = (by_model.get(model) or by_model.get(family or model) or {}).get(resolution)
    if isinstance(rate, dict):
        rate = rate["audio" if audio else "silent"]
    return None if rate is None else Decimal(str(rate))


def cost(seconds: Decimal, rate: Decimal | None) -> Decimal | None:
    return None if rate is None else (seconds * rate).quantize(FOUR_PLACES)


def money(amount: Decimal) -> str:
    """An amount as people write it: at least two decimals, no trailing zeros past them."""
    text = f"{amount.normalize():f}"
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"
