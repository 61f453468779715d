"""RTP port allocation over the configured range (``rtp_port_min`` … ``rtp_port_max``).

RFC 3550 §11: RTP goes on an even port and its RTCP on the next (odd) one, so the allocator
hands out even ports only and reserves each with its odd neighbour (RFC 3605 ``a=rtcp`` is not
needed then). Pure bookkeeping: no sockets. The relay binds the pair and, if the port turns out
to be taken by another program, releases it and asks for the next one.

Released ports go to the back of the queue (least recently used first): a port just freed is
not handed to the next call at once, so late packets of the old call do not land in the new
one (the latch would drop them anyway, but they would count as refused traffic).
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

__all__ = ["PortRange", "PortsExhaustedError", "RtpPortAllocator"]


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
