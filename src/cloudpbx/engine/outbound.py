"""Outbound calls from phones (TRK-1, PRODUCT.md §3a "Numbers", CDR-1, ADM-5).

A port that dials a number its client does not have (``B2bua.on_invite``'s 404 spot calls
:func:`dial_out` first) is dialling out:

* **Emergency numbers** (``settings.emergency_numbers``, §3a): never internal (numbers.py refuses
  them as internal numbers), never blocked by a direction limit, sent as dialled through the
  **first usable trunk** by id; with none the caller gets 503 and the engine logs at ERROR.
* **Anything else** is normalised to E.164 under the installation's numbering plan with the
  client's area code (``8XXXXXXXXXX``, 10 digits, ``8 10 …``, ``8 800 …``, short local numbers),
  classified (local / long distance МГ / international МН / toll-free,
  :func:`cloudpbx.numbers.classify`) and checked against the client's ADM-5
  ``allowed_directions`` (a forbidden direction: 403, an event ``forbidden`` in the call
  record). Not a telephone number → the 404 stays.
* **Spend limit** (ADM-5, :func:`cloudpbx.billing.limits.spend_refusal`): a rated client whose
  available balance (balance + credit limit, from the snapshot) is ≤ 0 gets 403 and an event
  ``spend_limit`` for any call out but an emergency one.
* The call is dialled by the forwarding-number code of :mod:`cloudpbx.engine.trunks`
  (``TrunkService.caller_id``/``route`` and ``_Dial``): the port's external caller ID in From and
  P-Asserted-Identity, its operator's trunk when usable, else the first usable trunk; the
  trunk's outbound rewrite rules; DP-4's mapping of the carrier's answers (486/600/603 → 486 to
  the caller, 404/408/480/503 or silence → 480, no answer within ``ring_max_s`` → 480, answered
  → bridged, the carrier's BYE → BYE to the caller). The call record gets ``direction`` and
  ``operator_id``; the client's ``max_call_duration_s`` (ADM-5) ends the bridge with BYE.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cloudpbx.billing.limits import spend_refusal
from cloudpbx.dialplan.interpreter import EndCall, Ending, Outcome, RunAction
from cloudpbx.dialplan.model import Action, Step
from cloudpbx.engine.b2bua import offer_of
from cloudpbx.engine.call import Call, Leg
from cloudpbx.engine.snapshot import ForwardingInfo
from cloudpbx.engine.trunks import TrunkInfo, _Dial
from cloudpbx.numbers import (
    Direction,
    InvalidNumber,
    NumberingPlan,
    classify,
    digits_only,
    is_emergency,
    normalize_e164,
)
from cloudpbx.sip.events import IncomingCall

__all__ = ["Destination", "destination", "dial_out", "direction_allowed"]

log = logging.getLogger(__name__)

# DP-4: how the dial's outcome ends an unanswered caller (the interpreter's table for an exit
# without a next step); After answer → BYE.
_ENDINGS: dict[Outcome, tuple[Ending, int | None]] = {
    Outcome.BUSY: (Ending.BUSY, 486),
    Outcome.NO_ROUTE: (Ending.NO_ROUTE, 480),
    Outcome.NO_ANSWER: (Ending.NO_ANSWER, 480),
    Outcome.AFTER_ANSWER: (Ending.AFTER_ANSWER, None),
}


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a port's call out goes: E.164 (or the emergency number as dialled) and CDR-1
    direction."""

    number: str
    direction: Direction


def destination(dialled: str, plan: NumberingPlan, area_code: str | None) -> Destination | None:
    """The number dialled by a phone as a call out, or None when it is no telephone number."""
    if is_emergency(dialled, plan):
        return Destination(digits_only(dialled), Direction.EMERGENCY)
    area = area_code or plan.default_area_code
    # §3a: short local numbers take the client's area code, not only the installation's.
    local_plan = dataclasses.replace(plan, default_area_code=area) if area else plan
    try:
        e164 = normalize_e164(dialled, local_plan)
    except (InvalidNumber, ValueError):
        return None
    return Destination(e164, classify(e164, plan, client_area_code=area))


