"""RTP port allocation: even ports with their RTCP neighbour (RFC 3550 §11), bounded, LRU reuse."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudpbx.config import Settings
from cloudpbx.media.ports import PortsExhaustedError, RtpPortAllocator


def test_even_ports_whose_rtcp_neighbour_is_in_range() -> None:
    ports = RtpPortAllocator(10001, 10008)  # pairs 10002/3, 10004/5, 10006/7 (10008/9 sticks out)
    got = [ports.allocate() for _ in range(3)]
    assert got == [10002, 10004, 10006]
    assert ports.capacity == 3
    with pytest.raises(PortsExhaustedError):
        ports.allocate()


def test_the_full_range_when_both_ends_fit() -> None:
    ports = RtpPortAllocator(10000, 10005)
    assert [ports.allocate() for _ in range(3)] == [10000, 10002, 10004]


def test_release_makes_a_port_reusable_after_the_others() -> None:
    ports = RtpPortAllocator(20000, 20007)  # 4 pairs
    a, b = ports.allocate(), ports.allocate()
    ports.release(a)
    assert a not in ports
    assert b in ports
    # the least recently used free ports come first; the one just freed comes last
    assert [ports.allocate() for _ in range(3)] == [20004, 20006, a]
    ports.release(b)
    assert ports.allocate() == b


def test_limit_bounds_pairs_in_use() -> None:
    ports = RtpPortAllocator(10000, 20000, limit=2)
    first = ports.allocate()
    ports.allocate()
    assert (ports.in_use, ports.available, ports.capacity) == (2, 0, 2)
    with pytest.raises(PortsExhaustedError, match="2 RTP port pairs"):
        ports.allocate()
    ports.release(first)
    assert ports.available == 1
    ports.allocate()


def test_releasing_what_is_not_allocated_is_an_error() -> None:
    ports = RtpPortAllocator(10000, 10010)
    with pytest.raises(ValueError, match="not allocated"):
        ports.release(10000)
    port = ports.allocate()
    ports.release(port)
    with pytest.raises(ValueError, match="not allocated"):
        ports.release(port)


@pytest.mark.parametrize(
    ("low", "high", "limit"),
    [(0, 100, None), (100, 99, None), (10000, 70000, None), (10001, 10002, None), (10, 20, 0)],
)
def test_bad_ranges(low: int, high: int, limit: int | None) -> None:
    with pytest.raises(ValueError, match=r"range|limit"):
        RtpPortAllocator(low, high, limit=limit)


@dataclass
class _Range:
    rtp_port_min: int
    rtp_port_max: int


def test_from_settings() -> None:
    ports = RtpPortAllocator.from_settings(_Range(16384, 16393), limit=100)
    assert ports.capacity == 5
    settings = Settings(secret_key="x" * 32, rtp_port_min=12000, rtp_port_max=12009)
    assert RtpPortAllocator.from_settings(settings).capacity == 5


@given(
    low=st.integers(1024, 65000),
    span=st.integers(1, 300),
    ops=st.lists(st.booleans(), max_size=400),
)
def test_invariants_under_any_sequence(low: int, span: int, ops: list[bool]) -> None:
    high = min(low + span, 65535)
    try:
        ports = RtpPortAllocator(low, high)
    except ValueError:
        return
    held: list[int] = []
    for take in ops:
        if take:
            if ports.available == 0:
                with pytest.raises(PortsExhaustedError):
                    ports.allocate()
                continue
            port = ports.allocate()
            assert port % 2 == 0
            assert low <= port < port + 1 <= high
            assert port not in held
            held.append(port)
        elif held:
            ports.release(held.pop(0))
        assert ports.in_use == len(held)
        assert ports.in_use + ports.available == ports.capacity
