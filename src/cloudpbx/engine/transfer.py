"""Blind call transfer (PRODUCT.md §4.9 "transfer"; RFC 3515 REFER, RFC 3892 Referred-By).

The party bridged to the caller (the callee on relay side ``b``: a port reached by a ring,
queue or pickup step) sends REFER with ``Refer-To: <sip:201@pbx>``. :class:`Transfers`:

1. checks the request (RFC 3515 §2.4.1: exactly one Refer-To, else 400), refuses what is not
   built (a Refer-To with ``Replaces``, attended transfer, and a REFER from the caller's own
   leg: 501 with a log line "not implemented: ...") and what the port may not do (its service
   ``transfer`` off: 403; a port without the key may transfer, the API's default is on);
2. answers **202 Accepted** and sends NOTIFY ``Event: refer`` with the sipfrag
   ``SIP/2.0 100 Trying`` (§2.4.4-2.4.5, subscription active);
3. resolves the number in the caller's client: an internal number with a dialplan → the final
   NOTIFY ``SIP/2.0 200 OK`` (subscription terminated), an event ``transfer`` in the CDR, and
   when the NOTIFY is answered the transferor's leg gets BYE; anything else (unknown, an
   external number, another client's) → final NOTIFY ``404 Not Found`` (a number without a
   dialplan: ``480``) and the call goes on as it was;
4. the bridge ends with the transferor's leg, and :meth:`resume` turns the ring step's outcome
   into :meth:`~cloudpbx.dialplan.interpreter.CallRun.goto` to the referred number's dialplan --
   exactly what "go to internal number" does, under the same loop guard (DP-4) -- with the
   remaining party as the caller: it never left relay side ``a``, so its media address does not
   change (no re-INVITE), it hears ringback from the PBX while the new number rings, and the new
   callee is bridged on side ``b`` like any ring step. The call's steps continue (DP-7).

Decision: the final NOTIFY says 200 as soon as the PBX has taken the transferee over (a blind
transfer: the transferor's part is done), not when the new callee answers; what happens next
is the dialplan's business (no answer, busy ... its own steps).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from cloudpbx.dialplan.interpreter import CallRun, Decision
from cloudpbx.dialplan.model import Dialplan
from cloudpbx.engine.call import Call, Leg
from cloudpbx.sip.dialog import DialogStateError
from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.events import DialogId, DialogRequest, DialogResponse, PrackReceived
from cloudpbx.sip.message import Request
from cloudpbx.sip.uri import SipURI, parse_name_addr

__all__ = ["PendingTransfer", "RefusalError", "Transfers", "refer_target", "sipfrag"]

log = logging.getLogger(__name__)

SIPFRAG = "message/sipfrag;version=2.0"
_REASONS = {100: "Trying", 200: "OK", 404: "Not Found", 480: "Temporarily Unavailable"}


@dataclass(frozen=True, slots=True)
class PendingTransfer:
    """A transfer accepted for a call: where the caller goes once the transferor has left."""

    number: str
    dialplan: Dialplan
    by: str  # the transferor (its party name)


class RefusalError(Exception):
    """The REFER is answered with ``status`` (no subscription is created)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def refer_target(request: Request) -> str:
    """The number a REFER points at (RFC 3515 §2.1): the user part of its one Refer-To SIP URI
    (``%23`` is ``#``). :class:`RefusalError` 400 when malformed, 501 for attended transfer."""
    values = request.headers.get_all("refer-to")
    if len(values) != 1:
        raise RefusalError(400, f"{len(values)} Refer-To headers")  # §2.4.1: exactly one
    try:
        uri = parse_name_addr(values[0]).uri
    except ParseError as exc:
        raise RefusalError(400, f"bad Refer-To: {exc}") from None
    if not isinstance(uri, SipURI) or not uri.user:
        raise RefusalError(400, f"Refer-To is not sip:<number>@...: {values[0]}")
    if any(name.lower() == "replaces" for name, _ in uri.headers):
        raise RefusalError(501, "attended transfer (Refer-To with Replaces, RFC 3891)")
    return uri.user.replace("%23", "#")


def sipfrag(status: int) -> bytes:
    """The NOTIFY body: the status line of the referred request (RFC 3515 §2.4.5)."""
    return f"SIP/2.0 {status} {_REASONS.get(status, 'Unknown')}\r\n".encode()