def direction_allowed(direction: Direction, allowed: frozenset[str]) -> bool:
    """ADM-5 "allowed directions": emergency calls are never blocked (§3a)."""
    return direction is Direction.EMERGENCY or direction.value in allowed


def dial_out(b2bua: Any, event: IncomingCall, port: Any, snapshot: Any, dialled: str) -> bool:
    """``B2bua.on_invite``'s hook for a number the client does not have: True when the INVITE
    was taken (dialled out or refused), False to leave the 404."""
    if snapshot is None:
        return False
    plan = _plan(b2bua)
    dest = destination(dialled, plan, snapshot.area_code)
    if dest is None:
        return False
    if not direction_allowed(dest.direction, snapshot.limits.allowed_directions):
        detail = f"direction {dest.direction.value} not allowed for the client (ADM-5)"
        _forbidden(b2bua, event, port, dest, "forbidden", detail)
        return True
    refusal = None if dest.direction is Direction.EMERGENCY else spend_refusal(snapshot)
    if refusal is not None:
        _forbidden(b2bua, event, port, dest, "spend_limit", refusal)
        return True
    offer = _offer(event)
    if offer is None:
        log.info("not implemented: INVITE without an SDP offer (late offer) from %s", port.login)
        b2bua._reject(event, 488)
        return True
    b2bua.stack.respond(event.tx_key, 100)
    call = _call(b2bua, event, port, dest)
    call.task = b2bua._spawn(_Outbound(b2bua, call, snapshot, port, dest).run(offer))
    return True


def own_number(snapshot: Any, dialled: str, plan: NumberingPlan) -> Any:
    """NUM-1: the client's own external number dialled in any national form (``8495…``,
    ``495…``, a 7-digit local number): its NumberInfo, so the call runs that number's
    dialplan inside the PBX instead of going out and back through a carrier; else None."""
    dest = destination(dialled, plan, snapshot.area_code)
    if dest is None or dest.direction is Direction.EMERGENCY:
        return None
    return snapshot.numbers.get(dest.number)


def plan_of(b2bua: Any) -> NumberingPlan:
    """The installation's numbering plan as the trunks know it (§3a)."""
    return _plan(b2bua)


def _plan(b2bua: Any) -> NumberingPlan:
    plan = getattr(b2bua.trunks, "numbering", None)
    return plan if isinstance(plan, NumberingPlan) else NumberingPlan()


def _offer(event: IncomingCall) -> Any:
    request = event.request
    if "sdp" not in request.headers.get("content-type", "").lower():
        return None
    return offer_of(request.body)


def _call(b2bua: Any, event: IncomingCall, port: Any, dest: Destination) -> Call:
    call = Call(
        client_id=port.client_id,
        caller_port_id=port.id,
        caller=port.callerid_number or port.login,
        called=dest.number,
        direction=dest.direction.value,
    )
    leg = call.add_leg(
        Leg(
            call,
            "in",
            call.caller,
            port_id=port.id,
            flow=event.addr,
            dialog_id=event.dialog_id,
            invite_tx=event.tx_key,
        )
    )
    leg.remote_sdp = event.request.body
    b2bua.calls[call.uuid] = call
    b2bua._by_dialog[event.dialog_id] = leg
    b2bua._count("outbound")
    return call


def _forbidden(
    b2bua: Any, event: IncomingCall, port: Any, dest: Destination, kind: str, detail: str
) -> None:
    """ADM-5: 403, and a call record with the refusal (event ``kind``) so the attempt is
    visible (CDR-1)."""
    log.info("port %s: call to %s refused (%s): 403", port.login, dest.number, detail)
    b2bua._count("403_direction" if kind == "forbidden" else f"403_{kind}")
    call = Call(
        client_id=port.client_id,
        caller_port_id=port.id,
        caller=port.callerid_number or port.login,
        called=dest.number,
        direction=dest.direction.value,
    )
    leg = call.add_leg(
        Leg(call, "in", call.caller, port_id=port.id, flow=event.addr, invite_tx=event.tx_key)
    )
    b2bua._safe(b2bua.cdr.call_started, call)
    b2bua._safe(b2bua.cdr.leg_added, call, leg)
    b2bua._event(call, kind, None, detail)
    call.outcome = "no_route"
    b2bua._end_caller(call, 403)
    b2bua._safe(b2bua.cdr.call_ended, call)


