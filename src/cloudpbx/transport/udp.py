"""SIP over UDP (RFC 3261 §18): one socket, IPv4 or IPv6, listener and client at once.

Each datagram is one message (RFC 3261 §18.3), handed up unparsed; the layer that parses it
answers garbage with :func:`cloudpbx.sip.message.bad_request_response`. Datagrams made only
of CR, LF (and other blanks or NULs) are keep-alives some phones send instead of STUN (RFC
5626 §4.4.2 uses STUN on UDP; STUN is out of scope): they are counted and ignored.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import cast

from cloudpbx.transport.base import (
    Address,
    Flow,
    RateLimiter,
    Received,
    SendFailed,
    Sink,
    Transport,
    TransportError,
    TransportKind,
    next_connection_id,
    normalize_address,
)

__all__ = ["MAX_DATAGRAM", "UDPTransport"]

MAX_DATAGRAM = 65507  # the largest UDP payload over IPv4
logger = logging.getLogger(__name__)
_BLANKS = b"\r\n \t\0"


class UDPTransport(Transport):
    """A UDP socket sending and receiving SIP datagrams.

    ``flow.connection_id`` is this socket's id: a flow from another socket is refused.
    """

    kind = TransportKind.UDP

    def __init__(self, sink: Sink, *, rate_limiter: RateLimiter | None = None) -> None:
        super().__init__(sink, rate_limiter=rate_limiter)
        self.socket_id = next_connection_id()
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _UDPProtocol | None = None
        self._local: Address | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def local_addr(self) -> Address | None:
        return self._local

    async def listen(self, host: str, port: int, *, receive_buffer: int | None = None) -> Address:
        """Bind the socket; ``receive_buffer`` sets SO_RCVBUF (capped by the kernel at
        ``net.core.rmem_max``) so a pause of the loop does not drop datagrams."""
        if self._transport is not None or self._closed:
            raise TransportError("UDP transport already bound or closed")
        self._loop = asyncio.get_running_loop()
        _, protocol = await self._loop.create_datagram_endpoint(
            lambda: _UDPProtocol(self), local_addr=(host, port)
        )
        self._protocol = protocol
        if receive_buffer:
            self._set_receive_buffer(receive_buffer)
        assert self._local is not None  # set by _bound
        return self._local

    def _set_receive_buffer(self, size: int) -> None:
        sock = self._transport.get_extra_info("socket") if self._transport else None
        if sock is None:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError as exc:
            logger.warning("cannot set SO_RCVBUF to %d: %s", size, exc)

    def _bound(self, transport: asyncio.DatagramTransport) -> None:
        """The socket exists: datagrams may arrive before ``listen`` returns."""
        self._transport = transport
        self._local = normalize_address(transport.get_extra_info("sockname"))

    def flow_to(self, remote: Address) -> Flow:
        """The flow from this socket to ``remote``."""
        if self._local is None:
            raise TransportError("UDP transport not bound")
        return Flow(kind=self.kind, local=self._local, remote=remote, connection_id=self.socket_id)

    def owns(self, flow: Flow) -> bool:
        return flow.kind is self.kind and flow.connection_id == self.socket_id

    def send(self, data: bytes, dest: Address | Flow) -> None:
        if isinstance(dest, Flow):
            if not self.owns(dest):
                raise TransportError(f"flow {dest} is not from this UDP socket")
            dest = dest.remote
        transport = self._transport
        if transport is None or self._closed or transport.is_closing():
            raise TransportError("UDP transport is not open")
        if len(data) > MAX_DATAGRAM:
            # RFC 3261 §18.1.1: the layer above should have chosen TCP for this.
            raise TransportError(f"datagram of {len(data)} octets is too large for UDP")
        try:
            transport.sendto(data, dest)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot send to {dest}: {exc}") from exc
        self.stats.sent += 1

    def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        self.close()
        if self._protocol is not None:
            await self._protocol.closed

    # Called by the protocol.

    def _datagram(self, data: bytes, addr: tuple[object, ...]) -> None:
        assert self._loop is not None
        now = self._loop.time()
        remote = normalize_address(addr)
        if not data.strip(_BLANKS):
            self.stats.keepalives += 1
            return
        if not self._admit(remote[0], now):
            return
        self._emit(Received(data=data, flow=self.flow_to(remote), now=now))

    def _error(self, exc: Exception) -> None:
        now = self._loop.time() if self._loop is not None else 0.0
        self._emit(SendFailed(remote=None, flow=None, reason=str(exc), now=now))


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UDPTransport) -> None:
        self._owner = owner
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not always a DatagramTransport subclass (3.11's selector one, uvloop's).
        self._owner._bound(cast(asyncio.DatagramTransport, transport))

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._owner._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self._owner._error(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
