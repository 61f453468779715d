"""RTP port allocation over the configured range (``rtp_port_min`` … ``rtp_port_max``).

RFC 3550 §11: RTP goes on an even port and its RTCP on the next (odd) one, so the allocator
hands out even ports only and reserves each with its odd neighbour (RFC 3605 ``a=rtcp`` is not
needed then). :class:`RtpPortAllocator` is pure bookkeeping (no sockets);
:func:`bind_rtp_pair` binds the two sockets of a pair. The relay and the media streams bind the
pair they were given and, if a port turns out to be taken by another program, release it and
ask for the next one.

Released ports go to the back of the queue (least recently used first): a port just freed is
not handed to the next call at once, so late packets of the old call do not land in the new
one (the latch would drop them anyway, but they would count as refused traffic).
"""

from __future__ import annotations

import socket
from collections import deque
from typing import Protocol

__all__ = ["PortRange", "PortsExhaustedError", "RtpPortAllocator", "bind_rtp_pair"]


class PortsExhaustedError(Exception):
    """No free RTP port pair (the range is used up or the configured limit reached)."""


class PortRange(Protocol):
    """What the allocator reads from the settings (``cloudpbx.config.Settings`` has both)."""

    @property
    def rtp_port_min(self) -> int: ...

    @property
    def rtp_port_max(self) -> int: ...


class RtpPortAllocator:
    """Even RTP ports (RTCP = port + 1) from ``[port_min, port_max]``, both ends inclusive.

    ``limit`` bounds the pairs in use at once (default: every pair of the range). A pair is
    only allocated if both of its ports lie in the range.
    """

    __slots__ = ("_free", "_in_use", "limit", "port_max", "port_min")

    def __init__(self, port_min: int, port_max: int, *, limit: int | None = None) -> None:
        if not 1 <= port_min <= port_max <= 65535:
            raise ValueError(f"bad RTP port range {port_min}-{port_max}")
        first = port_min + (port_min & 1)  # the first even port
        ports = range(first, port_max, 2)  # port + 1 <= port_max
        if not ports:
            raise ValueError(f"RTP port range {port_min}-{port_max} holds no even/odd pair")
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        self.port_min = port_min
        self.port_max = port_max
        self.limit = len(ports) if limit is None else min(limit, len(ports))
        self._free: deque[int] = deque(ports)
        self._in_use: set[int] = set()

    @classmethod
    def from_settings(cls, settings: PortRange, *, limit: int | None = None) -> RtpPortAllocator:
        return cls(settings.rtp_port_min, settings.rtp_port_max, limit=limit)

    @property
    def capacity(self) -> int:
        """Pairs that may be in use at once."""
        return self.limit

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    @property
    def available(self) -> int:
        return self.limit - len(self._in_use)

    def __contains__(self, port: object) -> bool:
        """Whether ``port`` (the even RTP port) is allocated now."""
        return port in self._in_use

    def allocate(self) -> int:
        """The even RTP port of a free pair; raises :class:`PortsExhaustedError`."""
        if len(self._in_use) >= self.limit or not self._free:
            raise PortsExhaustedError(
                f"all {self.limit} RTP port pairs of {self.port_min}-{self.port_max} in use"
            )
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        """Give a pair back; it is reused after every other free pair (LRU)."""
        try:
            self._in_use.remove(port)
        except KeyError:
            raise ValueError(f"RTP port {port} is not allocated") from None
        self._free.append(port)


def bind_rtp_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """Bind the UDP sockets of one RTP/RTCP pair on ``host``: RTP on the even ``port``, its
    RTCP on ``port + 1`` (RFC 3550 §11), both non-blocking, ready for
    ``loop.create_datagram_endpoint(..., sock=...)``.

    ``host`` is an IP literal; one with a colon binds IPv6 (``"::"`` is dual-stack on Linux
    unless ``net.ipv6.bindv6only`` is set, so IPv4 peers then appear as ``::ffff:a.b.c.d``).
    Raises ``ValueError`` for an odd or out-of-range port and ``OSError`` (``EADDRINUSE``
    when another program holds either port) after closing whatever it had bound.
    """
    if port % 2 or not 0 < port < 65535:
        raise ValueError(f"RTP port {port} is not an even port below 65535")
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
