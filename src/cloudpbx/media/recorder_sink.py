"""Recording wired to live RTP (issue 4 item 6): the asyncio side of ``media/recorder.py``.

* :class:`RecorderSink` — a :class:`~cloudpbx.media.stream.MediaStream` sink writing one leg
  (what the peer says) into a :class:`~cloudpbx.media.recorder.CallRecorder`; each 20 ms
  frame is placed at the stream's frame time (``stream.frame_time``), so the file follows
  the call clock whatever the network did.
* :class:`VoicemailSink` — the same plus a :class:`~cloudpbx.media.recorder.VoicemailMonitor`:
  ``await sink.wait()`` returns the :class:`~cloudpbx.media.recorder.StopReason` (silence
  after the message, or the box's maximum length); :meth:`VoicemailSink.finish` cuts the
  trailing silence and closes the file.
* :class:`RecordingTap` — both directions of a relayed call (:class:`~.relay.RelaySession`,
  through :meth:`~.relay.RelaySession.set_tap`) into one recorder, stereo (leg ``a`` left) or
  mixed. Each direction has its own :class:`~cloudpbx.media.jitter.JitterBuffer` (the tap
  sees packets as they arrive: reordered, late, lost); one drift-free 20 ms
  :class:`~cloudpbx.media.player.Pacer` tick drains both and feeds the recorder.

The file is written on the event loop through the recorder's :class:`~.wavfile.WavWriter`:
open it buffered (Python's default 8 KiB buffer holds ~0.25 s of stereo), so a 20 ms frame
costs a memory copy, not a system call; the header is patched at close (or at each
``sync_every``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Final

from cloudpbx.media.codecs import codec_by_name
from cloudpbx.media.jitter import Gap, JitterBuffer
from cloudpbx.media.player import Pacer
from cloudpbx.media.recorder import CallRecorder, Leg, StopReason, VoicemailMonitor
from cloudpbx.media.relay import RelayLeg, RelaySession
from cloudpbx.media.rtp import RtpPacket

__all__ = ["RecorderSink", "RecordingTap", "VoicemailSink"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_monotonic: Final = time.monotonic


class RecorderSink:
    """``write(pcm | None)``: one leg of a :class:`CallRecorder`, timed by ``clock`` (pass
    ``lambda: stream.frame_time``; default ``time.monotonic``, the recorder's clock)."""

    __slots__ = ("clock", "leg", "recorder")

    def __init__(self, recorder: CallRecorder, leg: Leg = "a", *, clock: Clock = _monotonic):
        self.recorder = recorder
        self.leg: Leg = leg
        self.clock = clock

    def write(self, pcm: bytes | None) -> None:
        recorder = self.recorder
        if not recorder.closed and not recorder.full:
            recorder.feed(self.leg, self.clock(), pcm)


class VoicemailSink(RecorderSink):
    """A voicemail message: records and watches for silence or the maximum length."""

    __slots__ = ("_future", "monitor")

    def __init__(
        self,
        recorder: CallRecorder,
        monitor: VoicemailMonitor,
        *,
        clock: Clock = _monotonic,
    ) -> None:
        super().__init__(recorder, "a", clock=clock)
        self.monitor = monitor
        self._future: asyncio.Future[StopReason] | None = None

    def write(self, pcm: bytes | None) -> None:
        if self.monitor.reason is not None:
            return
        super().write(pcm)
        reason = self.monitor.feed(pcm)
        if reason is not None and self._future is not None and not self._future.done():
            self._future.set_result(reason)

    async def wait(self) -> StopReason:
        """Until silence followed the message or it reached the maximum length."""
        if self.monitor.reason is not None:
            return self.monitor.reason
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._future)

    def finish(self) -> int:
        """Close the file keeping the message plus a short tail of the silence after it
        (VoicemailMonitor.keep_samples); returns the length in samples. Call it on hang-up
        too: the message then ends where the caller hung up."""
        recorder = self.recorder
        keep = min(self.monitor.keep_samples, recorder.length)
        return recorder.close(recorder.start + keep / recorder.sample_rate)


def _decoders(payload_types: Mapping[int, str]) -> dict[int, Callable[[bytes], bytes]]:
    out: dict[int, Callable[[bytes], bytes]] = {}
    for pt, name in payload_types.items():
        key = name.split("/", 1)[0].strip().upper()
        if key in ("PCMU", "PCMA"):
            out[pt] = codec_by_name(key).decode
    return out


