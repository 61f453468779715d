"""What every SIP transport shares: flows, the events handed upwards, the send interface,
errors, statistics and the per-source rate limiter.

The transports are the small asyncio shell around the sans-I/O SIP core (ENGINEERING.md §3):
they move bytes and report what happened as events; they never parse a SIP message except to
answer a framing error on a stream (RFC 3261 §18.3) before closing it.

Two ways of failing (RFC 3261 §18.4: transport errors are reported to the transaction layer):

* synchronously, :meth:`Transport.send` raises :class:`TransportError` (for example
  :class:`FlowClosedError` when the connection a flow names is gone: RFC 5626 §5.3 says a
  request for a failed flow must not be re-routed silently over another one);
* asynchronously, a :class:`SendFailed` event is handed to the sink (a connection attempt
  that failed, an ICMP error on UDP).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import ipaddress
import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

__all__ = [
    "Address",
    "Flow",
    "FlowClosed",
    "FlowClosedError",
    "QueueSink",
    "RateLimiter",
    "Received",
    "SendFailed",
    "Sink",
    "TokenBucketLimiter",
    "Transport",
    "TransportError",
    "TransportEvent",
    "TransportKind",
    "TransportSet",
    "TransportStats",
    "canonical_address",
    "normalize_address",
]

logger = logging.getLogger(__name__)

Address: TypeAlias = tuple[str, int]
"""``(host, port)``: an IP literal (no brackets for IPv6) and a port. DNS (RFC 3263) is the
business of the layer above."""

_ids = itertools.count(1)


def next_connection_id() -> int:
    """A process-wide unique id for a connection or a UDP socket."""
    return next(_ids)


def normalize_address(addr: tuple[Any, ...] | list[Any]) -> Address:
    """``(host, port)`` from a socket address (IPv6 ones have flowinfo and scope id too)."""
    return (str(addr[0]), int(addr[1]))


def canonical_address(addr: tuple[Any, ...] | list[Any]) -> Address:
    """:func:`normalize_address` with the IP in its canonical text form (``0:0::1`` ->
    ``::1``, as sockets report it), so that it can be compared with a flow's address."""
    host, port = normalize_address(addr)
    with contextlib.suppress(ValueError):  # a host name is kept as given
        host = str(ipaddress.ip_address(host.strip("[]")))
    return (host, port)


class TransportKind(enum.Enum):
    """The transport of a flow; the value is the Via transport token (RFC 3261 §20.42,
    RFC 7118 §5 for WS/WSS)."""

    UDP = "UDP"
    TCP = "TCP"
    TLS = "TLS"
    WS = "WS"
    WSS = "WSS"

    @property
    def reliable(self) -> bool:
        """RFC 3261 §17.1.1.2: retransmission timers A and E run on unreliable transports."""
        return self is not TransportKind.UDP

    @property
    def secure(self) -> bool:
        return self in (TransportKind.TLS, TransportKind.WSS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """Where a message came from and how to get back there (RFC 5626 §3: a flow).

    For a stream transport ``connection_id`` names one connection: sending to this flow uses
    exactly that connection or fails (:class:`FlowClosedError`), so the registrar can reach a
    phone through the very connection its REGISTER came on, NAT or not. For UDP it names the
    local socket and the flow is the (local, remote) address pair.
    """

    kind: TransportKind
    local: Address
    remote: Address
    connection_id: int

    def __str__(self) -> str:
        return f"{self.kind.value}:{_fmt(self.local)}->{_fmt(self.remote)}#{self.connection_id}"


def _fmt(addr: Address) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """One SIP message (a datagram, a framed stream message or a WebSocket message),
    unparsed. ``now`` is ``loop.time()`` when it was read."""

    data: bytes
    flow: Flow
    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowClosed:
    """A connection ended (RFC 5626 §5.2: the registrar drops bindings that used it)."""

    flow: Flow
    reason: str
    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SendFailed:
    """Data handed to :meth:`Transport.send` could not be delivered (RFC 3261 §18.4);
    ``remote`` is ``None`` when the system did not say which peer (UDP ICMP errors)."""

    remote: Address | None
    flow: Flow | None
    reason: str
    now: float


TransportEvent: TypeAlias = Received | FlowClosed | SendFailed
Sink: TypeAlias = Callable[[TransportEvent], None]


class TransportError(Exception):
    """Sending is impossible right now (closed transport, unknown flow, full buffers...)."""


class FlowClosedError(TransportError):
    """The connection a :class:`Flow` names no longer exists."""


@dataclass(slots=True)
class TransportStats:
    """Counters of one transport (all monotonic)."""

    received: int = 0
    sent: int = 0
    rate_limited: int = 0  # messages or connections dropped by the rate limiter
    keepalives: int = 0  # CRLF keep-alives seen (RFC 5626 §4.4.1)
    framing_errors: int = 0  # stream connections closed for unframeable data
    connections_accepted: int = 0
    connections_refused: int = 0  # over the connection limit or rate-limited
    idle_closed: int = 0


class RateLimiter(Protocol):
    """Admission control per source IP, asked before a message is parsed."""

    def allow(self, source_ip: str, now: float) -> bool: ...


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class TokenBucketLimiter:
    """A token bucket per source IP: ``rate`` messages per second, bursts of ``burst``.

    Memory is bounded: buckets are kept in least-recently-used order, a bucket idle long
    enough to be full again is forgotten (forgetting it changes nothing), and beyond
    ``max_sources`` the least recently used one is dropped.
    """

    def __init__(self, rate: float = 50.0, burst: float = 100.0, max_sources: int = 65536):
        if rate < 0 or burst < 1 or max_sources < 1:
            raise ValueError("rate must be >= 0, burst >= 1 and max_sources >= 1")
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source_ip: str, now: float) -> bool:
        bucket = self._buckets.pop(source_ip, None)
        self._evict(now)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        else:
            bucket.tokens = self._level(bucket, now)
            bucket.stamp = now
        self._buckets[source_ip] = bucket  # most recently used last
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(self.burst, bucket.tokens + max(0.0, now - bucket.stamp) * self.rate)

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while len(buckets) >= self.max_sources:  # room for the bucket about to be stored
            buckets.popitem(last=False)
        for _ in range(2):  # amortised: at most two idle buckets per call
            if not buckets:
                return
            oldest = next(iter(buckets.values()))
            if self._level(oldest, now) < self.burst:
                return
            buckets.popitem(last=False)


