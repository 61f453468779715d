"""A jitter buffer for one incoming RTP stream, sans-I/O (ENGINEERING.md §4).

Packets go in with :meth:`JitterBuffer.put` as they arrive, keyed on their extended sequence
number (RFC 3550 Appendix A.1 style: 16-bit wrap, MAX_DROPOUT / MAX_MISORDER); they come
out of :meth:`JitterBuffer.get` in order, one per ``ptime`` (20 ms), starting ``depth``
(60 ms) after the first packet. A packet still missing when its turn comes while later ones
are waiting comes out as a :class:`Gap` (the consumer conceals it, e.g. with silence or the
fax modem's fill-in); a packet arriving after its turn is dropped as late, a second copy as a
duplicate. When the buffer runs dry the playout pauses and rebuffers ``depth`` after the next
packet (an underrun), skipping what went missing meanwhile. Size is bounded: on overflow
the oldest packet goes. A new SSRC, or a sequence restart confirmed by two packets in a row,
resets the buffer.

Adaptive mode grows the depth by one ``ptime`` (up to ``max_depth``) after each underrun or
late packet; it never shrinks within a call.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cloudpbx.media.rtp import MAX_DROPOUT, MAX_MISORDER, RTP_SEQ_MOD, RtpPacket

__all__ = ["Gap", "JitterBuffer", "JitterStats"]


@dataclass(frozen=True, slots=True)
class Gap:
    """A lost packet's slot: play ``ptime`` of concealment instead."""

    ext_seq: int  # extended sequence number of the missing packet

    @property
    def sequence(self) -> int:
        return self.ext_seq & 0xFFFF


@dataclass(slots=True)
class JitterStats:
    """Counters since creation (not reset by a new SSRC)."""

    received: int = 0  # packets accepted into the buffer
    played: int = 0  # packets released
    lost: int = 0  # gaps released
    late: int = 0  # arrived after their turn (concealed, or skipped by an overflow)
    duplicates: int = 0  # a copy of a packet buffered or recently played
    overflow: int = 0  # oldest packets dropped because the buffer was full
    underruns: int = 0  # playout paused because the buffer ran dry
    resets: int = 0  # new SSRC or sequence restart
    flushed: int = 0  # buffered packets thrown away by resets
    jumps: int = 0  # packets dropped for an unconfirmed big sequence jump


