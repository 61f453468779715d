"""RTCP SR/RR/SDES/BYE, compound packets, report blocks from receiver statistics, NTP and
round-trip time (RFC 3550 §6)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudpbx.media.rtcp import (
    NTP_UNIX_OFFSET,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    RtcpPacket,
    RtcpUnknown,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    looks_like_rtcp,
    ntp_from_unix,
    ntp_middle,
    parse_compound,
    serialize_compound,
    unix_from_ntp,
)
from cloudpbx.media.rtp import RtpPacket, RtpReceiverStats, RtpSender

FUZZ = settings(max_examples=400, deadline=None)


def block_bytes(
    ssrc: int, frac: int, lost24: int, high: int, jit: int, lsr: int, dlsr: int
) -> bytes:
    return struct.pack("!IIIIII", ssrc, (frac << 24) | lost24, high, jit, lsr, dlsr)


def test_sr_by_hand() -> None:
    blk = block_bytes(0xB, 0x40, 0xFFFFFE, 0x0001_0005, 33, 0x1234_5678, 0x0002_0000)
    body = struct.pack("!IQIII", 0xA, 0xE000_0000_8000_0000, 160_000, 1000, 160_000) + blk
    data = struct.pack("!BBH", 0x81, 200, len(body) // 4) + body  # length = words - 1
    assert len(data) == 52
    (sr,) = parse_compound(data)
    assert isinstance(sr, SenderReport)
    assert (sr.ssrc, sr.ntp_timestamp, sr.rtp_timestamp) == (0xA, 0xE000_0000_8000_0000, 160_000)
    assert (sr.packet_count, sr.octet_count) == (1000, 160_000)
    assert sr.lsr == 0x0000_8000
    assert sr.reports == (
        ReportBlock(
            ssrc=0xB,
            fraction_lost=0x40,
            cumulative_lost=-2,  # 24-bit two's complement
            highest_seq=0x0001_0005,
            jitter=33,
            lsr=0x1234_5678,
            dlsr=0x0002_0000,
        ),
    )
    assert bytes(sr) == data


def test_rr_sdes_bye_compound_by_hand() -> None:
    rr = struct.pack("!BBHI", 0x80, 201, 1, 0xA)  # no report blocks
    # SDES: one chunk, CNAME "ab" (type 1, len 2), then null + padding to 32 bits.
    chunk = struct.pack("!I", 0xA) + b"\x01\x02ab" + b"\x00\x00\x00\x00"
    sdes = struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    bye_body = struct.pack("!II", 0xA, 0xC) + b"\x03bye"
    bye = struct.pack("!BBH", 0x82, 203, len(bye_body) // 4) + bye_body
    data = rr + sdes + bye
    pkts = parse_compound(data)
    assert pkts == [
        ReceiverReport(ssrc=0xA),
        SourceDescription(chunks=(SdesChunk(ssrc=0xA, items=(SdesItem(type=1, value=b"ab"),)),)),
        Bye(sources=(0xA, 0xC), reason=b"bye"),
    ]
    assert isinstance(pkts[1], SourceDescription)
    assert pkts[1].chunks[0].cname == "ab"
    assert serialize_compound(pkts) == data


def test_sdes_with_cname_pads_correctly() -> None:
    for n in range(0, 9):
        sdes = SourceDescription.with_cname(0x5, "x" * n)
        data = bytes(sdes)
        assert len(data) % 4 == 0
        assert data[-1] == 0  # the terminating null is always there
        (parsed,) = parse_compound(data, require_report_first=False)
        assert parsed == sdes


def test_bye_without_and_with_empty_reason() -> None:
    for bye in (Bye(sources=(1,)), Bye(sources=(1,), reason=b""), Bye(sources=())):
        (parsed,) = parse_compound(bytes(bye), require_report_first=False)
        assert parsed == bye


def test_unknown_types_are_kept() -> None:
    app = struct.pack("!BBHI4s", 0x80 | 3, 204, 3, 0xA, b"name") + b"data"
    data = bytes(ReceiverReport(ssrc=0xA)) + app
    rr, unknown = parse_compound(data)
    assert unknown == RtcpUnknown(packet_type=204, count=3, body=app[4:])
    assert serialize_compound([rr, unknown]) == data


def test_padding_on_last_packet() -> None:
    body = struct.pack("!I", 0xA) + b"\x00\x00\x00\x04"
    data = struct.pack("!BBH", 0xA0, 201, 2) + body
    assert parse_compound(data) == [ReceiverReport(ssrc=0xA)]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\xc9\x00",
        struct.pack("!BBHI", 0x40, 201, 1, 0),  # version 1
        struct.pack("!BBHI", 0x80, 201, 5, 0),  # length past end
        struct.pack("!BBHI", 0x81, 201, 1, 0),  # RC=1 but no block
        struct.pack("!BBH", 0x80, 200, 0),  # SR without sender info
        struct.pack("!BBHI", 0x80, 201, 1, 0) + b"\x80",  # trailing octet
        bytes(SourceDescription.with_cname(1, "a")),  # not starting with SR/RR
        struct.pack("!BBHI", 0xA0, 201, 1, 0) + bytes(ReceiverReport(ssrc=1)),  # P not last
        struct.pack("!BBHI", 0xA0, 201, 1, 0),  # padding count 0
        struct.pack("!BBHI", 0xA0, 201, 1, 9),  # padding count > body
        bytes(ReceiverReport(ssrc=1)) + struct.pack("!BBHI", 0x81, 202, 1, 5),  # SDES unended
        bytes(ReceiverReport(ssrc=1)) + struct.pack("!BBHII", 0x81, 202, 2, 5, 0x01090000),
        bytes(ReceiverReport(ssrc=1)) + struct.pack("!BBHI", 0x82, 203, 1, 5),  # BYE count
        bytes(ReceiverReport(ssrc=1)) + struct.pack("!BBHII", 0x81, 203, 2, 5, 0x09000000),
    ],
)
def test_garbage_raises_rtcp_error(data: bytes) -> None:
    with pytest.raises(RtcpError):
        parse_compound(data)


def test_compound_must_start_with_report() -> None:
    with pytest.raises(ValueError, match="SR or RR"):
        serialize_compound([SourceDescription.with_cname(1, "a")])
    with pytest.raises(ValueError, match="SR or RR"):
        serialize_compound([])


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_any_bytes(data: bytes) -> None:
    for strict in (True, False):
        try:
            pkts = parse_compound(data, require_report_first=strict)
        except RtcpError:
            continue
        again = b"".join(bytes(p) for p in pkts)
        assert parse_compound(again, require_report_first=strict) == pkts


@FUZZ
@given(st.lists(st.binary(min_size=4, max_size=40), min_size=1, max_size=4))
def test_fuzz_version_2_headers(parts: list[bytes]) -> None:
    # Well-framed packets with random type, count and body: only RtcpError may escape.
    data = b""
    for part in parts:
        body = part[2:]
        body += bytes(-len(body) % 4)
        data += bytes([0x80 | (part[0] & 0x1F), 200 + part[1] % 8]) + struct.pack(
            "!H", len(body) // 4
        )
        data += body
    try:
        pkts = parse_compound(data, require_report_first=False)
    except RtcpError:
        return
    again = b"".join(bytes(p) for p in pkts)
    assert parse_compound(again, require_report_first=False) == pkts


u32 = st.integers(0, 2**32 - 1)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-(2**23), 2**23 - 1),
    highest_seq=u32,
    jitter=u32,
    lsr=u32,
    dlsr=u32,
)
words = st.binary(max_size=16).map(lambda b: b[: len(b) - len(b) % 4])
any_packet: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(
        SenderReport,
        ssrc=u32,
        ntp_timestamp=st.integers(0, 2**64 - 1),
        rtp_timestamp=u32,
        packet_count=u32,
        octet_count=u32,
        reports=st.lists(blocks, max_size=3).map(tuple),
        extension=words,
    ),
    st.builds(
        ReceiverReport, ssrc=u32, reports=st.lists(blocks, max_size=3).map(tuple), extension=words
    ),
    st.builds(
        SourceDescription,
        chunks=st.lists(
            st.builds(
                SdesChunk,
                ssrc=u32,
                items=st.lists(
                    st.builds(SdesItem, type=st.integers(1, 255), value=st.binary(max_size=20)),
                    max_size=3,
                ).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(
        Bye,
        sources=st.lists(u32, max_size=4).map(tuple),
        reason=st.none() | st.binary(max_size=30),
    ),
    st.builds(RtcpUnknown, packet_type=st.integers(204, 207), count=st.integers(0, 31), body=words),
)


@FUZZ
@given(st.lists(any_packet, min_size=1, max_size=4))
def test_fuzz_round_trip(pkts: list[RtcpPacket]) -> None:
    data = b"".join(bytes(p) for p in pkts)
    assert parse_compound(data, require_report_first=False) == pkts


# --- NTP, report blocks, RTT -----------------------------------------------------------------


def test_ntp_conversion() -> None:
    assert ntp_from_unix(0.0) == NTP_UNIX_OFFSET << 32
    assert ntp_from_unix(1.5) == ((NTP_UNIX_OFFSET + 1) << 32) | 0x8000_0000
    t = 1_700_000_000.25
    assert unix_from_ntp(ntp_from_unix(t)) == pytest.approx(t, abs=1e-6)
    assert ntp_middle(0x1234_5678_9ABC_DEF0) == 0x5678_9ABC


def test_rtt_example_from_rfc_3550() -> None:
    # RFC 3550 §6.4.1 figure: A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000 (46853.125),
    # DLSR = 0x0005:4000 (5.250 s) -> RTT 6.125 s.
    block = ReportBlock(
        ssrc=1,
        fraction_lost=0,
        cumulative_lost=0,
        highest_seq=0,
        jitter=0,
        lsr=0xB705_2000,
        dlsr=0x0005_4000,
    )
    arrival = 0xB710_8000 << 16
    assert block.round_trip_time(arrival) == 6.125
    no_sr = ReportBlock(ssrc=1, fraction_lost=0, cumulative_lost=0, highest_seq=0, jitter=0)
    assert no_sr.round_trip_time(arrival) is None


def test_report_block_from_stats_end_to_end() -> None:
    # A sends RTP and an SR; B's receiver stats make an RR; A computes the RTT from it.
    sender = RtpSender(ssrc=0xA, initial_seq=65530, initial_ts=1000, payload_type=0)
    stats = RtpReceiverStats(8000, probation=1)
    wall0 = 1_700_000_000.0  # A's wallclock; B's local clock is 100 s off, it doesn't matter
    for i in range(20):
        p = sender.packetize(bytes(160), 160)
        if i in (3, 4):
            continue  # lost
        stats.on_packet(RtpPacket.parse(bytes(p)), 100.0 + 0.02 * i + (0.005 if i % 2 else 0))
    sr = SenderReport.from_sender(
        sender, ntp_timestamp=ntp_from_unix(wall0 + 0.4), rtp_timestamp=sender.timestamp
    )
    (sr_in,) = parse_compound(bytes(sr))
    assert isinstance(sr_in, SenderReport)
    assert (sr_in.packet_count, sr_in.octet_count) == (20, 3200)
    one_way = 0.030
    stats.note_sender_report(sr_in.lsr, 100.4 + one_way)
    block = ReportBlock.from_stats(stats, now=100.4 + one_way + 0.5)  # B holds it 0.5 s
    assert block.ssrc == 0xA
    assert block.cumulative_lost == 2
    assert block.fraction_lost == 2 * 256 // 20
    assert block.highest_seq == 65536 + 13  # 65530 + 19 wrapped
    assert block.jitter == int(stats.jitter)
    assert block.lsr == ntp_middle(sr.ntp_timestamp)
    assert block.dlsr == 0x8000  # 0.5 s in 1/65536 s
    rr = ReceiverReport(ssrc=0xB, reports=(block,))
    compound = serialize_compound([rr, SourceDescription.with_cname(0xB, "b@pbx")])
    rr_in, sdes_in = parse_compound(compound)
    assert isinstance(rr_in, ReceiverReport)
    assert isinstance(sdes_in, SourceDescription)
    assert sdes_in.chunks[0].cname == "b@pbx"
    arrival = ntp_from_unix(wall0 + 0.4 + one_way + 0.5 + one_way)
    rtt = rr_in.reports[0].round_trip_time(arrival)
    assert rtt == pytest.approx(2 * one_way, abs=1 / 65536 * 2)
    # The loss interval restarted: nothing lost since.
    assert ReportBlock.from_stats(stats, now=101.0).fraction_lost == 0


def test_cumulative_lost_is_clamped_to_24_bits() -> None:
    stats = RtpReceiverStats(8000, probation=1)
    stats.on_packet(RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=1), 0.0)
    for _ in range(0x90_0000 // 2000):
        stats.seq.update((stats.seq.max_seq + 2000) & 0xFFFF)  # huge loss
    assert stats.cumulative_lost > 0x7F_FFFF
    assert ReportBlock.from_stats(stats, now=1.0).cumulative_lost == 0x7F_FFFF


def test_report_block_needs_a_packet() -> None:
    with pytest.raises(ValueError, match="no packet"):
        ReportBlock.from_stats(RtpReceiverStats(8000), now=0.0)


def test_rtp_rtcp_demux() -> None:
    assert looks_like_rtcp(bytes(ReceiverReport(ssrc=1)))
    assert looks_like_rtcp(
        bytes(SenderReport(ssrc=1, ntp_timestamp=0, rtp_timestamp=0, packet_count=0, octet_count=0))
    )
    rtp = bytes(RtpPacket(payload_type=0, sequence=1, timestamp=2, ssrc=3, marker=True))
    assert not looks_like_rtcp(rtp)
    assert not looks_like_rtcp(bytes(RtpPacket(payload_type=96, sequence=1, timestamp=2, ssrc=3)))
