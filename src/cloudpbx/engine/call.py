"""Calls, legs and bridges (ENGINEERING.md §1 "calls are legs and bridges").

A :class:`Call` is what one caller started: its legs and the dialplan run that drives it. A
:class:`Leg` is one SIP dialog with its state (:class:`LegState`, transitions in
``LEG_TRANSITIONS``); the caller's leg is ``call.caller`` (direction ``in``), every branch the
B2BUA forks to a phone is an ``out`` leg. The media of the call is anchored on ONE
:class:`~cloudpbx.media.relay.RelaySession` opened when the INVITE arrives: side ``a`` faces
the caller, side ``b`` the callee of the moment. What the PBX itself says to a party --
ringback, music on hold, a sound message -- a :class:`LegPlayer` sends from that party's relay
socket, so the caller's media address never changes during the call: a message followed by a
ring step followed by hold needs no re-INVITE towards the caller (see docs/engine.md).

Leg events the B2BUA reports from SIP (answered, ended, 1xx) land on asyncio primitives of the
leg (``answered``/``ended`` futures, the ring queue), which the call's coroutine awaits.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from cloudpbx.media.codecs import G711Codec, codec_by_name
from cloudpbx.media.player import FRAME_SAMPLES, AudioSource, Pacer
from cloudpbx.media.relay import RelayLeg, RelaySession
from cloudpbx.media.rtp import RtpSender
from cloudpbx.sip.events import CallKey, DialogId
from cloudpbx.transport.base import Flow

__all__ = [
    "LEG_TRANSITIONS",
    "Call",
    "Leg",
    "LegPlayer",
    "LegState",
    "LegStateError",
    "RingEvent",
    "epoch_ms",
]

log = logging.getLogger(__name__)


def epoch_ms() -> int:
    """UTC epoch milliseconds: the unit of every time in the call record (CDR-1)."""
    return time.time_ns() // 1_000_000


class LegState(Enum):
    TRYING = "trying"  # out: INVITE sent / in: INVITE received, nothing answered yet
    RINGING = "ringing"  # a 180/183 went out (in) or came back (out)
    ANSWERED = "answered"  # 2xx sent (in) / received (out)
    ENDED = "ended"


_L = LegState
LEG_TRANSITIONS: dict[tuple[LegState, LegState], str] = {
    (_L.TRYING, _L.RINGING): "RFC 3261 §13.3.1.1: a provisional response",
    (_L.TRYING, _L.ANSWERED): "RFC 3261 §13.3.1.4: a 2xx without ringing first",
    (_L.RINGING, _L.RINGING): "more 1xx (180 then 183, forks)",
    (_L.RINGING, _L.ANSWERED): "RFC 3261 §13.3.1.4: the 2xx",
    (_L.TRYING, _L.ENDED): "rejected, cancelled or failed before any 1xx",
    (_L.RINGING, _L.ENDED): "rejected, cancelled or no answer",
    (_L.ANSWERED, _L.ENDED): "RFC 3261 §15: BYE from either side, or a dead peer",
}


class LegStateError(RuntimeError):
    def __init__(self, state: LegState, target: LegState) -> None:
        super().__init__(f"leg: no transition from {state.value} to {target.value}")


RingKind = Literal["ringing", "answered", "failed"]


@dataclass(frozen=True, slots=True)
class RingEvent:
    """What a forked branch reported to the ring step waiting on it."""

    leg: Leg
    kind: RingKind
    status: int | None = None  # failed: the final status; None: no 1xx / transport / ours


@dataclass(eq=False)
class Leg:
    """One SIP dialog of a call, with its media side in the call's relay (``a`` or ``b``)."""

    call: Call
    direction: Literal["in", "out"]
    party: str  # the number or login on the other end
    port_id: int | None = None
    flow: Flow | None = None
    operator_id: int | None = None  # the trunk the leg runs over (TRK-1, CDR-1)
    dialog_id: DialogId | None = None
    call_key: CallKey | None = None  # out legs: our INVITE
    invite_tx: Any = None  # in legs: the INVITE server transaction to answer
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: LegState = LegState.TRYING
    created_ms: int = field(default_factory=epoch_ms)
    answered_ms: int | None = None
    ended_ms: int | None = None
    status: int | None = None  # the final status of its INVITE
    final_response: Any = None  # out legs: that response (a trunk's 401/407 challenge)
    end_reason: str = ""
    ring_queue: asyncio.Queue[RingEvent] | None = None
    cancelled: bool = False  # we CANCELled it (its failure is not the callee's answer)
    cdr_key: str | None = None  # the CDR writer's key of the leg
    early_reliable: bool = False  # in: our 183 went reliably (RFC 3262): the 200 has no SDP
    remote_sdp: bytes = b""  # the peer's last session description
    local_sdp: bytes = b""  # ours, last sent
    payload_types: dict[int, str] = field(default_factory=dict)  # as negotiated
    remote_direction: str = "sendrecv"  # the peer's SDP direction (hold detection)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def move(self, target: LegState) -> None:
        """Change state through ``LEG_TRANSITIONS``; an illegal change is our bug."""
        if (self.state, target) not in LEG_TRANSITIONS:
            raise LegStateError(self.state, target)
        self.state = target
        if target is LegState.ANSWERED:
            self.answered_ms = epoch_ms()
        elif target is LegState.ENDED:
            self.ended_ms = epoch_ms()
            self.ended.set()

    @property
    def is_ended(self) -> bool:
        return self.state is LegState.ENDED

    @property
    def is_answered(self) -> bool:
        return self.state is LegState.ANSWERED

    def report(self, kind: RingKind, status: int | None = None) -> None:
        """Hand a branch event to the ring step waiting on this leg (if any)."""
        if self.ring_queue is not None:
            self.ring_queue.put_nowait(RingEvent(self, kind, status))

    def voice_codec(self) -> G711Codec:
        """The G.711 law negotiated on this leg (PCMU when nothing is known yet)."""
        for name in self.payload_types.values():
            encoding = name.split("/")[0].upper()
            if encoding in ("PCMU", "PCMA"):
                return codec_by_name(encoding)
        return codec_by_name("PCMU")

    def voice_pt(self) -> int:
        codec = self.voice_codec()
        for pt, name in self.payload_types.items():
            if name.split("/")[0].upper() == codec.name:
                return pt
        return codec.payload_type


