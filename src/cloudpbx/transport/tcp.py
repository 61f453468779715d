"""SIP over TCP and TLS (RFC 3261 §18, §26.2), and the connection machinery the WebSocket
transport shares.

A :class:`StreamTransport` keeps its connections in a table by id (what a :class:`Flow`
names) and by remote address (RFC 3261 §18.2.2 / RFC 5923: a response, or a request to a
peer we already have a connection with, reuses it). Limits, all per transport:

* ``max_connections`` simultaneous connections (inbound and outbound); beyond, a new
  inbound connection is closed at once, an outbound one is refused;
* ``max_message_size`` (64 KiB): bigger is a 513 and the connection is closed (RFC 3261
  §21.5.9), which also bounds what is buffered on receive;
* ``max_write_buffer`` bytes not yet taken by the kernel: a peer that does not read is
  disconnected rather than buffered without end;
* ``idle_timeout`` seconds without traffic either way closes the connection.

Framing uses the sans-I/O :class:`cloudpbx.sip.framing.StreamFramer`; a framing error closes
the connection after the 400/513 that :func:`cloudpbx.sip.message.bad_request_response`
builds, when it can build one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.framing import DEFAULT_MAX_SIZE, StreamFramer
from cloudpbx.sip.message import bad_request_response
from cloudpbx.transport.base import (
    Address,
    Flow,
    FlowClosed,
    FlowClosedError,
    RateLimiter,
    Received,
    SendFailed,
    Sink,
    Transport,
    TransportError,
    TransportKind,
    canonical_address,
    next_connection_id,
    normalize_address,
)

__all__ = ["StreamConnection", "StreamLimits", "StreamTransport", "TCPTransport"]

logger = logging.getLogger(__name__)

_PONG = b"\r\n"  # RFC 5626 §4.4.1: the answer to a CRLFCRLF ping


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamLimits:
    """Resource limits of a stream transport (see the module docstring)."""

    max_message_size: int = DEFAULT_MAX_SIZE
    max_connections: int = 1024
    max_write_buffer: int = 1 << 20
    idle_timeout: float = 900.0  # 0 disables it
    connect_timeout: float = 10.0  # TCP connect + TLS/WebSocket handshakes
    close_timeout: float = 2.0  # graceful close before the connection is aborted


class StreamConnection(asyncio.Protocol):
    """One connection of a :class:`StreamTransport`; subclasses turn bytes into messages
    (:meth:`_on_data`) and messages into bytes (:meth:`_write_message`)."""

    def __init__(self, owner: StreamTransport, *, outbound: bool) -> None:
        self.owner = owner
        self.outbound = outbound
        self.connection_id = next_connection_id()
        self.flow: Flow | None = None
        loop = owner.loop
        self.ready: asyncio.Future[Flow] = loop.create_future()
        self.ready.add_done_callback(_consume)
        self.closed: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._last_activity = loop.time()
        self._idle_handle: asyncio.TimerHandle | None = None
        self._reason = "closed by peer"

    @property
    def is_ready(self) -> bool:
        return self.ready.done() and not self.ready.cancelled() and not self.ready.exception()

    @property
    def is_closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    # asyncio.Protocol callbacks.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._transport = transport
        self.flow = Flow(
            kind=self.owner.kind,
            local=normalize_address(transport.get_extra_info("sockname")),
            remote=normalize_address(transport.get_extra_info("peername")),
            connection_id=self.connection_id,
        )
        if not self.owner._register(self):
            self._reason = "refused"
            transport.abort()
            return
        self._touch()
        self._arm_idle()
        self._opened()

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            self._on_data(data)
        except Exception:  # a bug of ours: lose this connection, not the listener
            logger.exception("error handling data on %s", self.flow)
            self.abort("internal error")

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        if exc is not None and self._reason == "closed by peer":
            self._reason = f"connection lost: {exc}"
        if not self.ready.done():
            self.ready.set_exception(FlowClosedError(f"connection {self._reason}"))
        self.owner._unregister(self, self._reason)
        if not self.closed.done():
            self.closed.set_result(None)

    # Used by the transport.

    def send_message(self, data: bytes) -> None:
        """Write one SIP message; raises :class:`TransportError` when it cannot."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise FlowClosedError(f"flow {self.flow} is closed")
        limit = self.owner.limits.max_write_buffer
        if transport.get_write_buffer_size() + len(data) > limit:
            self.abort("peer is not reading (write buffer full)")
            raise TransportError(f"write buffer of {self.flow} is full; connection aborted")
        self._write_message(data)
        self._touch()
        self.owner.stats.sent += 1

    def close(self, reason: str) -> None:
        """Close gracefully (buffered data is still sent)."""
        if self._transport is not None and not self._transport.is_closing():
            self._reason = reason
            self._transport.close()

    def abort(self, reason: str) -> None:
        if self._transport is not None:
            self._reason = reason
            self._transport.abort()

    # Hooks for the subclasses.

    def _opened(self) -> None:
        """The connection is registered; a plain stream is ready at once."""
        self.owner._mark_ready(self)

    def _on_data(self, data: bytes) -> None:
        raise NotImplementedError

    def _write_message(self, data: bytes) -> None:
        self._write(data)

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    # Idle timeout.

    def _touch(self) -> None:
        self._last_activity = self._loop.time()

    def _arm_idle(self) -> None:
        timeout = self.owner.limits.idle_timeout
        if timeout > 0:
            deadline = self._last_activity + timeout
            self._idle_handle = self._loop.call_at(deadline, self._check_idle)

    def _check_idle(self) -> None:
        self._idle_handle = None
        if self.is_closing:
            return
        deadline = self._last_activity + self.owner.limits.idle_timeout
        if self._loop.time() + 1e-3 >= deadline:
            self.owner.stats.idle_closed += 1
            self.close("idle timeout")
        else:
            self._arm_idle()


def _consume(future: asyncio.Future[Flow]) -> None:
    """Mark a failed ``ready`` future as seen (nobody waits on an inbound one)."""
    if not future.cancelled():
        future.exception()


class _SipConnection(StreamConnection):
    """SIP messages on a byte stream, framed by Content-Length (RFC 3261 §18.3)."""

    def __init__(self, owner: StreamTransport, *, outbound: bool) -> None:
        super().__init__(owner, outbound=outbound)
        self._framer = StreamFramer(owner.limits.max_message_size)

    def _on_data(self, data: bytes) -> None:
        framer = self._framer
        framer.feed(data)
        while not self.is_closing:
            try:
                frame = framer.next_message()
            except ParseError as exc:
                self._framing_error(exc)
                return
            if frame is None:
                break
            self.owner._message(self, frame)
        if framer.take_pong_due():  # RFC 5626 §4.4.1: answer CRLFCRLF with CRLF
            self.owner.stats.keepalives += 1
            self._write(_PONG)
        framer.take_pongs()  # pongs to our own pings need no action here

    def _framing_error(self, exc: ParseError) -> None:
        """RFC 3261 §18.3: the stream cannot be resynchronised; answer if possible, close."""
        self.owner.stats.framing_errors += 1
        failed = self._framer.failed_data
        answer = None
        if failed:
            answer = bad_request_response(failed, exc, to_tag=self.owner.new_tag())
        if answer is not None:
            self._write(answer)
        self.close(f"framing error: {exc.message}")


class StreamTransport(Transport):
    """Connection management shared by TCP, TLS, WS and WSS (see the module docstring)."""

    def __init__(
        self,
        sink: Sink,
        *,
        kind: TransportKind,
        limits: StreamLimits | None = None,
        rate_limiter: RateLimiter | None = None,
        ssl_context: ssl.SSLContext | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
        tag_factory: Callable[[], str] | None = None,
    ) -> None:
        super().__init__(sink, rate_limiter=rate_limiter)
        self.kind = kind
        self.limits = limits or StreamLimits()
        self.new_tag: Callable[[], str] = tag_factory or (lambda: secrets.token_hex(8))
        self._ssl_server = ssl_context
        self._ssl_client = client_ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._local: Address | None = None
        self._conns: dict[int, StreamConnection] = {}
        self._by_remote: dict[Address, StreamConnection] = {}
        self._connecting: dict[Address, asyncio.Task[StreamConnection]] = {}
        self._pending: dict[Address, list[bytes]] = {}
        self._all: set[StreamConnection] = set()  # registered or closing, for wait_closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def local_addr(self) -> Address | None:
        return self._local

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    def flows(self) -> list[Flow]:
        """The flows of the connections ready for use."""
        return [c.flow for c in self._conns.values() if c.flow is not None and c.is_ready]

    def owns(self, flow: Flow) -> bool:
        conn = self._conns.get(flow.connection_id)
        return conn is not None and conn.flow == flow

    # Listening.

    async def listen(self, host: str, port: int) -> Address:
        if self._server is not None or self._closed:
            raise TransportError(f"{self.kind.value} transport already listening or closed")
        if self.kind.secure and self._ssl_server is None:
            raise TransportError(f"{self.kind.value} needs an ssl_context to listen")
        handshake_timeout = self.limits.connect_timeout if self._ssl_server else None
        self._server = await self.loop.create_server(
            self._inbound,
            host,
            port,
            reuse_address=True,
            ssl=self._ssl_server,
            ssl_handshake_timeout=handshake_timeout,
        )
        self._local = normalize_address(self._server.sockets[0].getsockname())
        return self._local

    def _inbound(self) -> StreamConnection:
        return self._new_connection(outbound=False)

    def _new_connection(self, *, outbound: bool) -> StreamConnection:
        raise NotImplementedError

    # Sending.

    def send(self, data: bytes, dest: Address | Flow) -> None:
        if self._closed:
            raise TransportError(f"{self.kind.value} transport is closed")
        if isinstance(dest, Flow):
            self._send_on_flow(data, dest)
            return
        addr = canonical_address(dest)
        if addr in self._connecting:  # keep the order of sends while connecting
            self._queue(addr, data)
            return
        conn = self._by_remote.get(addr)
        if conn is not None:
            conn.send_message(data)
            return
        self._connect_for_send(addr)
        self._queue(addr, data)

    def _send_on_flow(self, data: bytes, flow: Flow) -> None:
        conn = self._conns.get(flow.connection_id)
        if conn is None or conn.flow != flow or not conn.is_ready:
            # RFC 5626 §5.3: a failed flow is not silently replaced by another connection.
            raise FlowClosedError(f"flow {flow} is closed")
        conn.send_message(data)

    def _queue(self, addr: Address, data: bytes) -> None:
        pending = self._pending.setdefault(addr, [])
        if sum(map(len, pending)) + len(data) > self.limits.max_write_buffer:
            raise TransportError(f"too much data queued for {addr} while connecting")
        pending.append(data)

    def _connect_for_send(self, addr: Address) -> None:
        """Open a connection for :meth:`send` to an address with none (RFC 3261 §18.2.2)."""
        raise TransportError(f"no {self.kind.value} connection to {addr}")

    # Connecting.

    def _start_connect(
        self, addr: Address, factory: Callable[[], StreamConnection], server_hostname: str | None
    ) -> asyncio.Task[StreamConnection]:
        task = self._connecting.get(addr)
        if task is None:
            task = self.loop.create_task(self._open(addr, factory, server_hostname))
            self._connecting[addr] = task
            task.add_done_callback(lambda t: self._connect_done(addr, t))
        return task

    async def _connect(
        self, addr: Address, factory: Callable[[], StreamConnection], server_hostname: str | None
    ) -> Flow:
        addr = canonical_address(addr)
        if self._closed:
            raise TransportError(f"{self.kind.value} transport is closed")
        conn = self._by_remote.get(addr)
        if conn is None:
            task = self._start_connect(addr, factory, server_hostname)
            conn = await asyncio.shield(task)
        assert conn.flow is not None
        return conn.flow

    async def _open(
        self, addr: Address, factory: Callable[[], StreamConnection], server_hostname: str | None
    ) -> StreamConnection:
        if len(self._conns) + len(self._connecting) > self.limits.max_connections:
            raise TransportError(f"{self.kind.value} connection limit reached")
        context = self._ssl_client
        if self.kind.secure and context is None:
            raise TransportError(f"{self.kind.value} needs a client_ssl_context to connect")
        conn: StreamConnection | None = None
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                _, conn = await self.loop.create_connection(
                    factory,
                    addr[0],
                    addr[1],
                    ssl=context,
                    server_hostname=(server_hostname or addr[0]) if context else None,
                    ssl_handshake_timeout=self.limits.connect_timeout if context else None,
                )
                await conn.ready
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            if conn is not None:
                conn.abort("connect failed")
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise TransportError(f"cannot connect to {addr}: {reason}") from exc
        return conn

    def _connect_done(self, addr: Address, task: asyncio.Task[StreamConnection]) -> None:
        self._connecting.pop(addr, None)
        pending = self._pending.pop(addr, [])
        exc = TransportError("connect cancelled") if task.cancelled() else task.exception()
        if exc is not None:
            if pending:
                self._emit(SendFailed(remote=addr, flow=None, reason=str(exc), now=self._now()))
            return
        conn = task.result()
        for data in pending:
            try:
                conn.send_message(data)
            except TransportError as err:
                self._emit(
                    SendFailed(remote=addr, flow=conn.flow, reason=str(err), now=self._now())
                )
                return

    # Called by the connections.

    def _register(self, conn: StreamConnection) -> bool:
        assert conn.flow is not None
        refused = self._closed or len(self._conns) >= self.limits.max_connections
        if not refused and not conn.outbound:
            refused = not self._admit(conn.flow.remote[0], self._now())
        if refused:
            self.stats.connections_refused += 1
            return False
        if not conn.outbound:
            self.stats.connections_accepted += 1
        self._conns[conn.connection_id] = conn
        self._all.add(conn)
        return True

    def _mark_ready(self, conn: StreamConnection) -> None:
        assert conn.flow is not None
        self._by_remote[conn.flow.remote] = conn
        if not conn.ready.done():
            conn.ready.set_result(conn.flow)

    def _unregister(self, conn: StreamConnection, reason: str) -> None:
        self._all.discard(conn)
        if self._conns.pop(conn.connection_id, None) is None or conn.flow is None:
            return
        if self._by_remote.get(conn.flow.remote) is conn:
            del self._by_remote[conn.flow.remote]
        if conn.is_ready:
            self._emit(FlowClosed(flow=conn.flow, reason=reason, now=self._now()))

    def _message(self, conn: StreamConnection, data: bytes) -> None:
        """A whole message arrived on ``conn``: rate-limit, then hand it up."""
        assert conn.flow is not None
        now = self._now()
        if self._admit(conn.flow.remote[0], now):
            self._emit(Received(data=data, flow=conn.flow, now=now))

    def _now(self) -> float:
        return self.loop.time()

    # Closing.

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        for task in self._connecting.values():
            task.cancel()
        for conn in list(self._conns.values()):
            conn.close("transport closed")

    async def wait_closed(self) -> None:
        self.close()
        if self._connecting:
            await asyncio.gather(*self._connecting.values(), return_exceptions=True)
        conns = list(self._all)
        if conns:
            _, late = await asyncio.wait(
                [c.closed for c in conns], timeout=self.limits.close_timeout
            )
            for conn in conns:
                if not conn.closed.done():
                    conn.abort("close timed out")
            if late:
                await asyncio.wait(late, timeout=self.limits.close_timeout)
        if self._server is not None:
            await self._server.wait_closed()


