"""The receive side shared by :class:`~cloudpbx.media.stream.MediaStream` and the engine's
:class:`~cloudpbx.engine.actions.listen.CallerInput`: one 20 ms slot out of the jitter buffer,
decoded and handed to the audio sinks, and the RFC 4733 event timeout.

Pure (no asyncio, no sockets, no clock): the callers pass the slot time and ``now``. The
per-packet paths (a socket's ``datagram_received``, a relay tap) stay in their modules: they
differ in where packets come from, and they are the hot path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from cloudpbx.media.dtmf import DigitDetected, DtmfReceiver
from cloudpbx.media.jitter import JitterBuffer
from cloudpbx.media.rtp import RtpPacket

__all__ = ["AudioSink", "AudioSinks", "Decoder", "decode_slot", "expire_event", "write_sinks"]

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 8000  # the RTP clock of G.711 and telephone-event (RFC 4733 §2.3)

Decoder = Callable[[bytes], bytes]
"""A payload type's decoder: G.711 payload to 16-bit LE PCM."""


class AudioSink(Protocol):
    """Gets the received audio: one call per 20 ms, 16-bit LE PCM 8 kHz mono, or ``None``
    (nothing came in that slot)."""

    def write(self, pcm: bytes | None) -> None: ...


class AudioSinks:
    """``add_sink`` / ``remove_sink`` over the owner's ``_sinks`` list (a mixin: the owner
    creates the list and hands it to :func:`write_sinks` every slot)."""

    _sinks: list[AudioSink]

    def add_sink(self, sink: AudioSink) -> None:
        """``sink.write(pcm | None)`` once per 20 ms from the next tick on."""
        if sink not in self._sinks:
            self._sinks.append(sink)

    def remove_sink(self, sink: AudioSink) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)


def decode_slot(jitter: JitterBuffer, decoders: Mapping[int, Decoder], at: float) -> bytes | None:
    """The PCM of the slot played out at ``at``; ``None`` for a gap or a payload type we
    cannot decode (an RFC 4733 event, comfort noise)."""
    item = jitter.get(at)
    if isinstance(item, RtpPacket):
        decode = decoders.get(item.payload_type)
        if decode is not None:
            return decode(item.payload)
    return None


def write_sinks(sinks: list[AudioSink], pcm: bytes | None, what: str) -> None:
    """Hand one slot to every sink; a sink that raises is logged and removed, so one broken
    consumer (a recorder whose disk is full) cannot stop the others or the tick."""
    for sink in tuple(sinks):
        try:
            sink.write(pcm)
        except Exception:
            log.exception("%s sink %r failed; removed", what, sink)
            if sink in sinks:
                sinks.remove(sink)


def expire_event(
    receiver: DtmfReceiver, last: tuple[int, float] | None, now: float
) -> list[DigitDetected]:
    """RFC 4733 §2.5.2.2: an event whose end packets were all lost ends by timeout.

    ``last`` is the (RTP timestamp, arrival time) of the latest event packet: the RTP clock
    is extrapolated from it to ``now`` at 8 kHz.
    """
    if last is None or receiver.active is None:
        return []
    now_ts = (last[0] + round((now - last[1]) * SAMPLE_RATE)) & 0xFFFF_FFFF
    return receiver.expire(now_ts)
