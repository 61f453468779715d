"""Pricing one call leg by the client's tariff (CDR-1 ``cost``, ADM-6): pure, no database.

A tariff (:class:`~cloudpbx.db.models.Tariff`) has rates by destination prefix; the rate of a
number is the one with the **longest prefix** of its digits (``7495`` beats ``7``). The model
has no per-direction rate, so the direction only decides what is free: internal calls, calls
in from a carrier and emergency calls never cost anything (§3a, ADM-5). A number no rate
matches is unrated: cost 0, the caller logs it.

Billable seconds (from the answer, CDR-1) are rounded up by the tariff's increments: the first
``first_increment_s``, then steps of ``increment_s`` (60/60 bills started minutes, 1/1 seconds,
60/1 a first minute then seconds). Cost = connection fee + price per minute × billed seconds /
60, rounded half-up to the money columns' 4 decimals; an unanswered leg costs nothing (not even
the connection fee).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from cloudpbx.numbers import digits_only

__all__ = [
    "FREE_DIRECTIONS",
    "Rate",
    "Rating",
    "TariffPlan",
    "billed_seconds",
    "find_rate",
    "rate_call",
]

FREE_DIRECTIONS: frozenset[str] = frozenset({"internal", "incoming", "emergency"})
"""CDR-1 directions never charged (the client pays for calls out through a trunk only)."""

MONEY_STEP = Decimal("0.0001")  # db.base.Money is Numeric(14, 4)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Rate:
    """One :class:`~cloudpbx.db.models.TariffRate`."""

    prefix: str
    price_per_minute: Decimal
    connection_fee: Decimal = ZERO
    description: str = ""


@dataclass(frozen=True, slots=True)
class TariffPlan:
    """One :class:`~cloudpbx.db.models.Tariff` with its rates."""

    currency: str
    first_increment_s: int
    increment_s: int
    rates: tuple[Rate, ...]


@dataclass(frozen=True, slots=True)
class Rating:
    """The price of a leg: the rate used (None: free or unrated) and the seconds billed."""

    cost: Decimal
    rate: Rate | None
    billed_s: int


FREE = Rating(ZERO, None, 0)


def find_rate(rates: Iterable[Rate], number: str) -> Rate | None:
    """The rate whose prefix is the longest one of the number's digits, or None."""
    digits = digits_only(number)
    best: Rate | None = None
    for rate in rates:
        if digits.startswith(rate.prefix) and (best is None or len(rate.prefix) > len(best.prefix)):
            best = rate
    return best


def billed_seconds(seconds: int, first_increment_s: int, increment_s: int) -> int:
    """Billable seconds rounded up by the increments (60/60, 1/1, 60/1 …)."""
    if seconds <= 0:
        return 0
    first, step = max(1, first_increment_s), max(1, increment_s)
    if seconds <= first:
        return first
    return first + math.ceil((seconds - first) / step) * step


def rate_call(tariff: TariffPlan, number: str, direction: str, billable_s: int) -> Rating:
    """The cost of ``billable_s`` answered seconds to ``number`` in the CDR-1 ``direction``."""
    if direction in FREE_DIRECTIONS or billable_s <= 0:
        return FREE
    rate = find_rate(tariff.rates, number)
    if rate is None:
        return FREE
    billed = billed_seconds(billable_s, tariff.first_increment_s, tariff.increment_s)
    cost = rate.connection_fee + rate.price_per_minute * billed / 60
    return Rating(cost.quantize(MONEY_STEP, rounding=ROUND_HALF_UP), rate, billed)
