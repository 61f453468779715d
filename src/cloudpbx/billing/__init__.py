"""Rating and charging of calls (CDR-1 ``cost``, ADM-5 spend limit, ADM-6 billing account).

:mod:`~cloudpbx.billing.rating` prices one call leg (pure); :mod:`~cloudpbx.billing.charge`
applies it in the CDR writer's transaction; :mod:`~cloudpbx.billing.limits` is the engine's
check before a call goes out through a trunk. See docs/billing.md.
"""

from cloudpbx.billing.rating import FREE_DIRECTIONS, Rate, Rating, TariffPlan, find_rate, rate_call

__all__ = ["FREE_DIRECTIONS", "Rate", "Rating", "TariffPlan", "find_rate", "rate_call"]