@dataclass(eq=False)
class Call:
    """One call: the caller's leg, the legs forked or bridged to it, its relay session."""

    client_id: int
    caller_port_id: int | None  # None: a call from a carrier (TRK-1)
    caller: str  # the caller's number (the authenticated port's caller ID), CDR-1
    called: str  # the dialled internal number (the DID for a call from a trunk)
    direction: str = "internal"  # CDR-1: "incoming" for calls from a trunk
    operator_id: int | None = None  # the trunk that carried the call (TRK-1, CDR-1)
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    start_ms: int = field(default_factory=epoch_ms)
    answer_ms: int | None = None
    legs: list[Leg] = field(default_factory=list)
    relay: RelaySession | None = None
    caller_leg: Leg | None = None
    callee: Leg | None = None  # the out leg bridged now (side b of the relay)
    outcome: str | None = None  # the CDR outcome once known
    held_by: set[str] = field(default_factory=set)  # leg ids that put the other side on hold
    players: dict[str, LegPlayer] = field(default_factory=dict)  # relay side -> player
    task: asyncio.Task[None] | None = None
    action_task: asyncio.Task[Any] | None = None
    steps: list[int] = field(default_factory=list)
    dialplan_version_id: int | None = None  # DP-4: the version the call runs on
    recordings: int = 0  # automatic recordings made (one per bridge)
    faxes: int = 0  # FAXRECEIVER sessions started (one TIFF/PDF each)
    hangup_cause: str | None = None  # why the PBX ended the call (AC-1, limits, dead peer)

    @property
    def caller_leg_checked(self) -> Leg:
        if self.caller_leg is None:
            raise RuntimeError("the call has no caller leg yet")
        return self.caller_leg

    def add_leg(self, leg: Leg) -> Leg:
        self.legs.append(leg)
        if leg.direction == "in" and self.caller_leg is None:
            self.caller_leg = leg
        return leg

    @property
    def answered(self) -> bool:
        return self.answer_ms is not None

    def live_legs(self) -> list[Leg]:
        return [leg for leg in self.legs if not leg.is_ended]


# --- what the PBX says to a party ---------------------------------------------------------


class LegPlayer:
    """Plays an :class:`~cloudpbx.media.player.AudioSource` to the peer of one relay leg,
    from that leg's own socket (so the peer keeps the media address it was given).

    Frames are paced by :class:`~cloudpbx.media.player.Pacer` (no drift), G.711-encoded in
    the law negotiated on the leg, sent with our own SSRC (RFC 3550 §8.1: random), continuous
    sequence numbers and timestamps, the marker bit on the first packet (RFC 3551 §4.1).
    """

    def __init__(
        self,
        leg: RelayLeg,
        *,
        codec: G711Codec,
        payload_type: int,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.leg = leg
        self.codec = codec
        self._loop = asyncio.get_running_loop()
        self._clock = clock or self._loop.time
        self._sender = RtpSender(
            ssrc=secrets.randbits(32),
            initial_seq=secrets.randbits(16),
            initial_ts=secrets.randbits(32),
            payload_type=payload_type,
        )
        self._source: AudioSource | None = None
        self._pacer: Pacer | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._done: asyncio.Future[bool] | None = None
        self._marker = True
        self.frames = 0

    @property
    def playing(self) -> bool:
        return self._source is not None

    @property
    def source(self) -> AudioSource | None:
        """What plays now (None: nothing)."""
        return self._source

    def start(self, source: AudioSource) -> asyncio.Future[bool]:
        """Start ``source`` (stopping what played); the future says whether it played to
        its end (True) or was stopped (False). No task: one timer handle per frame."""
        self.stop()
        self._source = source
        self._pacer = Pacer(self._clock())
        done: asyncio.Future[bool] = self._loop.create_future()
        self._done = done
        self._marker = True
        self._tick()
        return done

    async def play(self, source: AudioSource) -> bool:
        """Play ``source`` to its end (True) or until :meth:`stop` (False)."""
        return await self.start(source)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._finish(False)

    def _finish(self, completed: bool) -> None:
        source, self._source = self._source, None
        close = getattr(source, "close", None)
        if close is not None:
            close()
        if self._done is not None and not self._done.done():
            self._done.set_result(completed)

    def _tick(self) -> None:
        self._handle = None
        pacer, source = self._pacer, self._source
        if pacer is None or source is None:
            return
        skip, send = pacer.due(self._clock())
        if skip:
            self._sender.skip(skip * FRAME_SAMPLES)
        for _ in range(send):
            pcm = source.read(FRAME_SAMPLES)
            if pcm is None:
                self._finish(True)
                return
            self._send(pcm.ljust(2 * FRAME_SAMPLES, b"\x00"))
        self._handle = self._loop.call_at(pacer.deadline(), self._tick)

    def _send(self, pcm: bytes) -> None:
        transport = self.leg.transport
        dest = self.leg.dest or self.leg.media.remote
        packet = self._sender.packetize(self.codec.encode(pcm), FRAME_SAMPLES, self._marker)
        self._marker = False
        self.frames += 1
        if transport is not None and dest is not None:
            transport.sendto(bytes(packet), dest)
