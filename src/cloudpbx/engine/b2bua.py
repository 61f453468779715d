"""The back-to-back user agent: INVITEs in, dialplans run, legs forked, bridged and ended.

Issue 5 items 4-5. The flow of one call:

1. **INVITE** (:meth:`B2bua.on_invite`, synchronous, no database): the caller must prove a
   port's credentials with Digest (RFC 3261 §22.3: 407 + ``Proxy-Authenticate``, shared nonces
   with the registrar); the caller *is* that port, ``From`` is never trusted (PRODUCT.md §3a).
   The dialled number (Request-URI user) is looked up in the caller's client snapshot (its
   own DIDs also in national form); a telephone or emergency number that is not the client's
   goes out through a trunk (:mod:`cloudpbx.engine.outbound`); anything else → 404. No usable
   offer → 488 (a late offer, an INVITE without SDP, is not served yet).
2. **Media**: one :class:`~cloudpbx.media.relay.RelaySession` is opened for the call; side
   ``a`` answers the caller's offer (one G.711 law, ``telephone-event`` when offered), side
   ``b`` is offered to every phone we ring (PCMU, PCMA, telephone-event). The relay maps
   payload types and transcodes μ-law/A-law when the sides chose differently. The PBX anchors
   the media: phones never see each other's addresses.
3. **Dialplan**: :class:`~cloudpbx.dialplan.interpreter.CallRun` decides; the call's coroutine
   performs each :class:`RunAction` and reports its outcome (DP-4):

   * ring a SIP port: fork an INVITE to every available contact through the flow it registered
     on; the first 2xx wins and the others are CANCELled (RFC 3261 §13.2.2.4 in a B2BUA); a
     branch with no 1xx within 2 s is cancelled and counts as No route; the step timeout
     with something ringing → No answer; every branch failed → Busy if one said 486/600/603
     or the port's concurrent-incoming limit is reached, else No route. Answered → bridged;
     the callee hanging up with the caller still there → After answer.
   * ringback: 180 (the phone plays its own tone, "ringback only"), or with the callee port's
     service ``ringback: music`` a 183 with our SDP and the client's music on hold as early
     media; a caller already answered (after a message) hears a ringback tone from us.
   * play a sound message: answer (200), play the file, → After answer.
   * go to internal number: :meth:`CallRun.goto` with that number's current dialplan.
   * FAXRECEIVER: answer, receive T.30 over G.711 into a TIFF, convert to PDF, CDR fax row.
   * queue, voice menu, voicemail, classifier: :mod:`cloudpbx.engine.actions`
     (``B2bua.actions``); pickup (``888#``): :mod:`cloudpbx.engine.pickup`.
   * forwarding number (FWD-1): dialled out through a carrier's trunk,
     :mod:`cloudpbx.engine.trunks` (``B2bua.trunks``), which also takes carriers' INVITEs to
     the clients' external numbers (TRK-1).
4. **During the call**: re-INVITE/UPDATE hold (``sendonly``/``inactive``/``c=0.0.0.0``)
   plays the client's music on hold to the held party; unhold stops it. Session timers
   (RFC 4028, in the dialog layer) and the relay's RTP inactivity timeout end dead calls; the
   callee port's max incoming duration ends the bridge with BYE. The callee's REFER is a
   blind transfer (:mod:`cloudpbx.engine.transfer`): the caller goes on to that number.
5. **End**: the caller's CANCEL or BYE, the interpreter's :class:`EndCall` (a final status
   for an unanswered caller, else BYE), an administrator's hang-up (AC-1). Every call is in
   the :class:`~cloudpbx.engine.active_calls.CallRegistry` while it lasts and in the CDR
   (calls → legs → events, the DP-7 steps) through the CDR writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cloudpbx.dialplan.interpreter import (
    NO_PROVISIONAL_S,
    CallRun,
    Decision,
    EndCall,
    Ending,
    Outcome,
    RunAction,
    ring_failure_outcome,
)
from cloudpbx.dialplan.model import Action
from cloudpbx.engine.actions import Classified, MenuGoto
from cloudpbx.engine.active_calls import ActiveCall, ActiveLeg, CallState
from cloudpbx.engine.call import Call, Leg, LegPlayer, LegState, epoch_ms
from cloudpbx.engine.pickup import is_pickup_code, pick_up
from cloudpbx.engine.recording import RecordingResult, RelayRecording
from cloudpbx.engine.transfer import Transfers
from cloudpbx.media.player import FileSource, ToneSource
from cloudpbx.media.relay import Direction, LegMedia, RelayError, RelayLeg, RelaySession
from cloudpbx.media.tones import tone_plan
from cloudpbx.sip.auth import AuthOutcome, Credentials, DigestServer
from cloudpbx.sip.dialog import DialogStateError
from cloudpbx.sip.events import (
    ByeReceived,
    CallAnswered,
    CallFailed,
    CallKey,
    DialogAckReceived,
    DialogId,
    DialogRequest,
    DialogResponse,
    DialogTerminated,
    EarlyDialog,
    IncomingCall,
    InviteCancelled,
    PrackReceived,
    ProvisionalReceived,
    ReInvite,
    SessionExpired,
    TerminationReason,
    Update,
)
from cloudpbx.sip.message import Request
from cloudpbx.sip.sdp import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    AudioStream,
    Codec,
    OfferAnswerError,
    SdpError,
    SessionDescription,
    make_answer,
    make_offer,
    versioned,
)
from cloudpbx.sip.uri import SipURI
from cloudpbx.transport.base import Flow

__all__ = ["B2bua", "B2buaConfig", "CdrSink", "WriterSink"]

log = logging.getLogger(__name__)

SDP = "application/sdp"
OFFER_CODECS = (PCMU, PCMA, TELEPHONE_EVENT)

_CDR_OUTCOME: Mapping[Ending, str] = {
    Ending.NO_ANSWER: "no_answer",
    Ending.BUSY: "busy",
    Ending.LOOP: "loop",
}


class Snapshots(Protocol):
    """What the B2BUA reads of the configuration (engine/snapshot.py SnapshotStore)."""

    def port_by_login(self, login: str) -> Any: ...
    def client(self, client_id: int) -> Any: ...


class Contacts(Protocol):
    """The location service (engine/registrar.py Registrar)."""

    digest: DigestServer

    def contacts(self, port_id: int, now: float | None = None) -> list[Any]: ...


class Relays(Protocol):
    """Opens relay sessions (media/relay.py RelayManager)."""

    async def open_session(
        self, *, on_dead: Callable[[RelaySession, RelayLeg], None] | None = None
    ) -> RelaySession: ...


class CdrSink(Protocol):
    """The call record writer as the B2BUA uses it (engine/cdr.py CdrWriter adapts)."""

    def call_started(self, call: Call) -> None: ...
    def leg_added(self, call: Call, leg: Leg) -> None: ...
    def leg_answered(self, call: Call, leg: Leg) -> None: ...
    def leg_ended(self, call: Call, leg: Leg) -> None: ...
    def event(self, call: Call, kind: str, step: int | None, detail: str) -> None: ...
    def call_ended(self, call: Call) -> None: ...
    def recording(self, call: Call, result: RecordingResult) -> None: ...
    def fax(self, call: Call, outcome: Any) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class B2buaConfig:
    media_address: str | None = None  # advertised in SDP; None: the address the peer reached
    ring_max_s: int = 120  # DP-4 "timeout meaning": ring 0 = this
    tone_country: str = "ru"
    user_agent: str = "cloudpbx"
    recordings_dir: Path | None = None  # automatic recording (§4.9) writes here


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class B2bua:
    """The call engine's transaction user on top of :class:`~cloudpbx.engine.sipstack.SipStack`."""

    def __init__(
        self,
        stack: Any,
        *,
        snapshots: Snapshots,
        registrar: Contacts,
        relays: Relays,
        registry: Any,
        cdr: CdrSink,
        config: B2buaConfig | None = None,
        fax: Any = None,
        actions: Any = None,
    ) -> None:
        self.stack = stack
        self.snapshots = snapshots
        self.registrar = registrar
        self.relays = relays
        self.registry = registry
        self.cdr = cdr
        self.config = config or B2buaConfig()
        self.fax = fax  # FaxService (engine/fax.py) or None: FAXRECEIVER not available
        self.actions = actions  # engine/actions CallActions (voice menu, voicemail) or None
        self.trunks: Any = None  # engine/trunks.py TrunkService (TRK-1) or None: no carriers
        self.transfers = Transfers(self)  # REFER: blind transfer (§4.9, RFC 3515)
        self.calls: dict[str, Call] = {}
        self._by_dialog: dict[DialogId, Leg] = {}
        self._by_key: dict[CallKey, Leg] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._incoming: dict[int, int] = {}  # port id -> out legs alive (PRT-1 limits)
        self._closing = False
        self.counters: dict[str, int] = {}
        stack.dialog_handler = self.handle

    # --- lifecycle ----------------------------------------------------------------------------

    async def close(self, timeout: float = 5.0) -> None:
        """Hang up every call and wait (bounded) for their coroutines to finish."""
        self._closing = True
        for call in list(self.calls.values()):
            self.hangup_call(call, "engine stopping")
        if self._tasks:
            _done, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # --- SIP events ---------------------------------------------------------------------------

    def handle(self, event: Any) -> None:
        """The stack's dialog handler: one synchronous dispatch per event."""
        handler = self._HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def on_invite(self, event: IncomingCall) -> None:
        request = event.request
        if self._closing:
            self._reject(event, 503)
            return
        if self.trunks is not None and self.trunks.on_invite(self, event):
            return  # TRK-1: a carrier's call (IP auth / registration), not a port's
        port = self._authenticate(event)
        if port is None:
            return
        snapshot = self.snapshots.client(port.client_id)
        dialled = _dialled(request)
        if is_pickup_code(dialled, snapshot):
            self._count("pickup")
            pick_up(self, event, port, snapshot)  # PG-1: 888# takes a call ringing in the group
            return
        number = snapshot.numbers.get(dialled) if snapshot is not None else None
        if number is None and snapshot is not None:
            # Imported here: outbound uses trunks, which imports this module (a cycle).
            from cloudpbx.engine.outbound import dial_out, own_number, plan_of

            number = own_number(snapshot, dialled, plan_of(self))
            if number is None and dial_out(self, event, port, snapshot, dialled):
                return  # TRK-1: an external or emergency number, dialled out through a trunk
        if number is None:
            self._count("404")
            self._reject(event, 404)  # DP-4: 404 only when the dialled number does not exist
            return
        offer = _audio_offer(request)
        if offer is None:
            log.info(
                "not implemented: INVITE without an SDP offer (late offer) from %s", port.login
            )
            self._reject(event, 488)
            return
        self.stack.respond(event.tx_key, 100)
        call = Call(
            client_id=port.client_id,
            caller_port_id=port.id,
            caller=port.callerid_number or port.login,
            called=dialled,
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
        leg.remote_sdp = request.body
        call.dialplan_version_id = number.dialplan_version_id
        self.calls[call.uuid] = call
        self._by_dialog[event.dialog_id] = leg
        self._count("calls")
        call.task = self._spawn(self._run_call(call, snapshot, number, offer))

    def _authenticate(self, event: IncomingCall) -> Any:
        """RFC 3261 §22.3: the port whose credentials the INVITE carries, or None (answered)."""
        request = event.request
        digest = self.registrar.digest
        now = _wall()
        result = None
        for value in request.headers.get_all("proxy-authorization"):
            result = digest.verify("INVITE", value, now, self._credentials, body=request.body)
            if result.ok and result.username is not None:
                port = self.snapshots.port_by_login(result.username)
                if port is not None and port.is_active:
                    return port
        if result is not None and result.outcome is AuthOutcome.BAD_CREDENTIALS:
            self._count("403")
            self._reject(event, 403)
            return None
        stale = result is not None and result.rechallenge_stale
        challenges = digest.challenge(now, stale=stale)
        self._count("407")
        self.stack.respond(
            event.tx_key, 407, headers=[("Proxy-Authenticate", c) for c in challenges]
        )
        return None

    def _credentials(self, login: str) -> Credentials | None:
        port = self.snapshots.port_by_login(login)
        if port is None or not port.is_active:
            return None
        return Credentials(password=port.secret)

    def _reject(self, event: IncomingCall, status: int) -> None:
        self.stack.respond(event.tx_key, status)

    def on_cancel(self, event: InviteCancelled) -> None:
        leg = self._by_dialog.get(event.dialog_id)
        if leg is not None and event.initial:
            leg.status = 487
            self._leg_ended(leg, "cancelled by the caller")

    def on_bye(self, event: ByeReceived) -> None:
        leg = self._by_dialog.get(event.dialog_id)
        if leg is not None:
            self._leg_ended(leg, "BYE from the peer")

    def on_terminated(self, event: DialogTerminated) -> None:
        leg = self._by_dialog.pop(event.dialog_id, None)
        if leg is not None and event.reason is not TerminationReason.OTHER_FORK:
            self._leg_ended(leg, event.reason.value)

    def on_session_expired(self, event: SessionExpired) -> None:
        # RFC 4028 §10: no refresh came: the peer is presumed dead, end its call.
        leg = self._by_dialog.get(event.dialog_id)
        if leg is not None:
            log.info("call %s: session expired on leg %s", leg.call.uuid, leg.party)
            self.hangup_call(leg.call, "session expired (RFC 4028)")

    def on_early(self, event: EarlyDialog | ProvisionalReceived) -> None:
        leg = self._by_key.get(event.call)
        if leg is None:
            return
        if isinstance(event, EarlyDialog) and event.prack_pending:
            self.stack.prack(event.dialog_id)  # an offer in a reliable 1xx: not expected
        if leg.state is LegState.TRYING:
            leg.move(LegState.RINGING)
        leg.report("ringing", event.response.status)

    def on_answered(self, event: CallAnswered) -> None:
        leg = self._by_key.pop(event.call, None)
        if leg is None:
            return
        leg.dialog_id = event.dialog_id
        self._by_dialog[event.dialog_id] = leg
        leg.remote_sdp = event.response.body
        leg.status = event.response.status
        if event.ack_pending:
            self.stack.send_ack(event.dialog_id)
        leg.move(LegState.ANSWERED)
        if leg.ring_queue is None or leg.cancelled:
            self.stack.bye(event.dialog_id)  # nobody waits for it any more
            return
        leg.report("answered", event.response.status)

    def on_failed(self, event: CallFailed) -> None:
        leg = self._by_key.pop(event.call, None)
        if leg is None:
            return
        leg.status = event.status
        leg.final_response = event.response  # TRK-1: a carrier's challenge to answer
        leg.report("failed", None if leg.cancelled else event.status)
        self._leg_ended(leg, f"INVITE failed: {event.status}")

    def on_reinvite(self, event: ReInvite | Update) -> None:
        leg = self._by_dialog.get(event.dialog_id)
        if event.auto_answered:
            return
        if leg is None:
            self.stack.respond(event.tx_key, 481)
            return
        self._on_session_change(leg, event)

    def on_ack(self, event: DialogAckReceived) -> None:
        leg = self._by_dialog.get(event.dialog_id)
        if leg is not None and event.request.body:
            self._apply_remote_sdp(leg, event.request.body)

    def on_dialog_request(self, event: DialogRequest | PrackReceived) -> None:
        if isinstance(event, PrackReceived) and not event.needs_answer:
            return
        if event.request.method == "REFER":
            self.transfers.on_refer(event)  # blind transfer (engine/transfer.py, RFC 3515)
            return
        if event.request.method == "INFO" and self.actions is not None:
            leg = self._by_dialog.get(event.dialog_id)
            if leg is not None and leg is leg.call.caller_leg:
                self.actions.info(leg.call, event.request)  # a menu key (IVR-1)
        # INFO (DTMF), NOTIFY, MESSAGE, OPTIONS in a dialog: accepted.
        self.stack.respond(event.tx_key, 200)

    def on_dialog_response(self, event: DialogResponse) -> None:
        if event.method == "NOTIFY":
            self.transfers.on_response(event)  # a transfer's final NOTIFY, then BYE

    _HANDLERS: dict[type, Callable[[B2bua, Any], None]] = {
        IncomingCall: on_invite,
        InviteCancelled: on_cancel,
        ByeReceived: on_bye,
        DialogTerminated: on_terminated,
        SessionExpired: on_session_expired,
        EarlyDialog: on_early,
        ProvisionalReceived: on_early,
        CallAnswered: on_answered,
        CallFailed: on_failed,
        ReInvite: on_reinvite,
        Update: on_reinvite,
        DialogAckReceived: on_ack,
        DialogRequest: on_dialog_request,
        DialogResponse: on_dialog_response,
        PrackReceived: on_dialog_request,
    }

    # --- leg bookkeeping ----------------------------------------------------------------------

    def _leg_ended(self, leg: Leg, reason: str) -> None:
        if leg.is_ended:
            return
        leg.end_reason = reason
        leg.move(LegState.ENDED)
        if leg.direction == "out" and leg.port_id is not None:
            self._incoming[leg.port_id] = max(0, self._incoming.get(leg.port_id, 1) - 1)
        self._safe(self.cdr.leg_ended, leg.call, leg)
        self._publish(leg.call)

    def _safe(self, fn: Callable[..., Any], *args: Any) -> Any:
        """CDR and registry problems are logged, never allowed to break a call."""
        try:
            return fn(*args)
        except Exception:
            log.exception("%s failed", getattr(fn, "__name__", fn))
            return None

    # --- the call's coroutine -----------------------------------------------------------------

    async def _run_call(self, call: Call, snapshot: Any, number: Any, offer: AudioStream) -> None:
        caller = call.caller_leg_checked
        try:
            if not await self._open_media(call, caller, offer):
                return
            self._safe(self.registry.add, self._active(call))
            self._safe(self.cdr.call_started, call)
            self._safe(self.cdr.leg_added, call, caller)
            await self._run_dialplan(call, snapshot, number)
        except Exception:
            log.exception("call %s failed", call.uuid)
            call.outcome = call.outcome or "failed"
            self._end_caller(call, 500)
        finally:
            await self._teardown(call)

    async def _open_media(self, call: Call, caller: Leg, offer: AudioStream) -> bool:
        try:
            call.relay = await self.relays.open_session(on_dead=self._on_media_dead)
        except (RelayError, OSError) as exc:
            log.error("call %s: no media ports: %s", call.uuid, exc)
            call.outcome = "failed"
            self._end_caller(call, 503)
            return False
        try:
            answer = self._answer_sdp(caller, call.relay.a, caller.remote_sdp)
        except OfferAnswerError:
            call.outcome = "failed"
            self._end_caller(call, 488)  # RFC 3264 §6: no common codec
            return False
        caller.local_sdp = answer.to_bytes()
        call.relay.set_media("a", _leg_media(offer, answer, caller))
        return not caller.is_ended

    async def _run_dialplan(self, call: Call, snapshot: Any, number: Any) -> None:
        if number.dialplan is None:
            self._event(call, "no_dialplan", None, number.dialplan_error or "no dialplan")
            decision: Decision = EndCall(Ending.NO_ROUTE, 480)
            run = None
        else:
            run = CallRun(
                number.dialplan,
                time_zone=snapshot.time_zone,
                ring_max_s=self.config.ring_max_s,
                number=number.number,
            )
            decision = run.start(_utcnow())
        outcome: Decision | None = decision
        while isinstance(outcome, RunAction) and run is not None:
            call.steps = list(run.steps)
            self._event(call, "step", outcome.level, outcome.action.value)
            outcome = await self._next(call, snapshot, run, outcome)
        if run is not None:
            call.steps = list(run.steps)
            self._trace(call, run)
        if isinstance(outcome, EndCall):
            self._finish(call, outcome)

    async def _next(
        self, call: Call, snapshot: Any, run: CallRun, decision: RunAction
    ) -> Decision | None:
        """Perform one action; None when the caller left meanwhile."""
        step = decision.step
        if step.action is Action.GOTO_NUMBER:
            return self._goto(call, snapshot, run, decision)
        caller = call.caller_leg_checked
        task = asyncio.get_running_loop().create_task(self._perform(call, snapshot, decision))
        call.action_task = task
        gone = asyncio.get_running_loop().create_task(caller.ended.wait())
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return None
        outcome = task.result()
        if caller.is_ended:
            return None
        if isinstance(outcome, MenuGoto):  # IVR-1: a key chose a number, its dialplan goes on
            return run.goto(outcome.dialplan, _utcnow(), number=outcome.number, answered=True)
        if isinstance(outcome, Classified):  # CLS-1: leave by found_step / not_found_step
            return run.classified(outcome.found, _utcnow(), detail=outcome.detail)
        transferred = self.transfers.resume(call, run, _utcnow())
        if transferred is not None:  # the callee REFERred the caller: that number's dialplan
            return transferred
        return run.report(outcome, _utcnow(), answered=call.answered)

    def _goto(self, call: Call, snapshot: Any, run: CallRun, decision: RunAction) -> Decision:
        target = decision.step.target
        info = snapshot.internal_numbers.get(target.id) if target is not None else None
        if info is None or info.dialplan is None:
            detail = "the number has no dialplan" if info is not None else "no such number"
            return run.report(Outcome.NO_ROUTE, _utcnow(), answered=call.answered, detail=detail)
        self._event(call, "goto_number", decision.level, info.number)
        return run.goto(info.dialplan, _utcnow(), number=info.number)

    async def _perform(
        self, call: Call, snapshot: Any, decision: RunAction
    ) -> Outcome | MenuGoto | Classified:
        action = decision.step.action
        if self.actions is not None and self.actions.handles(action):
            return await self.actions.perform(self, call, snapshot, decision)  # type: ignore[no-any-return]
        if action is Action.RING_PORT:
            return await self._ring_port(call, snapshot, decision)
        if action is Action.PLAY_MESSAGE:
            return await self._play_message(call, snapshot, decision)
        if action is Action.FAX_RECEIVER and self.fax is not None:
            return await self.fax.receive(self, call, snapshot, decision)  # type: ignore[no-any-return]
        if action is Action.RING_FORWARDING and self.trunks is not None:
            return await self.trunks.ring_forwarding(self, call, snapshot, decision)  # type: ignore[no-any-return]
        # Without ``trunks`` (forwarding numbers), ``fax`` or ``actions`` (voice menu,
        # voicemail, queue, classifier) the action is visibly unimplemented (issue 5 item 4).
        log.warning(
            "call %s step %d: not implemented: action %s -> No route",
            call.uuid,
            decision.level,
            action.value,
        )
        self._event(call, "not_implemented", decision.level, action.value)
        return Outcome.NO_ROUTE

    def _finish(self, call: Call, decision: EndCall) -> None:
        if call.answered:
            call.outcome = "answered"
        else:
            call.outcome = _CDR_OUTCOME.get(decision.outcome, "no_route")
        self._end_caller(call, decision.sip_status or 480)

    def _trace(self, call: Call, run: CallRun) -> None:
        for move in run.trace:
            self._event(call, "move", move.to_level, f"{move.condition}: {move.reason}")

    # --- ringing a port (DP-4 "ring port") ------------------------------------------------

    async def _ring_port(self, call: Call, snapshot: Any, decision: RunAction) -> Outcome:
        target = decision.step.target
        port = snapshot.ports.get(target.id) if target is not None else None
        if port is None:
            return Outcome.NO_ROUTE
        limit = port.max_concurrent_incoming
        if limit is not None and self._incoming.get(port.id, 0) >= limit:
            self._event(call, "limit", decision.level, f"port {port.id}: {limit} calls")
            return ring_failure_outcome([], limit_reached=True)
        contacts = [b for b in self.registrar.contacts(port.id) if b.available]
        if not contacts:
            self._event(call, "no_route", decision.level, f"port {port.id} not registered")
            return Outcome.NO_ROUTE
        queue: asyncio.Queue[Any] = asyncio.Queue()
        branches = [self._fork(call, port, b, queue) for b in contacts]
        try:
            return await self._await_branches(call, snapshot, port, branches, queue, decision)
        finally:
            self._stop_ringback(call)
            for leg in branches:
                if leg is not call.callee:
                    self._drop_branch(leg)

    def _fork(self, call: Call, port: Any, binding: Any, queue: asyncio.Queue[Any]) -> Leg:
        relay = _relay(call)
        leg = call.add_leg(Leg(call, "out", port.name, port_id=port.id, flow=binding.flow))
        leg.ring_queue = queue
        host = self._media_host(binding.flow)
        offer = make_offer(
            local_addr=host,
            port=relay.b.port,
            codecs=OFFER_CODECS,
            session_id=secrets.randbelow(2**31),
            version=1,
        )
        leg.local_sdp = offer.to_bytes()
        invite = self._invite(call, binding, leg.local_sdp)
        leg.call_key = self.stack.send_invite(invite, binding.flow)
        self._by_key[leg.call_key] = leg
        self._incoming[port.id] = self._incoming.get(port.id, 0) + 1
        self._safe(self.cdr.leg_added, call, leg)
        return leg

    def _invite(self, call: Call, binding: Any, body: bytes) -> Request:
        flow: Flow = binding.flow
        host = self.stack.local_host_for(flow)
        shown = f"[{host}]" if ":" in host else host
        return self.stack.create_invite(  # type: ignore[no-any-return]
            request_uri=binding.uri,
            from_=f'"{call.caller}" <sip:{call.caller}@{shown}>',
            to=f"<sip:{call.called}@{shown}>",
            addr=flow,
            body=body,
            content_type=SDP,
        )

    async def _await_branches(
        self,
        call: Call,
        snapshot: Any,
        port: Any,
        branches: list[Leg],
        queue: asyncio.Queue[Any],
        decision: RunAction,
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + (decision.timeout_s or self.config.ring_max_s)
        pending = set(branches)
        statuses: list[int | None] = []
        while pending:
            now = loop.time()
            if now >= deadline:
                self._event(call, "no_answer", decision.level, f"{decision.timeout_s} s")
                return Outcome.NO_ANSWER  # DP-4: the timeout expired while something rang
            if now >= start + NO_PROVISIONAL_S:
                statuses += self._cancel_silent(pending)
                if not pending:
                    break
            wake = deadline if now >= start + NO_PROVISIONAL_S else start + NO_PROVISIONAL_S
            try:
                event = await asyncio.wait_for(queue.get(), timeout=max(0.0, wake - now))
            except TimeoutError:
                continue
            if event.kind == "ringing":
                self._ringback(call, snapshot, port)
            elif event.kind == "answered":
                # RFC 3261 §13.2.2.4 / forking: the first 2xx wins; the other contacts of
                # the port stop ringing now, not when the conversation ends.
                for other in pending - {event.leg}:
                    self._drop_branch(other)
                return await self._bridge(call, snapshot, port, event.leg, decision)
            else:
                pending.discard(event.leg)
                statuses.append(event.status)
        return ring_failure_outcome(statuses)

    def _cancel_silent(self, pending: set[Leg]) -> list[int | None]:
        """DP-4: a branch with no 1xx within 2 s counts as No route: cancel it now."""
        silent = [leg for leg in pending if leg.state is LegState.TRYING]
        for leg in silent:
            pending.discard(leg)
            self._drop_branch(leg)
        return [None] * len(silent)

    def _drop_branch(self, leg: Leg) -> None:
        """CANCEL an unanswered branch (RFC 3261 §9.1) or BYE an answered one."""
        leg.cancelled = True
        if leg.is_ended:
            return
        if leg.is_answered and leg.dialog_id is not None:
            self._bye(leg)
        elif leg.call_key is not None and not self.stack.cancel(leg.call_key):
            log.debug("branch %s: nothing to cancel yet", leg.id)

    def _bye(self, leg: Leg) -> None:
        if leg.dialog_id is None or leg.is_ended:
            return
        # Ended first: the dialog layer reports its own termination ("we sent BYE") from
        # inside stack.bye, and the record must keep why the PBX hung up (CDR-1).
        self._leg_ended(leg, leg.call.hangup_cause or "BYE from the PBX")
        with contextlib.suppress(DialogStateError):
            self.stack.bye(leg.dialog_id)

    # --- ringback and early media -------------------------------------------------------------

    def _ringback(self, call: Call, snapshot: Any, port: Any) -> None:
        caller = call.caller_leg_checked
        if "a" in call.players and call.players["a"].playing:
            return
        if call.answered:
            tone = ToneSource(tone_plan(self.config.tone_country)["ringback"])
            self._play_on(call, "a", tone)
            return
        music = snapshot.moh_path if port.services.get("ringback") == "music" else None
        if music is None:
            if caller.state is LegState.TRYING:
                self.stack.respond(caller.invite_tx, 180)  # ringback only: the phone's tone
                caller.move(LegState.RINGING)
            return
        if caller.state is LegState.TRYING:
            response = self.stack.respond(
                caller.invite_tx, 183, body=caller.local_sdp, content_type=SDP
            )
            caller.early_reliable = _is_reliable(response)
            caller.move(LegState.RINGING)
        self._play_on(call, "a", FileSource(music, loop=True))

    def _stop_ringback(self, call: Call) -> None:
        player = call.players.get("a")
        if player is not None:
            player.stop()

    def _play_on(self, call: Call, side: str, source: Any) -> asyncio.Future[bool]:
        """Start ``source`` towards the party on relay side ``side``."""
        relay = _relay(call)
        leg = call.caller_leg_checked if side == "a" else call.callee
        player = call.players.get(side)
        if player is None:
            relay_leg: RelayLeg = relay.leg(side)
            codec_leg = leg if leg is not None else call.caller_leg_checked
            player = LegPlayer(
                relay_leg, codec=codec_leg.voice_codec(), payload_type=codec_leg.voice_pt()
            )
            call.players[side] = player
        return player.start(source)

    # --- answering and bridging ---------------------------------------------------------------

    def answer_caller(self, call: Call) -> None:
        """200 OK to the caller with our SDP (the early 183's, or none after a reliable 183)."""
        caller = call.caller_leg_checked
        if call.answered or caller.is_ended:
            return
        if caller.early_reliable:
            self.stack.respond(caller.invite_tx, 200)
        else:
            self.stack.respond(caller.invite_tx, 200, body=caller.local_sdp, content_type=SDP)
        caller.move(LegState.ANSWERED)
        call.answer_ms = caller.answered_ms
        self._safe(self.cdr.leg_answered, call, caller)
        self._publish(call)

    async def _bridge(
        self, call: Call, snapshot: Any, port: Any, leg: Leg, decision: RunAction
    ) -> Outcome:
        relay = _relay(call)
        answer = offer_of(leg.remote_sdp)
        if answer is None:
            log.warning("call %s: 2xx without a usable SDP answer", call.uuid)
            self._bye(leg)
            return Outcome.NO_ROUTE
        leg.payload_types = _payload_types(answer)
        leg.remote_direction = answer.direction.value
        call.callee = leg
        self._stop_ringback(call)
        relay.set_media("b", _media_from(answer, leg.payload_types))
        self.answer_caller(call)
        self._safe(self.cdr.leg_answered, call, leg)
        self._event(call, "answered", decision.level, leg.party)
        self._publish(call)
        limit = self._duration_limit(call, port)
        recording = self._start_recording(call, snapshot, port)
        try:
            await leg.ended.wait()
        finally:
            if limit is not None:
                limit.cancel()
            if recording is not None:
                self._safe(self.cdr.recording, call, recording.close())
            self._unbridge(call, leg)
        return Outcome.AFTER_ANSWER  # DP-4: the callee hung up with the caller still there

    def _start_recording(self, call: Call, snapshot: Any, port: Any) -> RelayRecording | None:
        """§4.9 automatic recording: on when the callee's or the caller's port has it."""
        caller_port = snapshot.ports.get(call.caller_port_id)
        wanted = port.services.get("auto_recording") or (
            caller_port is not None and caller_port.services.get("auto_recording")
        )
        directory = self.config.recordings_dir
        if not wanted or directory is None:
            return None
        call.recordings += 1
        path = Path(directory) / str(call.client_id) / f"{call.uuid}-{call.recordings}.wav"
        try:
            recording = RelayRecording(_relay(call), path)
        except OSError as exc:
            log.error("call %s: cannot record to %s: %s", call.uuid, path, exc)
            return None
        self._event(call, "recording", None, path.name)
        return recording

    def _duration_limit(self, call: Call, port: Any) -> asyncio.TimerHandle | None:
        """PRT-1 limit: a port's maximum incoming duration ends the call with BYE."""
        seconds = port.max_incoming_duration_s
        if not seconds:
            return None
        return asyncio.get_running_loop().call_later(
            seconds, self.hangup_call, call, f"max incoming duration {seconds} s"
        )

    def _unbridge(self, call: Call, leg: Leg) -> None:
        if not leg.is_ended:
            self._bye(leg)
        call.callee = None
        call.held_by.discard(leg.id)
        player = call.players.pop("b", None)
        if player is not None:
            player.stop()
        relay = call.relay
        if relay is not None and not relay.closed:
            # Side b is idle until the next bridge: inactive, so no timer fires for it.
            relay.set_media(
                "b", LegMedia(payload_types=relay.b.media.payload_types, direction="inactive")
            )
            self._restore_direction(call, "a")

    # --- sound message ------------------------------------------------------------------------

    async def _play_message(self, call: Call, snapshot: Any, decision: RunAction) -> Outcome:
        target = decision.step.target
        path = snapshot.media_path(target.id) if target is not None else None
        if path is None or not Path(path).exists():
            self._event(call, "no_media", decision.level, f"media file {target}")
            return Outcome.NO_ROUTE
        try:
            source = FileSource(path)
        except (OSError, ValueError) as exc:
            log.warning("call %s: cannot play %s: %s", call.uuid, path, exc)
            return Outcome.NO_ROUTE
        self.answer_caller(call)
        self._event(call, "play", decision.level, Path(path).name)
        await self._play_on(call, "a", source)
        return Outcome.AFTER_ANSWER  # DP-4 "message": answered, finished → After answer

    # --- hold (re-INVITE / UPDATE) ------------------------------------------------------------

    def _on_session_change(self, leg: Leg, event: ReInvite | Update) -> None:
        call = leg.call
        relay = call.relay
        body = event.request.body
        if not body or relay is None or relay.closed:
            # No offer: ours goes in the 2xx, the answer comes in the ACK (RFC 3261 §14.2).
            self.stack.respond(event.tx_key, 200, body=leg.local_sdp, content_type=SDP)
            return
        side = "a" if leg is call.caller_leg else "b"
        offer = offer_of(body)
        if offer is None:
            self.stack.respond(event.tx_key, 488)
            return
        try:
            answer = self._answer_sdp(leg, relay.leg(side), body, previous=leg.local_sdp)
        except OfferAnswerError:
            self.stack.respond(event.tx_key, 488)
            return
        leg.local_sdp = answer.to_bytes()
        leg.remote_sdp = body
        self.stack.respond(event.tx_key, 200, body=leg.local_sdp, content_type=SDP)
        relay.set_media(side, _leg_media(offer, answer, leg))
        self._hold_changed(call, leg, side, offer.on_hold)

    def _apply_remote_sdp(self, leg: Leg, body: bytes) -> None:
        call = leg.call
        stream = offer_of(body)
        if stream is None or call.relay is None or call.relay.closed:
            return
        side = "a" if leg is call.caller_leg else "b"
        leg.remote_sdp = body
        call.relay.set_media(side, _media_from(stream, leg.payload_types or _payload_types(stream)))

    def _hold_changed(self, call: Call, leg: Leg, side: str, on_hold: bool) -> None:
        """``leg`` put the other party on hold (or took it off): music on hold to that party."""
        other = "b" if side == "a" else "a"
        if on_hold and leg.id not in call.held_by:
            call.held_by.add(leg.id)
            self._event(call, "hold", None, leg.party)
            self._moh(call, other)
        elif not on_hold and leg.id in call.held_by:
            call.held_by.discard(leg.id)
            self._event(call, "unhold", None, leg.party)
            player = call.players.get(other)
            if player is not None:
                player.stop()
            self._restore_direction(call, other)
        self._publish(call)

    def _moh(self, call: Call, side: str) -> None:
        relay = _relay(call)
        if side == "b" and call.callee is None:
            return
        # The relay stops forwarding to the held party; we play to it from its own socket.
        relay.set_direction(side, "inactive")
        snapshot = self.snapshots.client(call.client_id)
        path = snapshot.moh_path if snapshot is not None else None
        if path is None:
            log.info("call %s: no music on hold in the default media pack", call.uuid)
            return
        try:
            self._play_on(call, side, FileSource(path, loop=True))
        except (OSError, ValueError) as exc:
            log.warning("call %s: music on hold %s: %s", call.uuid, path, exc)

    def _restore_direction(self, call: Call, side: str) -> None:
        relay = call.relay
        leg = call.caller_leg if side == "a" else call.callee
        if relay is None or relay.closed or leg is None:
            return
        direction = leg.remote_direction
        if direction in ("sendrecv", "sendonly", "recvonly", "inactive"):
            relay.set_direction(side, _direction(direction))

    # --- media helpers ------------------------------------------------------------------------

    def _media_host(self, flow: Flow) -> str:
        host: str = self.config.media_address or self.stack.local_host_for(flow)
        return host

    def _answer_sdp(
        self,
        leg: Leg,
        relay_leg: RelayLeg,
        body: bytes,
        previous: bytes = b"",
    ) -> SessionDescription:
        """Our answer to the offer ``body`` from ``leg`` (RFC 3264 §6), for ``relay_leg``."""
        try:
            description = SessionDescription.parse(body)
        except SdpError as exc:
            raise OfferAnswerError(str(exc)) from None
        supported: list[Codec] = [PCMU, PCMA, TELEPHONE_EVENT]
        if leg.payload_types:  # a re-offer: keep the law we use (RFC 3264 §8.3.2)
            keep = leg.voice_codec().name
            supported = [c for c in supported if c.name in (keep, TELEPHONE_EVENT.name)]
        assert leg.flow is not None
        answer = make_answer(
            description,
            local_addr=self._media_host(leg.flow),
            port=relay_leg.port,
            supported=supported,
            session_id=secrets.randbelow(2**31),
            version=1,
            single_codec=True,
        )
        before = SessionDescription.parse(previous) if previous else None
        answer = versioned(answer, before)
        chosen = answer.audio()
        if chosen is not None:
            leg.payload_types = _payload_types(chosen)
        return answer

    def _on_media_dead(self, session: RelaySession, relay_leg: RelayLeg) -> None:
        """The relay's inactivity timeout: a party sent no RTP for too long (issue 5 item 4)."""
        for call in self.calls.values():
            if call.relay is session:
                log.info("call %s: no RTP on side %s: ending the call", call.uuid, relay_leg.name)
                self._event(call, "rtp_timeout", None, relay_leg.name)
                self.hangup_call(call, "RTP inactivity")
                return

    # --- ending -------------------------------------------------------------------------------

    def hangup_call(self, call: Call, reason: str) -> bool:
        """End ``call`` from our side (AC-1 hang-up, limits, dead peers, shutdown)."""
        caller = call.caller_leg
        if caller is None or caller.is_ended:
            return False
        self._event(call, "hangup", None, reason)
        call.hangup_cause = call.hangup_cause or reason  # each leg's hangup_cause (CDR-1)
        if not call.answered:
            call.outcome = call.outcome or "cancelled"
        self._end_caller(call, 480)
        return True

    async def hangup(self, call_uuid: str) -> bool:
        """EngineControl's hang-up: BYE (or a final response) to both sides."""
        call = self.calls.get(call_uuid)
        return call is not None and self.hangup_call(call, "hung up by an administrator")

    def _end_caller(self, call: Call, status: int) -> None:
        """The caller's leg ends: BYE when answered, else the final ``status``."""
        caller = call.caller_leg
        if caller is None or caller.is_ended:
            return
        if caller.is_answered:
            self._bye(caller)
            return
        caller.status = status
        self.stack.respond(caller.invite_tx, status)
        self._leg_ended(caller, f"rejected with {status}")

    async def _teardown(self, call: Call) -> None:
        caller = call.caller_leg_checked
        if not caller.is_ended:
            self._end_caller(call, 480)
        for leg in call.legs:
            if leg is not caller and not leg.is_ended:
                self._drop_branch(leg)
        for player in call.players.values():
            player.stop()
        if call.relay is not None:
            call.relay.close()
        if call.outcome is None:
            call.outcome = "answered" if call.answered else "cancelled"
        self.calls.pop(call.uuid, None)
        self.transfers.forget(call)
        self._safe(self.registry.remove, call.uuid)
        self._safe(self.cdr.call_ended, call)

    # --- active calls and CDR events ----------------------------------------------------------

    def _event(self, call: Call, kind: str, step: int | None, detail: str) -> None:
        self._safe(self.cdr.event, call, kind, step, detail)

    def _publish(self, call: Call) -> None:
        if call.uuid in self.calls:
            self._safe(self.registry.update, self._active(call))

    def _active(self, call: Call) -> ActiveCall:
        state = CallState.RINGING
        if call.answered:
            state = CallState.HELD if call.held_by else CallState.ANSWERED
        legs = tuple(
            ActiveLeg(
                leg_id=leg.id,
                direction=leg.direction,
                party=leg.party,
                port_id=leg.port_id,
                state=CallState.ANSWERED if leg.is_answered else CallState.RINGING,
            )
            for leg in call.live_legs()
        )
        return ActiveCall(
            uuid=call.uuid,
            client_id=call.client_id,
            caller=call.caller,
            called=call.called,
            internal_number=call.called,
            state=state,
            start_ms=call.start_ms,
            answer_ms=call.answer_ms,
            legs=legs,
        )


# --- the call record --------------------------------------------------------------------------


class WriterSink:
    """:class:`CdrSink` over :class:`~cloudpbx.engine.cdr.CdrWriter` (CDR-1, DP-7): the
    writer speaks uuids and leg keys, the B2BUA its Call and Leg objects."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def call_started(self, call: Call) -> None:
        self.writer.call_started(
            client_id=call.client_id,
            caller=call.caller,
            called=call.called,
            direction=call.direction,
            internal_number=call.called,
            dialplan_version_id=call.dialplan_version_id,
            operator_id=call.operator_id,
            start_ms=call.start_ms,
            call_uuid=call.uuid,
        )

    def leg_added(self, call: Call, leg: Leg) -> None:
        leg.cdr_key = self.writer.leg_added(
            call.uuid,
            direction=leg.direction,
            party=leg.party,
            port_id=leg.port_id,
            operator_id=leg.operator_id,
            sip_call_id=leg.call_key.call_id if leg.call_key is not None else None,
            start_ms=leg.created_ms,
        )

    def leg_answered(self, call: Call, leg: Leg) -> None:
        if leg.cdr_key is not None:
            self.writer.leg_answered(call.uuid, leg.cdr_key, leg.answered_ms)
        if leg is call.caller_leg:
            self.writer.call_answered(call.uuid, leg.answered_ms)

    def leg_ended(self, call: Call, leg: Leg) -> None:
        if leg.cdr_key is None:
            return
        self.writer.leg_ended(
            call.uuid,
            leg.cdr_key,
            outcome=_leg_outcome(call, leg),
            end_ms=leg.ended_ms,
            hangup_cause=(leg.end_reason[:64] or None),
            codec=leg.voice_codec().name if leg.payload_types else None,
            quality=leg_quality(call, leg),
        )

    def event(self, call: Call, kind: str, step: int | None, detail: str) -> None:
        self.writer.event(call.uuid, kind, step_level=step, detail={"detail": detail})

    def call_ended(self, call: Call) -> None:
        self.writer.call_ended(
            call.uuid,
            outcome=call.outcome or "failed",
            steps=call.steps,
            operator_id=call.operator_id,
        )

    def fax(self, call: Call, outcome: Any) -> None:
        """A FAXRECEIVER session's result (engine/fax.py :class:`FaxOutcome`), FAX-1."""
        result = outcome.result
        self.writer.fax(
            call.uuid,
            pdf_path=outcome.pdf_path,
            tiff_path=result.tiff_path if outcome.pdf_path is not None else None,
            pages=result.pages,
            remote_ident=result.remote_ident[:64],
            status=outcome.status,
            error=outcome.error,
        )

    def recording(self, call: Call, result: RecordingResult) -> None:
        self.writer.recording(
            call.uuid,
            path=result.path,
            start_ms=result.start_ms,
            duration_ms=result.duration_ms,
            size_bytes=result.size_bytes,
        )


def leg_quality(call: Call, leg: Leg) -> dict[str, Any] | None:
    """The media quality of a leg that had media on the call's relay (CDR-1 ``quality``):
    :meth:`~cloudpbx.media.relay.RelayLeg.quality` of its relay side -- what the party sent
    us (packets, RFC 3550 A.3 loss, A.8 jitter), what we sent it (relayed packets plus the
    PBX's own ringback/messages/music, ``tx_played``), its RTCP view and the RTT. The caller
    is side ``a``; the bridged callee side ``b`` (counters of side ``b`` add up over the
    successive bridges of one call). None for a branch that never carried media."""
    relay = call.relay
    if relay is None:
        return None
    if leg is call.caller_leg:
        side = relay.a
    elif leg is call.callee:
        side = relay.b
    else:
        return None
    quality = dict(side.quality())
    player = call.players.get(side.name)
    played = player.frames if player is not None else 0
    quality["tx_played"] = played
    quality["tx_packets"] = int(quality.get("tx_packets") or 0) + played
    if not quality.get("codec") and leg.payload_types:
        quality["codec"] = leg.voice_codec().name
    return quality


def _leg_outcome(call: Call, leg: Leg) -> str:
    if leg.answered_ms is not None:
        return "answered"
    if leg is call.caller_leg:
        return call.outcome or "cancelled"
    if leg.status in (486, 600, 603):
        return "busy"
    if leg.cancelled:
        return "cancelled"
    return "no_route"


# --- pure helpers -----------------------------------------------------------------------------


def _wall() -> float:
    return epoch_ms() / 1000.0


def _relay(call: Call) -> RelaySession:
    if call.relay is None:
        raise RuntimeError("the call has no media yet")
    return call.relay


def _dialled(request: Request) -> str:
    """The dialled number: the Request-URI user (phones send ``888#`` as ``888%23``)."""
    uri = request.uri
    user = uri.user if isinstance(uri, SipURI) else None
    return (user or "").replace("%23", "#")


def offer_of(body: bytes) -> AudioStream | None:
    """The first usable audio stream of a session description (None: none or garbage)."""
    if not body:
        return None
    try:
        return SessionDescription.parse(body).audio()
    except SdpError:
        return None


def _audio_offer(request: Request) -> AudioStream | None:
    content_type = request.headers.get("content-type", "")
    if "sdp" not in content_type.lower():
        return None
    return offer_of(request.body)


def _payload_types(stream: AudioStream) -> dict[int, str]:
    return {c.payload_type: f"{c.name}/{c.clock_rate}" for c in stream.codecs}


def _direction(value: str) -> Direction:
    if value == "sendonly":
        return "sendonly"
    if value == "recvonly":
        return "recvonly"
    if value == "inactive":
        return "inactive"
    return "sendrecv"


def _media_from(stream: AudioStream, payload_types: dict[int, str]) -> LegMedia:
    """The relay's view of a peer's description: where it receives, its PTs, its direction
    (c=0.0.0.0 means "do not send to me", RFC 3264 §8.4)."""
    remote = None
    if stream.host and not stream.unspecified_address and stream.port:
        remote = (stream.host, stream.port)
    return LegMedia(
        remote=remote,
        payload_types=payload_types or {0: "PCMU/8000"},
        direction=_direction(stream.effective_direction.value),
    )


def _leg_media(offer: AudioStream, answer: SessionDescription, leg: Leg) -> LegMedia:
    leg.remote_direction = offer.effective_direction.value
    chosen = answer.audio()
    pts = _payload_types(chosen) if chosen is not None else {}
    leg.payload_types = pts
    return _media_from(offer, pts)


def _is_reliable(response: Any) -> bool:
    if response is None:
        return False
    return any("100rel" in v.lower() for v in response.headers.values("require"))