class QueueSink:
    """A sink feeding an :class:`asyncio.Queue`, for consumers that prefer ``await get()``.

    Bounded: when the queue is full, events are dropped and counted in ``dropped``.
    """

    def __init__(self, maxsize: int = 10000) -> None:
        self.queue: asyncio.Queue[TransportEvent] = asyncio.Queue(maxsize)
        self.dropped = 0

    def __call__(self, event: TransportEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def get(self) -> TransportEvent:
        return await self.queue.get()


class Transport(abc.ABC):
    """A SIP transport: a listener and/or client of one kind, handing events to ``sink``.

    ``send(data, dest)`` takes a :class:`Flow` (use exactly that flow) or an
    :class:`Address` (any flow to that peer; stream transports may open a connection).
    """

    kind: TransportKind

    def __init__(self, sink: Sink, *, rate_limiter: RateLimiter | None = None) -> None:
        self.stats = TransportStats()
        self._sink = sink
        self._rate_limiter = rate_limiter
        self._closed = False

    @property
    @abc.abstractmethod
    def local_addr(self) -> Address | None:
        """The listening (or bound) address, ``None`` before :meth:`listen`."""

    @abc.abstractmethod
    async def listen(self, host: str, port: int) -> Address:
        """Bind and start receiving; returns the bound address (port 0 picks one)."""

    @abc.abstractmethod
    def send(self, data: bytes, dest: Address | Flow) -> None:
        """Send one SIP message; raises :class:`TransportError` if it cannot even try."""

    @abc.abstractmethod
    def owns(self, flow: Flow) -> bool:
        """Whether ``flow`` is this transport's (for streams: an open connection's)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop listening and close every connection (idempotent)."""

    @abc.abstractmethod
    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has finished."""

    @property
    def closed(self) -> bool:
        return self._closed

    def _admit(self, source_ip: str, now: float) -> bool:
        """Ask the rate limiter (before any parsing); count the drop."""
        if self._rate_limiter is None or self._rate_limiter.allow(source_ip, now):
            return True
        self.stats.rate_limited += 1
        return False

    def _emit(self, event: TransportEvent) -> None:
        """Hand an event upwards; a failing sink is logged, never fatal to the transport."""
        if isinstance(event, Received):
            self.stats.received += 1
        try:
            self._sink(event)
        except Exception:
            logger.exception("transport sink failed on %s", type(event).__name__)


class TransportSet:
    """Several transports behind one ``send``: a flow goes to the transport owning it."""

    def __init__(self, *transports: Transport) -> None:
        self.transports = list(transports)

    def add(self, transport: Transport) -> None:
        self.transports.append(transport)

    def send(self, data: bytes, flow: Flow) -> None:
        for transport in self.transports:
            if transport.owns(flow):
                transport.send(data, flow)
                return
        raise FlowClosedError(f"no transport owns flow {flow}")

    def close(self) -> None:
        for transport in self.transports:
            transport.close()

    async def wait_closed(self) -> None:
        await asyncio.gather(*(t.wait_closed() for t in self.transports))