class _Outbound:
    """One call out: the caller's media anchored as for any call, then one dial."""

    def __init__(self, b2bua: Any, call: Call, snapshot: Any, port: Any, dest: Destination):
        self.b2bua = b2bua
        self.call = call
        self.snapshot = snapshot
        self.port = port
        self.dest = dest
        step = Step(level=1, action=Action.RING_FORWARDING)
        self.decision = RunAction(step, b2bua.config.ring_max_s, number=dest.number)

    async def run(self, offer: Any) -> None:
        b2bua, call = self.b2bua, self.call
        caller = call.caller_leg_checked
        try:
            if not await b2bua._open_media(call, caller, offer):
                return
            b2bua._safe(b2bua.registry.add, b2bua._active(call))
            b2bua._safe(b2bua.cdr.call_started, call)
            b2bua._safe(b2bua.cdr.leg_added, call, caller)
            await self._dial_while_caller_stays()
        except Exception:
            log.exception("call %s failed", call.uuid)
            call.outcome = call.outcome or "failed"
            b2bua._end_caller(call, 500)
        finally:
            await b2bua._teardown(call)

    async def _dial_while_caller_stays(self) -> None:
        """As ``B2bua._next``: the caller hanging up (CANCEL/BYE) stops the dial."""
        loop = asyncio.get_running_loop()
        caller = self.call.caller_leg_checked
        task = loop.create_task(self._dial())
        self.call.action_task = task
        gone = loop.create_task(caller.ended.wait())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        outcome = task.result()
        if outcome is not None and not caller.is_ended:
            ending, status = _ENDINGS[outcome]
            self.b2bua._finish(self.call, EndCall(ending, status))

    async def _dial(self) -> Outcome | None:
        b2bua, call, service = self.b2bua, self.call, self.b2bua.trunks
        caller_id = service.caller_id(call, self.snapshot) if service is not None else ""
        trunk = self._trunk(service, caller_id)
        if trunk is None:
            if self.dest.direction is Direction.EMERGENCY:
                call.outcome = "no_route"
                b2bua._end_caller(call, 503)
                return None
            return Outcome.NO_ROUTE
        target = ForwardingInfo(
            id=0,
            number=self.dest.number,
            name=self.dest.direction.value,
            language=self.port.language,
            services=MappingProxyType({}),
            max_incoming_duration_s=self.snapshot.limits.max_call_duration_s,  # ADM-5
            max_concurrent_incoming=None,
        )
        dial = _Dial(service, b2bua, call, self.snapshot, self.decision, trunk, target, caller_id)
        outcome: Outcome = await dial.run()
        return outcome

    def _trunk(self, service: Any, caller_id: str) -> TrunkInfo | None:
        if service is None:
            self._no_trunk("no trunks in this engine")
            return None
        service.b2bua = self.b2bua  # route() writes its no_route event through it
        if self.dest.direction is not Direction.EMERGENCY:
            trunk: TrunkInfo | None = service.route(
                self.call, self.snapshot, caller_id, self.decision
            )
            return trunk
        # §3a: emergency calls take the first usable trunk, whatever the caller ID's operator.
        reasons = []
        for candidate in sorted(service.trunks.values(), key=lambda t: t.id):
            why = service.usable(candidate)
            if why is None:
                return candidate  # type: ignore[no-any-return]
            reasons.append(f"{candidate.name}: {why}")
        self._no_trunk("; ".join(reasons) or "no trunk configured")
        return None

    def _no_trunk(self, detail: str) -> None:
        call = self.call
        if self.dest.direction is Direction.EMERGENCY:
            log.error(
                "call %s: EMERGENCY call to %s from port %s has no usable trunk (%s): 503",
                call.uuid,
                self.dest.number,
                self.port.login,
                detail,
            )
        self.b2bua._event(call, "no_route", self.decision.level, f"trunk down: {detail}"[:200])