class JitterBuffer:
    """Reorders and paces one stream; see the module docstring.

    ``depth`` and ``ptime`` are seconds, ``max_packets`` bounds the buffer (50 = 1 s of
    20 ms packets). ``now`` is any monotonic clock in seconds, the same for put and get.
    """

    __slots__ = (
        "_bad_seq",
        "_buf",
        "_due",
        "_gapped",
        "_max_ext",
        "_next",
        "_played",
        "_playing",
        "_released_any",
        "_ssrc",
        "_start",
        "adaptive",
        "depth",
        "max_depth",
        "max_packets",
        "ptime",
        "stats",
    )

    def __init__(
        self,
        *,
        depth: float = 0.060,
        ptime: float = 0.020,
        max_packets: int = 50,
        adaptive: bool = False,
        max_depth: float = 0.200,
    ) -> None:
        if ptime <= 0 or depth < 0 or max_packets < 1 or max_depth < depth:
            raise ValueError("need ptime > 0, 0 <= depth <= max_depth, max_packets >= 1")
        self.depth = depth
        self.ptime = ptime
        self.max_packets = max_packets
        self.adaptive = adaptive
        self.max_depth = max_depth
        self.stats = JitterStats()
        self._buf: dict[int, RtpPacket] = {}
        self._gapped: deque[int] = deque(maxlen=64)  # recent gaps and releases, to tell
        self._played: deque[int] = deque(maxlen=64)  # a late packet from a duplicate
        self._ssrc: int | None = None
        self._max_ext = 0  # highest extended sequence seen
        self._bad_seq: int | None = None
        self._next: int | None = None  # extended sequence to release next
        self._released_any = False
        self._start: float | None = None  # when playout (re)starts; None: waiting for data
        self._playing = False
        self._due = 0.0  # when the next release is due, while playing

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def ssrc(self) -> int | None:
        return self._ssrc

    def _reset(self, ssrc: int) -> None:
        if self._ssrc is not None:
            self.stats.resets += 1
            self.stats.flushed += len(self._buf)
        self._buf.clear()
        self._gapped.clear()
        self._played.clear()
        self._ssrc = ssrc
        self._bad_seq = None
        self._next = None
        self._released_any = False
        self._start = None
        self._playing = False

    def _grow(self) -> bool:
        if self.adaptive and self.depth + self.ptime <= self.max_depth + 1e-9:
            self.depth += self.ptime
            return True
        return False

    def put(self, packet: RtpPacket, now: float) -> bool:
        """Buffer a packet that arrived at ``now``; False if it was dropped."""
        seq = packet.sequence
        if packet.ssrc != self._ssrc:
            self._reset(packet.ssrc)
            self._max_ext = seq
        # Extend relative to the highest seen (RFC 3550 A.1: MAX_DROPOUT ahead, MAX_MISORDER
        # behind; a bigger jump is believed only when the next packet follows it).
        udelta = (seq - self._max_ext) & 0xFFFF
        if udelta < MAX_DROPOUT:
            ext = self._max_ext + udelta
        elif udelta > RTP_SEQ_MOD - MAX_MISORDER:
            ext = self._max_ext + udelta - RTP_SEQ_MOD
        elif seq == self._bad_seq:
            self._reset(packet.ssrc)  # the sender restarted its numbering
            self._max_ext = ext = seq
        else:
            self._bad_seq = (seq + 1) & 0xFFFF
            self.stats.jumps += 1
            return False
        self._bad_seq = None
        if ext > self._max_ext:
            self._max_ext = ext
        nxt = self._next
        if nxt is None or (ext < nxt and not self._released_any):
            self._next = nxt = ext  # before the first release, start from the lowest seen
        elif ext < nxt:
            if ext in self._played:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
                if ext in self._gapped and self._grow() and self._playing:
                    self._due += self.ptime  # wait one more slot from now on
            return False
        if ext in self._buf:
            self.stats.duplicates += 1
            return False
        self._buf[ext] = packet
        self.stats.received += 1
        if self._start is None:
            self._start = now + self.depth
        while len(self._buf) > self.max_packets:
            oldest = min(self._buf)
            del self._buf[oldest]
            self.stats.overflow += 1
            if oldest >= nxt:
                self._next = nxt = oldest + 1
        return True

    def get(self, now: float) -> RtpPacket | Gap | None:
        """The next packet or :class:`Gap` if one is due at ``now``, else None (not yet
        time, or buffering). Call repeatedly until None to catch up after a late tick."""
        if not self._playing:
            if self._start is None or now < self._start:
                return None
            self._playing = True
            self._due = self._start
            nxt = self._next
            if self._released_any and self._buf and nxt is not None:
                # Resuming after an underrun: what went missing during it was covered by
                # the pause; skip to the first packet we have rather than play gaps late.
                lowest = min(self._buf)
                if lowest > nxt:
                    self.stats.lost += lowest - nxt
                    self._gapped.extend(range(max(nxt, lowest - 64), lowest))
                    self._next = lowest
        if now < self._due:
            return None
        nxt = self._next
        if not self._buf or nxt is None:
            # Dry: pause, rebuffer from the next arrival.
            self.stats.underruns += 1
            self._playing = False
            self._start = None
            self._grow()
            return None
        self._due += self.ptime
        self._next = nxt + 1
        self._released_any = True
        packet = self._buf.pop(nxt, None)
        if packet is not None:
            self.stats.played += 1
            self._played.append(nxt)
            return packet
        self.stats.lost += 1
        self._gapped.append(nxt)
        return Gap(nxt)

    def deadline(self) -> float | None:
        """When :meth:`get` next has something to return (or an underrun to declare), or
        None while waiting for packets."""
        if self._playing:
            return self._due
        return self._start

    def drain(self) -> list[RtpPacket | Gap]:
        """Everything still buffered, in order with gaps, ignoring pacing (end of call)."""
        out: list[RtpPacket | Gap] = []
        if self._buf and self._next is not None:
            last = max(self._buf)
            for ext in range(self._next, last + 1):
                packet = self._buf.pop(ext, None)
                if packet is None:
                    self.stats.lost += 1
                    out.append(Gap(ext))
                else:
                    self.stats.played += 1
                    self._played.append(ext)
                    out.append(packet)
            self._next = last + 1
            self._released_any = True
        self._playing = False
        self._start = None
        return out
