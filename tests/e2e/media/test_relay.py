"""The RTP relay over loopback: two fake phones (plain UDP sockets) talk through a
:class:`RelaySession`; checks are at the signal level (a 1 kHz tone is found at 1 kHz by a
DFT at the far end) and on the RTP headers the far end sees."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cloudpbx.media.codecs import alaw_decode, ulaw_decode, ulaw_encode
from cloudpbx.media.dtmf import DtmfReceiver, DtmfSender
from cloudpbx.media.player import ToneSource
from cloudpbx.media.ports import RtpPortAllocator, bind_rtp_pair
from cloudpbx.media.relay import (
    LegMedia,
    RelayError,
    RelayLeg,
    RelayManager,
    RelaySession,
    canonical_address,
    rtcp_interval,
)
from cloudpbx.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SenderReport,
    SourceDescription,
    looks_like_rtcp,
    ntp_from_unix,
    parse_compound,
    serialize_compound,
    unix_from_ntp,
)
from cloudpbx.media.rtp import RtpPacket
from cloudpbx.media.stream import MediaStream
from cloudpbx.media.tones import Tone, synthesize
from cloudpbx.transport.endpoint import event_loop_factory

from .signal import assert_tone_at

HOST = "127.0.0.1"
FRAME = 160  # samples in 20 ms at 8 kHz
PCMU_ONLY = {0: "PCMU"}
PCMA_ONLY = {8: "PCMA"}


def run(coro_fn: Callable[[], Awaitable[None]], loop_kind: str = "asyncio") -> None:
    factory = event_loop_factory(prefer_uvloop=True) if loop_kind == "uvloop" else None
    assert loop_kind == "asyncio" or factory is not None, "uvloop is a dependency"
    loop = factory() if factory is not None else asyncio.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(coro_fn(), 10))
    finally:
        loop.close()


def port_range() -> RtpPortAllocator:
    base = 30000 + (os.getpid() % 300) * 100  # apart per xdist worker; bind retries cover clashes
    return RtpPortAllocator(base, base + 99)


class Phone(asyncio.DatagramProtocol):
    """A fake endpoint: a plain UDP socket; keeps what arrives."""

    def __init__(self) -> None:
        self.received: list[RtpPacket] = []
        self.arrived = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None
        self.address: tuple[str, int] = (HOST, 0)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if looks_like_rtcp(data):
            return  # a relay leg's RTCP for a phone whose RTP port is ours - 1: not media
        self.received.append(RtpPacket.parse(data))
        self.arrived.set()

    def send(self, packet: RtpPacket, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(bytes(packet), to)

    async def wait_for(self, count: int, timeout: float = 2.0) -> list[RtpPacket]:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def phone() -> Phone:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    p = Phone()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: p, sock=sock)
    p.transport = transport
    p.address = sock.getsockname()
    return p


def leg_addr(leg: RelayLeg) -> tuple[str, int]:
    return (HOST, leg.port)


def tone_frames(count: int, freq: float = 1000.0, level: float = -10.0) -> list[bytes]:
    """``count`` 20 ms frames of linear PCM, continuous in phase."""
    return [synthesize([(freq, level)], FRAME, start=i * FRAME) for i in range(count)]


def packets(payloads: list[bytes], *, ssrc: int, seq: int, ts: int, pt: int = 0) -> list[RtpPacket]:
    return [
        RtpPacket(
            payload_type=pt,
            sequence=(seq + i) & 0xFFFF,
            timestamp=(ts + i * FRAME) & 0xFFFF_FFFF,
            ssrc=ssrc,
            payload=p,
        )
        for i, p in enumerate(payloads)
    ]


async def send_paced(src: Phone, pkts: list[RtpPacket], to: tuple[str, int]) -> None:
    for p in pkts:
        src.send(p, to)
        await asyncio.sleep(0.001)


async def open_call(
    manager: RelayManager, a: Phone, b: Phone, pts_a: dict[int, str], pts_b: dict[int, str]
) -> RelaySession:
    return await manager.open_session(
        a=LegMedia(remote=a.address, payload_types=pts_a),
        b=LegMedia(remote=b.address, payload_types=pts_b),
    )


# --- the tone goes through -----------------------------------------------------------------


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_1khz_tone_arrives_at_1khz_both_ways(loop_kind: str) -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST)
        a, b = await phone(), await phone()
        session = await open_call(manager, a, b, PCMU_ONLY, PCMU_ONLY)
        frames = [ulaw_encode(f) for f in tone_frames(25)]
        await send_paced(a, packets(frames, ssrc=0x1111, seq=100, ts=5000), leg_addr(session.a))
        await send_paced(b, packets(frames, ssrc=0x2222, seq=7, ts=99), leg_addr(session.b))
        got_b = await b.wait_for(25)
        got_a = await a.wait_for(25)
        for got, leg in ((got_b, session.a), (got_a, session.b)):
            assert {p.ssrc for p in got} == {leg.out_ssrc}
            assert all(p.payload_type == 0 for p in got)
            assert_tone_at(ulaw_decode(b"".join(p.payload for p in got)), 1000)
        ab, ba = session.stats()
        assert (ab.packets_forwarded, ab.lost, ba.packets_forwarded, ba.lost) == (25, 0, 25, 0)
        assert ab.latched == a.address
        assert ba.latched == b.address
        session.close()
        manager.close()
        a.close()
        b.close()

    run(scenario, loop_kind)


def test_pcmu_leg_to_pcma_leg_is_transcoded_and_stays_1khz() -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST)
        a, b = await phone(), await phone()
        session = await open_call(
            manager, a, b, {0: "PCMU", 101: "telephone-event"}, {8: "PCMA", 101: "telephone-event"}
        )
        pcm = tone_frames(25)
        await send_paced(
            a, packets([ulaw_encode(f) for f in pcm], ssrc=1, seq=0, ts=0), leg_addr(session.a)
        )
        got_b = await b.wait_for(25)
        assert all(p.payload_type == 8 for p in got_b)
        assert_tone_at(alaw_decode(b"".join(p.payload for p in got_b)), 1000)
        # and back: the PCMA phone's tone reaches the PCMU phone as μ-law
        alaw_frames = [p.payload for p in got_b]
        await send_paced(b, packets(alaw_frames, ssrc=2, seq=0, ts=0, pt=8), leg_addr(session.b))
        got_a = await a.wait_for(25)
        assert all(p.payload_type == 0 for p in got_a)
        assert_tone_at(ulaw_decode(b"".join(p.payload for p in got_a)), 1000)
        manager.close()
        a.close()
        b.close()

    run(scenario)


# --- SSRC, sequence and timestamp continuity -----------------------------------------------


def test_sender_ssrc_change_keeps_one_continuous_stream() -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST)
        a, b = await phone(), await phone()
        session = await open_call(manager, a, b, PCMU_ONLY, PCMU_ONLY)
        silence = [b"\xff" * FRAME] * 10
        first = packets(silence, ssrc=0xAAAA, seq=65530, ts=0xFFFF_FF00)  # both wrap
        await send_paced(a, first, leg_addr(session.a))
        await b.wait_for(10)
        await asyncio.sleep(0.02)
        # a transfer: a new source with its own random numbering
        second = packets(silence, ssrc=0xBBBB, seq=1234, ts=777_777)
        await send_paced(a, second, leg_addr(session.a))
        got = await b.wait_for(20)
        assert {p.ssrc for p in got} == {session.a.out_ssrc}
        seqs = [p.sequence for p in got]
        assert all((s2 - s1) & 0xFFFF == 1 for s1, s2 in itertools.pairwise(seqs))
        steps = [(p2.timestamp - p1.timestamp) & 0xFFFF_FFFF for p1, p2 in itertools.pairwise(got)]
        assert steps[:9] == [FRAME] * 9
        assert steps[10:] == [FRAME] * 9
        assert FRAME <= steps[9] < 8000  # the real time elapsed, in samples: forward, not wild
        assert got[10].marker
        assert not any(p.marker for p in got[11:])
        ab, _ = session.stats()
        assert (ab.ssrc_changes, ab.expected, ab.lost) == (2, 20, 0)
        manager.close()
        a.close()
        b.close()

    run(scenario)


# --- latching -------------------------------------------------------------------------------


def test_latch_ignores_another_source_after_latching() -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST)
        a, b, attacker = await phone(), await phone(), await phone()
        session = await open_call(manager, a, b, PCMU_ONLY, PCMU_ONLY)
        real = packets([b"\x01" * FRAME] * 3, ssrc=1, seq=0, ts=0)
        await send_paced(a, real, leg_addr(session.a))
        await b.wait_for(3)
        # RTP bleed: someone else sprays the port from another address
        fake = packets([b"\x02" * FRAME] * 5, ssrc=9, seq=50, ts=50)
        await send_paced(attacker, fake, leg_addr(session.a))
        await send_paced(
            b, packets([b"\x03" * FRAME] * 3, ssrc=2, seq=0, ts=0), leg_addr(session.b)
        )
        await a.wait_for(3)
        await asyncio.sleep(0.05)
        assert {p.payload[:1] for p in b.received} == {b"\x01"}
        assert attacker.received == []  # b's media still goes to the real phone only
        ab, _ = session.stats()
        assert ab.refused_source == 5
        assert ab.latched == a.address
        manager.close()
        for p in (a, b, attacker):
            p.close()

    run(scenario)


def test_latch_behind_nat_prefers_the_signalled_address_then_closes() -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST, latch_packets=3)
        a, b, other, natted = await phone(), await phone(), await phone(), await phone()
        # a's SDP names an address; something else sends first (in the learning window)
        session = await open_call(manager, a, b, PCMU_ONLY, PCMU_ONLY)
        await send_paced(
            other, packets([b"\x02" * FRAME], ssrc=9, seq=0, ts=0), leg_addr(session.a)
        )
        await send_paced(
            a, packets([b"\x01" * FRAME] * 2, ssrc=1, seq=0, ts=0), leg_addr(session.a)
        )
        await b.wait_for(3)
        assert session.stats()[0].latched == a.address  # the signalled source wins
        await send_paced(
            other, packets([b"\x02" * FRAME], ssrc=9, seq=1, ts=0), leg_addr(session.a)
        )
        await asyncio.sleep(0.05)
        assert len(b.received) == 3

        # A phone behind NAT: its SDP address is unreachable/private, its media comes from
        # elsewhere; the first source is taken and, after latch_packets packets, kept.
        session.set_media("a", LegMedia(remote=("192.0.2.1", 4000), payload_types=PCMU_ONLY))
        await send_paced(
            natted, packets([b"\x04" * FRAME] * 3, ssrc=4, seq=0, ts=0), leg_addr(session.a)
        )
        await send_paced(
            other, packets([b"\x02" * FRAME], ssrc=9, seq=2, ts=0), leg_addr(session.a)
        )
        await send_paced(b, packets([b"\x03" * FRAME], ssrc=2, seq=0, ts=0), leg_addr(session.b))
        await natted.wait_for(1)  # symmetric RTP: b's media goes where a's comes from
        await asyncio.sleep(0.05)
        assert [p.payload[:1] for p in b.received[3:]] == [b"\x04"] * 3
        assert other.received == []
        assert a.received == []
        manager.close()
        for p in (a, b, other, natted):
            p.close()

    run(scenario)


# --- hold -----------------------------------------------------------------------------------


def test_hold_stops_forwarding_towards_the_held_leg() -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST)
        a, b = await phone(), await phone()
        session = await open_call(manager, a, b, PCMU_ONLY, PCMU_ONLY)
        session.set_direction("b", "sendonly")  # b put the call on hold
        await send_paced(
            a, packets([b"\xff" * FRAME] * 5, ssrc=1, seq=0, ts=0), leg_addr(session.a)
        )
        await send_paced(
            b, packets([b"\xff" * FRAME] * 5, ssrc=2, seq=0, ts=0), leg_addr(session.b)
        )
        await a.wait_for(5)  # b's music/voice still reaches a
        await asyncio.sleep(0.05)
        assert b.received == []
        assert session.b.timer.suspended
        session.set_direction("b", "sendrecv")  # resumed
        assert not session.b.timer.suspended
        await send_paced(
            a, packets([b"\xff" * FRAME] * 5, ssrc=1, seq=5, ts=800), leg_addr(session.a)
        )
        await b.wait_for(5)
        ab, _ = session.stats()
        assert (ab.packets_accepted, ab.packets_forwarded) == (10, 5)
        manager.close()
        a.close()
        b.close()

    run(scenario)


# --- inactivity -----------------------------------------------------------------------------


def test_inactivity_reports_the_silent_leg_and_not_a_held_one() -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST, inactivity_timeout=0.3)
        a, b = await phone(), await phone()
        dead: list[tuple[RelaySession, str, float]] = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        session = await manager.open_session(
            a=LegMedia(remote=a.address, payload_types=PCMU_ONLY),
            b=LegMedia(remote=b.address, payload_types=PCMU_ONLY, direction="inactive"),
            on_dead=lambda s, leg: dead.append((s, leg.name, loop.time() - start)),
        )
        # a keeps talking for 0.5 s, b is held (inactive): nobody is dead
        for i in range(25):
            a.send(
                RtpPacket(payload_type=0, sequence=i, timestamp=160 * i, ssrc=1),
                leg_addr(session.a),
            )
            await asyncio.sleep(0.02)
        assert dead == []
        # a falls silent: reported about 0.3 s after its last packet
        silent_since = loop.time() - start
        await asyncio.sleep(0.65)
        assert [(s, name) for s, name, _ in dead] == [(session, "a")]
        assert 0.25 <= dead[0][2] - silent_since <= 0.6  # slack for a busy test machine
        assert session.dead
        session.close()
        assert len(manager) == 0
        a.close()
        b.close()

    run(scenario)


def test_inactivity_counts_only_once_both_legs_have_media() -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST, inactivity_timeout=0.2)
        a, b = await phone(), await phone()
        dead: list[str] = []
        session = await manager.open_session(
            a=LegMedia(remote=a.address, payload_types=PCMU_ONLY),
            on_dead=lambda s, leg: dead.append(leg.name),
        )
        await asyncio.sleep(0.35)  # ringing: the callee's leg has no media yet
        assert dead == []
        session.set_media("b", LegMedia(remote=b.address, payload_types=PCMU_ONLY))
        await asyncio.sleep(0.5)
        assert len(dead) == 1  # reported once, for one of the silent legs
        manager.close()
        a.close()
        b.close()

    run(scenario)


# --- DTMF -----------------------------------------------------------------------------------


def test_rfc4733_events_pass_with_the_mapped_payload_type() -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST)
        a, b, c = await phone(), await phone(), await phone()
        session = await open_call(
            manager,
            a,
            b,
            {0: "PCMU", 101: "telephone-event"},
            {0: "PCMU", 96: "telephone-event/8000"},
        )
        sender = DtmfSender()
        events = [
            ev for ts, digit in ((8000, "5"), (16000, "#")) for ev in sender.packets(digit, ts, 800)
        ]
        pkts = [
            RtpPacket(
                payload_type=101,
                sequence=n,
                timestamp=ev.timestamp,
                ssrc=7,
                marker=ev.marker,
                payload=bytes(ev),
            )
            for n, ev in enumerate(events)
        ]
        await send_paced(a, pkts, leg_addr(session.a))
        got = await b.wait_for(len(pkts))
        assert all(p.payload_type == 96 for p in got)
        assert [p.payload for p in got] == [p.payload for p in pkts]
        assert [p.marker for p in got] == [p.marker for p in pkts]
        receiver = DtmfReceiver()
        digits = [
            d.digit for p in got for d in receiver.feed(p.timestamp, p.payload, marker=p.marker)
        ]
        assert digits == ["5", "#"]

        # a leg that did not negotiate telephone-event gets none (and they are counted)
        other = await open_call(manager, a, c, {0: "PCMU", 101: "telephone-event"}, PCMU_ONLY)
        await send_paced(a, pkts[:3], leg_addr(other.a))
        await asyncio.sleep(0.05)
        assert c.received == []
        assert other.stats()[0].refused_payload_type == 3
        manager.close()
        for p in (a, b, c):
            p.close()

    run(scenario)


def test_garbage_and_rtcp_are_not_relayed() -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST)
        a, b = await phone(), await phone()
        session = await open_call(manager, a, b, PCMU_ONLY, PCMA_ONLY)
        assert a.transport is not None
        rtcp_rr = bytes([0x81, 201, 0, 7]) + bytes(28)  # an RR with one block, RTCP-mux
        bad_csrc = bytes([0x8F, 0]) + bytes(10) + b"\xff" * 8  # 15 CSRCs announced, 2 present
        for junk in (b"hello", bytes(20), rtcp_rr, bad_csrc):
            a.transport.sendto(junk, leg_addr(session.a))
        a.transport.sendto(rtcp_rr, (HOST, session.a.port + 1))  # RTCP on its own port
        await send_paced(a, packets([b"\xff" * FRAME], ssrc=1, seq=0, ts=0), leg_addr(session.a))
        got = await b.wait_for(1)
        await asyncio.sleep(0.05)
        assert len(got) == 1
        assert got[0].payload == b"\xd5" * FRAME  # μ-law silence as A-law silence
        ab, _ = session.stats()
        assert (ab.malformed, ab.refused_payload_type, ab.rtcp_packets) == (3, 1, 1)
        assert ab.packets_forwarded == 1
        manager.close()
        a.close()
        b.close()

    run(scenario)


# --- taps and the manager -------------------------------------------------------------------


def test_taps_see_both_directions_as_sent() -> None:
    async def scenario() -> None:
        manager = RelayManager(port_range(), host=HOST)
        a, b = await phone(), await phone()
        session = await open_call(manager, a, b, PCMU_ONLY, PCMA_ONLY)
        tapped: dict[str, list[tuple[int, int, int, bytes]]] = {"a": [], "b": []}
        session.set_tap("a", lambda *pkt: tapped["a"].append(pkt))
        session.set_tap("b", lambda *pkt: tapped["b"].append(pkt))
        await send_paced(
            a, packets([b"\x11" * FRAME] * 4, ssrc=1, seq=10, ts=0), leg_addr(session.a)
        )
        await send_paced(
            b, packets([b"\x22" * FRAME] * 3, ssrc=2, seq=0, ts=0, pt=8), leg_addr(session.b)
        )
        got_b = await b.wait_for(4)
        await a.wait_for(3)
        assert [(t[0], t[1], t[2], t[3]) for t in tapped["a"]] == [
            (p.payload_type, p.sequence, p.timestamp, p.payload) for p in got_b
        ]
        assert len(tapped["b"]) == 3
        assert all(t[0] == 0 for t in tapped["b"])
        manager.close()
        a.close()
        b.close()

    run(scenario)


def test_manager_bounds_sessions_and_reuses_ports() -> None:
    async def scenario() -> None:
        ports = port_range()
        manager = RelayManager(ports, host=HOST, max_sessions=2)
        s1 = await manager.open_session()
        s2 = await manager.open_session()
        assert ports.in_use == 4
        assert len(manager) == 2
        assert all(leg.port % 2 == 0 for s in (s1, s2) for leg in s.legs)
        with pytest.raises(RelayError):
            await manager.open_session()
        s1.close()
        s1.close()  # idempotent
        assert ports.in_use == 2
        s3 = await manager.open_session()
        assert len(manager) == 2
        # the RTCP neighbour of each RTP port is ours too (RFC 3550 §11)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(OSError, match="in use"):
            probe.bind((HOST, s3.a.port + 1))
        probe.close()
        manager.close()
        assert ports.in_use == 0
        assert len(manager) == 0
        assert s2.closed
        assert s3.closed

    run(scenario)


# --- RTCP per leg (issue 4 item 1) ----------------------------------------------------------


class RtcpPhone(Phone):
    """A fake phone with an RTP/RTCP port pair (RFC 3550 §11); keeps the RTCP it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[list[RtcpPacket]] = []
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self.rtcp_arrived = asyncio.Event()

    def on_rtcp(self, data: bytes) -> None:
        self.reports.append(parse_compound(data))
        self.rtcp_arrived.set()

    def send_rtcp(self, packets: list[RtcpPacket], to: tuple[str, int]) -> None:
        assert self.rtcp_transport is not None
        self.rtcp_transport.sendto(serialize_compound(packets), to)

    async def report(
        self, pred: Callable[[list[RtcpPacket]], bool], timeout: float = 3.0
    ) -> list[RtcpPacket]:
        """The first compound packet (already here or still to come) that ``pred`` likes."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for compound in self.reports[seen:]:
                    if pred(compound):
                        return compound
                seen = len(self.reports)
                self.rtcp_arrived.clear()
                await self.rtcp_arrived.wait()

    def close(self) -> None:
        super().close()
        if self.rtcp_transport is not None:
            self.rtcp_transport.close()


class _RtcpIn(asyncio.DatagramProtocol):
    def __init__(self, phone: RtcpPhone) -> None:
        self.phone = phone

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.phone.on_rtcp(data)


async def rtcp_phone(ports: RtpPortAllocator, host: str = HOST) -> RtcpPhone:
    """A phone on an even port from ``ports`` (the relay's range, so no clash) and port + 1."""
    loop = asyncio.get_running_loop()
    for _ in range(16):
        port = ports.allocate()
        try:
            rtp, rtcp = bind_rtp_pair(host, port)
        except OSError:
            continue
        return await _attach(RtcpPhone(), loop, rtp, rtcp, (host, port))
    raise AssertionError("no free port pair for a phone")


async def _attach(
    p: RtcpPhone,
    loop: asyncio.AbstractEventLoop,
    rtp: socket.socket,
    rtcp: socket.socket,
    address: tuple[str, int],
) -> RtcpPhone:
    p.transport, _ = await loop.create_datagram_endpoint(lambda: p, sock=rtp)
    p.rtcp_transport, _ = await loop.create_datagram_endpoint(lambda: _RtcpIn(p), sock=rtcp)
    p.address = address
    return p


def sr_of(compound: list[RtcpPacket]) -> SenderReport | None:
    first = compound[0]
    return first if isinstance(first, SenderReport) else None


class Wallclock:
    """A Unix clock the test sets (SR NTP timestamps and RTT arithmetic)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rtcp_interval_follows_rfc3550_6_3_1() -> None:
    """Issue 4 item 1 (RFC 3550 §6.2/§6.3.1): 5 s minimum (2.5 s for the first report),
    randomised 0.5-1.5x, and never more often than 5 % of the session bandwidth allows."""
    assert rtcp_interval(0.5, avg_rtcp_size=100) == 5.0
    assert rtcp_interval(0.0, avg_rtcp_size=100) == 2.5
    assert rtcp_interval(1.0, avg_rtcp_size=100) == 7.5
    assert rtcp_interval(0.5, avg_rtcp_size=100, initial=True) == 2.5
    # a thin stream (8 kbit/s = 1000 octets/s): two 150-octet reports per 6 s at 5 %
    assert rtcp_interval(0.5, avg_rtcp_size=150, session_bandwidth=1000) == pytest.approx(6.0)
    # G.711 (10,000 octets/s): the bandwidth rule allows 0.4 s; the 5 s minimum decides
    assert rtcp_interval(0.5, avg_rtcp_size=100, minimum=0.1) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="rand"):
        rtcp_interval(1.5, avg_rtcp_size=100)


def test_canonical_address_matches_what_the_kernel_reports() -> None:
    """Issue 4 item 1 (latching, IPv6): SDP and socket addresses compare in one form."""
    assert canonical_address(("::1", 4000, 0, 0)) == ("::1", 4000)
    assert canonical_address(("2001:DB8:0:0:0:0:0:1", 4000)) == ("2001:db8::1", 4000)
    assert canonical_address(("[::1]", 4000)) == ("::1", 4000)
    assert canonical_address(("192.0.2.1", 4000), ipv6_socket=True) == ("::ffff:192.0.2.1", 4000)
    assert canonical_address(("::ffff:192.0.2.1", 4000)) == ("192.0.2.1", 4000)
    assert canonical_address(("::ffff:c000:201", 4000), ipv6_socket=True) == (
        "::ffff:192.0.2.1",
        4000,
    )
    assert canonical_address(("pbx.example.com", 4000)) == ("pbx.example.com", 4000)


def test_each_leg_sends_sr_or_rr_with_loss_and_jitter_and_bye_on_close() -> None:
    """Issue 4 item 1: each leg reports to its own peer every interval — an SR about what we
    sent it (our SSRC, counts, NTP/RTP time) or an RR when we sent nothing, a report block
    about its stream (RFC 3550 A.3 loss, A.8 jitter), SDES CNAME — and BYE on close."""

    async def scenario() -> None:
        ports = port_range()
        clock = Wallclock()
        manager = RelayManager(ports, host=HOST, rtcp_interval=0.2, wallclock=clock)
        a, b = await rtcp_phone(ports), await rtcp_phone(ports)
        session = await open_call(manager, a, b, PCMU_ONLY, PCMU_ONLY)
        # a sends 20 packets of which 2 are lost on the way (seq 3 and 11 never sent); b is mute
        all_22 = packets([b"\xff" * FRAME] * 22, ssrc=0xA, seq=0, ts=0)
        sent = [p for p in all_22 if p.sequence not in (3, 11)]
        await send_paced(a, sent, leg_addr(session.a))
        got_b = await b.wait_for(20)
        last_ts = got_b[-1].timestamp

        # leg a (facing a): we sent a nothing -> RR, with a's loss
        rr = await a.report(
            lambda c: (
                isinstance(c[0], ReceiverReport)
                and bool(c[0].reports)
                and c[0].reports[0].highest_seq == 21
            )
        )
        first = rr[0]
        assert isinstance(first, ReceiverReport)
        assert first.ssrc == session.b.out_ssrc  # the SSRC a receives from us
        block = first.reports[0]
        assert (block.ssrc, block.cumulative_lost) == (0xA, 2)
        assert isinstance(rr[1], SourceDescription)
        assert rr[1].chunks[0].cname == session.a.cname

        # leg b (facing b): we sent b 20 packets -> SR with our counts, no block (b is mute)
        sr = sr_of(await b.report(lambda c: (s := sr_of(c)) is not None and s.packet_count == 20))
        assert sr is not None
        assert sr.ssrc == session.a.out_ssrc == got_b[0].ssrc
        assert (sr.octet_count, sr.reports) == (20 * FRAME, ())
        assert unix_from_ntp(sr.ntp_timestamp) == pytest.approx(clock.now, abs=1e-6)
        ahead = (sr.rtp_timestamp - last_ts) & 0xFFFF_FFFF
        assert 0 <= ahead < 8000  # the RTP clock of "now": after the last packet, < 1 s on

        session.close()
        bye_a = await a.report(lambda c: isinstance(c[-1], Bye))
        bye_b = await b.report(lambda c: isinstance(c[-1], Bye))
        assert bye_a[-1] == Bye(sources=(session.b.out_ssrc,))
        assert bye_b[-1] == Bye(sources=(session.a.out_ssrc,))
        assert session.a.rtcp_sent >= 2
        assert session.b.rtcp_sent >= 2
        manager.close()
        a.close()
        b.close()

    run(scenario)


def test_peer_reports_give_its_loss_jitter_and_the_round_trip() -> None:
    """Issue 4 item 1: the peer's SR/RR about our stream go into the leg's quality (its loss,
    its jitter, RTT = A - LSR - DLSR); its SR is echoed in our next report (LSR/DLSR); RTCP
    from another IP or garbage is not taken."""

    async def scenario() -> None:
        ports = port_range()
        clock = Wallclock()
        manager = RelayManager(ports, host=HOST, rtcp_interval=0.2, wallclock=clock)
        a, b = await rtcp_phone(ports), await rtcp_phone(ports)
        session = await open_call(manager, a, b, PCMU_ONLY, PCMU_ONLY)
        await send_paced(
            a, packets([b"\xff" * FRAME] * 10, ssrc=0xA, seq=0, ts=0), leg_addr(session.a)
        )
        await send_paced(
            b, packets([b"\xff" * FRAME] * 10, ssrc=0xB, seq=0, ts=0), leg_addr(session.b)
        )
        await a.wait_for(10)
        ours = sr_of(await a.report(lambda c: sr_of(c) is not None))  # our SR to a
        assert ours is not None
        # a answers 0.25 s after our SR, 0.15 s of network later: RTT 0.15 + 0.25 - 0.25
        clock.now += 0.4
        phone_sr = SenderReport(
            ssrc=0xA,
            ntp_timestamp=ntp_from_unix(1_700_000_000.0),
            rtp_timestamp=1600,
            packet_count=10,
            octet_count=1600,
            reports=(
                ReportBlock(
                    ssrc=session.b.out_ssrc,
                    fraction_lost=64,  # 25 %
                    cumulative_lost=3,
                    highest_seq=ours.packet_count,
                    jitter=80,  # 10 ms at 8 kHz
                    lsr=ours.lsr,
                    dlsr=round(0.25 * 65536),
                ),
            ),
        )
        rtcp_port = (HOST, session.a.port + 1)
        a.send_rtcp([phone_sr, SourceDescription.with_cname(0xA, "a@test")], rtcp_port)
        assert a.rtcp_transport is not None
        a.rtcp_transport.sendto(b"\x80\xc9\x00", rtcp_port)  # garbage on the RTCP port
        async with asyncio.timeout(2):
            while session.a.peer_report is None:
                await asyncio.sleep(0.01)
        q = session.quality()["a"]
        assert q["peer_lost"] == 3
        assert q["peer_jitter_ms"] == 10.0
        assert q["rtt_ms"] == pytest.approx(150.0, abs=0.1)
        assert session.a.peer_report.fraction_lost == 0.25
        assert (session.a.rtcp_packets, session.a.rtcp_accepted) == (2, 1)

        # our next report to a echoes its SR: LSR = middle of its NTP time, DLSR = time since
        echo = await a.report(
            lambda c: bool(c[0].reports) and c[0].reports[0].lsr == phone_sr.lsr  # type: ignore[union-attr]
        )
        dlsr = echo[0].reports[0].dlsr / 65536  # type: ignore[union-attr]
        assert 0 <= dlsr < 1.0

        # RTCP from an IP other than the peer's is refused (RTCP cannot be injected)
        before = session.a.peer_report
        data = serialize_compound([phone_sr])
        assert not session.a.on_rtcp(data, ("::1", 5000), time.monotonic(), clock.now)
        assert session.a.on_rtcp(data, (HOST, 5000), time.monotonic(), clock.now)
        assert session.a.peer_report is not before
        manager.close()
        a.close()
        b.close()

    run(scenario)


def test_one_timer_serves_every_leg_and_forgets_closed_ones() -> None:
    """Issue 4 item 1: the manager's RtcpScheduler keeps every open leg reporting on one loop
    timer; a closed session's legs drop out (its last report was the BYE)."""

    async def scenario() -> None:
        ports = port_range()
        manager = RelayManager(ports, host=HOST, rtcp_interval=0.1)
        phones = [await phone() for _ in range(6)]
        sessions = [
            await open_call(manager, phones[2 * i], phones[2 * i + 1], PCMU_ONLY, PCMU_ONLY)
            for i in range(3)
        ]
        async with asyncio.timeout(3):
            while min(leg.rtcp_sent for s in sessions for leg in s.legs) < 2:
                await asyncio.sleep(0.05)
        sessions[0].close()
        closed_counts = [leg.rtcp_sent for leg in sessions[0].legs]
        before = [leg.rtcp_sent for s in sessions[1:] for leg in s.legs]
        await asyncio.sleep(1.0)  # the bandwidth rule makes it 0.4 s x 0.5-1.5 here
        assert [leg.rtcp_sent for leg in sessions[0].legs] == closed_counts
        after = [leg.rtcp_sent for s in sessions[1:] for leg in s.legs]
        assert all(n > m for n, m in zip(after, before, strict=True))
        manager.close()
        for p in phones:
            p.close()

    run(scenario)


def test_quality_per_leg_for_the_call_record() -> None:
    """Issue 4 item 1 / CDR-1: RelaySession.quality() gives each leg's figures as JSON."""

    async def scenario() -> None:
        ports = port_range()
        manager = RelayManager(ports, host=HOST, rtcp_interval=None)  # no RTCP: no peer view
        a, b = await phone(), await phone()
        session = await open_call(manager, a, b, PCMU_ONLY, PCMA_ONLY)
        sent = [p for p in packets([b"\xff" * FRAME] * 10, ssrc=1, seq=0, ts=0) if p.sequence != 4]
        await send_paced(a, sent, leg_addr(session.a))
        await send_paced(
            b, packets([b"\xd5" * FRAME] * 5, ssrc=2, seq=0, ts=0, pt=8), leg_addr(session.b)
        )
        await b.wait_for(9)
        await a.wait_for(5)
        session.close()
        q = session.quality()
        assert json.loads(json.dumps(q)) == q
        assert set(q) == {"a", "b"}
        qa, qb = q["a"], q["b"]
        assert (qa["codec"], qb["codec"]) == ("PCMU", "PCMA")
        assert (qa["rx_packets"], qa["rx_expected"], qa["rx_lost"]) == (9, 10, 1)
        assert qa["rx_loss_pct"] == 10.0
        assert (qa["tx_packets"], qa["tx_octets"]) == (5, 5 * FRAME)
        assert (qb["rx_packets"], qb["rx_lost"], qb["tx_packets"]) == (5, 0, 9)
        assert 0 <= qa["rx_jitter_ms"] <= qa["rx_jitter_max_ms"]
        assert (qa["peer_lost"], qa["peer_loss_pct"], qa["peer_jitter_ms"], qa["rtt_ms"]) == (
            None,
            None,
            None,
            None,
        )
        assert (qa["rtcp_rx"], qa["rtcp_tx"]) == (0, 0)
        assert qa["latched"] == list(a.address)
        manager.close()
        a.close()
        b.close()

    run(scenario)


# --- IPv6 (issue 4 item 1) ------------------------------------------------------------------


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_relay_on_ipv6_carries_a_1khz_tone_and_rtcp(loop_kind: str) -> None:
    """Issue 4 items 1 and 7 on IPv6: a relay session on ::1 carries a 1 kHz tone both ways
    (peer addresses given as 4-tuples and in long form), latches, and reports over RTCP."""

    async def scenario() -> None:
        ports = port_range()
        manager = RelayManager(ports, host="::1", rtcp_interval=0.2)
        a, b = await rtcp_phone(ports, "::1"), await rtcp_phone(ports, "::1")
        session = await manager.open_session(
            a=LegMedia(remote=("::1", a.address[1], 0, 0), payload_types=PCMU_ONLY),  # type: ignore[arg-type]
            b=LegMedia(remote=("0:0:0:0:0:0:0:1", b.address[1]), payload_types=PCMU_ONLY),
        )
        assert session.a.media.remote == ("::1", a.address[1])
        frames = [ulaw_encode(f) for f in tone_frames(25)]
        await send_paced(a, packets(frames, ssrc=0x1111, seq=100, ts=5000), ("::1", session.a.port))
        await send_paced(b, packets(frames, ssrc=0x2222, seq=7, ts=99), ("::1", session.b.port))
        for got in (await b.wait_for(25), await a.wait_for(25)):
            assert_tone_at(ulaw_decode(b"".join(p.payload for p in got)), 1000)
        ab, ba = session.stats()
        assert (ab.latched, ba.latched) == (a.address, b.address)
        assert (ab.refused_source, ba.refused_source, ab.lost, ba.lost) == (0, 0, 0, 0)
        # the signalled address itself was seen, so the latch is final at once: the 4-tuple
        # and the long form were brought into the kernel's form
        assert not session.a.latch.learning
        assert not session.b.latch.learning
        sr = sr_of(await a.report(lambda c: (s := sr_of(c)) is not None and s.packet_count == 25))
        assert sr is not None
        assert sr.reports[0].ssrc == 0x1111
        # and a's report about our stream is taken from its IPv6 address
        block = ReportBlock(
            ssrc=session.b.out_ssrc,
            fraction_lost=0,
            cumulative_lost=0,
            highest_seq=sr.packet_count,
            jitter=8,
            lsr=sr.lsr,
            dlsr=0,
        )
        a.send_rtcp([ReceiverReport(ssrc=0x1111, reports=(block,))], ("::1", session.a.port + 1))
        async with asyncio.timeout(2):
            while session.a.peer_report is None:
                await asyncio.sleep(0.01)
        assert session.quality()["a"]["peer_jitter_ms"] == 1.0
        manager.close()
        a.close()
        b.close()

    run(scenario, loop_kind)


def test_media_streams_on_ipv6_carry_a_1khz_tone() -> None:
    """Issue 4 items 1 and 5 on IPv6: two MediaStreams on ::1 — one plays a 1 kHz tone, the
    other's sink hears 1 kHz; their RTCP reaches each other (the peer's view is known)."""
    received: list[bytes] = []

    class Collect:
        def write(self, pcm: bytes | None) -> None:
            if pcm is not None:
                received.append(pcm)

    async def scenario() -> None:
        ports = port_range()
        x = await MediaStream.open("::1", ports, idle_silence=False, rtcp_interval=0.2)
        y = await MediaStream.open("::1", ports, idle_silence=False, rtcp_interval=0.2)
        x.configure(y.local_address, LegMedia(payload_types=PCMU_ONLY))
        y.configure(x.local_address, LegMedia(payload_types=PCMU_ONLY))
        y.add_sink(Collect())
        result = await x.play(ToneSource(Tone.cadence("t", (1000,), 600, 0, repeat=False)))
        assert result.completed
        async with asyncio.timeout(3):
            while x.stats().remote is None:
                await asyncio.sleep(0.02)
        assert y.stats().received.packets_received == 30
        assert y.stats().refused_source == 0
        x.close()
        y.close()
        assert ports.in_use == 0

    run(scenario)
    pcm = b"".join(received)
    assert len(pcm) >= 25 * 2 * FRAME
    assert_tone_at(pcm, 1000)
