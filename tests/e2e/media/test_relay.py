"""The RTP relay over loopback: two fake phones (plain UDP sockets) talk through a
:class:`RelaySession`; checks are at the signal level (a 1 kHz tone is found at 1 kHz by a
DFT at the far end) and on the RTP headers the far end sees."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cloudpbx.media.codecs import alaw_decode, ulaw_decode, ulaw_encode
from cloudpbx.media.dtmf import DtmfReceiver, DtmfSender
from cloudpbx.media.ports import RtpPortAllocator
from cloudpbx.media.relay import (
    LegMedia,
    RelayError,
    RelayLeg,
    RelayManager,
    RelaySession,
)
from cloudpbx.media.rtp import RtpPacket
from cloudpbx.media.tones import synthesize
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
