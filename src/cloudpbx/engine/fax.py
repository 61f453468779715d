"""The FAXRECEIVER action (DP-2 "Service/FAXRECEIVER", FAX-1): a fax sent to the number lands
in the call record as a PDF.

What :meth:`FaxService.receive` does for a call whose dialplan reaches the step:

1. answers the caller (200: billing starts, DP-4 "message"-like: the step ends After answer);
2. terminates the caller's audio in a :class:`~cloudpbx.media.fax.FaxReceiver` **on the
   caller's own relay socket** (side ``a`` of the call's
   :class:`~cloudpbx.media.relay.RelaySession`), like every other sound the PBX makes (see
   docs/engine.md): the caller keeps the one media address it was given, no re-INVITE. The
   receive side is a relay tap on side ``a`` (side ``b`` is given the caller's own payload
   types, so the tap sees the caller's G.711 payloads untouched: no transcoding) feeding a
   fixed 60 ms :class:`~cloudpbx.media.jitter.JitterBuffer`; the send side is the caller's
   :class:`~cloudpbx.engine.call.LegPlayer`, whose source is :class:`FaxPump`. One pump tick
   every 20 ms writes exactly one frame into the receiver (a packet, ``None`` for a jitter
   buffer gap, silence while nothing arrives — spandsp's T.30 timers count samples, so the
   20 ms clock must never stop) and reads the next 20 ms of its transmit-on-idle audio. No
   VAD, comfort noise or echo cancellation anywhere on the path (docs/media-fax.md);
3. when T.30 reaches phase E, the caller hangs up or the action is cancelled: ``close()`` the
   receiver (the TIFF is complete only then), convert it with
   :func:`~cloudpbx.media.fax.tiff_to_pdf` (a subprocess: off the loop) into
   ``recordings_dir/<client>/faxes/<call uuid>.pdf`` and write a ``faxes`` row through the
   CDR sink (pages, remote ident, status ``received`` / ``partial`` / ``failed`` and the
   T.30 error text). The conversion runs in a task of its own, so the dialplan goes on at once
   (After answer) and a caller's BYE mid-fax still gets its row ("call dropped", pages kept).

Without spandsp (``libspandsp2``) or without a ``recordings_dir`` the action is unavailable:
it logs why, writes a ``not_implemented`` event and takes No route -- never a silent stub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cloudpbx.dialplan.interpreter import Outcome, RunAction
from cloudpbx.engine.call import Call
from cloudpbx.media.codecs import G711Codec
from cloudpbx.media.fax import (
    FRAME_SAMPLES,
    MAX_IDENT_LEN,
    FaxError,
    FaxReceiver,
    FaxResult,
    tiff_to_pdf,
)
from cloudpbx.media.jitter import Gap, JitterBuffer
from cloudpbx.media.relay import LegMedia, RelaySession
from cloudpbx.media.rtp import RtpPacket

__all__ = ["FaxOutcome", "FaxPump", "FaxService", "fax_status"]

log = logging.getLogger(__name__)

JITTER_DEPTH: Final = 0.060  # fixed (never shrinking) playout delay: fax needs a steady path
SILENCE: Final = bytes(2 * FRAME_SAMPLES)
MAX_BACKLOG: Final = 10  # frames released but not yet written (clock drift): oldest dropped
LINGER_FRAMES: Final = 100  # 2 s of silence after phase E: the sender finishes its DCN (~1 s)


@dataclass(frozen=True, slots=True)
class FaxOutcome:
    """What the call record gets for one fax session (the ``faxes`` row)."""

    result: FaxResult
    pdf_path: Path | None
    status: str  # received | partial | failed
    error: str


def fax_status(result: FaxResult) -> str:
    """``received`` (every page confirmed), ``partial`` (pages, then a failure) or
    ``failed`` (no page: no fax machine called, or T.30 gave up)."""
    if result.ok and result.pages > 0:
        return "received"
    return "partial" if result.pages > 0 else "failed"


class FaxPump:
    """The 20 ms clock of one fax session: an :class:`~cloudpbx.media.player.AudioSource`
    for the caller's :class:`~cloudpbx.engine.call.LegPlayer` (what we send) that, on every
    frame it is asked for, first writes one received frame into the receiver.

    ``tap`` is the relay tap of the caller's side (RFC 3550 packets as the relay forwards
    them: one SSRC, continuous numbering). ``clock`` is the loop's monotonic time.
    """

    def __init__(
        self,
        receiver: FaxReceiver,
        *,
        codec: G711Codec,
        payload_type: int,
        clock: Any,
    ) -> None:
        self.receiver = receiver
        self.codec = codec
        self.payload_type = payload_type
        self._clock = clock
        self.jitter = JitterBuffer(depth=JITTER_DEPTH, ptime=FRAME_SAMPLES / 8000)
        self._ready: deque[bytes | None] = deque()
        self.frames_in = 0  # received frames written (packets, gaps, silence)
        self.silent = 0  # ticks with nothing from the caller
        self.dropped = 0  # released frames dropped because of a backlog
        self.linger = LINGER_FRAMES

    def tap(self, pt: int, seq: int, ts: int, payload: bytes) -> None:
        """The relay's tap: voice packets into the jitter buffer (RFC 4733 events ignored)."""
        if pt != self.payload_type or not payload:
            return
        packet = RtpPacket(payload_type=pt, sequence=seq, timestamp=ts, ssrc=0, payload=payload)
        self.jitter.put(packet, self._clock())

    def read(self, samples: int) -> bytes | None:
        """One 20 ms tick: feed the receiver one frame, return its next 20 ms (None: done)."""
        receiver = self.receiver
        if receiver.done:
            # T.30 phase E came with the sender's DCN (T.30 §5.3.3.4.2 "release"): give its
            # modem a moment to finish before the dialplan hangs up.
            self.linger -= 1
            return SILENCE[: 2 * samples] if self.linger >= 0 else None
        self._release(self._clock())
        if self._ready:
            receiver.write(self._ready.popleft())
        else:
            self.silent += 1
            receiver.write(SILENCE)  # nothing came: the T.30 timers must keep counting
        self.frames_in += 1
        return receiver.read(samples)

    def _release(self, now: float) -> None:
        while (item := self.jitter.get(now)) is not None:
            if isinstance(item, Gap):
                self._ready.append(None)  # a lost packet: the receiver conceals it
            else:
                self._ready.append(self.codec.decode(item.payload))
        while len(self._ready) > MAX_BACKLOG:
            self._ready.popleft()
            self.dropped += 1


