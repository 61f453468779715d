"""What the caller says and keys while the PBX itself talks to it (voice menu, voicemail).

Decision (docs/engine.md "Voice menus and voicemail"): the caller's media stays on its relay
socket (side ``a`` of the call's :class:`~cloudpbx.media.relay.RelaySession`), as for
ringback and sound messages, so a menu followed by a ring step, or a message followed by
voicemail, needs no re-INVITE towards the caller. The PBX plays from that socket
(:class:`~cloudpbx.engine.call.LegPlayer`) and listens through the relay's tap on side ``a``:

* while the action runs, side ``b`` (idle: nobody is bridged) is given the caller's own
  payload types and direction ``inactive``: the relay then maps every caller packet, RFC 4733
  events included, one to one (no transcoding) to the tap and forwards nothing;
* the tap feeds telephone-events to a :class:`~cloudpbx.media.dtmf.DtmfReceiver` at once and
  every packet into a :class:`~cloudpbx.media.jitter.JitterBuffer`; a drift-free 20 ms
  :class:`~cloudpbx.media.player.Pacer` tick takes one frame out, decodes it and hands it to
  the sinks (``sink.write(pcm | None)``, the contract of ``media/stream.py``: the voicemail
  recorder) and, when the caller did not negotiate telephone-event, to the in-band
  :class:`~cloudpbx.media.dtmf.DtmfDetector` (the same rule as ``MediaStream``: one source of
  digits, never both);
* SIP INFO digits (``application/dtmf-relay`` / ``application/dtmf``) come from the B2BUA's
  in-dialog request handler through :meth:`CallerInput.info`.

Digits land in :attr:`CallerInput.digits`. :meth:`CallerInput.close` removes the tap and
gives side ``b`` its previous media back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Final

from cloudpbx.media.codecs import codec_by_name
from cloudpbx.media.dtmf import (
    DigitDetected,
    DtmfDetector,
    DtmfError,
    DtmfReceiver,
    parse_info_body,
)
from cloudpbx.media.inbound import AudioSink, AudioSinks, decode_slot, expire_event, write_sinks
from cloudpbx.media.jitter import JitterBuffer
from cloudpbx.media.player import Pacer
from cloudpbx.media.relay import LegMedia, RelaySession
from cloudpbx.media.rtp import RtpPacket

__all__ = ["AudioSink", "CallerInput"]

log = logging.getLogger(__name__)

_monotonic: Final = time.monotonic


def _decoders(payload_types: Mapping[int, str]) -> dict[int, Callable[[bytes], bytes]]:
    out: dict[int, Callable[[bytes], bytes]] = {}
    for pt, name in payload_types.items():
        encoding = name.split("/", 1)[0].strip().upper()
        if encoding in ("PCMU", "PCMA"):
            out[pt] = codec_by_name(encoding).decode
    return out


def _event_pt(payload_types: Mapping[int, str]) -> int | None:
    for pt, name in sorted(payload_types.items()):
        if name.split("/", 1)[0].strip().upper() == "TELEPHONE-EVENT":
            return pt
    return None


class CallerInput(AudioSinks):
    """The caller's digits and audio from the call's relay (see the module docstring).

    ``payload_types`` are the ones negotiated with the caller (``Leg.payload_types``).
    ``inband`` forces the in-band detector on or off (None: on without telephone-event).
    """

    def __init__(
        self,
        relay: RelaySession,
        payload_types: Mapping[int, str],
        *,
        jitter_depth: float = 0.060,
        inband: bool | None = None,
    ) -> None:
        self.relay = relay
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.frame_time = _monotonic()  # the call-clock time of the frame sinks get now
        self._loop = asyncio.get_running_loop()
        self._decoders = _decoders(payload_types)
        self._event_pt = _event_pt(payload_types)
        use_inband = inband if inband is not None else self._event_pt is None
        self._detector = DtmfDetector() if use_inband else None
        self._receiver = DtmfReceiver()
        self._last_event: tuple[int, float] | None = None  # (RTP ts, arrival) of events
        self._jitter = JitterBuffer(depth=jitter_depth)
        self._sinks: list[AudioSink] = []
        self._ssrc = relay.a.out_ssrc
        self._saved_b = relay.b.media
        self._pacer = Pacer(_monotonic())
        self._handle: asyncio.TimerHandle | None = None
        self.closed = False
        mirror = LegMedia(payload_types=dict(payload_types), direction="inactive")
        relay.set_media("b", mirror)  # every caller PT maps to itself; nothing is forwarded
        relay.set_tap("a", self._tap)
        self._arm()

    # --- digits (sinks: add_sink / remove_sink from AudioSinks) -----------------------

    def info(self, content_type: str, body: bytes) -> bool:
        """A SIP INFO request's body; True when it carried a DTMF key."""
        try:
            found = parse_info_body(content_type, body)
        except DtmfError:
            return False  # a malformed body: the INFO is still answered 200 (RFC 6086 §4.2.2)
        if found is None:
            return False
        self.digits.put_nowait(found.digit)
        return True

    def flush_digits(self) -> list[str]:
        """Drop the keys pressed so far (e.g. during a greeting that is not interruptible)."""
        out = []
        while not self.digits.empty():
            out.append(self.digits.get_nowait())
        return out

    def _detected(self, found: list[DigitDetected]) -> None:
        for d in found:
            self.digits.put_nowait(d.digit)

    # --- the tap (per packet, on the relay's hot path: keep it short) -------------------

    def _tap(self, pt: int, seq: int, ts: int, payload: bytes) -> None:
        now = _monotonic()
        if pt == self._event_pt:
            self._last_event = (ts, now)
            self._detected(self._receiver.feed(ts, payload))
        packet = RtpPacket(
            payload_type=pt, sequence=seq, timestamp=ts, ssrc=self._ssrc, payload=payload
        )
        self._jitter.put(packet, now)

    # --- the 20 ms tick -------------------------------------------------------------------

    def _arm(self) -> None:
        if self.closed:
            return
        delay = self._pacer.deadline() - _monotonic()
        self._handle = self._loop.call_later(max(0.0, delay), self._tick)

    def _tick(self) -> None:
        self._handle = None
        now = _monotonic()
        pacer = self._pacer
        first = pacer.next_frame
        skip, send = pacer.due(now)
        try:
            for i in range(skip + send):  # every slot: sinks follow the call clock
                self.frame_time = pacer.time_of(first + i)
                self._slot(self.frame_time)
            self._expire_event(now)
        except Exception:
            log.exception("caller input tick failed")
        self._arm()

    def _slot(self, at: float) -> None:
        pcm = decode_slot(self._jitter, self._decoders, at)
        if self._detector is not None and pcm is not None:
            self._detected(self._detector.feed(pcm))
        write_sinks(self._sinks, pcm, "caller audio")

    def _expire_event(self, now: float) -> None:
        """RFC 4733 §2.5.2.2: an event whose end packets were all lost ends by timeout."""
        self._detected(expire_event(self._receiver, self._last_event, now))

    # --- end ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening; side ``b`` gets its media back (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        relay = self.relay
        if not relay.closed:
            relay.set_tap("a", None)
            relay.set_media("b", self._saved_b)
