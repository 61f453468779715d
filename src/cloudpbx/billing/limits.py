"""ADM-5 spend limit, checked by the engine before a call goes out through a trunk.

The snapshot (:class:`~cloudpbx.engine.snapshot.ClientSnapshot` ``billing``) holds the billing
account as of its build; the CDR writer has the snapshot rebuilt after each batch that charged
the client (``CdrWriter.on_charged``), so no database read happens on the INVITE path. A call
already in progress is not cut when the balance runs out: it is charged when it ends (the
balance may go below zero by that one call, like any prepaid switch without real-time rating).
"""

from __future__ import annotations

from typing import Any

__all__ = ["spend_refusal"]


def spend_refusal(snapshot: Any) -> str | None:
    """Why a chargeable call out must be refused (the ``spend_limit`` event's detail), or None.

    Only a rated client (an account with a tariff) is limited; emergency calls and internal
    calls are never checked (the callers do not ask)."""
    billing = getattr(snapshot, "billing", None)
    if billing is None or billing.tariff_id is None:
        return None
    available = billing.balance + billing.credit_limit
    if available > 0:
        return None
    return f"available balance {available} {billing.currency} (ADM-5 spend limit)"
