"""RTCP (RFC 3550 §6), sans-I/O: SR, RR, SDES and BYE packets, compound packets, report
blocks built from :class:`~cloudpbx.media.rtp.RtpReceiverStats`, NTP timestamps and the
round-trip time.

Other packet types (APP, RTPFB/PSFB feedback, XR …) are kept raw as :class:`RtcpUnknown`,
so a compound packet from a richer peer still parses. :class:`RtcpError` is the peer's fault
(drop the datagram), ``ValueError`` our misuse.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cloudpbx.media.rtp import RtpReceiverStats, RtpSender

__all__ = [
    "BYE",
    "NTP_UNIX_OFFSET",
    "RR",
    "SDES",
    "SDES_CNAME",
    "SR",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpError",
    "RtcpPacket",
    "RtcpUnknown",
    "SdesChunk",
    "SdesItem",
    "SenderReport",
    "SourceDescription",
    "looks_like_rtcp",
    "ntp_from_unix",
    "ntp_middle",
    "parse_compound",
    "serialize_compound",
    "unix_from_ntp",
]

# RFC 3550 §12.1: packet types.
SR: Final = 200
RR: Final = 201
SDES: Final = 202
BYE: Final = 203
APP: Final = 204

# RFC 3550 §12.2: SDES item types.
SDES_END: Final = 0
SDES_CNAME: Final = 1
SDES_NAME: Final = 2
SDES_PRIV: Final = 8

NTP_UNIX_OFFSET: Final = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)

_HEADER: Final = struct.Struct("!BBH")  # V/P/count, PT, length (32-bit words - 1)
_SR_INFO: Final = struct.Struct("!IQIII")  # SSRC, NTP, RTP timestamp, packets, octets
_BLOCK: Final = struct.Struct("!IIIIII")
_U32: Final = struct.Struct("!I")
_MAX_COUNT: Final = 31  # the 5-bit RC / SC field


class RtcpError(Exception):
    """The peer's datagram is not valid RTCP (RFC 3550 §6.4–6.6, A.2): drop it."""


# --- NTP timestamps (RFC 3550 §4) ----------------------------------------------------------


def ntp_from_unix(seconds: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point since 1900) for a Unix time in seconds."""
    return round((seconds + NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF


def unix_from_ntp(ntp: int) -> float:
    """Unix time in seconds for a 64-bit NTP timestamp (era 0: years 1900-2036)."""
    return ntp / (1 << 32) - NTP_UNIX_OFFSET


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp (16.16 fixed point), as LSR carries it
    (RFC 3550 §6.4.1)."""
    return (ntp >> 16) & 0xFFFF_FFFF


def looks_like_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """RTP/RTCP demultiplexing on one port (RFC 5761 §4): version 2 and a second octet in
    192–223 (RTCP packet types 192–223 cannot clash with RTP payload types in use)."""
    return len(data) >= 4 and data[0] & 0xC0 == 0x80 and 192 <= data[1] <= 223


# --- packets -------------------------------------------------------------------------------


def _check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name} {value} out of range for {bits} bits")


def _check_count(name: str, n: int) -> None:
    if n > _MAX_COUNT:
        raise ValueError(f"{n} {name}, at most {_MAX_COUNT} fit in one packet")