class Transfers:
    """REFERs in call dialogs (see the module docstring) for one :class:`B2bua`."""

    def __init__(self, b2bua: Any) -> None:
        self.b2bua = b2bua
        self._pending: dict[str, PendingTransfer] = {}  # call uuid -> accepted transfer
        self._bye_after: dict[Any, tuple[Leg, str]] = {}  # final NOTIFY tx -> leg, number
        self._refers: set[DialogId] = set()  # dialogs that had a REFER (§2.4.6 ``id``)

    # --- the REFER ------------------------------------------------------------------------

    def on_refer(self, event: DialogRequest | PrackReceived) -> None:
        """Answer a REFER received in a call dialog (202 and NOTIFYs, or a refusal)."""
        leg = self.b2bua._by_dialog.get(event.dialog_id)
        try:
            if leg is None:
                raise RefusalError(481, "no call for this dialog")
            number = refer_target(event.request)
            port = self._transferor(leg)
        except RefusalError as refusal:
            self._refuse(event, refusal)
            return
        self.b2bua.stack.respond(event.tx_key, 202)
        event_header = self._event_header(event)
        self._notify(leg, event_header, 100)
        status = self._accept(leg, port, number, event.request)
        key = self._notify(leg, event_header, status, final=True)
        if status == 200 and key is not None:
            self._bye_after[key] = (leg, number)

    def _refuse(self, event: DialogRequest | PrackReceived, refusal: RefusalError) -> None:
        if refusal.status == 501:
            log.info("not implemented: REFER in dialog %s: %s", event.dialog_id, refusal)
        else:
            log.info(
                "REFER in dialog %s refused (%d): %s", event.dialog_id, refusal.status, refusal
            )
        self.b2bua.stack.respond(event.tx_key, refusal.status)

    def _transferor(self, leg: Leg) -> Any:
        """The transferring port; :class:`RefusalError` when this leg may not transfer now."""
        call = leg.call
        if leg is call.caller_leg:
            raise RefusalError(
                501, "transfer by the caller's own leg (only the callee may transfer)"
            )
        caller = call.caller_leg
        if leg is not call.callee or not leg.is_answered or caller is None or caller.is_ended:
            raise RefusalError(403, "the leg is not bridged to a caller")
        if call.uuid in self._pending:
            raise RefusalError(403, "a transfer of this call is already under way")
        snapshot = self.b2bua.snapshots.client(call.client_id)
        port = snapshot.ports.get(leg.port_id) if snapshot is not None else None
        if port is None:
            raise RefusalError(403, "only a port's leg may transfer (not a carrier's)")
        if not port.services.get("transfer", True):  # §4.9: the port's service is off
            raise RefusalError(403, f"port {port.login} has the transfer service off")
        return port

    def _accept(self, leg: Leg, port: Any, number: str, request: Request) -> int:
        """The final sipfrag status; on 200 the transfer is pending for :meth:`resume`."""
        call = leg.call
        snapshot = self.b2bua.snapshots.client(call.client_id)
        info = snapshot.numbers.get(number) if snapshot is not None else None
        if info is None or info.kind != "internal":
            log.info("call %s: transfer by %s to unknown number %r", call.uuid, port.login, number)
            self.b2bua._event(call, "transfer_failed", None, f"{leg.party}: no number {number}")
            return 404
        if info.dialplan is None:
            self.b2bua._event(call, "transfer_failed", None, f"{number}: no dialplan")
            return 480
        self._pending[call.uuid] = PendingTransfer(number, info.dialplan, leg.party)
        referred_by = request.headers.get("referred-by", "")  # RFC 3892: informational only
        detail = f"{leg.party} → {number}" + (
            f" (Referred-By {referred_by})" if referred_by else ""
        )
        self.b2bua._event(call, "transfer", None, detail)
        log.info("call %s: %s transfers the caller to %s", call.uuid, port.login, number)
        return 200

    # --- NOTIFY (RFC 3515 §2.4.4-2.4.7) -------------------------------------------------------

    def _event_header(self, event: DialogRequest | PrackReceived) -> str:
        """``refer``; from the second REFER of a dialog on, ``;id=<its CSeq>`` (§2.4.6)."""
        first = event.dialog_id not in self._refers
        self._refers.add(event.dialog_id)
        return "refer" if first else f"refer;id={event.request.cseq.number}"

    def _notify(self, leg: Leg, event_header: str, status: int, *, final: bool = False) -> Any:
        state = "terminated;reason=noresource" if final else "active;expires=60"
        headers = [("Event", event_header), ("Subscription-State", state)]
        if leg.dialog_id is None or leg.is_ended:
            return None
        try:
            return self.b2bua.stack.send_request(
                leg.dialog_id, "NOTIFY", body=sipfrag(status), content_type=SIPFRAG, headers=headers
            )
        except DialogStateError as exc:
            log.info("call %s: NOTIFY not sent: %s", leg.call.uuid, exc)
            return None

    def on_response(self, event: DialogResponse) -> None:
        """The final NOTIFY was answered (or timed out): the transferor's leg gets BYE now."""
        entry = self._bye_after.pop(event.tx_key, None)
        if entry is None:
            return
        leg, number = entry
        if leg.is_ended or leg.dialog_id is None:
            return
        # Ended first with our reason (the layer reports its own termination from inside bye).
        self.b2bua._leg_ended(leg, f"transferred to {number}")
        with contextlib.suppress(DialogStateError):
            self.b2bua.stack.bye(leg.dialog_id)

    # --- the call's coroutine -----------------------------------------------------------------

    def resume(self, call: Call, run: CallRun, now: Any) -> Decision | None:
        """The step after the transferor left: go to the referred number (None: no transfer)."""
        pending = self._pending.pop(call.uuid, None)
        if pending is None:
            return None
        detail = f"transferred by {pending.by}"
        return run.goto(pending.dialplan, now, number=pending.number, answered=True, detail=detail)

    def forget(self, call: Call) -> None:
        """The call ended: drop what is left of its transfers."""
        self._pending.pop(call.uuid, None)
        for key, (leg, _number) in list(self._bye_after.items()):
            if leg.call is call:
                del self._bye_after[key]
        for leg in call.legs:
            if leg.dialog_id is not None:
                self._refers.discard(leg.dialog_id)
