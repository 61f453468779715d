"""SIP transports: the small asyncio shell around the sans-I/O SIP core (ENGINEERING.md §3).

:class:`UDPTransport`, :class:`TCPTransport` (TCP, or TLS with an ``ssl.SSLContext``) and
:class:`WSTransport` (WS/WSS, RFC 7118) share one interface, :class:`Transport`: ``await
listen(host, port)``, ``send(data, flow_or_address)``, ``close()`` / ``await
wait_closed()``. What they receive is handed to a sink as events: :class:`Received` (one
unparsed SIP message with its :class:`Flow` and ``loop.time()``), :class:`FlowClosed` and
:class:`SendFailed`. See ``docs/transport.md``.
"""

from cloudpbx.transport.base import (
    Address,
    Flow,
    FlowClosed,
    FlowClosedError,
    QueueSink,
    RateLimiter,
    Received,
    SendFailed,
    Sink,
    TokenBucketLimiter,
    Transport,
    TransportError,
    TransportEvent,
    TransportKind,
    TransportSet,
    TransportStats,
    canonical_address,
    normalize_address,
)
from cloudpbx.transport.tcp import StreamLimits, StreamTransport, TCPTransport
from cloudpbx.transport.udp import UDPTransport
from cloudpbx.transport.ws import SIP_SUBPROTOCOL, WSTransport

__all__ = [
    "SIP_SUBPROTOCOL",
    "Address",
    "Flow",
    "FlowClosed",
    "FlowClosedError",
    "QueueSink",
    "RateLimiter",
    "Received",
    "SendFailed",
    "Sink",
    "StreamLimits",
    "StreamTransport",
    "TCPTransport",
    "TokenBucketLimiter",
    "Transport",
    "TransportError",
    "TransportEvent",
    "TransportKind",
    "TransportSet",
    "TransportStats",
    "UDPTransport",
    "WSTransport",
    "canonical_address",
    "normalize_address",
]
