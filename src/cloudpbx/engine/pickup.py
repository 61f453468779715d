"""Call pickup (PG-1): a port dialling ``888#`` takes a call ringing another member of its
pickup group. See docs/engine.md "Queues, classifiers and pickup".

The B2BUA hands an INVITE for the pickup code to :func:`pick_up` (``B2bua.on_invite``, after
Digest: the picker is the authenticated port). Phones send the code as ``888#``, ``888%23``
(the Request-URI escape, decoded by the B2BUA) or ``888``; all three are accepted, except that
a client with an internal number ``888`` keeps reaching that number when ``888`` is dialled
(an explicit configuration wins over a convenience alias; ``888#`` always picks up).

What can be picked up: a call of the same client, not bridged yet, with a branch ringing
(a 1xx came back) to a port of the picker's group other than the picker, or waiting in a queue
whose pickup group is the picker's (Q-1 "pickup group"). The oldest such call is taken. The
picker is answered at once (200 with our SDP for the call's relay side ``b``: the caller keeps
its media address), every branch still ringing is CANCELled, and the step waiting on the
branches gets the picker's leg as if it had answered: it bridges as usual and the step then
ends as a ring step does (the picker hangs up → After answer).

Answers that refuse (decisions):

* the picker's port has the ``pickup`` service off (§4.9) → **403**;
* the port is in no pickup group → **404** (the code means nothing for it);
* nothing is ringing in the group → **480** Temporarily Unavailable (the code exists, there is
  just nothing to take now -- 404 would say the number does not exist);
* no usable SDP offer, or no common codec → **488**.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from cloudpbx.engine.call import Call, Leg, LegState, RingEvent
from cloudpbx.sip.events import IncomingCall
from cloudpbx.sip.sdp import (
    AudioStream,
    OfferAnswerError,
    SdpError,
    SessionDescription,
    make_offer,
)

__all__ = ["PICKUP_CODE", "Pickable", "is_pickup_code", "pick_up", "pickable_calls"]

log = logging.getLogger(__name__)

PICKUP_CODE = "888#"
"""PG-1: what a member dials to pick up a call ringing in its group."""

SDP = "application/sdp"


def is_pickup_code(dialled: str, snapshot: Any) -> bool:
    """``888#`` (``888%23`` decoded), or ``888`` unless the client has that internal number."""
    if dialled == PICKUP_CODE:
        return True
    return dialled == PICKUP_CODE[:-1] and snapshot is not None and dialled not in snapshot.numbers


@dataclass(frozen=True, slots=True)
class Pickable:
    """A call a member may take: where to report the picker's leg, what to cancel."""

    call: Call
    report_to: asyncio.Queue[RingEvent]
    ringing: tuple[Leg, ...]


def pickable_calls(b2bua: Any, port: Any, members: frozenset[int]) -> list[Pickable]:
    """Calls ``port`` may pick up (see the module docstring), oldest first."""
    found: dict[str, Pickable] = {}
    for call in b2bua.calls.values():
        if _takeable(call, port):
            branches = _ringing_branches(call, members - {port.id})
            if branches and branches[0].ring_queue is not None:
                found[call.uuid] = Pickable(call, branches[0].ring_queue, _live_branches(call))
    queues = getattr(b2bua.actions, "queues", None)
    for waiting in getattr(queues, "waiting", {}).values():
        call = waiting.call
        if waiting.pickup_group_id == port.pickup_group_id and _takeable(call, port):
            found.setdefault(call.uuid, Pickable(call, waiting.events, _live_branches(call)))
    return sorted(found.values(), key=lambda p: p.call.start_ms)


def _takeable(call: Call, port: Any) -> bool:
    caller = call.caller_leg
    return (
        call.client_id == port.client_id
        and call.caller_port_id != port.id
        and call.callee is None
        and call.relay is not None
        and caller is not None
        and not caller.is_ended
    )


