"""RTP (RFC 3550), sans-I/O: packets, raw-byte helpers for the relay, sequence arithmetic,
sender and receiver state, symmetric-RTP latching and the inactivity timer.

Nothing here reads a clock or draws a random number: times (``now``, ``arrival``, in seconds
on any monotonic clock) and random initial values (SSRC, sequence, timestamp) are injected.

Errors: :class:`RtpError` is the peer's fault (a datagram that is not RTP; drop it silently),
``ValueError`` is our misuse (a field out of range when building a packet).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "RTP_HEADER_SIZE",
    "RTP_SEQ_MOD",
    "RTP_VERSION",
    "Address",
    "InactivityTimer",
    "Latch",
    "ReceptionSnapshot",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "RtpReceiverStats",
    "RtpSender",
    "SequenceTracker",
    "payload_bounds",
    "peek_pt_seq_ts_ssrc",
    "rewrite_header",
    "seq_add",
    "seq_diff",
    "ts_add",
    "ts_diff",
]

Address = tuple[str, int]
"""A transport address ``(ip, port)``, IP as a literal (IPv6 without brackets)."""

RTP_VERSION: Final = 2
RTP_HEADER_SIZE: Final = 12  # RFC 3550 §5.1: the fixed header
RTP_SEQ_MOD: Final = 1 << 16
_TS_MOD: Final = 1 << 32

# RFC 3550 Appendix A.1: a source is valid after MIN_SEQUENTIAL packets in sequence; a jump
# ahead of up to MAX_DROPOUT is loss, one back of up to MAX_MISORDER is reordering or a
# duplicate, anything else a (possible) restart of the sender's numbering.
MIN_SEQUENTIAL: Final = 2
MAX_DROPOUT: Final = 3000
MAX_MISORDER: Final = 100

_FIXED: Final = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
_SEQ_TS_SSRC: Final = struct.Struct("!HII")
_SEQ: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_EXT_HEADER: Final = struct.Struct("!HH")  # profile-defined, length in 32-bit words


class RtpError(Exception):
    """The peer's datagram is not a valid RTP packet (RFC 3550 §5.1, A.1): drop it."""


# --- sequence and timestamp arithmetic -----------------------------------------------------


def seq_diff(a: int, b: int) -> int:
    """``a - b`` for 16-bit sequence numbers, as a signed value in [-32768, 32767].

    ``seq_diff(0, 65535) == 1``: 0 follows 65535 (RFC 3550 §5.1, the number wraps).
    """
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def seq_add(seq: int, n: int) -> int:
    """``seq + n`` modulo 2**16."""
    return (seq + n) & 0xFFFF