def _check_words(name: str, data: bytes) -> None:
    if len(data) % 4:
        raise ValueError(f"{name} length {len(data)} is not a multiple of 4")


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    words = (len(body) + 4) // 4 - 1
    if words > 0xFFFF:
        raise ValueError("RTCP packet too long")
    return _HEADER.pack(0x80 | count, packet_type, words) + body


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportBlock:
    """One reception report (RFC 3550 §6.4.1) about the source ``ssrc``."""

    ssrc: int
    fraction_lost: int  # 1/256 units, since the previous report
    cumulative_lost: int  # 24-bit signed: negative with duplicates
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, timestamp units
    lsr: int = 0  # middle 32 bits of the NTP timestamp of the last SR from ssrc (0: none)
    dlsr: int = 0  # delay since that SR, 1/65536 s

    def __post_init__(self) -> None:
        _check_uint("SSRC", self.ssrc, 32)
        _check_uint("fraction lost", self.fraction_lost, 8)
        if not -0x80_0000 <= self.cumulative_lost <= 0x7F_FFFF:
            raise ValueError(f"cumulative lost {self.cumulative_lost} out of 24-bit range")
        _check_uint("highest sequence", self.highest_seq, 32)
        _check_uint("jitter", self.jitter, 32)
        _check_uint("LSR", self.lsr, 32)
        _check_uint("DLSR", self.dlsr, 32)

    @classmethod
    def from_stats(cls, stats: RtpReceiverStats, now: float) -> ReportBlock:
        """The report to send now about ``stats``'s source (A.3 loss, A.8 jitter, LSR/DLSR).

        Starts a new loss interval: call once per RTCP report sent. ``now`` is on the same
        clock as the arrival times fed to ``stats``. Raises ValueError before any packet.
        """
        if stats.ssrc is None:
            raise ValueError("no packet received yet")
        # A.3: cumulative lost is clamped to the 24-bit signed field.
        lost = max(-0x80_0000, min(0x7F_FFFF, stats.cumulative_lost))
        dlsr = 0
        if stats.last_sr_arrival is not None and stats.lsr:
            dlsr = min(0xFFFF_FFFF, max(0, round((now - stats.last_sr_arrival) * 65536)))
        return cls(
            ssrc=stats.ssrc,
            fraction_lost=stats.seq.take_fraction_lost(),
            cumulative_lost=lost,
            highest_seq=stats.extended_highest_seq,
            jitter=min(int(stats.jitter), 0xFFFF_FFFF),
            lsr=stats.lsr,
            dlsr=dlsr,
        )

    def round_trip_time(self, arrival_ntp: int) -> float | None:
        """Round trip in seconds (RFC 3550 §6.4.1: A - LSR - DLSR), for this block received
        at NTP time ``arrival_ntp`` by the sender of the SR it refers to; None without LSR."""
        if not self.lsr:
            return None
        rtt = (ntp_middle(arrival_ntp) - self.lsr - self.dlsr) & 0xFFFF_FFFF
        if rtt >= 0x8000_0000:  # negative: clocks or the peer are off
            return 0.0
        return rtt / 65536

    def __bytes__(self) -> bytes:
        return _BLOCK.pack(
            self.ssrc,
            (self.fraction_lost << 24) | (self.cumulative_lost & 0xFF_FFFF),
            self.highest_seq,
            self.jitter,
            self.lsr,
            self.dlsr,
        )

    @classmethod
    def _unpack(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        lost = lost_word & 0xFF_FFFF
        if lost & 0x80_0000:
            lost -= 0x100_0000
        return cls(
            ssrc=ssrc,
            fraction_lost=lost_word >> 24,
            cumulative_lost=lost,
            highest_seq=highest,
            jitter=jitter,
            lsr=lsr,
            dlsr=dlsr,
        )


def _blocks_bytes(reports: tuple[ReportBlock, ...]) -> bytes:
    return b"".join(bytes(r) for r in reports)


def _parse_blocks(body: bytes, offset: int, count: int, what: str) -> tuple[ReportBlock, ...]:
    if offset + count * _BLOCK.size > len(body):
        raise RtcpError(f"{what}: {count} report blocks do not fit")
    return tuple(ReportBlock._unpack(body, offset + i * _BLOCK.size) for i in range(count))


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderReport:
    """SR (RFC 3550 §6.4.1): sender info and reception reports."""

    ssrc: int
    ntp_timestamp: int  # 64-bit, wallclock when this report was sent
    rtp_timestamp: int  # the same instant in the RTP clock
    packet_count: int
    octet_count: int  # payload octets
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""  # profile-specific, kept raw

    def __post_init__(self) -> None:
        _check_uint("SSRC", self.ssrc, 32)
        _check_uint("NTP timestamp", self.ntp_timestamp, 64)
        _check_uint("RTP timestamp", self.rtp_timestamp, 32)
        _check_uint("packet count", self.packet_count, 32)
        _check_uint("octet count", self.octet_count, 32)
        _check_count("report blocks", len(self.reports))
        _check_words("SR extension", self.extension)

    @classmethod
    def from_sender(
        cls,
        sender: RtpSender,
        *,
        ntp_timestamp: int,
        rtp_timestamp: int,
        reports: Iterable[ReportBlock] = (),
    ) -> SenderReport:
        """An SR for ``sender``'s stream; counts wrap at 32 bits (RFC 3550 §6.4.1)."""
        return cls(
            ssrc=sender.ssrc,
            ntp_timestamp=ntp_timestamp,
            rtp_timestamp=rtp_timestamp & 0xFFFF_FFFF,
            packet_count=sender.packets_sent & 0xFFFF_FFFF,
            octet_count=sender.octets_sent & 0xFFFF_FFFF,
            reports=tuple(reports),
        )

    @property
    def lsr(self) -> int:
        """What a receiver puts in LSR for this SR (the NTP middle 32 bits)."""
        return ntp_middle(self.ntp_timestamp)

    def __bytes__(self) -> bytes:
        body = (
            _SR_INFO.pack(
                self.ssrc,
                self.ntp_timestamp,
                self.rtp_timestamp,
                self.packet_count,
                self.octet_count,
            )
            + _blocks_bytes(self.reports)
            + self.extension
        )
        return _header(len(self.reports), SR, body)

    @classmethod
    def _parse(cls, count: int, body: bytes) -> SenderReport:
        if len(body) < _SR_INFO.size:
            raise RtcpError("SR shorter than its sender info")
        ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        reports = _parse_blocks(body, _SR_INFO.size, count, "SR")
        if len(body) % 4:
            raise RtcpError("SR: padding left a ragged extension")
        return cls(
            ssrc=ssrc,
            ntp_timestamp=ntp,
            rtp_timestamp=rtp_ts,
            packet_count=packets,
            octet_count=octets,
            reports=reports,
            extension=body[_SR_INFO.size + count * _BLOCK.size :],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverReport:
    """RR (RFC 3550 §6.4.2): reception reports from a participant that does not send."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _check_uint("SSRC", self.ssrc, 32)
        _check_count("report blocks", len(self.reports))
        _check_words("RR extension", self.extension)

    def __bytes__(self) -> bytes:
        body = _U32.pack(self.ssrc) + _blocks_bytes(self.reports) + self.extension
        return _header(len(self.reports), RR, body)

    @classmethod
    def _parse(cls, count: int, body: bytes) -> ReceiverReport:
        if len(body) < 4:
            raise RtcpError("RR shorter than its SSRC")
        reports = _parse_blocks(body, 4, count, "RR")
        if len(body) % 4:
            raise RtcpError("RR: padding left a ragged extension")
        return cls(
            ssrc=_U32.unpack_from(body)[0],
            reports=reports,
            extension=body[4 + count * _BLOCK.size :],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SdesItem:
    """One SDES item (RFC 3550 §6.5): type 1–255 and up to 255 octets of UTF-8 text
    (kept as bytes, so any peer's item round-trips)."""

    type: int
    value: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.type <= 255:
            raise ValueError(f"SDES item type {self.type} out of range 1-255")
        if len(self.value) > 255:
            raise ValueError("SDES item longer than 255 octets")


@dataclass(frozen=True, slots=True, kw_only=True)
class SdesChunk:
    """The SDES items of one source."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def __post_init__(self) -> None:
        _check_uint("SSRC", self.ssrc, 32)

    @property
    def cname(self) -> str | None:
        """The CNAME item (RFC 3550 §6.5.1), decoded leniently, or None."""
        for item in self.items:
            if item.type == SDES_CNAME:
                return item.value.decode("utf-8", "replace")
        return None

    def __bytes__(self) -> bytes:
        parts = [_U32.pack(self.ssrc)]
        for item in self.items:
            parts.append(bytes((item.type, len(item.value))) + item.value)
        raw = b"".join(parts)
        # At least one null octet ends the item list, then pad to 32 bits (§6.5).
        return raw + bytes(4 - len(raw) % 4)


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceDescription:
    """SDES (RFC 3550 §6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    def __post_init__(self) -> None:
        _check_count("SDES chunks", len(self.chunks))

    @classmethod
    def with_cname(cls, ssrc: int, cname: str) -> SourceDescription:
        """The usual SDES: one chunk with the CNAME (required in every compound packet)."""
        return cls(
            chunks=(SdesChunk(ssrc=ssrc, items=(SdesItem(type=SDES_CNAME, value=cname.encode()),)),)
        )

    def __bytes__(self) -> bytes:
        return _header(len(self.chunks), SDES, b"".join(bytes(c) for c in self.chunks))

    @classmethod
    def _parse(cls, count: int, body: bytes) -> SourceDescription:
        chunks: list[SdesChunk] = []
        pos = 0
        n = len(body)
        for _ in range(count):
            if pos + 4 > n:
                raise RtcpError("SDES chunk runs past the end of the packet")
            ssrc = _U32.unpack_from(body, pos)[0]
            pos += 4
            items: list[SdesItem] = []
            while True:
                if pos >= n:
                    raise RtcpError("SDES item list not terminated")
                item_type = body[pos]
                if item_type == SDES_END:
                    pos = (pos + 4) & ~3  # the null octet(s) up to the next 32-bit boundary
                    break
                if pos + 2 > n or pos + 2 + body[pos + 1] > n:
                    raise RtcpError("SDES item runs past the end of the packet")
                length = body[pos + 1]
                items.append(SdesItem(type=item_type, value=body[pos + 2 : pos + 2 + length]))
                pos += 2 + length
            if pos > n:
                raise RtcpError("SDES chunk padding runs past the end of the packet")
            chunks.append(SdesChunk(ssrc=ssrc, items=tuple(items)))
        if any(body[pos:]):
            raise RtcpError("data after the last SDES chunk")
        return cls(chunks=tuple(chunks))


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye:
    """BYE (RFC 3550 §6.6): the sources leave, with an optional reason (UTF-8 bytes)."""

    sources: tuple[int, ...]
    reason: bytes | None = None

    def __post_init__(self) -> None:
        _check_count("BYE sources", len(self.sources))
        for s in self.sources:
            _check_uint("SSRC", s, 32)
        if self.reason is not None and len(self.reason) > 255:
            raise ValueError("BYE reason longer than 255 octets")

    def __bytes__(self) -> bytes:
        body = b"".join(_U32.pack(s) for s in self.sources)
        if self.reason is not None:
            raw = bytes((len(self.reason),)) + self.reason
            body += raw + bytes(-len(raw) % 4)
        return _header(len(self.sources), BYE, body)

    @classmethod
    def _parse(cls, count: int, body: bytes) -> Bye:
        end = 4 * count
        if end > len(body):
            raise RtcpError(f"BYE: {count} sources do not fit")
        sources = struct.unpack_from(f"!{count}I", body)
        reason = None
        if end < len(body):
            length = body[end]
            if end + 1 + length > len(body):
                raise RtcpError("BYE reason runs past the end of the packet")
            reason = body[end + 1 : end + 1 + length]
        return cls(sources=tuple(sources), reason=reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class RtcpUnknown:
    """Any other RTCP packet (APP, feedback, XR …), kept raw: type, the 5-bit count /
    subtype field and the body after the 4-octet header (padding removed)."""

    packet_type: int
    count: int
    body: bytes

    def __post_init__(self) -> None:
        _check_uint("packet type", self.packet_type, 8)
        _check_uint("count", self.count, 5)
        _check_words("body", self.body)

    def __bytes__(self) -> bytes:
        return _header(self.count, self.packet_type, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | RtcpUnknown


# --- compound packets ----------------------------------------------------------------------


def parse_compound(
    data: bytes | bytearray | memoryview, *, require_report_first: bool = True
) -> list[RtcpPacket]:
    """Parse a compound RTCP packet, validated as in RFC 3550 Appendix A.2: version 2
    everywhere, the first packet an SR or RR (unless ``require_report_first`` is False,
    e.g. for reduced-size RTCP, RFC 5506), padding only on the last, the lengths adding up
    to the datagram's. Raises :class:`RtcpError`."""
    data = bytes(data)
    n = len(data)
    if n < 4:
        raise RtcpError(f"{n} octets, shorter than an RTCP header")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < n:
        if pos + 4 > n:
            raise RtcpError("trailing octets after the last RTCP packet")
        b0, packet_type, words = _HEADER.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise RtcpError(f"RTCP version {b0 >> 6}, expected 2")
        end = pos + 4 * (words + 1)
        if end > n:
            raise RtcpError(f"RTCP packet type {packet_type} runs past the end of the datagram")
        if not packets and require_report_first and packet_type not in (SR, RR):
            raise RtcpError(f"compound packet starts with type {packet_type}, not SR or RR")
        body = data[pos + 4 : end]
        if b0 & 0x20:  # padding: only the last packet may have it (A.2)
            if end != n:
                raise RtcpError("padding on a packet that is not the last")
            pad = data[end - 1]
            if pad == 0 or pad > len(body):
                raise RtcpError(f"bad RTCP padding count {pad}")
            body = body[: len(body) - pad]
        count = b0 & 0x1F
        packets.append(_parse_one(packet_type, count, body))
        pos = end
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        return SenderReport._parse(count, body)
    if packet_type == RR:
        return ReceiverReport._parse(count, body)
    if packet_type == SDES:
        return SourceDescription._parse(count, body)
    if packet_type == BYE:
        return Bye._parse(count, body)
    if len(body) % 4:
        raise RtcpError(f"RTCP packet type {packet_type}: padding left a ragged body")
    return RtcpUnknown(packet_type=packet_type, count=count, body=body)


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate packets into a compound packet; the first must be an SR or RR
    (RFC 3550 §6.1; include an SDES with the CNAME as well)."""
    items = list(packets)
    if not items or not isinstance(items[0], SenderReport | ReceiverReport):
        raise ValueError("a compound RTCP packet starts with an SR or RR")
    return b"".join(bytes(p) for p in items)
