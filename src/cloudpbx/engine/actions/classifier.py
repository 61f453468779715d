"""The call classifier step (CLS-1, DP-2 "call classifier"). See docs/engine.md "Queues,
classifiers and pickup".

The caller's number is looked up in the classifier's contacts (their CLIPs, E.164 as the API
stores them, PRODUCT.md §3a) and the step leaves through its ``found_step`` or
``not_found_step`` parameter: the B2BUA calls ``run.classified(found, now)`` with the
:class:`Classified` this returns. Nothing is said to the caller: the step neither answers nor
plays anything.

The caller's numbers: the authenticated port's external caller ID (the number an outside
party would see, normalised to E.164 under the installation's numbering plan with the client's
area code), its internal caller ID, and the call's caller as the B2BUA recorded it (for an
incoming trunk call -- not built yet -- the carrier's caller number, normalised the same way).
Any of them in the list means found. Internal numbers (2-8 digits) are compared as they are:
normalising ``1234567`` with an area code would invent an external number the caller is not.
A classifier that does not exist (deleted while the call ran) is No route.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from cloudpbx.dialplan.interpreter import Outcome, RunAction
from cloudpbx.engine.call import Call
from cloudpbx.numbers import InvalidNumber, NumberingPlan, is_valid_internal_number, normalize_e164

__all__ = ["Classified", "caller_numbers", "run_classifier"]


@dataclass(frozen=True, slots=True)
class Classified:
    """The classifier's verdict: the B2BUA continues with ``run.classified(found, ...)``."""

    found: bool
    detail: str = ""


def caller_numbers(call: Call, snapshot: Any, plan: NumberingPlan) -> set[str]:
    """The forms of the caller's number a contact may carry (see the module docstring)."""
    port = snapshot.ports.get(call.caller_port_id)
    raw = [call.caller]
    if port is not None:
        raw += [port.callerid_external, port.callerid_number]
    area = getattr(snapshot, "area_code", None)
    local_plan = replace(plan, default_area_code=area) if area else plan
    return {form for number in raw if number for form in _forms(number, local_plan)}


def _forms(number: str, plan: NumberingPlan) -> Iterable[str]:
    yield number
    try:
        is_valid_internal_number(number, plan)
        return  # an internal number stays as it is
    except InvalidNumber:
        pass
    try:
        yield normalize_e164(number, plan)
    except InvalidNumber:
        return


def run_classifier(
    plan: NumberingPlan, b2bua: Any, call: Call, snapshot: Any, decision: RunAction
) -> Classified | Outcome:
    """Perform a ``classifier`` step: the caller in the list or not (CLS-1)."""
    target = decision.step.target
    info = snapshot.classifiers.get(target.id) if target is not None else None
    if info is None:
        b2bua._event(call, "no_route", decision.level, f"classifier {target} does not exist")
        return Outcome.NO_ROUTE
    numbers = caller_numbers(call, snapshot, plan)
    hits = sorted(n for n in numbers if info.matches(n))
    verdict = "found" if hits else "not found"
    detail = f"{info.name}: {', '.join(hits) or '/'.join(sorted(numbers))} {verdict}"
    b2bua._event(call, "classifier", decision.level, detail)
    return Classified(bool(hits), detail)
