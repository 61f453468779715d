"""RTP relay (the bridge of two call legs): the asyncio shell around the pure media modules.

A :class:`RelaySession` joins two legs, ``a`` and ``b``. Each leg is one UDP socket of ours
(plus its RTCP neighbour, RFC 3550 §11) facing one phone or trunk; what arrives on leg ``a``
goes out of leg ``b`` to ``b``'s peer, and the other way round. Per leg:

* the peer's media address from its SDP (``c=``/``m=``) and a :class:`~.rtp.Latch` for
  symmetric RTP — learning only in the first packets, the signalled address preferred, every
  other source refused afterwards (CVE-2017-14099, "RTP bleed");
* the payload types the peer negotiated (``{0: "PCMU", 101: "telephone-event"}``): each
  incoming PT is mapped to the PT the other side negotiated for the same encoding; G.711
  μ-law ↔ A-law is transcoded (:func:`~.codecs.transcoder`) when the legs agreed on different
  laws; RFC 4733 events pass through with their PT mapped; anything else is dropped;
* SSRC, sequence number and timestamp rewriting, so each peer sees one continuous stream
  from one SSRC of ours even when the other side changes SSRC (a transfer, a re-INVITE to a
  new media server): RFC 3550 §5.1, §8.2; the first packet after a change has the marker bit;
* reception statistics (:class:`~.rtp.RtpReceiverStats`: loss RFC 3550 A.3, jitter A.8) for
  the call record, kept across SSRC changes;
* an :class:`~.rtp.InactivityTimer`: a peer silent for ``inactivity_timeout`` seconds makes
  the session call ``on_dead(session, leg)`` once; the countdown starts when both legs have
  their media (not while the callee is still ringing);
* the direction from the peer's SDP (RFC 3264 §5.1): a peer that is ``sendonly`` or
  ``inactive`` (on hold) gets nothing forwarded, and its inactivity timer is suspended while
  it is not ``sendrecv``;
* an optional tap, called with ``(payload_type, sequence, timestamp, payload)`` of every
  packet accepted from that leg, as rewritten for the other side (the recorder's input).

The hot path (:meth:`RelayLeg.datagram_received`) works on raw bytes: a header peek, table
lookups, one ``bytearray`` copy rewritten in place, ``transport.sendto``; no object is built
and nothing is logged per packet (about 1 µs of Python per packet; the event loop and the
kernel cost the rest, ~9 µs a relayed packet in all here, ``bench/rtp_relay.py``). The relay
runs on the running loop; the server runs on uvloop (``cloudpbx.transport.endpoint.run``).

RTCP (RFC 3550 §6): the relay terminates RTCP per leg, as a B2BUA anchoring media must (it
rewrites SSRCs, so the peers' reports could not be passed on). Each leg (all of a manager's
legs share one loop timer, :class:`RtcpScheduler`), every ~5 s randomised 0.5-1.5x and never
more often than RFC 3550 §6.2's 5 % of the session bandwidth allows (:func:`rtcp_interval`),
sends its peer an SR about the stream we send that peer (our SSRC, packet/octet counts,
NTP and RTP timestamps; an RR when we sent nothing) with a reception report about the stream
it receives from that peer (fraction and cumulative lost, extended highest sequence,
interarrival jitter, LSR/DLSR), plus an SDES CNAME; a BYE when the session closes. Incoming
SR/RR are taken only from the IP of the peer the latch accepts and feed the per-leg figures:
the peer's view of our stream (its loss and jitter) and the round-trip time. Nothing of this
runs per packet: the hot path keeps only the counters it always kept.
:meth:`RelaySession.quality` gives the per-leg figures for the call record (CDR-1
``call_legs.quality``). RTCP multiplexed on the RTP port (RFC 5761) is dropped as an unmapped
payload type; the peer's RTCP is expected on its RTP port + 1 (RFC 3550 §11) until it sends us
some from elsewhere (symmetric RTCP, RFC 4961).

IPv4 and IPv6: a manager bound to an IPv6 host (``"::1"``, ``"::"``) works the same; the
signalled addresses are brought into the form the kernel reports sources in
(:func:`canonical_address`), so the latch compares like with like.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import heapq
import ipaddress
import logging
import random
import secrets
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from cloudpbx.media.codecs import transcoder
from cloudpbx.media.ports import RtpPortAllocator, bind_rtp_pair
from cloudpbx.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    SenderReport,
    SourceDescription,
    ntp_from_unix,
    ntp_middle,
    parse_compound,
)
from cloudpbx.media.rtp import (
    RTP_HEADER_SIZE,
    Address,
    InactivityTimer,
    Latch,
    RtpError,
    RtpReceiverStats,
    payload_bounds,
    peek_pt_seq_ts_ssrc,
)

__all__ = [
    "DeadCallback",
    "Direction",
    "DirectionStats",
    "LagSnapshot",
    "LegMedia",
    "LoopLagMonitor",
    "PeerReport",
    "RelayError",
    "RelayLeg",
    "RelayManager",
    "RelaySession",
    "RtcpScheduler",
    "RtpTap",
    "canonical_address",
    "rtcp_interval",
]

log = logging.getLogger(__name__)

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
"""A peer's SDP direction attribute for its stream (RFC 3264 §5.1), as the peer wrote it."""

RtpTap = Callable[[int, int, int, bytes], None]
"""``tap(payload_type, sequence, timestamp, payload)`` — a packet as sent to the other side."""

DeadCallback = Callable[["RelaySession", "RelayLeg"], None]
"""``on_dead(session, leg)``: ``leg``'s peer sent nothing for the inactivity timeout."""

Converter = Callable[[bytes], bytes]

_G711: Final = frozenset({"PCMU/8000", "PCMA/8000"})
_EVENT_PREFIX: Final = "TELEPHONE-EVENT/"
_NO_PT: Final = -1
# Bytes 1..11 of the fixed header (RFC 3550 §5.1): M/PT, sequence, timestamp, SSRC.
_HEADER_TAIL: Final = struct.Struct("!BHII")
_monotonic: Final = time.monotonic
_NOWHERE: Final[Address] = ("0.0.0.0", 0)  # noqa: S104 - placeholder, never sent to
_U32: Final = 0xFFFF_FFFF