def _ringing_branches(call: Call, ports: frozenset[int]) -> list[Leg]:
    return [
        leg
        for leg in call.legs
        if leg.direction == "out"
        and leg.state is LegState.RINGING
        and leg.port_id in ports
        and not leg.cancelled
    ]


def _live_branches(call: Call) -> tuple[Leg, ...]:
    return tuple(
        leg
        for leg in call.legs
        if leg.direction == "out" and not leg.is_ended and not leg.is_answered and not leg.cancelled
    )


def pick_up(b2bua: Any, event: IncomingCall, port: Any, snapshot: Any) -> int:
    """Answer the picker's INVITE (see the module docstring); the status sent."""
    status = _refusal(port, snapshot)
    offer = _offer(event)
    if status is None and offer is None:
        status = 488
    targets = pickable_calls(b2bua, port, _members(port, snapshot)) if status is None else []
    if status is None and not targets:
        status = 480
    if status is not None:
        log.info("pickup by %s refused: %d", port.login, status)
        b2bua.stack.respond(event.tx_key, status)
        return status
    assert offer is not None
    return _take(b2bua, event, port, offer, targets[0])


def _refusal(port: Any, snapshot: Any) -> int | None:
    if not port.services.get("pickup", True):
        return 403
    if port.pickup_group_id is None or port.pickup_group_id not in snapshot.pickup_groups:
        return 404
    return None


def _members(port: Any, snapshot: Any) -> frozenset[int]:
    members: frozenset[int] = snapshot.pickup_groups[port.pickup_group_id].port_ids
    return members


def _offer(event: IncomingCall) -> AudioStream | None:
    request = event.request
    if "sdp" not in request.headers.get("content-type", "").lower() or not request.body:
        return None
    try:
        return SessionDescription.parse(request.body).audio()
    except SdpError:
        return None


def _take(b2bua: Any, event: IncomingCall, port: Any, offer: AudioStream, target: Pickable) -> int:
    call = target.call
    assert call.relay is not None
    leg = Leg(call, "out", port.name, port_id=port.id, flow=event.addr)
    leg.dialog_id, leg.invite_tx = event.dialog_id, event.tx_key
    try:
        answer = b2bua._answer_sdp(leg, call.relay.b, event.request.body)
    except OfferAnswerError:
        b2bua.stack.respond(event.tx_key, 488)
        return 488
    call.add_leg(leg)
    leg.local_sdp = answer.to_bytes()
    leg.remote_sdp = _as_answer(offer, answer)
    b2bua._by_dialog[event.dialog_id] = leg
    b2bua._incoming[port.id] = b2bua._incoming.get(port.id, 0) + 1  # ended legs count down
    b2bua._safe(b2bua.cdr.leg_added, call, leg)
    b2bua.stack.respond(event.tx_key, 200, body=leg.local_sdp, content_type=SDP)
    leg.move(LegState.ANSWERED)
    leg.ring_queue = target.report_to
    b2bua._event(call, "pickup", None, f"{port.name} ({port.login})")
    target.report_to.put_nowait(RingEvent(leg, "answered", 200))  # before the CANCELs' 487s
    for branch in target.ringing:
        b2bua._drop_branch(branch)
    log.info("call %s picked up by %s", call.uuid, port.login)
    return 200


def _as_answer(offer: AudioStream, answer: SessionDescription) -> bytes:
    """The picker's side as if it had answered our offer: its address, the codecs we chose
    (what the bridge applies to relay side ``b``, like a callee's 2xx answer)."""
    chosen = answer.audio()
    codecs = chosen.codecs if chosen is not None else offer.codecs
    return make_offer(
        local_addr=offer.host or "0.0.0.0",  # noqa: S104 - c=0.0.0.0: "do not send" (RFC 3264 §8.4)
        port=offer.port,
        codecs=codecs,
        session_id=secrets.randbelow(2**31),
        version=1,
        direction=offer.direction,
    ).to_bytes()
