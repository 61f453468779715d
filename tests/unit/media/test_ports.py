"""RTP port allocation: even ports with their RTCP neighbour (RFC 3550 §11), bounded, LRU reuse;
binding the pair (loopback only)."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudpbx.config import Settings
from cloudpbx.media.ports import PortsExhaustedError, RtpPortAllocator, bind_rtp_pair


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


# --- binding a pair -------------------------------------------------------------------------


def _candidates() -> Iterator[int]:
    base = 50000 + (os.getpid() % 400) * 20  # apart per xdist worker; clashes are skipped
    return iter(range(base, base + 400, 2))


def _bind_somewhere(host: str) -> tuple[int, socket.socket, socket.socket]:
    for port in _candidates():
        try:
            rtp, rtcp = bind_rtp_pair(host, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        return port, rtp, rtcp
    raise AssertionError("no free port pair")


@pytest.mark.parametrize(
    ("host", "family"), [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)]
)
def test_bind_rtp_pair_binds_rtp_even_and_rtcp_next(
    host: str, family: socket.AddressFamily
) -> None:
    """Issue 4 item 1 (RFC 3550 §11): RTP on the even port, RTCP on port + 1, non-blocking,
    IPv4 or IPv6 by the host literal."""
    port, rtp, rtcp = _bind_somewhere(host)
    try:
        assert [s.getsockname()[:2] for s in (rtp, rtcp)] == [(host, port), (host, port + 1)]
        assert {s.family for s in (rtp, rtcp)} == {family}
        assert {s.type for s in (rtp, rtcp)} == {socket.SOCK_DGRAM}
        assert not rtp.getblocking()
        assert not rtcp.getblocking()
    finally:
        rtp.close()
        rtcp.close()


@pytest.mark.parametrize("port", [10001, 0, 65534 + 2, -2])
def test_bind_rtp_pair_refuses_odd_or_out_of_range_ports(port: int) -> None:
    """Issue 4 item 1: only an even port whose neighbour exists makes a pair."""
    with pytest.raises(ValueError, match="even port"):
        bind_rtp_pair("127.0.0.1", port)


def test_bind_rtp_pair_leaves_nothing_bound_when_rtcp_port_is_taken() -> None:
    """Issue 4 item 1: another program on the RTCP port fails the pair (EADDRINUSE, so the
    caller tries the next) and the RTP port is not left bound."""
    for port in _candidates():
        squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            squatter.bind(("127.0.0.1", port + 1))
        except OSError:
            squatter.close()
            continue
        try:
            with pytest.raises(OSError, match="in use") as info:
                bind_rtp_pair("127.0.0.1", port)
            if info.value.errno == errno.EADDRINUSE and _free("127.0.0.1", port):
                return  # the RTP socket was closed again
        finally:
            squatter.close()
    raise AssertionError("no port whose RTP side stayed free")


def _free(host: str, port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((host, port))
    except OSError:
        return False
    finally:
        probe.close()
    return True