class FaxService:
    """Performs FAXRECEIVER steps for the :class:`~cloudpbx.engine.b2bua.B2bua` (see the module
    docstring). ``recordings_dir`` is ``settings.recordings_dir``."""

    def __init__(self, recordings_dir: Path | None, *, ident: str = "") -> None:
        self.recordings_dir = recordings_dir
        self.ident = ident  # our CSI; "" = the dialled number
        self.received = 0

    def _open(self, call: Call) -> FaxReceiver | str:
        """A receiver writing under ``recordings_dir/<client>/faxes/``, or why there is none."""
        if self.recordings_dir is None:
            return "no recordings_dir for the fax files"
        folder = Path(self.recordings_dir) / str(call.client_id) / "faxes"
        call.faxes += 1
        tiff = folder / f"{call.uuid}-{call.faxes}.tif"
        ident = (self.ident or call.called)[:MAX_IDENT_LEN]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return FaxReceiver(tiff, local_ident=ident)
        except (OSError, FaxError) as exc:  # FaxUnavailableError: no libspandsp2
            return str(exc)

    async def receive(self, b2bua: Any, call: Call, snapshot: Any, decision: RunAction) -> Outcome:
        """The step: answer, receive, hand the files to the CDR; After answer (or No route
        when fax is unavailable here)."""
        receiver = self._open(call)
        if isinstance(receiver, str):
            log.warning("call %s: not implemented here: FAXRECEIVER: %s", call.uuid, receiver)
            b2bua._event(call, "not_implemented", decision.level, f"fax_receiver: {receiver}")
            return Outcome.NO_ROUTE
        b2bua.answer_caller(call)
        b2bua._event(call, "fax", decision.level, "receiving")
        relay: RelaySession = call.relay  # type: ignore[assignment]
        try:
            await self._run(b2bua, call, relay, receiver)
        finally:
            pdf = receiver.tiff_path.with_suffix(".pdf")
            b2bua._spawn(self._finish(b2bua, call, receiver, pdf))
        return Outcome.AFTER_ANSWER

    async def _run(self, b2bua: Any, call: Call, relay: RelaySession, rx: FaxReceiver) -> None:
        caller = call.caller_leg_checked
        pump = FaxPump(
            rx,
            codec=caller.voice_codec(),
            payload_type=caller.voice_pt(),
            clock=asyncio.get_running_loop().time,
        )
        saved = relay.b.media
        # Side b mirrors the caller's payload types and sends nowhere: the tap on side a sees
        # the caller's own G.711 payloads, never transcoded (docs/media-fax.md).
        relay.set_media("b", LegMedia(payload_types=caller.payload_types, direction="inactive"))
        relay.set_tap("a", pump.tap)
        try:
            await b2bua._play_on(call, "a", pump)
        finally:
            player = call.players.get("a")
            if player is not None and player.source is pump:
                player.stop()  # cancelled (the caller left): no tick may touch rx any more
            if not relay.closed:
                relay.set_tap("a", None)
                relay.set_media("b", saved)
            log.info(
                "call %s: fax session over: %d frames in, %d silent, %s",
                call.uuid,
                pump.frames_in,
                pump.silent,
                pump.jitter.stats,
            )

    async def _finish(self, b2bua: Any, call: Call, rx: FaxReceiver, pdf: Path) -> None:
        """Close the receiver (completes the TIFF), make the PDF, write the ``faxes`` row."""
        outcome = await self.finish(rx, pdf)
        self.received += outcome.status != "failed"
        detail = f"{outcome.status}: {outcome.result.pages} page(s)"
        if outcome.error:
            detail += f": {outcome.error}"
        b2bua._event(call, "fax_result", None, detail)
        b2bua._safe(b2bua.cdr.fax, call, outcome)

    @staticmethod
    async def finish(rx: FaxReceiver, pdf: Path) -> FaxOutcome:
        result = rx.close()
        status = fax_status(result)
        error = result.error
        pdf_path: Path | None = None
        if result.pages > 0:
            try:
                pdf_path = await tiff_to_pdf(result.tiff_path, pdf)
            except FaxError as exc:
                log.error("fax %s: PDF conversion failed: %s", result.tiff_path, exc)
                error = f"{error}; PDF: {exc}" if error else f"PDF: {exc}"
        else:
            with contextlib.suppress(OSError):
                result.tiff_path.unlink()  # an empty TIFF is no document
        return FaxOutcome(result, pdf_path, status, error)