# RFC 3550 §6.2/§6.3.1: RTCP gets 5 % of the session bandwidth, at most one report per 5 s
# (the first after half that). The session bandwidth of a G.711 (or G.722) leg at 20 ms:
# 64 kbit/s of payload plus 50 x 40 octets of RTP/UDP/IPv4 headers = 10,000 octets/s.
RTCP_MIN_INTERVAL: Final = 5.0
RTCP_BANDWIDTH_FRACTION: Final = 0.05
_SESSION_OCTETS_PER_S: Final = 10_000.0
_UDP_IP_OVERHEAD: Final = 28  # A.7: avg_rtcp_size counts the lower-layer headers (IPv4)
_UDP_IP6_OVERHEAD: Final = 48


class RelayError(Exception):
    """The relay cannot do what was asked (no session slot, no port, leg closed)."""


def canonical_address(addr: tuple[Any, ...], *, ipv6_socket: bool = False) -> Address:
    """``(ip, port)`` as the kernel reports a source on our socket, for the latch to compare.

    Takes a 2-tuple or a 4-tuple (``getsockname`` of an IPv6 socket); IPv6 is written
    compressed in lower case; on an IPv6 socket an IPv4 address becomes IPv4-mapped
    (``::ffff:192.0.2.1``, how a dual-stack ``::`` socket sees IPv4 peers), and on an IPv4
    socket a mapped address goes back to IPv4. A host name is left as it is.
    """
    host, port = str(addr[0]), int(addr[1])
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return (host, port)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return (f"::ffff:{ip}" if ipv6_socket else str(ip), port)
    return (ip.compressed, port)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def rtcp_interval(
    rand: float,
    *,
    avg_rtcp_size: float,
    session_bandwidth: float = _SESSION_OCTETS_PER_S,
    members: int = 2,
    minimum: float = RTCP_MIN_INTERVAL,
    initial: bool = False,
) -> float:
    """Seconds until the next RTCP report (RFC 3550 §6.3.1, A.7 without reconsideration).

    The deterministic interval is the larger of ``minimum`` (halved for the first report)
    and the time ``members`` reports of ``avg_rtcp_size`` octets take at 5 % of
    ``session_bandwidth`` (octets/s): never more often than the RTP rate justifies. It is
    then scaled by 0.5 + ``rand`` (``rand`` uniform in [0, 1), injected) so that reports do
    not synchronise. With two members (a relay leg and its peer) timer reconsideration
    changes nothing, so the (e - 3/2) compensation of §6.3.1 is not applied.
    """
    if not 0.0 <= rand <= 1.0:
        raise ValueError(f"rand {rand} outside [0, 1]")
    if session_bandwidth <= 0 or minimum <= 0:
        raise ValueError("session bandwidth and minimum must be positive")
    t_min = minimum / 2 if initial else minimum
    by_bandwidth = members * avg_rtcp_size / (RTCP_BANDWIDTH_FRACTION * session_bandwidth)
    return max(t_min, by_bandwidth) * (0.5 + rand)


def _encoding_key(name: str) -> str:
    """``"pcmu"`` / ``"PCMU/8000"`` → ``"PCMU/8000"`` (rtpmap encoding/clock, RFC 4566 §6)."""
    name = name.strip().upper()
    if "/" not in name:
        return f"{name}/8000"
    encoding, _, rest = name.partition("/")
    return f"{encoding}/{rest.split('/', 1)[0]}"  # drop an encoding-parameters part ("/1")


def _clock_rate(key: str) -> int:
    try:
        return int(key.split("/", 1)[1])
    except ValueError:
        return 8000


@dataclass(frozen=True, slots=True, kw_only=True)
class LegMedia:
    """What signalling negotiated for one leg: the peer's address and payload types.

    ``payload_types`` maps each PT the peer may send (and receives) to its encoding,
    ``"PCMU"``, ``"PCMA"``, ``"telephone-event"`` (``"name/rate"`` also accepted, 8000 by
    default). ``strict`` accepts media only from ``remote`` (trunks with fixed addresses).
    """

    remote: Address | None = None
    payload_types: Mapping[int, str] = field(default_factory=lambda: {0: "PCMU"})
    direction: Direction = "sendrecv"
    strict: bool = False

    def __post_init__(self) -> None:
        for pt in self.payload_types:
            if not 0 <= pt <= 127:
                raise ValueError(f"payload type {pt} out of range")
        if self.direction not in ("sendrecv", "sendonly", "recvonly", "inactive"):
            raise ValueError(f"bad direction {self.direction!r}")
        if self.strict and self.remote is None:
            raise ValueError("a strict leg needs its remote address")


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectionStats:
    """Media received on one leg and relayed to the other, for the call record."""

    source: str  # the leg the media came in on: "a" or "b"
    packets_accepted: int  # passed the latch and the header check
    packets_forwarded: int  # sent on to the other side
    refused_source: int  # from a source the latch refused
    refused_payload_type: int  # a PT the other side has no mapping for (incl. RTCP-mux)
    malformed: int  # not RTP version 2
    ssrc_changes: int  # times the peer started a new SSRC (the first counts)
    expected: int  # RFC 3550 A.3, summed over the peer's SSRCs
    lost: int  # cumulative, summed over the peer's SSRCs, never negative
    jitter_ms: float  # RFC 3550 A.8 estimate for the current SSRC
    rtcp_packets: int  # received on the RTCP port (discarded)
    latched: Address | None

    @property
    def loss_ratio(self) -> float:
        return self.lost / self.expected if self.expected else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerReport:
    """The peer's view of the stream we send it: its last RTCP reception report about our
    SSRC (RFC 3550 §6.4.1) and the round trip measured from it."""

    fraction_lost: float  # 0..1, over the peer's last reporting interval
    cumulative_lost: int  # since the start of our stream (negative with duplicates)
    highest_seq: int  # extended highest sequence number the peer received
    jitter_ms: float  # the peer's interarrival jitter estimate of our stream
    rtt_ms: float | None  # RFC 3550 §6.4.1 A - LSR - DLSR; None until it echoes an SR of ours
    packets_sent: int  # what we had sent the peer when the report arrived

    @property
    def loss_ratio(self) -> float:
        """Cumulative loss over what we had sent (in-flight packets make it a hair low)."""
        if self.packets_sent <= 0:
            return 0.0
        return min(1.0, max(self.cumulative_lost, 0) / self.packets_sent)


class _RtcpPort(asyncio.DatagramProtocol):
    """The odd port of a pair: hands what arrives to its leg (RTCP is not on the hot path)."""

    __slots__ = ("leg",)

    def __init__(self, leg: RelayLeg) -> None:
        self.leg = leg

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.leg._rtcp_datagram(data, addr, _monotonic())


class RelayLeg(asyncio.DatagramProtocol):
    """One side of a :class:`RelaySession`: our socket facing one peer.

    The per-direction state of the media that *arrives* here (and leaves through the other
    leg) lives here too, so the hot path touches one object.
    """

    __slots__ = (
        "_avg_rtcp_size",
        "_conv",
        "_in_ssrc",
        "_is_event",
        "_jitter_max",
        "_last_at",
        "_last_seq",
        "_last_ts",
        "_out_dest",
        "_prior_expected",
        "_prior_lost",
        "_prior_octets",
        "_pt_out",
        "_rate",
        "_reported_sent",
        "_rtcp_due",
        "_sdes",
        "_sendto",
        "_seq_off",
        "_session",
        "_source",
        "_stats_update",
        "_tap",
        "_timer_on_packet",
        "_ts_off",
        "_unsent_octets",
        "_wallclock",
        "accepted",
        "cname",
        "dest",
        "latch",
        "local_address",
        "malformed",
        "media",
        "name",
        "out_ssrc",
        "peer",
        "peer_report",
        "port",
        "receives",
        "refused_pt",
        "rtcp_accepted",
        "rtcp_dest",
        "rtcp_packets",
        "rtcp_sent",
        "rtcp_transport",
        "send_errors",
        "ssrc_changes",
        "stats",
        "timer",
        "transport",
        "unsent",
    )

    def __init__(
        self,
        name: str,
        port: int,
        *,
        inactivity_timeout: float,
        latch_window: float,
        latch_packets: int,
    ) -> None:
        self.name = name
        self.port = port  # our RTP port; RTCP is port + 1
        self.local_address: Address | None = None
        self.media = LegMedia()
        self.latch = Latch(window=latch_window, max_packets=latch_packets)
        self.stats = RtpReceiverStats(8000, probation=1)
        self.timer = InactivityTimer(inactivity_timeout)
        self.peer: RelayLeg | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self._session: RelaySession | None = None
        # Where to send (set by the session): this leg's peer address, and whether to send.
        self.dest: Address | None = None
        self.receives = True  # the peer wants media (not sendonly/inactive)
        # Hot-path state for the media arriving here.
        self._source: object = None  # the raw address the latch accepted for good
        self._pt_out: list[int] = [_NO_PT] * 128
        self._conv: list[Converter | None] = [None] * 128
        self._rate: list[int] = [8000] * 128
        self._is_event: list[bool] = [False] * 128
        self._sendto: Callable[[bytes | bytearray, Address], None] | None = None
        self._out_dest: Address = _NOWHERE
        self._tap: RtpTap | None = None
        self._stats_update = self.stats.update
        self._timer_on_packet = self.timer.on_packet
        self.out_ssrc = secrets.randbits(32)  # RFC 3550 §8.1: random SSRC of ours
        self._in_ssrc: int | None = None
        self._seq_off = 0
        self._ts_off = 0
        self._last_seq = 0
        self._last_ts = 0
        self._last_at = 0.0
        # Counters.
        self.accepted = 0
        self.unsent = 0  # accepted but not forwarded (other side on hold or no address)
        self.refused_pt = 0
        self.malformed = 0
        self.ssrc_changes = 0
        self.send_errors = 0
        self._prior_expected = 0
        self._prior_lost = 0
        self._prior_octets = 0  # payload octets of the peer's earlier SSRCs
        self._unsent_octets = 0
        # RTCP (RFC 3550 §6), this leg facing its peer; see RelaySession's timers.
        self.cname = secrets.token_urlsafe(12)  # RFC 7022: a random per-session CNAME
        self.rtcp_dest: Address | None = None  # learned from the peer's RTCP (RFC 4961)
        self.rtcp_packets = 0  # datagrams on our RTCP port
        self.rtcp_accepted = 0  # of those: valid RTCP from the peer's IP
        self.rtcp_sent = 0
        self.peer_report: PeerReport | None = None
        self._reported_sent = (0, 0)  # packets sent at the last two reports (§6.4: SR or RR)
        self._sdes = b""  # our SDES CNAME packet, built once (its SSRC and CNAME never change)
        self._avg_rtcp_size = 100.0  # A.7 avg_rtcp_size, octets with UDP/IP headers
        self._jitter_max = 0.0  # the largest jitter seen at a report, ms
        self._rtcp_due: float | None = None  # when the next report is due (RtcpScheduler)
        self._wallclock: Callable[[], float] = time.time

    # --- asyncio protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio's selector transport only subclasses DatagramTransport from 3.12 on)
        self.transport = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        if sockname is not None:
            self.local_address = (sockname[0], sockname[1])

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that is not listening (yet): not our failure.
        self.send_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._sendto = None

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """The hot path: check, map, rewrite, forward. Keep it lean (see module doc)."""
        now = _monotonic()
        if addr != self._source and not self._admit(addr, now):
            return
        try:
            pt, seq, ts, ssrc = peek_pt_seq_ts_ssrc(data)
        except RtpError:
            self.malformed += 1
            return
        out_pt = self._pt_out[pt]
        if out_pt < 0:
            self.refused_pt += 1
            return
        self.accepted += 1
        self._timer_on_packet(now)
        b1 = (data[1] & 0x80) | out_pt
        if ssrc != self._in_ssrc:
            self._resync(pt, ssrc, seq, ts, now)
            if not self._is_event[pt]:
                b1 |= 0x80  # RFC 3551 §4.1: a discontinuity, let the jitter buffer resync
        self._stats_update(
            ssrc=ssrc, seq=seq, timestamp=ts, payload_octets=len(data) - 12, arrival=now
        )
        if ((seq - self._last_seq) & 0xFFFF) < 0x8000:  # newest so far (reordering-safe)
            self._last_seq = seq
            self._last_ts = ts
            self._last_at = now
        out_seq = (seq + self._seq_off) & 0xFFFF
        out_ts = (ts + self._ts_off) & 0xFFFF_FFFF
        buf = bytearray(data)
        _HEADER_TAIL.pack_into(buf, 1, b1, out_seq, out_ts, self.out_ssrc)
        conv = self._conv[pt]
        if conv is not None:
            if data[0] == 0x80:  # no CSRC, extension or padding: the common case
                buf[RTP_HEADER_SIZE:] = conv(data[RTP_HEADER_SIZE:])
            else:
                try:
                    start, end = payload_bounds(data)
                except RtpError:  # CSRC count, extension or padding run past the end
                    self.malformed += 1
                    self.unsent += 1
                    self._unsent_octets += len(data) - 12
                    return
                buf[start:end] = conv(data[start:end])
        if self._tap is not None:
            self._tap_packet(buf, out_pt, out_seq, out_ts)
        sendto = self._sendto
        if sendto is not None:
            sendto(buf, self._out_dest)
        else:
            self.unsent += 1
            self._unsent_octets += len(data) - 12  # as the statistics count octets

    # --- slow paths ---------------------------------------------------------------------

    def _admit(self, addr: tuple[str | Any, int], now: float) -> bool:
        """A packet from a source other than the final latched one (RFC 3550 §8.2 style)."""
        src: Address = (addr[0], addr[1])
        latch = self.latch
        before = latch.destination
        if not latch.on_packet(src, now):
            return False
        if latch.strict or not latch.learning:
            self._source = addr  # final: later packets from it take the fast path
        if latch.destination != before and self._session is not None:
            self._session._refresh()
        return True

    def _resync(self, pt: int, ssrc: int, seq: int, ts: int, now: float) -> None:
        """The peer's SSRC changed (or its first packet): continue our numbering."""
        stats = self.stats
        if self._in_ssrc is not None:
            self._prior_expected += stats.seq.expected
            self._prior_lost += max(stats.cumulative_lost, 0)
            self._prior_octets += stats.octets_received
            next_seq = self._last_seq + self._seq_off + 1
            elapsed = max(1, round((now - self._last_at) * self._rate[pt]))
            next_ts = self._last_ts + self._ts_off + elapsed
            self._seq_off = (next_seq - seq) & 0xFFFF
            self._ts_off = (next_ts - ts) & 0xFFFF_FFFF
        self._in_ssrc = ssrc
        self._last_seq = seq
        self._last_ts = ts
        self._last_at = now
        self.ssrc_changes += 1

    def _tap_packet(self, buf: bytearray, pt: int, seq: int, ts: int) -> None:
        tap = self._tap
        if tap is None:
            return
        try:
            start, end = payload_bounds(buf)
            tap(pt, seq, ts, bytes(buf[start:end]))
        except Exception:
            log.exception("RTP tap on leg %s failed; tap removed", self.name)
            self._tap = None

    def direction_stats(self) -> DirectionStats:
        stats = self.stats
        return DirectionStats(
            source=self.name,
            packets_accepted=self.accepted,
            packets_forwarded=self.accepted - self.unsent,
            refused_source=self.latch.dropped,
            refused_payload_type=self.refused_pt,
            malformed=self.malformed,
            ssrc_changes=self.ssrc_changes,
            expected=self._prior_expected + stats.seq.expected,
            lost=self._prior_lost + max(stats.cumulative_lost, 0),
            jitter_ms=stats.jitter_ms,
            rtcp_packets=self.rtcp_packets,
            latched=self.latch.latched,
        )

    # --- RTCP (RFC 3550 §6): this leg facing its peer; timer-driven, never per packet -------

    def _relayed(self) -> tuple[int, int]:
        """``(packets, payload octets)`` of this leg's media sent on to the other side."""
        octets = self._prior_octets + self.stats.octets_received - self._unsent_octets
        return self.accepted - self.unsent, max(0, octets)

    def _out_timestamp(self, now: float, rate: int) -> int:
        """The RTP timestamp that corresponds to ``now`` in the stream this leg's media
        makes on the other side: its newest packet's, plus the time since (RFC 3550 §6.4.1)."""
        elapsed = round((now - self._last_at) * rate)
        return (self._last_ts + self._ts_off + elapsed) & _U32

    @property
    def codec(self) -> str | None:
        """The audio encoding the peer negotiated (``"PCMU"`` …), None before any."""
        for name in self.media.payload_types.values():
            key = _encoding_key(name)
            if not key.startswith(_EVENT_PREFIX):
                return key.split("/", 1)[0]
        return None

    def rtcp_destination(self) -> Address | None:
        """Where our RTCP goes: where the peer's comes from (symmetric RTCP, RFC 4961), else
        its RTP address + 1 (RFC 3550 §11); None while the peer's address is unknown."""
        if self.rtcp_dest is not None:
            return self.rtcp_dest
        rtp = self.latch.destination
        if rtp is None or not 0 < rtp[1] < 65535:
            return None
        return (rtp[0], rtp[1] + 1)

    def build_rtcp(self, now: float, wallclock: float, *, bye: bool = False) -> bytes | None:
        """The compound packet to send the peer now: SR (we sent it media since one of the
        last two reports, RFC 3550 §6.4) or RR, with a report block about its stream once it
        sent some, SDES CNAME, and BYE when ``bye``. ``now`` is on the hot path's monotonic
        clock, ``wallclock`` Unix time for the NTP timestamp. Starts a new loss interval;
        None for a leg not in a session."""
        source = self.peer  # its hot path makes the stream this leg's peer receives
        if source is None:
            return None
        stats = self.stats
        blocks: tuple[ReportBlock, ...] = ()
        if stats.ssrc is not None:
            blocks = (ReportBlock.from_stats(stats, now),)
            self._jitter_max = max(self._jitter_max, stats.jitter_ms)
        sent, octets = source._relayed()
        ssrc = source.out_ssrc
        report: SenderReport | ReceiverReport
        if sent > self._reported_sent[1] and source._in_ssrc is not None:
            report = SenderReport(
                ssrc=ssrc,
                ntp_timestamp=ntp_from_unix(wallclock),
                rtp_timestamp=source._out_timestamp(now, stats.clock_rate),
                packet_count=sent & _U32,
                octet_count=octets & _U32,
                reports=blocks,
            )
        else:
            report = ReceiverReport(ssrc=ssrc, reports=blocks)
        self._reported_sent = (sent, self._reported_sent[0])
        if not self._sdes:
            self._sdes = bytes(SourceDescription.with_cname(ssrc, self.cname))
        # RFC 3550 §6.1: SR/RR first, then SDES with the CNAME (serialize_compound's order)
        data = bytes(report) + self._sdes
        return data + bytes(Bye(sources=(ssrc,))) if bye else data

    def _rtcp_datagram(self, data: bytes, addr: tuple[str | Any, int], now: float) -> None:
        self.rtcp_packets += 1
        self.on_rtcp(data, (addr[0], addr[1]), now, self._wallclock())

    def on_rtcp(self, data: bytes, src: Address, now: float, wallclock: float) -> bool:
        """An RTCP datagram from ``src`` on our RTCP port; True if taken. Only the peer's IP
        (the latched or signalled one) is heard: RTCP cannot steer media, but it goes into
        the call record. An SR of the peer's current SSRC is remembered for LSR/DLSR; a report
        block about our SSRC becomes :attr:`peer_report` (with the round trip)."""
        peer_rtp = self.latch.destination
        if peer_rtp is None or src[0] != peer_rtp[0]:
            return False
        try:
            packets = parse_compound(data)
        except RtcpError:
            return False
        self.rtcp_accepted += 1
        self._note_rtcp_size(len(data))
        if self.rtcp_dest is None and src[1] != peer_rtp[1]:
            self.rtcp_dest = src  # symmetric RTCP: answer where it comes from (NAT)
        for packet in packets:
            if isinstance(packet, SenderReport | ReceiverReport):
                self._on_report(packet, now, wallclock)
        return True

    def _on_report(
        self, packet: SenderReport | ReceiverReport, now: float, wallclock: float
    ) -> None:
        if isinstance(packet, SenderReport) and packet.ssrc == self.stats.ssrc:
            self.stats.note_sender_report(ntp_middle(packet.ntp_timestamp), now)
        source = self.peer
        if source is None:
            return
        for block in packet.reports:
            if block.ssrc != source.out_ssrc:
                continue  # about another stream (e.g. a player's own SSRC on this socket)
            rtt = block.round_trip_time(ntp_from_unix(wallclock))
            previous = self.peer_report
            self.peer_report = PeerReport(
                fraction_lost=block.fraction_lost / 256.0,
                cumulative_lost=block.cumulative_lost,
                highest_seq=block.highest_seq,
                jitter_ms=1000.0 * block.jitter / self.stats.clock_rate,
                rtt_ms=(
                    1000.0 * rtt
                    if rtt is not None
                    else (previous.rtt_ms if previous is not None else None)
                ),
                packets_sent=source._relayed()[0],
            )

    def _note_rtcp_size(self, octets: int) -> None:
        """RFC 3550 A.7: avg_rtcp_size, over packets sent and received, with UDP/IP headers."""
        local = self.local_address
        overhead = _UDP_IP6_OVERHEAD if local is not None and ":" in local[0] else _UDP_IP_OVERHEAD
        self._avg_rtcp_size += (octets + overhead - self._avg_rtcp_size) / 16.0

    def quality(self) -> dict[str, Any]:
        """This leg's media quality for the call record (CDR-1 ``call_legs.quality``); JSON
        types only. ``rx_*`` is what the peer sent us (RFC 3550 A.3 loss, A.8 jitter),
        ``tx_*`` what we sent it, ``peer_*`` what its RTCP said about that (None without a
        report), ``rtt_ms`` the last round trip. See docs/media-relay.md for the fields."""
        got = self.direction_stats()
        source = self.peer
        sent, octets = source._relayed() if source is not None else (0, 0)
        peer = self.peer_report
        return {
            "codec": self.codec,
            "rx_packets": got.packets_accepted,
            "rx_expected": got.expected,
            "rx_lost": got.lost,
            "rx_loss_pct": round(100.0 * got.loss_ratio, 3),
            "rx_jitter_ms": round(got.jitter_ms, 2),
            "rx_jitter_max_ms": round(max(self._jitter_max, got.jitter_ms), 2),
            "tx_packets": sent,
            "tx_octets": octets,
            "peer_lost": peer.cumulative_lost if peer is not None else None,
            "peer_loss_pct": round(100.0 * peer.loss_ratio, 3) if peer is not None else None,
            "peer_jitter_ms": round(peer.jitter_ms, 2) if peer is not None else None,
            "rtt_ms": round(peer.rtt_ms, 1)
            if peer is not None and peer.rtt_ms is not None
            else None,
            "rtcp_rx": self.rtcp_accepted,
            "rtcp_tx": self.rtcp_sent,
            "latched": list(got.latched) if got.latched is not None else None,
        }

    def close(self) -> None:
        self._rtcp_due = None  # its scheduler entry goes stale
        for transport in (self.transport, self.rtcp_transport):
            if transport is not None:
                transport.close()
        self._sendto = None
        self._tap = None


def _build_map(
    src: Mapping[int, str], dst: Mapping[int, str]
) -> tuple[list[int], list[Converter | None], list[int], list[bool]]:
    """Per incoming PT of ``src``: the outgoing PT of ``dst`` (or -1), the payload
    converter (None = as is), the clock rate and whether it is an RFC 4733 event."""
    by_key: dict[str, int] = {}
    for pt in sorted(dst):
        by_key.setdefault(_encoding_key(dst[pt]), pt)
    dst_g711 = [key for key in by_key if key in _G711]
    pt_out = [_NO_PT] * 128
    conv: list[Converter | None] = [None] * 128
    rate = [8000] * 128
    is_event = [False] * 128
    for pt, name in src.items():
        key = _encoding_key(name)
        rate[pt] = _clock_rate(key)
        is_event[pt] = key.startswith(_EVENT_PREFIX)
        if key in by_key:
            pt_out[pt] = by_key[key]
        elif key in _G711 and dst_g711:
            target = dst_g711[0]
            pt_out[pt] = by_key[target]
            conv[pt] = transcoder(key.split("/")[0], target.split("/")[0])
    return pt_out, conv, rate, is_event


class RtcpScheduler:
    """One loop timer for the RTCP reports of many legs (a manager's): a heap of due times.

    A timer per leg costs a loop timer's creation and wake-up per report (~9 µs on uvloop,
    a third of a report's cost); with a thousand legs one timer batches them. Reports due
    within ``slack`` seconds of a wake-up are sent with it (they are randomised over
    0.5-1.5x the interval anyway, RFC 3550 §6.3.1). A leg that closes or is rescheduled
    leaves a stale entry behind, skipped when it comes up.
    """

    def __init__(self, slack: float = 0.05) -> None:
        self.slack = slack
        self._heap: list[tuple[float, int, RelayLeg]] = []
        self._order = 0  # tie-breaker: legs are not comparable
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0

    def schedule(self, leg: RelayLeg, at: float) -> None:
        """Call ``leg``'s session's ``_rtcp_due(leg, now)`` at ``at`` (monotonic)."""
        leg._rtcp_due = at
        self._order += 1
        heapq.heappush(self._heap, (at, self._order, leg))
        if self._handle is None or at < self._armed_at:
            self._arm(at)

    def _arm(self, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = at
        self._handle = asyncio.get_running_loop().call_later(
            max(0.0, at - _monotonic()), self._tick
        )

    def _tick(self) -> None:
        self._handle = None
        now = _monotonic()
        heap = self._heap
        while heap and heap[0][0] <= now + self.slack:
            at, _, leg = heapq.heappop(heap)
            session = leg._session
            if leg._rtcp_due != at or session is None:
                continue  # stale: closed, or scheduled again since
            leg._rtcp_due = None
            session._rtcp_due(leg, now)
        if heap:
            self._arm(heap[0][0])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._heap.clear()


class RelaySession:
    """Two legs relayed to each other. Made by :meth:`RelayManager.open_session`."""

    def __init__(
        self,
        manager: RelayManager | None,
        a: RelayLeg,
        b: RelayLeg,
        *,
        on_dead: DeadCallback | None = None,
        rtcp_interval: float | None = RTCP_MIN_INTERVAL,
        rng: random.Random | None = None,
        wallclock: Callable[[], float] = time.time,
        scheduler: RtcpScheduler | None = None,
    ) -> None:
        self.manager = manager
        self.a = a
        self.b = b
        a.peer, b.peer = b, a
        a._session = b._session = self
        a._wallclock = b._wallclock = wallclock
        self.on_dead = on_dead
        self.closed = False
        self.dead = False
        self._check: asyncio.TimerHandle | None = None
        self._timing = False  # inactivity timers run once both legs have their media
        self.rtcp_interval = rtcp_interval  # the RFC 3550 §6.2 minimum; None: no RTCP sent
        self._rng = rng or random.Random()  # report timing, not security
        self._wallclock = wallclock
        self._scheduler = scheduler or RtcpScheduler()
        self._refresh()

    def leg(self, name: str) -> RelayLeg:
        if name == "a":
            return self.a
        if name == "b":
            return self.b
        raise ValueError(f"no leg {name!r}")

    @property
    def legs(self) -> tuple[RelayLeg, RelayLeg]:
        return self.a, self.b

    # --- signalling-driven changes --------------------------------------------------------

    def set_media(self, leg: str | RelayLeg, media: LegMedia) -> None:
        """Apply (re-)negotiated media of one leg: address, PTs, direction.

        A changed remote address reopens that leg's latch (a re-INVITE moved the peer).
        """
        if self.closed:
            raise RelayError("session closed")
        target = self.leg(leg) if isinstance(leg, str) else leg
        if media.remote is not None:
            local = target.local_address
            remote = canonical_address(
                media.remote, ipv6_socket=local is not None and ":" in local[0]
            )
            media = dataclasses.replace(media, remote=remote)
        latch = target.latch
        latch.strict = media.strict
        if media.remote != latch.signalled:
            target.rtcp_dest = None  # the peer moved: learn its RTCP source afresh
        latch.on_signalled(media.remote)
        target._source = None
        target.media = media
        target.stats.clock_rate = next(
            (
                _clock_rate(k)
                for k in map(_encoding_key, media.payload_types.values())
                if not k.startswith(_EVENT_PREFIX)
            ),
            8000,
        )
        self._apply_direction(target, media.direction)
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            src._pt_out, src._conv, src._rate, src._is_event = _build_map(
                src.media.payload_types, dst.media.payload_types
            )
        self._refresh()
        if not self._timing and self.a.media.remote and self.b.media.remote:
            # Both sides answered: from now on a silent peer is a dead call (not while
            # ringing, when the callee's side has no media yet).
            self._timing = True
            now = _monotonic()
            for leg in (self.a, self.b):
                leg.timer.start(now)
        self._schedule_check()

    def set_direction(self, leg: str | RelayLeg, direction: Direction) -> None:
        """Hold / resume as signalled by one peer: ``sendonly``/``inactive`` = on hold."""
        target = self.leg(leg) if isinstance(leg, str) else leg
        self.set_media(
            target,
            LegMedia(
                remote=target.media.remote,
                payload_types=target.media.payload_types,
                direction=direction,
                strict=target.media.strict,
            ),
        )

    def _apply_direction(self, leg: RelayLeg, direction: Direction) -> None:
        leg.receives = direction in ("sendrecv", "recvonly")
        timer = leg.timer
        if direction == "sendrecv":
            if timer.suspended:
                timer.resume(_monotonic())
        else:
            timer.suspend()  # a held peer may well stay silent

    def set_tap(self, source: str | RelayLeg, tap: RtpTap | None) -> None:
        """Receive every packet accepted on ``source`` as it is sent on (None removes it)."""
        (self.leg(source) if isinstance(source, str) else source)._tap = tap

    def _refresh(self) -> None:
        """Recompute where each leg's incoming media goes (after latch or media changes)."""
        for leg in (self.a, self.b):
            leg.dest = leg.latch.destination
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            transport = dst.transport
            if self.closed or transport is None or not dst.receives or dst.dest is None:
                src._sendto = None
                src._out_dest = _NOWHERE
            else:
                src._sendto = transport.sendto
                src._out_dest = dst.dest

    # --- inactivity -----------------------------------------------------------------------

    def _schedule_check(self) -> None:
        if self._check is not None:
            self._check.cancel()
            self._check = None
        if self.closed or self.dead or not self._timing:
            return
        deadlines = [d for d in (self.a.timer.deadline(), self.b.timer.deadline()) if d is not None]
        if not deadlines:
            return
        delay = max(0.0, min(deadlines) - _monotonic()) + 0.001
        self._check = asyncio.get_running_loop().call_later(delay, self._on_check)

    def _on_check(self) -> None:
        self._check = None
        now = _monotonic()
        for leg in (self.a, self.b):
            if leg.timer.expired(now):
                self.dead = True
                if self.on_dead is not None:
                    try:
                        self.on_dead(self, leg)
                    except Exception:
                        log.exception("on_dead callback failed")
                return
        self._schedule_check()

    # --- RTCP -----------------------------------------------------------------------------

    def start_rtcp(self) -> None:
        """Start each leg's reports (:meth:`RelayManager.open_session` does; needs the
        running loop). A leg reports once its peer's address is known."""
        if self.rtcp_interval is None or self.closed:
            return
        for leg in (self.a, self.b):
            if leg._rtcp_due is None:
                self._arm_rtcp(leg, _monotonic(), initial=True)

    def _arm_rtcp(self, leg: RelayLeg, now: float, *, initial: bool = False) -> None:
        assert self.rtcp_interval is not None
        delay = rtcp_interval(
            self._rng.random(),
            avg_rtcp_size=leg._avg_rtcp_size,
            minimum=self.rtcp_interval,
            initial=initial,
        )
        self._scheduler.schedule(leg, now + delay)

    def _rtcp_due(self, leg: RelayLeg, now: float) -> None:
        """The scheduler's call: ``leg``'s report is due."""
        if self.closed:
            return
        try:
            self.send_rtcp(leg)
        except Exception:
            log.exception("RTCP report on leg %s failed", leg.name)
        self._arm_rtcp(leg, now)

    def send_rtcp(self, leg: str | RelayLeg, *, bye: bool = False) -> bool:
        """Send ``leg``'s peer a report now (the timers do this); False when its address is
        not known yet or the socket is closed."""
        target = self.leg(leg) if isinstance(leg, str) else leg
        dest = target.rtcp_destination()
        transport = target.rtcp_transport
        if dest is None or transport is None or transport.is_closing():
            return False
        data = target.build_rtcp(_monotonic(), self._wallclock(), bye=bye)
        if data is None:
            return False
        transport.sendto(data, dest)
        target.rtcp_sent += 1
        target._note_rtcp_size(len(data))
        return True

    # --- results and teardown -------------------------------------------------------------

    def stats(self) -> tuple[DirectionStats, DirectionStats]:
        """``(a → b, b → a)``: media received on ``a`` and on ``b``."""
        return self.a.direction_stats(), self.b.direction_stats()

    def quality(self) -> dict[str, dict[str, Any]]:
        """``{"a": {...}, "b": {...}}``: each leg's :meth:`RelayLeg.quality` (the party on
        that leg: what it sent us, what we sent it, what its RTCP said). For the CDR's
        ``call_legs.quality``; valid after :meth:`close` too."""
        return {"a": self.a.quality(), "b": self.b.quality()}

    def close(self) -> None:
        """Send each peer a last report with BYE (RFC 3550 §6.6), close both legs' sockets
        and give the ports back (idempotent)."""
        if self.closed:
            return
        if self.rtcp_interval is not None:
            for leg in (self.a, self.b):
                try:
                    self.send_rtcp(leg, bye=True)
                except (OSError, ValueError):
                    log.debug("RTCP BYE on leg %s not sent", leg.name, exc_info=True)
        self.closed = True
        if self._check is not None:
            self._check.cancel()
            self._check = None
        self.a.close()
        self.b.close()
        self._refresh()
        if self.manager is not None:
            self.manager._closed(self)


def _factory(
    protocol: asyncio.DatagramProtocol,
) -> Callable[[], asyncio.DatagramProtocol]:
    return lambda: protocol


class RelayManager:
    """Opens and closes relay sessions on ports from an :class:`RtpPortAllocator`.

    ``max_sessions`` bounds concurrent sessions (each takes two port pairs).
    ``rtcp_interval`` is the RFC 3550 §6.2 minimum between a leg's reports (None: the relay
    sends no RTCP); ``rng`` draws their randomisation, ``wallclock`` (Unix seconds) stamps
    SRs — both injectable for tests.
    """

    def __init__(
        self,
        ports: RtpPortAllocator,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - phones reach the media ports from anywhere
        max_sessions: int = 1000,
        inactivity_timeout: float = 30.0,
        latch_window: float = 2.0,
        latch_packets: int = 10,
        bind_attempts: int = 16,
        rtcp_interval: float | None = RTCP_MIN_INTERVAL,
        rng: random.Random | None = None,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if rtcp_interval is not None and rtcp_interval <= 0:
            raise ValueError("rtcp_interval must be positive (None: no RTCP)")
        self.rtcp_interval = rtcp_interval
        self.rng = rng or random.Random()  # report timing, not security
        self.wallclock = wallclock
        self.rtcp_scheduler = RtcpScheduler()
        self.ports = ports
        self.host = host
        self.max_sessions = max_sessions
        self.inactivity_timeout = inactivity_timeout
        self.latch_window = latch_window
        self.latch_packets = latch_packets
        self.bind_attempts = bind_attempts
        self.sessions: set[RelaySession] = set()
        self._pending = 0

    def __len__(self) -> int:
        return len(self.sessions)

    async def _open_leg(self, name: str, inactivity_timeout: float) -> RelayLeg:
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for _ in range(self.bind_attempts):
            port = self.ports.allocate()  # PortsExhaustedError propagates
            try:
                rtp_sock, rtcp_sock = bind_rtp_pair(self.host, port)
            except OSError as exc:
                self.ports.release(port)  # to the back of the queue: try the next one
                if exc.errno != errno.EADDRINUSE:
                    raise
                last = exc
                continue
            leg = RelayLeg(
                name,
                port,
                inactivity_timeout=inactivity_timeout,
                latch_window=self.latch_window,
                latch_packets=self.latch_packets,
            )
            try:
                await loop.create_datagram_endpoint(_factory(leg), sock=rtp_sock)
                rtcp_transport, _ = await loop.create_datagram_endpoint(
                    _factory(_RtcpPort(leg)), sock=rtcp_sock
                )
            except BaseException:
                leg.close()
                rtp_sock.close()
                rtcp_sock.close()
                self.ports.release(port)
                raise
            leg.rtcp_transport = rtcp_transport
            return leg
        raise RelayError(f"no bindable RTP port after {self.bind_attempts} tries") from last

    async def open_session(
        self,
        *,
        a: LegMedia | None = None,
        b: LegMedia | None = None,
        on_dead: DeadCallback | None = None,
        inactivity_timeout: float | None = None,
    ) -> RelaySession:
        """Bind two legs and join them; media can be given now or later (:meth:`set_media`).

        Raises :class:`RelayError` when ``max_sessions`` are open, and
        :class:`~.ports.PortsExhaustedError` when the port range is used up.
        """
        if len(self.sessions) + self._pending >= self.max_sessions:
            raise RelayError(f"relay full: {self.max_sessions} sessions")
        timeout = self.inactivity_timeout if inactivity_timeout is None else inactivity_timeout
        self._pending += 1
        try:
            leg_a = await self._open_leg("a", timeout)
            try:
                leg_b = await self._open_leg("b", timeout)
            except BaseException:
                leg_a.close()
                self.ports.release(leg_a.port)
                raise
        finally:
            self._pending -= 1
        session = RelaySession(
            self,
            leg_a,
            leg_b,
            on_dead=on_dead,
            rtcp_interval=self.rtcp_interval,
            rng=self.rng,
            wallclock=self.wallclock,
            scheduler=self.rtcp_scheduler,
        )
        self.sessions.add(session)
        session.start_rtcp()
        if a is not None:
            session.set_media("a", a)
        if b is not None:
            session.set_media("b", b)
        return session

    def _closed(self, session: RelaySession) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            for leg in session.legs:
                self.ports.release(leg.port)

    def close(self) -> None:
        """Close every session."""
        for session in list(self.sessions):
            session.close()
        self.rtcp_scheduler.close()


# --- event-loop lag ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LagSnapshot:
    """How late the loop ran a periodic callback (ms), since the last reset."""

    samples: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float


class LoopLagMonitor:
    """Measures the event loop's lag: a callback due every ``interval`` seconds records how
    late it runs. Stalls show up here first (a 20 ms stall is 20 ms of media jitter).

    The lag includes the loop's timer granularity (libuv, hence uvloop, rounds timers to
    1 ms). Percentiles come from a histogram of 50 µs bins up to 1 s.
    """

    _BIN: Final = 50e-6
    _BINS: Final = 20_000

    def __init__(self, interval: float = 0.01) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self.reset()

    def reset(self) -> None:
        self._hist = [0] * (self._BINS + 1)
        self._count = 0
        self._sum = 0.0
        self._max = 0.0

    def start(self) -> None:
        if self._handle is None:
            self._due = _monotonic() + self.interval
            self._handle = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        now = _monotonic()
        lag = max(0.0, now - self._due)
        self._count += 1
        self._sum += lag
        self._max = max(self._max, lag)
        self._hist[min(int(lag / self._BIN), self._BINS)] += 1
        self._due = now + self.interval
        self._handle = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _percentile(self, q: float) -> float:
        if not self._count:
            return 0.0
        rank = q * self._count
        seen = 0
        for i, n in enumerate(self._hist):
            seen += n
            if seen >= rank:
                return (i + 1) * self._BIN
        return self._max  # pragma: no cover

    def snapshot(self) -> LagSnapshot:
        n = self._count
        return LagSnapshot(
            samples=n,
            mean_ms=1000.0 * self._sum / n if n else 0.0,
            p50_ms=1000.0 * self._percentile(0.50),
            p99_ms=1000.0 * self._percentile(0.99),
            max_ms=1000.0 * self._max,
        )
