"""RTP packets, raw helpers, sequence arithmetic, sender/receiver state, latching and the
inactivity timer (RFC 3550)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudpbx.media.rtp import (
    MAX_DROPOUT,
    InactivityTimer,
    Latch,
    RtpError,
    RtpExtension,
    RtpPacket,
    RtpReceiverStats,
    RtpSender,
    SequenceTracker,
    payload_bounds,
    peek_pt_seq_ts_ssrc,
    rewrite_header,
    seq_add,
    seq_diff,
    ts_add,
    ts_diff,
)

FUZZ = settings(max_examples=400, deadline=None)


def raw(
    *,
    pt: int = 0,
    seq: int = 0,
    ts: int = 0,
    ssrc: int = 0x11223344,
    marker: bool = False,
    payload: bytes = b"",
) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc) + payload


# --- packets ---------------------------------------------------------------------------------


def test_parse_minimal_packet_by_hand() -> None:
    data = struct.pack("!BBHII", 0x80, 0x80 | 8, 0x1234, 0xDEADBEEF, 0xCAFEBABE) + b"\xd5" * 160
    p = RtpPacket.parse(data)
    assert p == RtpPacket(
        payload_type=8,
        sequence=0x1234,
        timestamp=0xDEADBEEF,
        ssrc=0xCAFEBABE,
        payload=b"\xd5" * 160,
        marker=True,
    )
    assert bytes(p) == data


def test_parse_csrc_extension_padding_by_hand() -> None:
    # V=2 P=1 X=1 CC=2; RFC 8285 one-byte extension (0xBEDE), 1 word: id 1, len 0 (1 octet)
    # value 0x7f, then padding to 4; payload 3 octets; 5 octets of padding (count 5).
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 96, 65535, 4294967295, 42)
    csrcs = struct.pack("!II", 1, 0xFFFFFFFF)
    ext = struct.pack("!HH", 0xBEDE, 1) + bytes([0x10, 0x7F, 0, 0])
    data = header + csrcs + ext + b"abc" + b"\x00\x00\x00\x00\x05"
    p = RtpPacket.parse(data)
    assert p.payload_type == 96
    assert p.sequence == 65535
    assert p.timestamp == 4294967295
    assert p.ssrc == 42
    assert p.csrc == (1, 0xFFFFFFFF)
    assert p.extension == RtpExtension(profile=0xBEDE, data=bytes([0x10, 0x7F, 0, 0]))
    assert p.payload == b"abc"
    assert p.padding == 5
    assert not p.marker
    assert bytes(p) == data
    assert payload_bounds(data) == (len(header + csrcs + ext), len(data) - 5)


def test_serialize_layout() -> None:
    p = RtpPacket(
        payload_type=0,
        sequence=7,
        timestamp=160,
        ssrc=0xA,
        payload=b"x",
        csrc=(5,),
        extension=RtpExtension(profile=0x1000, data=b""),
    )
    assert bytes(p) == (
        struct.pack("!BBHII", 0x80 | 0x10 | 1, 0, 7, 160, 0xA)
        + struct.pack("!I", 5)
        + struct.pack("!HH", 0x1000, 0)
        + b"x"
    )


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "short"),
        (b"\x80\x00" + bytes(9), "short"),
        (struct.pack("!BBHII", 0x40, 0, 0, 0, 0), "version 1"),
        (struct.pack("!BBHII", 0x00, 0, 0, 0, 0), "version 0"),
        (struct.pack("!BBHII", 0x81, 0, 0, 0, 0), "CSRC past end"),
        (struct.pack("!BBHII", 0x90, 0, 0, 0, 0) + b"\xbe\xde", "ext header past end"),
        (struct.pack("!BBHII", 0x90, 0, 0, 0, 0) + b"\xbe\xde\x00\x02" + bytes(4), "ext data"),
        (struct.pack("!BBHII", 0xA0, 0, 0, 0, 0) + b"ab\x00", "padding count 0"),
        (struct.pack("!BBHII", 0xA0, 0, 0, 0, 0) + b"ab\x04", "padding past header"),
    ],
)
def test_garbage_raises_rtp_error(data: bytes, why: str) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse(data)
    with pytest.raises(RtpError):
        payload_bounds(data)


def test_padding_may_eat_whole_payload() -> None:
    data = struct.pack("!BBHII", 0xA0, 0, 0, 0, 0) + b"\x00\x00\x00\x04"
    p = RtpPacket.parse(data)
    assert p.payload == b""
    assert p.padding == 4


def test_our_misuse_is_value_error() -> None:
    with pytest.raises(ValueError, match="payload type"):
        RtpPacket(payload_type=128, sequence=0, timestamp=0, ssrc=0)
    with pytest.raises(ValueError, match="sequence"):
        RtpPacket(payload_type=0, sequence=65536, timestamp=0, ssrc=0)
    with pytest.raises(ValueError, match="CSRC"):
        RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=0, csrc=(0,) * 16)
    with pytest.raises(ValueError, match="extension"):
        RtpExtension(profile=0xBEDE, data=b"abc")


@FUZZ
@given(st.binary(max_size=120))
def test_fuzz_any_bytes(data: bytes) -> None:
    try:
        p = RtpPacket.parse(data)
    except RtpError:
        with pytest.raises(RtpError):
            payload_bounds(data)
        return
    assert RtpPacket.parse(bytes(p)) == p
    start, end = payload_bounds(data)
    assert data[start:end] == p.payload
    assert peek_pt_seq_ts_ssrc(data) == (p.payload_type, p.sequence, p.timestamp, p.ssrc)


@FUZZ
@given(st.binary(min_size=12, max_size=60))
def test_fuzz_version_2_bytes(tail: bytes) -> None:
    data = bytes([0x80 | (tail[0] & 0x3F)]) + tail[1:]
    try:
        p = RtpPacket.parse(data)
    except RtpError:
        return
    assert RtpPacket.parse(bytes(p)) == p


u32 = st.integers(0, 2**32 - 1)
packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 65535),
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(u32, max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension,
        profile=st.integers(0, 65535),
        data=st.binary(max_size=32).map(lambda b: b[: len(b) - len(b) % 4]),
    ),
    padding=st.integers(0, 255),
)


@FUZZ
@given(packets)
def test_fuzz_round_trip(p: RtpPacket) -> None:
    data = bytes(p)
    assert RtpPacket.parse(data) == p
    assert peek_pt_seq_ts_ssrc(data) == (p.payload_type, p.sequence, p.timestamp, p.ssrc)
    start, end = payload_bounds(data)
    assert data[start:end] == p.payload


# --- raw helpers ---------------------------------------------------------------------------


def test_peek_and_rewrite_in_place() -> None:
    p = RtpPacket(
        payload_type=0,
        sequence=100,
        timestamp=8000,
        ssrc=1,
        payload=b"\x7f" * 160,
        marker=True,
        csrc=(9,),
        extension=RtpExtension(profile=0xBEDE, data=b"\x10\x01\x00\x00"),
        padding=4,
    )
    buf = bytearray(bytes(p))
    assert peek_pt_seq_ts_ssrc(buf) == (0, 100, 8000, 1)
    rewrite_header(buf, ssrc=0xFEEDF00D, seq=65535, ts=0xFFFFFFFF, pt=8)
    q = RtpPacket.parse(buf)
    assert (q.payload_type, q.sequence, q.timestamp, q.ssrc) == (8, 65535, 0xFFFFFFFF, 0xFEEDF00D)
    assert q.marker
    assert (q.csrc, q.extension, q.payload, q.padding) == (p.csrc, p.extension, p.payload, 4)
    rewrite_header(buf, seq=1)  # partial: the rest is kept
    assert peek_pt_seq_ts_ssrc(buf) == (8, 1, 0xFFFFFFFF, 0xFEEDF00D)
    rewrite_header(buf, ts=5, ssrc=6)
    assert peek_pt_seq_ts_ssrc(buf) == (8, 1, 5, 6)
    rewrite_header(buf, pt=0)
    assert RtpPacket.parse(buf).marker


def test_peek_rejects_garbage() -> None:
    with pytest.raises(RtpError):
        peek_pt_seq_ts_ssrc(b"\x80" * 11)
    with pytest.raises(RtpError):
        peek_pt_seq_ts_ssrc(b"\x00" * 12)


# --- arithmetic ------------------------------------------------------------------------------


def test_seq_and_ts_wrap() -> None:
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(5, 65530) == 11
    assert seq_diff(100, 50) == 50
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768
    assert seq_add(65535, 1) == 0
    assert seq_add(0, -1) == 65535
    assert ts_diff(80, 2**32 - 80) == 160
    assert ts_diff(2**32 - 80, 80) == -160
    assert ts_add(2**32 - 80, 160) == 80


@given(st.integers(0, 65535), st.integers(-32768, 32767))
def test_seq_diff_inverts_seq_add(a: int, n: int) -> None:
    assert seq_diff(seq_add(a, n), a) == n


# --- sender ----------------------------------------------------------------------------------


def test_sender_packetize_and_wrap() -> None:
    s = RtpSender(ssrc=0xABCD, initial_seq=65534, initial_ts=2**32 - 160, payload_type=0)
    a = s.packetize(b"\xff" * 160, 160, marker=True)
    b = s.packetize(b"\xff" * 160, 160)
    c = s.packetize(b"\x01\x02\x03\x04", 160, payload_type=101)
    assert [(x.sequence, x.timestamp, x.marker) for x in (a, b, c)] == [
        (65534, 2**32 - 160, True),
        (65535, 0, False),
        (0, 160, False),
    ]
    assert {x.ssrc for x in (a, b, c)} == {0xABCD}
    assert c.payload_type == 101
    assert (s.packets_sent, s.octets_sent) == (3, 324)
    s.skip(800)
    assert s.packetize(b"", 160).timestamp == 1120


# --- sequence tracking (A.1) -----------------------------------------------------------------


def test_probation_needs_two_in_sequence() -> None:
    t = SequenceTracker()
    assert not t.update(1000)  # in probation
    assert t.update(1001)  # valid from here: base is 1001
    assert (t.received, t.expected, t.extended_max) == (1, 1, 1001)
    t2 = SequenceTracker()
    assert not t2.update(5)
    assert not t2.update(9)  # not in sequence: probation restarts
    assert t2.update(10)
    assert t2.base_seq == 10


def test_wrap_65535_to_0_extends() -> None:
    t = SequenceTracker(probation=1)
    for seq in (65533, 65534, 65535, 0, 1):
        assert t.update(seq)
    assert t.extended_max == 65536 + 1
    assert t.expected == 5
    assert t.cumulative_lost == 0


def test_reorder_across_wrap_does_not_add_a_cycle() -> None:
    t = SequenceTracker(probation=1)
    for seq in (65534, 0, 65535, 1):
        assert t.update(seq)
    assert t.extended_max == 65537
    assert t.cumulative_lost == 0


def test_big_jump_dropped_unless_confirmed() -> None:
    t = SequenceTracker(probation=1)
    for seq in range(10):
        t.update(seq)
    jump = 10 + MAX_DROPOUT + 5
    assert not t.update(jump)  # a stray: dropped
    assert t.update(10)  # the stream goes on
    assert not t.update(jump)
    assert t.update(jump + 1)  # two in a row: the sender restarted; resync
    assert t.base_seq == jump + 1
    assert t.received == 1


def test_duplicates_make_loss_negative() -> None:
    t = SequenceTracker(probation=1)
    for seq in (1, 2, 2, 3, 3):
        t.update(seq)
    assert t.cumulative_lost == -2


# --- receiver statistics ---------------------------------------------------------------------


def feed(
    stats: RtpReceiverStats,
    arrivals: list[tuple[int, int, float]],
    ssrc: int = 7,
) -> None:
    for seq, ts, at in arrivals:
        stats.on_packet(
            RtpPacket(payload_type=0, sequence=seq, timestamp=ts, ssrc=ssrc, payload=bytes(160)),
            at,
        )


def test_constant_20ms_arrivals_have_zero_jitter_even_across_wraps() -> None:
    stats = RtpReceiverStats(8000)
    feed(
        stats,
        [
            ((65500 + i) & 0xFFFF, (2**32 - 160 * 50 + 160 * i) & 0xFFFFFFFF, 10.0 + 0.02 * i)
            for i in range(100)
        ],
    )
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)
    snap = stats.snapshot()
    assert snap.jitter == 0
    assert snap.packets_received == 99  # the first is probation
    assert snap.octets_received == 99 * 160
    assert snap.cumulative_lost == 0
    assert snap.extended_highest_seq == 65536 + (65500 + 99 - 65536)


def test_one_packet_in_two_5ms_late_converges_to_40_units() -> None:
    # |D| = 5 ms * 8000 Hz = 40 timestamp units for every pair: J -> 40 (RFC 3550 A.8).
    stats = RtpReceiverStats(8000, probation=1)
    feed(stats, [(i, 160 * i, 0.02 * i + (0.005 if i % 2 else 0.0)) for i in range(300)])
    assert stats.jitter == pytest.approx(40.0, abs=0.01)
    assert stats.jitter_ms == pytest.approx(5.0, abs=0.01)
    # The first steps follow J += (|D| - J) / 16 exactly.
    short = RtpReceiverStats(8000, probation=1)
    feed(short, [(i, 160 * i, 0.02 * i + (0.005 if i % 2 else 0.0)) for i in range(3)])
    assert short.jitter == pytest.approx(40 / 16 + (40 - 40 / 16) / 16)


def test_alternating_plus_minus_5ms_converges_to_80_units() -> None:
    # +5 ms then -5 ms: consecutive transits differ by 10 ms = 80 units.
    stats = RtpReceiverStats(8000, probation=1)
    feed(stats, [(i, 160 * i, 0.02 * i + (0.005 if i % 2 else -0.005)) for i in range(300)])
    assert stats.jitter == pytest.approx(80.0, abs=0.01)


def test_loss_counts_and_fraction_per_interval() -> None:
    stats = RtpReceiverStats(8000, probation=1)
    lost = {10, 20, 30, 40, 50, 60, 70, 80, 90}
    feed(stats, [(i, 160 * i, 0.02 * i) for i in range(100) if i not in lost])
    snap = stats.snapshot()
    assert (snap.expected, snap.packets_received, snap.cumulative_lost) == (100, 91, 9)
    assert snap.fraction_lost == 9 * 256 // 100 == 23
    assert snap.loss_ratio == pytest.approx(0.09)
    assert stats.seq.take_fraction_lost() == 23
    feed(stats, [(i, 160 * i, 0.02 * i) for i in range(100, 150)])
    assert stats.seq.take_fraction_lost() == 0  # a clean second interval
    assert stats.cumulative_lost == 9
    feed(stats, [(i, 160 * i, 0.02 * i) for i in range(150, 200) if i % 2])
    assert stats.seq.take_fraction_lost() == 25 * 256 // 50  # 25 of 50 lost (199 is last)


def test_new_ssrc_resets() -> None:
    stats = RtpReceiverStats(8000, probation=1)
    feed(stats, [(i, 160 * i, 0.02 * i) for i in range(10)], ssrc=1)
    feed(stats, [(i, 160 * i, 0.02 * i) for i in range(500, 505)], ssrc=2)
    snap = stats.snapshot()
    assert (snap.ssrc, snap.packets_received, snap.extended_highest_seq) == (2, 5, 504)


# --- latching --------------------------------------------------------------------------------

PHONE = ("192.0.2.10", 4000)
NAT = ("203.0.113.5", 31000)
ATTACKER = ("198.51.100.66", 5555)


def test_latches_to_first_source_then_drops_attacker() -> None:
    latch = Latch(("10.0.0.5", 4000))  # a private address in SDP: the phone is behind NAT
    assert latch.on_packet(NAT, 0.0)
    for i in range(1, 10):
        assert latch.on_packet(NAT, 0.02 * i)
    assert not latch.learning  # 10 packets: final
    assert not latch.on_packet(ATTACKER, 0.3)
    assert latch.on_packet(NAT, 0.32)
    assert latch.dropped == 1
    assert latch.destination == NAT


def test_attacker_after_window_cannot_take_over() -> None:
    latch = Latch(PHONE, max_packets=1000)
    assert latch.on_packet(NAT, 0.0)
    assert latch.on_packet(NAT, 1.0)
    assert not latch.on_packet(ATTACKER, 2.5)  # window (2 s) is over
    for t in range(100):
        assert not latch.on_packet(ATTACKER, 3.0 + t)  # no matter how long it insists
    assert latch.latched == NAT
    assert latch.dropped == 101


def test_attacker_first_loses_to_signalled_address() -> None:
    latch = Latch(PHONE)
    assert latch.on_packet(ATTACKER, 0.0)  # tentatively latched (it was first)
    assert latch.on_packet(PHONE, 0.01)  # the signalled address wins at once, for good
    assert not latch.learning
    assert not latch.on_packet(ATTACKER, 0.02)
    assert latch.latched == PHONE


def test_same_ip_preferred_over_stranger() -> None:
    latch = Latch(PHONE)
    assert latch.on_packet(ATTACKER, 0.0)
    assert latch.on_packet(("192.0.2.10", 4002), 0.02)  # signalled IP, other port (NAT)
    assert not latch.on_packet(ATTACKER, 0.04)  # a lower rank cannot come back
    assert latch.learning
    assert latch.latched == ("192.0.2.10", 4002)


def test_second_stranger_while_learning_is_dropped() -> None:
    latch = Latch(PHONE)
    assert latch.on_packet(NAT, 0.0)
    assert not latch.on_packet(ATTACKER, 0.01)
    assert latch.latched == NAT


def test_relatch_only_on_signalling_change() -> None:
    latch = Latch(PHONE)
    assert latch.on_packet(PHONE, 0.0)
    latch.on_signalled(PHONE)  # a re-INVITE with the same address keeps the latch
    assert not latch.on_packet(NAT, 5.0)
    latch.on_signalled(("192.0.2.99", 6000))  # moved: learn again
    assert latch.destination == ("192.0.2.99", 6000)
    assert latch.on_packet(NAT, 6.0)
    assert not latch.on_packet(PHONE, 6.02)
    latch.on_signalled(("192.0.2.99", 6000), force=True)
    assert latch.on_packet(PHONE, 7.0)


def test_strict_mode_accepts_only_signalled() -> None:
    latch = Latch(PHONE, strict=True)
    assert not latch.on_packet(NAT, 0.0)
    assert latch.on_packet(PHONE, 0.1)
    assert latch.dropped == 1
    assert not Latch(None, strict=True).on_packet(PHONE, 0.0)


# --- inactivity ------------------------------------------------------------------------------


def test_inactivity_timer() -> None:
    timer = InactivityTimer(30.0)
    assert timer.deadline() is None
    assert not timer.expired(1000.0)
    timer.start(0.0)
    assert timer.deadline() == 30.0
    timer.on_packet(10.0)
    assert not timer.expired(39.9)
    assert timer.expired(40.0)
    timer.suspend()  # hold
    assert timer.deadline() is None
    assert not timer.expired(500.0)
    timer.resume(500.0)
    assert timer.deadline() == 530.0
    assert InactivityTimer(5.0, now=1.0).expired(6.0)
