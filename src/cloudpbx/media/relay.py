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

RTCP: the odd port of each pair is bound and incoming RTCP is counted and discarded (the
relay rewrites SSRCs, so the peers' reports could not be passed on unchanged); RTCP
multiplexed on the RTP port (RFC 5761) is dropped as an unmapped payload type. Sending our
own SR/RR per leg (``rtcp.py``) is left to a later change.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from cloudpbx.media.codecs import transcoder
from cloudpbx.media.ports import RtpPortAllocator
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
    "RelayError",
    "RelayLeg",
    "RelayManager",
    "RelaySession",
    "RtpTap",
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


class RelayError(Exception):
    """The relay cannot do what was asked (no session slot, no port, leg closed)."""


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


class _RtcpSink(asyncio.DatagramProtocol):
    """The odd port of a pair: counts what arrives."""

    __slots__ = ("packets",)

    def __init__(self) -> None:
        self.packets = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.packets += 1


class RelayLeg(asyncio.DatagramProtocol):
    """One side of a :class:`RelaySession`: our socket facing one peer.

    The per-direction state of the media that *arrives* here (and leaves through the other
    leg) lives here too, so the hot path touches one object.
    """

    __slots__ = (
        "_conv",
        "_in_ssrc",
        "_is_event",
        "_last_at",
        "_last_seq",
        "_last_ts",
        "_out_dest",
        "_prior_expected",
        "_prior_lost",
        "_pt_out",
        "_rate",
        "_sendto",
        "_seq_off",
        "_session",
        "_source",
        "_stats_update",
        "_tap",
        "_timer_on_packet",
        "_ts_off",
        "accepted",
        "dest",
        "latch",
        "local_address",
        "malformed",
        "media",
        "name",
        "out_ssrc",
        "peer",
        "port",
        "receives",
        "refused_pt",
        "rtcp",
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
        self.rtcp = _RtcpSink()
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
                    return
                buf[start:end] = conv(data[start:end])
        if self._tap is not None:
            self._tap_packet(buf, out_pt, out_seq, out_ts)
        sendto = self._sendto
        if sendto is not None:
            sendto(buf, self._out_dest)
        else:
            self.unsent += 1

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
            rtcp_packets=self.rtcp.packets,
            latched=self.latch.latched,
        )

    def close(self) -> None:
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


class RelaySession:
    """Two legs relayed to each other. Made by :meth:`RelayManager.open_session`."""

    def __init__(
        self,
        manager: RelayManager | None,
        a: RelayLeg,
        b: RelayLeg,
        *,
        on_dead: DeadCallback | None = None,
    ) -> None:
        self.manager = manager
        self.a = a
        self.b = b
        a.peer, b.peer = b, a
        a._session = b._session = self
        self.on_dead = on_dead
        self.closed = False
        self.dead = False
        self._check: asyncio.TimerHandle | None = None
        self._timing = False  # inactivity timers run once both legs have their media
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
        latch = target.latch
        latch.strict = media.strict
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

    # --- results and teardown -------------------------------------------------------------

    def stats(self) -> tuple[DirectionStats, DirectionStats]:
        """``(a → b, b → a)``: media received on ``a`` and on ``b``."""
        return self.a.direction_stats(), self.b.direction_stats()

    def close(self) -> None:
        """Close both legs' sockets and give the ports back (idempotent)."""
        if self.closed:
            return
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


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for p in (port, port + 1):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.setblocking(False)
            sock.bind((host, p))
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks[0], socks[1]


class RelayManager:
    """Opens and closes relay sessions on ports from an :class:`RtpPortAllocator`.

    ``max_sessions`` bounds concurrent sessions (each takes two port pairs).
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
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
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
                rtp_sock, rtcp_sock = _bind_pair(self.host, port)
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
                    _factory(leg.rtcp), sock=rtcp_sock
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
        session = RelaySession(self, leg_a, leg_b, on_dead=on_dead)
        self.sessions.add(session)
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