def ts_diff(a: int, b: int) -> int:
    """``a - b`` for 32-bit RTP timestamps, signed (RFC 3550 §5.1, the timestamp wraps)."""
    return ((a - b + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000


def ts_add(ts: int, n: int) -> int:
    """``ts + n`` modulo 2**32."""
    return (ts + n) & 0xFFFF_FFFF


# --- packets -------------------------------------------------------------------------------


def _check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name} {value} out of range for {bits} bits")


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpExtension:
    """A header extension (RFC 3550 §5.3.1), kept raw: the 16-bit profile-defined field
    (0xBEDE for RFC 8285 one-byte elements, 0x100x for two-byte) and the data, a multiple
    of 4 octets long."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        _check_uint("extension profile", self.profile, 16)
        if len(self.data) % 4 or len(self.data) > 0xFFFF * 4:
            raise ValueError(f"extension data length {len(self.data)} is not 4*n (n < 65536)")


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpPacket:
    """An RTP packet (RFC 3550 §5.1). Version is always 2.

    ``padding`` is the number of padding octets, the final count octet included (0 = the P
    bit is clear); the padding octets themselves are not kept (they are zero on output).
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        _check_uint("payload type", self.payload_type, 7)
        _check_uint("sequence", self.sequence, 16)
        _check_uint("timestamp", self.timestamp, 32)
        _check_uint("SSRC", self.ssrc, 32)
        if len(self.csrc) > 15:
            raise ValueError(f"{len(self.csrc)} CSRCs, at most 15 fit (RFC 3550 §5.1 CC)")
        for c in self.csrc:
            _check_uint("CSRC", c, 32)
        _check_uint("padding", self.padding, 8)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> RtpPacket:
        """Parse one datagram; raise :class:`RtpError` if it is not RTP version 2."""
        data = bytes(data)
        n = len(data)
        if n < RTP_HEADER_SIZE:
            raise RtpError(f"{n} octets, shorter than the 12-octet RTP header")
        b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {b0 >> 6}, expected 2")
        cc = b0 & 0x0F
        pos = RTP_HEADER_SIZE + 4 * cc
        if pos > n:
            raise RtpError(f"CSRC count {cc} runs past the end of the packet")
        csrc = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE) if cc else ()
        extension = None
        if b0 & 0x10:  # X bit, RFC 3550 §5.3.1
            if pos + 4 > n:
                raise RtpError("header extension runs past the end of the packet")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            end = pos + 4 + 4 * words
            if end > n:
                raise RtpError("header extension runs past the end of the packet")
            extension = RtpExtension(profile=profile, data=data[pos + 4 : end])
            pos = end
        padding = 0
        if b0 & 0x20:  # P bit: the last octet counts the padding octets, itself included
            padding = data[-1]
            if padding == 0 or pos + padding > n:
                raise RtpError(f"bad padding count {padding}")
        return cls(
            payload_type=b1 & 0x7F,
            sequence=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=data[pos : n - padding],
            marker=bool(b1 & 0x80),
            csrc=tuple(csrc),
            extension=extension,
            padding=padding,
        )

    def __bytes__(self) -> bytes:
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | self.payload_type
        parts = [_FIXED.pack(b0, b1, self.sequence, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


# --- raw-byte helpers for the relay hot path -----------------------------------------------


def peek_pt_seq_ts_ssrc(data: bytes | bytearray | memoryview) -> tuple[int, int, int, int]:
    """``(payload type, sequence, timestamp, SSRC)`` of a raw packet without parsing it all.

    Checks only the length and the version; raises :class:`RtpError` otherwise.
    """
    if len(data) < RTP_HEADER_SIZE:
        raise RtpError("shorter than the 12-octet RTP header")
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data)
    if b0 & 0xC0 != 0x80:
        raise RtpError(f"RTP version {b0 >> 6}, expected 2")
    return b1 & 0x7F, seq, ts, ssrc


def rewrite_header(
    buf: bytearray,
    *,
    ssrc: int | None = None,
    seq: int | None = None,
    ts: int | None = None,
    pt: int | None = None,
) -> None:
    """Rewrite fixed-header fields of a raw packet in place (``None`` keeps a field).

    The marker bit, CSRCs, extension, payload and padding are untouched. The caller has
    already checked the packet (e.g. with :func:`peek_pt_seq_ts_ssrc`); values are not
    range-checked beyond what ``struct`` enforces.
    """
    if pt is not None:
        buf[1] = (buf[1] & 0x80) | pt
    if ssrc is not None and seq is not None and ts is not None:
        _SEQ_TS_SSRC.pack_into(buf, 2, seq, ts, ssrc)
        return
    if seq is not None:
        _SEQ.pack_into(buf, 2, seq)
    if ts is not None:
        _U32.pack_into(buf, 4, ts)
    if ssrc is not None:
        _U32.pack_into(buf, 8, ssrc)


def payload_bounds(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """``(start, end)`` of the payload in a raw packet: after CSRCs and extension, before
    padding. Raises :class:`RtpError` where :meth:`RtpPacket.parse` would."""
    n = len(data)
    if n < RTP_HEADER_SIZE:
        raise RtpError("shorter than the 12-octet RTP header")
    b0 = data[0]
    if b0 & 0xC0 != 0x80:
        raise RtpError(f"RTP version {b0 >> 6}, expected 2")
    pos = RTP_HEADER_SIZE + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if pos + 4 > n:
            raise RtpError("header extension runs past the end of the packet")
        pos += 4 + 4 * ((data[pos + 2] << 8) | data[pos + 3])
    if pos > n:
        raise RtpError("header runs past the end of the packet")
    end = n
    if b0 & 0x20:
        pad = data[n - 1]
        if pad == 0 or pos + pad > n:
            raise RtpError(f"bad padding count {pad}")
        end -= pad
    return pos, end


# --- sender ----------------------------------------------------------------------------------


class RtpSender:
    """Outgoing stream state (RFC 3550 §5.1): SSRC, next sequence and timestamp, counters.

    The SSRC and the initial sequence and timestamp must be random (RFC 3550 §5.1, §8.1);
    the caller draws them (e.g. ``secrets.randbits``) and passes them in.
    """

    __slots__ = ("octets_sent", "packets_sent", "payload_type", "sequence", "ssrc", "timestamp")

    def __init__(self, *, ssrc: int, initial_seq: int, initial_ts: int, payload_type: int) -> None:
        _check_uint("SSRC", ssrc, 32)
        _check_uint("sequence", initial_seq, 16)
        _check_uint("timestamp", initial_ts, 32)
        _check_uint("payload type", payload_type, 7)
        self.ssrc = ssrc
        self.sequence = initial_seq  # of the next packet
        self.timestamp = initial_ts  # of the next packet
        self.payload_type = payload_type
        self.packets_sent = 0
        self.octets_sent = 0  # payload octets, as the SR counts them (RFC 3550 §6.4.1)

    def packetize(
        self,
        payload: bytes,
        samples: int,
        marker: bool = False,
        *,
        payload_type: int | None = None,
    ) -> RtpPacket:
        """The next packet carrying ``payload``; the timestamp then advances by ``samples``
        (RFC 3550 §5.1: in clock-rate units) and the sequence by one.

        ``marker`` flags the first packet of a talkspurt (RFC 3551 §4.1);
        ``payload_type`` overrides the stream's (e.g. RFC 4733 events on the same SSRC).
        """
        packet = RtpPacket(
            payload_type=self.payload_type if payload_type is None else payload_type,
            sequence=self.sequence,
            timestamp=self.timestamp,
            ssrc=self.ssrc,
            payload=payload,
            marker=marker,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFF_FFFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        return packet

    def skip(self, samples: int) -> None:
        """Advance the timestamp without sending (silence not sent, e.g. while on hold)."""
        self.timestamp = (self.timestamp + samples) & 0xFFFF_FFFF


# --- receiver: sequence validation (A.1), loss (A.3), jitter (A.8) --------------------------


class SequenceTracker:
    """RFC 3550 Appendix A.1 ``update_seq``: source validation with probation, extended
    highest sequence number, restart detection (MAX_DROPOUT / MAX_MISORDER).

    ``probation`` is MIN_SEQUENTIAL: how many packets in sequence make the source valid (1
    counts the very first packet).
    """

    __slots__ = (
        "bad_seq",
        "base_seq",
        "cycles",
        "expected_prior",
        "max_seq",
        "min_sequential",
        "probation",
        "received",
        "received_prior",
        "started",
    )

    def __init__(self, probation: int = MIN_SEQUENTIAL) -> None:
        if probation < 1:
            raise ValueError("probation must be at least 1")
        self.min_sequential = probation
        self.probation = probation  # packets still needed in sequence
        self.started = False
        self.base_seq = 0
        self.max_seq = 0
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0  # shifted count of wraps, as in A.1 (a multiple of RTP_SEQ_MOD)
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1  # so seq == bad_seq is false
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0

    def update(self, seq: int) -> bool:
        """Account for a packet with sequence ``seq``; True if it counts (the source is
        valid and the number is in range), False while in probation or after a jump."""
        if not self.started:
            # A.1: "init_seq(s, seq); s->max_seq = seq - 1; s->probation = MIN_SEQUENTIAL"
            self.started = True
            self._init_seq(seq)
            self.max_seq = (seq - 1) & 0xFFFF
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            # Source not valid until MIN_SEQUENTIAL packets in sequence have arrived.
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = self.min_sequential - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            # In order, with a permissible gap.
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD  # wrapped
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # A very large jump: two sequential packets mean the other side restarted
            # without telling us, so resync; otherwise drop it.
            if seq == self.bad_seq:
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) & (RTP_SEQ_MOD - 1)
                return False
        # else: duplicate or reordered packet, counted.
        self.received += 1
        return True

    @property
    def extended_max(self) -> int:
        """Extended highest sequence number received (A.3: cycles + max_seq)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.received else 0

    @property
    def cumulative_lost(self) -> int:
        """Expected minus received (A.3); negative with duplicates. Not clamped."""
        return self.expected - self.received

    def take_fraction_lost(self) -> int:
        """Fraction lost since the previous call, in 1/256 (A.3), and start a new interval
        (call once per report sent)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval

    def peek_fraction_lost(self) -> int:
        """Like :meth:`take_fraction_lost` without starting a new interval."""
        expected_interval = self.expected - self.expected_prior
        lost_interval = expected_interval - (self.received - self.received_prior)
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceptionSnapshot:
    """Reception quality of one source, e.g. for the call detail record."""

    ssrc: int | None
    packets_received: int
    octets_received: int
    expected: int
    cumulative_lost: int
    fraction_lost: int  # 1/256 units, over the current reporting interval
    extended_highest_seq: int
    jitter: int  # RFC 3550 §6.4.1, timestamp units
    jitter_ms: float

    @property
    def loss_ratio(self) -> float:
        """Cumulative loss as a ratio of expected packets (0.0 when nothing expected)."""
        return max(self.cumulative_lost, 0) / self.expected if self.expected else 0.0


class RtpReceiverStats:
    """Reception statistics for one incoming source (RFC 3550 §6.4.1, A.1, A.3, A.8),
    driven by ``on_packet(packet, arrival)`` with arrival in seconds.

    A new SSRC resets the statistics (the sender changed, e.g. after a transfer).
    """

    __slots__ = (
        "_jitter",
        "_prev_arrival",
        "_prev_ts",
        "_probation",
        "clock_rate",
        "last_sr_arrival",
        "lsr",
        "octets_received",
        "packets_received",
        "seq",
        "ssrc",
    )

    def __init__(self, clock_rate: int, *, probation: int = MIN_SEQUENTIAL) -> None:
        if clock_rate <= 0:
            raise ValueError("clock rate must be positive")
        self.clock_rate = clock_rate
        self._probation = probation
        self.seq = SequenceTracker(probation)
        self.ssrc: int | None = None
        self.packets_received = 0
        self.octets_received = 0  # payload octets
        self._jitter = 0.0
        self._prev_arrival: float | None = None
        self._prev_ts = 0
        # From the last SR of this source (RFC 3550 §6.4.1 LSR/DLSR): the middle 32 bits of
        # its NTP timestamp and our arrival time; set by the RTCP layer.
        self.lsr = 0
        self.last_sr_arrival: float | None = None

    def on_packet(self, packet: RtpPacket, arrival: float) -> bool:
        """Account for a received packet; True if it counted (see :meth:`update`)."""
        return self.update(
            ssrc=packet.ssrc,
            seq=packet.sequence,
            timestamp=packet.timestamp,
            payload_octets=len(packet.payload),
            arrival=arrival,
        )

    def update(
        self, *, ssrc: int, seq: int, timestamp: int, payload_octets: int, arrival: float
    ) -> bool:
        """Raw-field form of :meth:`on_packet` for the relay (see :func:`peek_pt_seq_ts_ssrc`)."""
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                self._reset()
            self.ssrc = ssrc
        if not self.seq.update(seq):
            return False
        self.packets_received += 1
        self.octets_received += payload_octets
        # A.8 / §6.4.1: D(i-1,i) = (Rj - Ri) - (Sj - Si), in timestamp units;
        # J += (|D| - J) / 16. Differences, not transit times, so 32-bit wrap is harmless.
        if self._prev_arrival is not None:
            d = (arrival - self._prev_arrival) * self.clock_rate - ts_diff(timestamp, self._prev_ts)
            self._jitter += (abs(d) - self._jitter) / 16.0
        self._prev_arrival = arrival
        self._prev_ts = timestamp
        return True

    def _reset(self) -> None:
        self.seq = SequenceTracker(self._probation)
        self.packets_received = 0
        self.octets_received = 0
        self._jitter = 0.0
        self._prev_arrival = None
        self.lsr = 0
        self.last_sr_arrival = None

    def note_sender_report(self, ntp_middle: int, arrival: float) -> None:
        """Remember this source's last SR (its NTP timestamp's middle 32 bits) for LSR/DLSR."""
        self.lsr = ntp_middle & 0xFFFF_FFFF
        self.last_sr_arrival = arrival

    @property
    def jitter(self) -> float:
        """Interarrival jitter estimate in timestamp units (unrounded)."""
        return self._jitter

    @property
    def jitter_ms(self) -> float:
        return self._jitter * 1000.0 / self.clock_rate

    @property
    def extended_highest_seq(self) -> int:
        return self.seq.extended_max & 0xFFFF_FFFF

    @property
    def cumulative_lost(self) -> int:
        return self.seq.cumulative_lost

    def snapshot(self) -> ReceptionSnapshot:
        """Current figures; does not start a new loss interval."""
        return ReceptionSnapshot(
            ssrc=self.ssrc,
            packets_received=self.packets_received,
            octets_received=self.octets_received,
            expected=self.seq.expected,
            cumulative_lost=self.seq.cumulative_lost,
            fraction_lost=self.seq.peek_fraction_lost(),
            extended_highest_seq=self.extended_highest_seq,
            jitter=int(self._jitter),
            jitter_ms=self.jitter_ms,
        )


# --- symmetric RTP latching ----------------------------------------------------------------


class Latch:
    """Which source address to accept media from (symmetric RTP for phones behind NAT).

    Latching happens only in a learning window that opens with the first packet after the
    call's (or a re-INVITE's) signalling and closes after ``window`` seconds or
    ``max_packets`` packets from the candidate, whichever comes first. Within it a source
    equal to the signalled address (SDP c=/m=) is preferred, then one with the signalled IP,
    then the first source seen; once it closes, packets from any other source are dropped
    and counted until the signalling changes. Latching at any time let anyone who could
    reach the port take over the stream ("RTP bleed", CVE-2017-14099).

    ``strict`` accepts only the signalled address (trunks with known addresses).
    """

    __slots__ = (
        "_closed",
        "_learn_start",
        "_learned",
        "_rank",
        "dropped",
        "latched",
        "max_packets",
        "signalled",
        "strict",
        "window",
    )

    def __init__(
        self,
        signalled: Address | None = None,
        *,
        window: float = 2.0,
        max_packets: int = 10,
        strict: bool = False,
    ) -> None:
        if window < 0 or max_packets < 1:
            raise ValueError("window must be >= 0 and max_packets >= 1")
        self.window = window
        self.max_packets = max_packets
        self.strict = strict
        self.signalled = signalled
        self.latched: Address | None = None  # the source accepted now
        self.dropped = 0  # packets refused
        self._learn_start: float | None = None  # None: window not open yet
        self._learned = 0  # packets accepted from the candidate while learning
        self._rank = -1  # of the candidate: 2 signalled address, 1 signalled IP, 0 other
        self._closed = False

    def _open(self) -> None:
        self.latched = None
        self._learn_start = None
        self._learned = 0
        self._rank = -1
        self._closed = False

    @property
    def learning(self) -> bool:
        """True until the latch is final."""
        return not self._closed

    @property
    def destination(self) -> Address | None:
        """Where to send media to: the latched source, else the signalled address."""
        return self.latched if self.latched is not None else self.signalled

    def _rank_of(self, src: Address) -> int:
        sig = self.signalled
        if sig is None:
            return 0
        if src == sig:
            return 2
        return 1 if src[0] == sig[0] else 0

    def on_signalled(self, addr: Address | None, *, force: bool = False) -> None:
        """Signalling (INVITE, re-INVITE, UPDATE) gave the peer's media address.

        A changed address (or ``force``) reopens the learning window; the same address
        keeps the latch.
        """
        if addr == self.signalled and not force:
            return
        self.signalled = addr
        self._open()

    def on_packet(self, src: Address, now: float) -> bool:
        """Whether to accept a packet from ``src`` arriving at ``now``."""
        if self.strict:
            if src == self.signalled:
                self.latched = src
                return True
            self.dropped += 1
            return False
        if not self._closed:
            if self._learn_start is None:
                self._learn_start = now
            elif now - self._learn_start >= self.window:
                self._closed = True
        if self._closed:
            if src == self.latched:
                return True
            self.dropped += 1
            return False
        # Learning: take the first source, switch to a better-ranked one.
        rank = self._rank_of(src)
        if src != self.latched:
            if rank <= self._rank:
                self.dropped += 1
                return False
            self.latched = src
            self._rank = rank
            self._learned = 0
        self._learned += 1
        if rank == 2 or self._learned >= self.max_packets:
            self._closed = True  # the signalled address itself, or enough packets: final
        return True


# --- inactivity ----------------------------------------------------------------------------


class InactivityTimer:
    """Ends dead calls: expires ``timeout`` seconds after the last packet (or after
    :meth:`start`, for a call that never sends anything).

    While the peer is not expected to send (we put it on hold: our SDP is sendonly or
    inactive, or its SDP says sendonly/inactive toward us) the timer is suspended;
    :meth:`resume` restarts the countdown.
    """

    __slots__ = ("_last", "suspended", "timeout")

    def __init__(self, timeout: float, *, now: float | None = None) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self._last = now
        self.suspended = False

    def start(self, now: float) -> None:
        """Start the countdown (media should flow from ``now``)."""
        self._last = now

    def on_packet(self, now: float) -> None:
        self._last = now

    def suspend(self) -> None:
        self.suspended = True

    def resume(self, now: float) -> None:
        self.suspended = False
        self._last = now

    def deadline(self) -> float | None:
        """When the timer expires, or None (suspended, or not started)."""
        if self.suspended or self._last is None:
            return None
        return self._last + self.timeout

    def expired(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline
