"""SIP over WebSocket (RFC 7118): WS and WSS, server and client.

Built on the sans-I/O protocol layer of the ``websockets`` library
(:class:`websockets.server.ServerProtocol`, :class:`websockets.client.ClientProtocol`) driven
by the connection machinery of :mod:`cloudpbx.transport.tcp`, so the limits, idle timeout,
rate limiting and flows are those of TCP.

* RFC 7118 §4.1: the handshake must negotiate the ``sip`` subprotocol; a client that does
  not offer it gets an HTTP 400 and no connection. Our client refuses a server that does not
  select it.
* RFC 7118 §5.1: each WebSocket message is exactly one SIP message (no Content-Length
  framing); messages are sent as text frames when they are valid UTF-8, else as binary.
* Messages over ``max_message_size`` close the connection with 1009 (RFC 6455 §7.4.1).
* Keep-alives: WebSocket pings are answered by the library (RFC 6455 §5.5.2); a message that
  is a CRLFCRLF ping (as SIP.js sends, after RFC 5626 §4.4.1) gets a CRLF pong.
* A server cannot open a WebSocket to a client, so :meth:`WSTransport.send` to an address
  with no connection raises :class:`TransportError`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence

from websockets.client import ClientProtocol
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol
from websockets.typing import Origin, Subprotocol
from websockets.uri import WebSocketURI, parse_uri

from cloudpbx.transport.base import (
    Address,
    Flow,
    FlowClosedError,
    RateLimiter,
    Sink,
    TransportKind,
    canonical_address,
)
from cloudpbx.transport.tcp import StreamConnection, StreamLimits, StreamTransport

__all__ = ["SIP_SUBPROTOCOL", "WSTransport"]

SIP_SUBPROTOCOL = Subprotocol("sip")  # RFC 7118 §7 (IANA registration)

_PING = b"\r\n\r\n"
_PONG = b"\r\n"
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)

OriginList = Sequence[Origin | re.Pattern[str] | None]


class _WSConnection(StreamConnection):
    """One WebSocket connection carrying SIP messages."""

    def __init__(
        self, owner: WSTransport, *, outbound: bool, uri: WebSocketURI | None = None
    ) -> None:
        super().__init__(owner, outbound=outbound)
        max_size = owner.limits.max_message_size
        self._ws: ServerProtocol | ClientProtocol
        if uri is not None:
            self._ws = ClientProtocol(uri, subprotocols=[SIP_SUBPROTOCOL], max_size=max_size)
        else:
            self._ws = ServerProtocol(
                subprotocols=[SIP_SUBPROTOCOL], origins=owner.origins, max_size=max_size
            )
        self._parts: list[bytes] = []  # fragments of the message being received
        self._close_armed = False
        self._handshake_timer: asyncio.TimerHandle | None = None

    def _opened(self) -> None:
        self._handshake_timer = self._loop.call_later(
            self.owner.limits.connect_timeout, self._handshake_timeout
        )
        if isinstance(self._ws, ClientProtocol):
            self._ws.send_request(self._ws.connect())
            self._flush()

    def _handshake_timeout(self) -> None:
        self._handshake_timer = None
        if not self.ready.done():
            self.abort("WebSocket handshake timed out")

    def _handshake_ok(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        self.owner._mark_ready(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        super().connection_lost(exc)

    def _on_data(self, data: bytes) -> None:
        self._ws.receive_data(data)
        for event in self._ws.events_received():
            if isinstance(event, Request):
                self._accept(event)
            elif isinstance(event, Response):
                self._handshake_done()
            elif event.opcode in _DATA:
                self._data_frame(event)
        self._flush()

    def _accept(self, request: Request) -> None:
        """RFC 7118 §4.1: the ``sip`` subprotocol is required (else HTTP 400)."""
        assert isinstance(self._ws, ServerProtocol)
        response = self._ws.accept(request)
        self._ws.send_response(response)
        if response.status_code == 101:
            self._handshake_ok()

    def _handshake_done(self) -> None:
        if self._ws.handshake_exc is None and self._ws.subprotocol == SIP_SUBPROTOCOL:
            self._handshake_ok()
            return
        reason = self._ws.handshake_exc or "server did not select the sip subprotocol"
        self.abort(f"WebSocket handshake failed: {reason}")

    def _data_frame(self, frame: Frame) -> None:
        self._parts.append(bytes(frame.data))
        if not frame.fin:
            return
        data = b"".join(self._parts)
        self._parts.clear()
        if data == _PING:
            self.owner.stats.keepalives += 1
            if self._ws.state is State.OPEN:
                self._write_message(_PONG)
        elif not data.strip(b"\r\n"):
            self.owner.stats.keepalives += 1
        else:
            self.owner._message(self, data)

    def _write_message(self, data: bytes) -> None:
        if self._ws.state is not State.OPEN:
            raise FlowClosedError(f"WebSocket of {self.flow} is closing")
        # RFC 7118 §5.1: text frames carry UTF-8 only; anything else goes in a binary frame.
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            self._ws.send_binary(data)
        else:
            self._ws.send_text(data)
        self._flush()

    def _flush(self) -> None:
        for chunk in self._ws.data_to_send():
            if chunk == SEND_EOF:
                self._send_eof()
            else:
                self._write(chunk)
        if self._ws.close_expected() and not self._close_armed:
            self._close_armed = True
            self._loop.call_later(self.owner.limits.close_timeout, self.abort, "close timed out")

    def _send_eof(self) -> None:
        """RFC 6455 §7.1.1: the server closes the TCP connection first; a client half-closes
        (TLS cannot, so it closes)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if isinstance(self._ws, ClientProtocol) and transport.can_write_eof():
            transport.write_eof()
        else:
            self.close(self._closing_reason())

    def _closing_reason(self) -> str:
        code = self._ws.close_rcvd.code if self._ws.close_rcvd else None
        sent = self._ws.close_sent.code if self._ws.close_sent else None
        if sent == CloseCode.MESSAGE_TOO_BIG:
            return "message too big (WebSocket 1009)"
        return f"WebSocket closed ({code or sent})"

    def close(self, reason: str) -> None:
        if self._ws.state is State.OPEN:
            self._ws.send_close(CloseCode.GOING_AWAY)
            for chunk in self._ws.data_to_send():
                if chunk != SEND_EOF:
                    self._write(chunk)
        super().close(reason)


