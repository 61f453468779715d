"""Charging a call when its record is closed (CDR-1 ``cost``, ADM-6), in the CDR writer's
transaction: the call, its legs and the client's billing account change together or not at all.

Only legs out through a trunk (``direction == "out"`` with an operator) are priced, each by
:func:`~cloudpbx.billing.rating.rate_call` with its own billable seconds (CDR-1: legs are rated
separately); the call's cost is their sum, in the tariff's currency. The number priced is the
call's E.164 destination for a call out from a phone (``calls.called``, direction local / long
distance / international / toll-free / emergency), else — a forwarding (FWD-1) of an incoming
or internal call — the leg's party as sent to the carrier (after the trunk's outbound rewrite
rules), under the direction ``forwarding``.

The tariff is the billing account's; a client without an account or without a tariff is not
rated (cost 0). The account's ``balance`` is decremented and ``spent_total`` incremented by one
SQL ``UPDATE … SET balance = balance - :cost`` so that a payment written by the API at the same
moment is not lost.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloudpbx.billing.rating import ZERO, Rate, TariffPlan, rate_call
from cloudpbx.db.models import BillingAccount, Call, CallLeg, Tariff, TariffRate

__all__ = ["OUTBOUND_DIRECTIONS", "charge_call", "load_tariff"]

log = logging.getLogger(__name__)

OUTBOUND_DIRECTIONS: frozenset[str] = frozenset(
    {"local", "long_distance", "international", "toll_free", "emergency"}
)
"""CDR-1 directions of a call out from a phone (numbers.Direction without ``internal``)."""


def load_tariff(session: Session, tariff_id: int) -> TariffPlan | None:
    """The tariff and its rates as a pure :class:`TariffPlan`."""
    tariff = session.get(Tariff, tariff_id)
    if tariff is None:
        return None
    rows = session.scalars(select(TariffRate).where(TariffRate.tariff_id == tariff_id))
    rates = tuple(Rate(r.prefix, r.price_per_minute, r.connection_fee, r.description) for r in rows)
    return TariffPlan(tariff.currency, tariff.first_increment_s, tariff.increment_s, rates)


def charge_call(session: Session, call: Call) -> Decimal:
    """Price the call's trunk legs, store the costs and charge the account; returns the cost."""
    query = select(BillingAccount).where(BillingAccount.client_id == call.client_id)
    account = session.scalar(query)
    if account is None or account.tariff_id is None:
        return ZERO
    tariff = load_tariff(session, account.tariff_id)
    if tariff is None:
        return ZERO
    total = sum((_charge_leg(call, leg, tariff) for leg in _trunk_legs(session, call)), ZERO)
    call.cost = total
    call.currency = tariff.currency
    if total > 0:
        session.execute(
            update(BillingAccount)
            .where(BillingAccount.id == account.id)
            .values(
                balance=BillingAccount.balance - total,
                spent_total=BillingAccount.spent_total + total,
            )
        )
    session.flush()
    return total


def _trunk_legs(session: Session, call: Call) -> list[CallLeg]:
    query = select(CallLeg).where(
        CallLeg.call_id == call.id, CallLeg.direction == "out", CallLeg.operator_id.is_not(None)
    )
    return list(session.scalars(query.order_by(CallLeg.id)))


def _charge_leg(call: Call, leg: CallLeg, tariff: TariffPlan) -> Decimal:
    if call.direction in OUTBOUND_DIRECTIONS:
        number, direction = call.called, call.direction
    else:
        number, direction = leg.party, "forwarding"
    rating = rate_call(tariff, number, direction, leg.billable_s)
    if rating.rate is None and leg.billable_s > 0 and direction != "emergency":
        log.warning("call %s: no rate for %s in the tariff: not charged", call.uuid, number)
    leg.cost = rating.cost
    return rating.cost
