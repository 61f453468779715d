"""Jitter buffer: pacing, reordering, loss gaps, late packets, duplicates, overflow,
sequence wrap, SSRC change and restarts."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudpbx.media.jitter import Gap, JitterBuffer
from cloudpbx.media.rtp import MAX_DROPOUT, RtpPacket

PT = 0.020


def pkt(seq: int, ssrc: int = 0xA) -> RtpPacket:
    seq &= 0xFFFF
    return RtpPacket(
        payload_type=0,
        sequence=seq,
        timestamp=(seq * 160) & 0xFFFFFFFF,
        ssrc=ssrc,
        payload=bytes(160),
    )


Out = list[tuple[float, int | str]]


def run(jb: JitterBuffer, arrivals: list[tuple[float, RtpPacket]], until: float) -> Out:
    """Event-driven driver, as the asyncio shell would do it: feed arrivals in time order and
    call get() at each deadline. Returns (time, sequence) or (time, "gap:<seq>")."""
    events = sorted(arrivals, key=lambda a: a[0])
    out: Out = []
    i = 0
    while True:
        deadline = jb.deadline()
        next_arrival = events[i][0] if i < len(events) else None
        candidates = [t for t in (deadline, next_arrival) if t is not None]
        if not candidates:
            break
        now = min(candidates)
        if now > until:
            break
        while i < len(events) and events[i][0] <= now:
            jb.put(events[i][1], events[i][0])
            i += 1
        while (item := jb.get(now)) is not None:
            out.append((now, f"gap:{item.sequence}" if isinstance(item, Gap) else item.sequence))
    return out


def seqs(out: Out) -> list[int | str]:
    return [s for _, s in out]


def test_paced_release_after_initial_depth() -> None:
    jb = JitterBuffer(depth=0.060, ptime=PT)
    out = run(jb, [(1.0 + PT * i, pkt(i)) for i in range(10)], until=2.0)
    assert seqs(out) == list(range(10))
    assert [t for t, _ in out] == pytest.approx([1.06 + PT * i for i in range(10)])
    assert jb.stats.played == 10
    assert jb.stats.underruns == 1  # after the last packet the buffer ran dry
    assert len(jb) == 0


def test_nothing_before_the_depth() -> None:
    jb = JitterBuffer()
    assert jb.get(0.0) is None
    assert jb.deadline() is None
    jb.put(pkt(5), 0.0)
    assert jb.deadline() == pytest.approx(0.06)
    assert jb.get(0.059) is None
    item = jb.get(0.06)
    assert isinstance(item, RtpPacket)
    assert item.sequence == 5
    assert jb.get(0.07) is None  # the next is due at 0.08


def test_reordering() -> None:
    order = [0, 2, 1, 3, 5, 4, 7, 6, 8, 9]
    arrivals = [(PT * i, pkt(s)) for i, s in enumerate(order)]
    assert seqs(run(JitterBuffer(), arrivals, until=1.0)) == list(range(10))


def test_first_arrival_out_of_order_starts_from_lowest() -> None:
    jb = JitterBuffer()
    jb.put(pkt(11), 0.0)
    jb.put(pkt(10), 0.01)  # before playout: the start moves back
    out = run(jb, [(0.04, pkt(12))], until=1.0)
    assert seqs(out) == [10, 11, 12]


def test_loss_becomes_gap_and_late_packet_is_dropped() -> None:
    arrivals = [(PT * i, pkt(i)) for i in range(8) if i != 3]
    arrivals.append((0.5, pkt(3)))  # way too late
    jb = JitterBuffer()
    out = run(jb, arrivals, until=1.0)
    assert seqs(out) == [0, 1, 2, "gap:3", 4, 5, 6, 7]
    assert [t for t, _ in out] == pytest.approx([0.06 + PT * i for i in range(8)])
    assert (jb.stats.lost, jb.stats.late, jb.stats.played) == (1, 1, 7)


def test_burst_loss() -> None:
    arrivals = [(PT * i, pkt(i)) for i in range(10) if i not in (4, 5, 6)]
    out = run(JitterBuffer(), arrivals, until=1.0)
    assert seqs(out) == [0, 1, 2, 3, "gap:4", "gap:5", "gap:6", 7, 8, 9]


def test_duplicates() -> None:
    jb = JitterBuffer()
    assert jb.put(pkt(0), 0.0)
    assert not jb.put(pkt(0), 0.001)  # already buffered
    assert jb.put(pkt(1), 0.02)
    first = jb.get(0.06)
    assert isinstance(first, RtpPacket)
    assert first.sequence == 0
    assert not jb.put(pkt(0), 0.07)  # already played
    assert jb.stats.duplicates == 2
    assert jb.stats.late == 0


def test_sequence_wrap() -> None:
    start = 65530
    arrivals = [(PT * i, pkt(start + i)) for i in range(12) if i != 7]  # 65537 = 1 lost
    arrivals[5], arrivals[6] = (arrivals[5][0], arrivals[6][1]), (arrivals[6][0], arrivals[5][1])
    out = run(JitterBuffer(), arrivals, until=1.0)
    expected: list[int | str] = [(start + i) & 0xFFFF for i in range(12)]
    expected[7] = "gap:1"
    assert seqs(out) == expected


def test_reorder_across_wrap_before_start() -> None:
    jb = JitterBuffer()
    jb.put(pkt(0), 0.0)
    jb.put(pkt(65535), 0.005)  # behind 0: extended to -1, not 65535 ahead
    out = run(jb, [(0.02, pkt(1))], until=1.0)
    assert seqs(out) == [65535, 0, 1]


def test_overflow_drops_oldest() -> None:
    jb = JitterBuffer(max_packets=5)
    for i in range(8):
        assert jb.put(pkt(i), 0.0)
    assert (len(jb), jb.stats.overflow) == (5, 3)
    out = run(jb, [], until=1.0)
    assert seqs(out) == [3, 4, 5, 6, 7]
    assert jb.put(pkt(1), 1.0) is False  # skipped by the overflow: late now
    assert jb.stats.late == 1


def test_underrun_rebuffers_and_continues() -> None:
    arrivals = [(PT * i, pkt(i)) for i in range(5)]
    arrivals += [(1.0 + PT * i, pkt(5 + i)) for i in range(5)]  # 0.9 s silence, then more
    jb = JitterBuffer()
    out = run(jb, arrivals, until=3.0)
    assert seqs(out) == list(range(10))
    assert out[5][0] == pytest.approx(1.06)  # rebuffered: depth after the next arrival
    assert jb.stats.underruns == 2
    assert jb.stats.lost == 0


def test_loss_during_underrun_is_skipped_not_replayed() -> None:
    arrivals = [(PT * i, pkt(i)) for i in range(5)]
    arrivals += [(1.0 + PT * i, pkt(10 + i)) for i in range(5)]  # 5..9 lost in a stall
    arrivals.append((1.5, pkt(7)))  # a straggler
    jb = JitterBuffer()
    out = run(jb, arrivals, until=3.0)
    assert seqs(out) == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    assert out[5][0] == pytest.approx(1.06)
    assert (jb.stats.lost, jb.stats.late) == (5, 1)


def test_new_ssrc_resets() -> None:
    jb = JitterBuffer()
    for i in range(3):
        jb.put(pkt(100 + i), PT * i)
    assert jb.get(0.06) is not None
    jb.put(pkt(9000, ssrc=0xB), 0.065)  # e.g. after a transfer: a new source
    assert (jb.ssrc, jb.stats.resets, jb.stats.flushed) == (0xB, 1, 2)
    out = run(jb, [(0.085, pkt(9001, ssrc=0xB))], until=1.0)
    assert seqs(out) == [9000, 9001]
    assert out[0][0] == pytest.approx(0.125)


def test_big_jump_needs_confirmation() -> None:
    jb = JitterBuffer()
    for i in range(3):
        jb.put(pkt(i), PT * i)
    far = 3 + MAX_DROPOUT + 10
    assert not jb.put(pkt(far), 0.061)  # a stray: dropped
    assert jb.stats.jumps == 1
    assert jb.put(pkt(3), 0.062)
    assert not jb.put(pkt(far), 0.07)
    assert jb.put(pkt(far + 1), 0.08)  # follows it: the sender restarted numbering
    assert jb.stats.resets == 1
    out = run(jb, [], until=1.0)
    assert seqs(out) == [far + 1]


def test_drain_at_end_of_call() -> None:
    jb = JitterBuffer()
    for s in (0, 1, 3, 4):
        jb.put(pkt(s), 0.0)
    drained = jb.drain()
    assert [x.sequence for x in drained] == [0, 1, 2, 3, 4]
    assert isinstance(drained[2], Gap)
    assert jb.drain() == []


def test_adaptive_grows_on_late_packets() -> None:
    jb = JitterBuffer(depth=0.040, adaptive=True, max_depth=0.080)
    arrivals = [(PT * i, pkt(i)) for i in range(30) if i not in (5, 10, 15)]
    arrivals += [(PT * s + 0.1, pkt(s)) for s in (5, 10, 15)]  # 100 ms late: concealed
    out = run(jb, arrivals, until=2.0)
    assert jb.depth == pytest.approx(0.080)  # grew twice, then capped at max_depth
    assert (jb.stats.late, jb.stats.lost) == (3, 3)
    # Each growth delays the playout by one slot: 40 + 20 + 20 ms behind the arrivals.
    assert out[-1][0] == pytest.approx(PT * 29 + 0.080)
    assert [s for s in seqs(out) if isinstance(s, int)] == sorted(
        s for s in seqs(out) if isinstance(s, int)
    )


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="ptime"):
        JitterBuffer(ptime=0)
    with pytest.raises(ValueError, match="max_depth"):
        JitterBuffer(depth=0.5, max_depth=0.2)


@settings(max_examples=200, deadline=None)
@given(
    first=st.integers(0, 65535),
    delays=st.lists(st.floats(0.0, 0.039), min_size=2, max_size=60),
    dup=st.sets(st.integers(0, 59)),
)
def test_jitter_below_depth_loses_nothing(first: int, delays: list[float], dup: set[int]) -> None:
    """Any network delay variation under the depth (40 ms < 60 ms): everything comes out,
    in order, one every 20 ms, whatever the reordering, duplicates and wrap."""
    arrivals = [(PT * i + d, pkt(first + i)) for i, d in enumerate(delays)]
    arrivals += [(t + 0.001, p) for i, (t, p) in enumerate(arrivals) if i in dup]
    jb = JitterBuffer()
    out = run(jb, arrivals, until=10.0)
    assert seqs(out) == [(first + i) & 0xFFFF for i in range(len(delays))]
    times = [t for t, _ in out]
    assert all(b - a == pytest.approx(PT) for a, b in itertools.pairwise(times))
    assert jb.stats.lost == jb.stats.late == 0
    assert jb.stats.duplicates == len([i for i in dup if i < len(delays)])