class _Direction:
    """One direction of a relayed call: tap → jitter buffer → PCM."""

    __slots__ = ("_decoders", "_pts", "jitter", "leg", "out_leg")

    def __init__(self, leg: RelayLeg, out_leg: RelayLeg, depth: float) -> None:
        self.leg = leg  # where the media comes in (the speaker)
        self.out_leg = out_leg  # where it goes out: its PT numbering is the tap's
        self.jitter = JitterBuffer(depth=depth)
        self._pts: Mapping[int, str] | None = None
        self._decoders: dict[int, Callable[[bytes], bytes]] = {}

    def tap(self, pt: int, seq: int, ts: int, payload: bytes) -> None:
        packet = RtpPacket(
            payload_type=pt, sequence=seq, timestamp=ts, ssrc=self.leg.out_ssrc, payload=payload
        )
        self.jitter.put(packet, _monotonic())

    def decode(self, item: RtpPacket | Gap | None) -> bytes | None:
        if not isinstance(item, RtpPacket):
            return None
        pts = self.out_leg.media.payload_types
        if pts is not self._pts:  # renegotiated (or first use)
            self._pts = pts
            self._decoders = _decoders(pts)
        decode = self._decoders.get(item.payload_type)
        return None if decode is None else decode(item.payload)


class RecordingTap:
    """Records both directions of a relayed call into ``recorder`` (see the module doc).

    Leg ``a``'s speech goes to recorder leg ``"a"`` (left in stereo), leg ``b``'s to ``"b"``.
    The recorder's ``start`` must be on ``time.monotonic``. :meth:`close` removes the taps,
    feeds what the jitter buffers still hold and closes the file at ``end`` (default: now),
    so the file is exactly as long as the recording ran.
    """

    def __init__(
        self,
        session: RelaySession,
        recorder: CallRecorder,
        *,
        jitter_depth: float = 0.060,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.session = session
        self.recorder = recorder
        self.depth = jitter_depth
        self._dirs: dict[Leg, _Direction] = {
            "a": _Direction(session.a, session.b, jitter_depth),
            "b": _Direction(session.b, session.a, jitter_depth),
        }
        for name, direction in self._dirs.items():
            session.set_tap(name, direction.tap)
        self._loop = loop or asyncio.get_running_loop()
        self._pacer = Pacer(recorder.start)
        self._pacer.next_frame = max(0, recorder.sample_at(_monotonic()) // 160)
        self._handle: asyncio.TimerHandle | None = None
        self.closed = False
        self._arm()

    def _arm(self) -> None:
        delay = self._pacer.deadline() - _monotonic()
        self._handle = self._loop.call_later(max(0.0, delay), self._tick)

    def _tick(self) -> None:
        self._handle = None
        pacer = self._pacer
        first = pacer.next_frame
        skip, send = pacer.due(_monotonic())
        try:
            for i in range(skip + send):  # every slot: the file follows the clock
                self._feed(pacer.time_of(first + i))
        except Exception:
            log.exception("recording tap failed; recording stopped")
            self.close()
            return
        if not self.recorder.full:
            self._arm()

    def _feed(self, at: float) -> None:
        recorder = self.recorder
        if recorder.closed or recorder.full:
            return
        # Frames come out ``depth`` after they arrived: place them where they were spoken.
        for name, direction in self._dirs.items():
            recorder.feed(name, at - self.depth, direction.decode(direction.jitter.get(at)))

    def _drain(self) -> None:
        """End: what the jitter buffers still hold, on the slots that follow."""
        at = self._pacer.deadline() - self.depth
        for name, direction in self._dirs.items():
            for i, item in enumerate(direction.jitter.drain()):
                if self.recorder.closed or self.recorder.full:
                    return
                self.recorder.feed(name, at + i * self._pacer.ptime, direction.decode(item))

    def close(self, end: float | None = None) -> int:
        """Stop recording; returns the file's length in samples. Idempotent."""
        if not self.closed:
            self.closed = True
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            for name in self._dirs:
                if not self.session.closed:
                    self.session.set_tap(name, None)
            if not self.recorder.closed:
                self._drain()
        return self.recorder.close(_monotonic() if end is None else end)