class WSTransport(StreamTransport):
    """SIP over WebSocket; WSS when an ``ssl_context`` or ``client_ssl_context`` is given.

    ``origins`` restricts the ``Origin`` header of handshakes (``None`` accepts any; include
    ``None`` in the list to accept clients that send no Origin).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        ssl_context: ssl.SSLContext | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
        limits: StreamLimits | None = None,
        rate_limiter: RateLimiter | None = None,
        origins: OriginList | None = None,
    ) -> None:
        secure = ssl_context is not None or client_ssl_context is not None
        super().__init__(
            sink,
            kind=TransportKind.WSS if secure else TransportKind.WS,
            limits=limits,
            rate_limiter=rate_limiter,
            ssl_context=ssl_context,
            client_ssl_context=client_ssl_context,
        )
        self.origins = origins

    async def connect(
        self,
        addr: Address,
        *,
        path: str = "/",
        host: str | None = None,
        server_hostname: str | None = None,
    ) -> Flow:
        """The flow of a WebSocket connection to ``addr`` (an existing one or a new one).

        ``host`` goes in the URI (and the Host header; default: the IP), ``path`` is the
        resource, ``server_hostname`` the name the TLS certificate must carry.
        """
        addr = canonical_address(addr)
        name = host or (f"[{addr[0]}]" if ":" in addr[0] else addr[0])
        scheme = "wss" if self.kind.secure else "ws"
        uri = parse_uri(f"{scheme}://{name}:{addr[1]}{path}")
        return await self._connect(
            addr, lambda: _WSConnection(self, outbound=True, uri=uri), server_hostname or host
        )

    def _new_connection(self, *, outbound: bool) -> StreamConnection:
        return _WSConnection(self, outbound=outbound)