class TCPTransport(StreamTransport):
    """SIP over TCP; over TLS when an ``ssl_context`` (to listen) or a
    ``client_ssl_context`` (to connect) is given (RFC 3261 §26.2: ``sips`` needs TLS)."""

    def __init__(
        self,
        sink: Sink,
        *,
        ssl_context: ssl.SSLContext | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
        limits: StreamLimits | None = None,
        rate_limiter: RateLimiter | None = None,
        tag_factory: Callable[[], str] | None = None,
    ) -> None:
        secure = ssl_context is not None or client_ssl_context is not None
        super().__init__(
            sink,
            kind=TransportKind.TLS if secure else TransportKind.TCP,
            limits=limits,
            rate_limiter=rate_limiter,
            ssl_context=ssl_context,
            client_ssl_context=client_ssl_context,
            tag_factory=tag_factory,
        )

    async def connect(self, addr: Address, *, server_hostname: str | None = None) -> Flow:
        """The flow of a connection to ``addr``: an existing one, or a new one.

        ``server_hostname`` is the name the TLS certificate must carry (default: the IP).
        """
        return await self._connect(addr, self._outbound, server_hostname)

    def _outbound(self) -> StreamConnection:
        return self._new_connection(outbound=True)

    def _new_connection(self, *, outbound: bool) -> StreamConnection:
        return _SipConnection(self, outbound=outbound)

    def _connect_for_send(self, addr: Address) -> None:
        if self.kind.secure and self._ssl_client is None:
            raise TransportError(f"no TLS connection to {addr} and no client_ssl_context")
        self._start_connect(addr, self._outbound, None)
