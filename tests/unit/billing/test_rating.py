"""Rating one call leg by a tariff (CDR-1 ``cost``, ADM-6): exact Decimal figures. Pure."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cloudpbx.billing.limits import spend_refusal
from cloudpbx.billing.rating import Rate, TariffPlan, billed_seconds, find_rate, rate_call
from cloudpbx.engine.snapshot import BillingInfo

MOSCOW = Rate("7495", Decimal("1.20"), Decimal("0.50"), "Moscow")
RUSSIA = Rate("7", Decimal("2.00"))
GERMANY = Rate("49", Decimal("9.90"))
RATES = (RUSSIA, MOSCOW, GERMANY)


def plan(first: int = 60, step: int = 60) -> TariffPlan:
    return TariffPlan("RUB", first, step, RATES)


def test_longest_prefix_wins() -> None:
    """ADM-6: 7495 beats 7; the number's + and separators do not matter; no match → None."""
    assert find_rate(RATES, "+74951234567") is MOSCOW
    assert find_rate(RATES, "+79161234567") is RUSSIA
    assert find_rate(RATES, "+49 30 1234567") is GERMANY
    assert find_rate(RATES, "+12125550100") is None


@pytest.mark.parametrize(
    ("seconds", "first", "step", "billed"),
    [
        (0, 60, 60, 0),
        (1, 60, 60, 60),
        (60, 60, 60, 60),
        (61, 60, 60, 120),
        (61, 1, 1, 61),
        (61, 60, 1, 61),
        (30, 60, 1, 60),
        (125, 60, 30, 150),
    ],
)
def test_increments_round_up(seconds: int, first: int, step: int, billed: int) -> None:
    """ADM-6 tariff increments: 60/60 started minutes, 1/1 seconds, 60/1 a minute then seconds."""
    assert billed_seconds(seconds, first, step) == billed


def test_cost_is_fee_plus_price_per_billed_minute() -> None:
    """CDR-1 cost: 61 s to Moscow at 60/60 = 0.50 + 2 × 1.20 = 2.90."""
    rating = rate_call(plan(), "+74951234567", "local", 61)
    assert rating.cost == Decimal("2.9000")
    assert rating.rate is MOSCOW
    assert rating.billed_s == 120


def test_per_second_billing_rounds_half_up_to_four_decimals() -> None:
    """ADM-6 1/1: 7 s at 9.90/min = 1.155 exactly; 1 s at 2.00/min = 0.0333… → 0.0333."""
    assert rate_call(plan(1, 1), "+49301234567", "international", 7).cost == Decimal("1.1550")
    assert rate_call(plan(1, 1), "+79161234567", "long_distance", 1).cost == Decimal("0.0333")
    assert rate_call(plan(1, 1), "+79161234567", "long_distance", 5).cost == Decimal("0.1667")


@pytest.mark.parametrize("direction", ["internal", "incoming", "emergency"])
def test_internal_incoming_and_emergency_calls_are_free(direction: str) -> None:
    """§3a, ADM-5: only calls out through a trunk are charged; 112 never is."""
    rating = rate_call(plan(), "+74951234567", direction, 300)
    assert rating.cost == Decimal(0)
    assert rating.rate is None


def test_unanswered_and_unrated_calls_cost_nothing() -> None:
    """CDR-1: no answer → no connection fee; a number without a rate is not charged."""
    assert rate_call(plan(), "+74951234567", "local", 0).cost == Decimal(0)
    unrated = rate_call(plan(), "+12125550100", "international", 60)
    assert (unrated.cost, unrated.rate) == (Decimal(0), None)


class _Snap:
    def __init__(self, billing: BillingInfo | None) -> None:
        self.billing = billing


def _billing(balance: str, credit: str = "0", tariff_id: int | None = 1) -> BillingInfo:
    return BillingInfo(
        tariff_id=tariff_id,
        currency="RUB",
        balance=Decimal(balance),
        credit_limit=Decimal(credit),
    )


def test_spend_limit_refuses_only_a_rated_client_out_of_money() -> None:
    """ADM-5: available = balance + credit limit ≤ 0 refuses; unrated clients are not limited."""
    assert spend_refusal(_Snap(_billing("0.0001"))) is None
    assert spend_refusal(_Snap(_billing("-5", credit="10"))) is None
    refusal = spend_refusal(_Snap(_billing("-5", credit="5")))
    assert refusal is not None
    assert "available balance 0 RUB" in refusal
    assert spend_refusal(_Snap(_billing("-5", tariff_id=None))) is None
    assert spend_refusal(_Snap(None)) is None
