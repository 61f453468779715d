"""The engine's SIP stack: the asyncio shell of :class:`~cloudpbx.sip.dialog.DialogLayer`.

:class:`SipStack` is to the dialog layer what :class:`~cloudpbx.transport.endpoint.SipEndpoint`
is to the transaction layer (ENGINEERING.md §3): transports hand it bytes, it parses them
(garbage gets its 400 or is dropped, RFC 3261 §21.4.1), stamps ``received``/``rport`` on the
top Via (RFC 3261 §18.2.1, RFC 3581 §4), feeds the layer with ``loop.time()``, drains the
layer's events, transmits what it queued and re-arms ONE ``loop.call_at`` timer -- the shared
:class:`~cloudpbx.transport.shell.LayerShell`; this module says where the events go. Nothing
here creates a task.

Where events go:

* dialog events (:data:`~cloudpbx.sip.events.DialogEvent`: calls, re-INVITEs, BYEs ...) to
  ``dialog_handler`` -- the B2BUA;
* requests outside any dialog (REGISTER, OPTIONS, MESSAGE, SUBSCRIBE ...) to the handler
  registered for their method with :meth:`SipStack.on_request`; OPTIONS without a handler
  gets 200 with our capabilities (RFC 3261 §11.2), other methods 405 (§8.2.1: we know SIP,
  this method is not served here) with ``Allow``;
* responses to our own out-of-dialog requests (OPTIONS qualify, NOTIFY ...) resolve the future
  that :meth:`SipStack.request` returned.

Flows (RFC 5626): every message keeps the :class:`~cloudpbx.transport.base.Flow` it came on,
and the dialog layer sends a dialog's requests to the flow of its INVITE. To reach a phone
behind NAT the B2BUA sends its INVITE to the flow the phone registered on (the registrar keeps
it): same UDP 5-tuple, or the very TCP/WS connection.

Our address in Via, Contact and SDP: the configured advertised address when there is one
(1:1 NAT); else the flow's local address, and when we listen on a wildcard address (0.0.0.0),
the address the kernel would route from towards that peer (a UDP ``connect`` sends nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable
from typing import Any

from cloudpbx.sip.dialog import DialogConfig, DialogLayer, Endpoint, LayerEvent
from cloudpbx.sip.events import (
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from cloudpbx.sip.message import Request, Response
from cloudpbx.sip.transaction import MAGIC_COOKIE, TransactionLayer, UnknownTransactionError
from cloudpbx.transport.base import Flow, RateLimiter, TransportKind, TransportSet
from cloudpbx.transport.base import TransportError as SendError
from cloudpbx.transport.endpoint import UDP_RECEIVE_BUFFER
from cloudpbx.transport.shell import LayerShell
from cloudpbx.transport.tcp import TCPTransport
from cloudpbx.transport.udp import UDPTransport
from cloudpbx.transport.ws import WSTransport

__all__ = ["ALLOW", "DialogHandler", "RequestHandler", "SipStack", "StackStats"]

logger = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK"

DialogHandler = Callable[[LayerEvent], None]
RequestHandler = Callable[[RequestReceived], None]


class StackStats:
    """Counters of the stack (monotonic)."""

    __slots__ = ("handler_errors", "parse_errors", "received", "send_errors", "sent", "stamped")

    def __init__(self) -> None:
        self.received = 0
        self.parse_errors = 0
        self.stamped = 0  # requests whose top Via got received/rport
        self.sent = 0
        self.send_errors = 0
        self.handler_errors = 0


class SipStack(LayerShell[LayerEvent]):
    """A dialog layer over UDP, TCP and WebSocket transports, with one timer.

    TU methods (:meth:`send_invite`, :meth:`respond`, :meth:`bye` ...) feed the layer with
    ``loop.time()`` and transmit at once, or right after the handler returns when called
    from inside it. Use from the loop's thread only.
    """

    def __init__(
        self,
        *,
        advertised_address: str | None = None,
        dialog_config: DialogConfig | None = None,
        rate_limiter: RateLimiter | None = None,
        user_agent: str = "cloudpbx",
    ) -> None:
        self.new_token: Callable[[], str] = lambda: secrets.token_hex(8)
        self.transactions = TransactionLayer(new_tag=self.new_token)
        self.dialogs = DialogLayer(
            self.transactions,
            new_token=self.new_token,
            endpoint_for=self.endpoint_for,
            config=dialog_config,
        )
        super().__init__(self.dialogs, self.new_token)
        self.advertised_address = advertised_address
        self.user_agent = user_agent
        self.transports = TransportSet()
        self.stats: StackStats = StackStats()
        self.dialog_handler: DialogHandler = _ignore
        self.flow_closed_handlers: list[Callable[[Flow], None]] = []
        self._request_handlers: dict[str, RequestHandler] = {}
        self._waiting: dict[TransactionKey, asyncio.Future[Response | None]] = {}
        self._udp: UDPTransport | None = None
        self._tcp: TCPTransport | None = None
        self._ws: WSTransport | None = None
        self._route_cache: dict[str, str] = {}

    # --- set-up ------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.loop.time()

    def on_request(self, method: str, handler: RequestHandler) -> None:
        """Route out-of-dialog requests of ``method`` (REGISTER, OPTIONS ...) to ``handler``."""
        self._request_handlers[method.upper()] = handler

    async def listen_udp(self, host: str, port: int) -> tuple[str, int]:
        udp = UDPTransport(self.sink)
        addr = await udp.listen(host, port)
        _set_receive_buffer(udp, UDP_RECEIVE_BUFFER)
        self._udp = udp
        self.transports.add(udp)
        return addr

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        tcp = TCPTransport(self.sink, tag_factory=self.new_token)
        addr = await tcp.listen(host, port)
        self._tcp = tcp
        self.transports.add(tcp)
        return addr

    async def listen_udp_tcp(
        self, host: str, port: int, *, attempts: int = 8
    ) -> tuple[tuple[str, int], tuple[str, int]]:
        """UDP and TCP on one port number (RFC 3261 §18: a server listens on both). With port
        0 the kernel picks the UDP port, which may be taken on TCP (an ephemeral connection
        of another process): then both are tried again on a new port."""
        for attempt in range(attempts):
            udp = UDPTransport(self.sink)
            addr = await udp.listen(host, port)
            tcp = TCPTransport(self.sink, tag_factory=self.new_token)
            try:
                tcp_addr = await tcp.listen(host, addr[1])
            except OSError:
                udp.close()
                if port != 0 or attempt == attempts - 1:
                    raise
                continue
            _set_receive_buffer(udp, UDP_RECEIVE_BUFFER)
            self._udp, self._tcp = udp, tcp
            self.transports.add(udp)
            self.transports.add(tcp)
            return addr, tcp_addr
        raise AssertionError("unreachable")  # the loop returns or raises

    async def listen_ws(self, host: str, port: int) -> tuple[str, int]:
        """SIP over WebSocket (RFC 7118) for browser phones."""
        ws = WSTransport(self.sink)
        addr = await ws.listen(host, port)
        self._ws = ws
        self.transports.add(ws)
        return addr

    def udp_flow_to(self, remote: tuple[str, int]) -> Flow:
        """A UDP flow from our socket to ``remote`` (restored registrations: RFC 5626 §3)."""
        if self._udp is None:
            raise SendError("no UDP transport")
        return self._udp.flow_to(remote)

    async def close(self) -> None:
        self._cancel_timer()
        for future in self._waiting.values():
            if not future.done():
                future.set_result(None)
        self._waiting.clear()
        self.transports.close()
        await self.transports.wait_closed()

    # --- our addresses -----------------------------------------------------------------------

    def local_host_for(self, flow: Flow) -> str:
        """The address a peer on ``flow`` reaches us at (see the module docstring)."""
        if self.advertised_address:
            return self.advertised_address
        host = flow.local[0]
        if not _is_wildcard(host):
            return host
        remote = flow.remote[0]
        cached = self._route_cache.get(remote)
        if cached is None:
            cached = _route_source(remote)
            self._route_cache[remote] = cached
        return cached

    def endpoint_for(self, flow: Flow) -> Endpoint:
        """Our Via (no branch) and Contact on ``flow`` (DialogLayer's ``endpoint_for``)."""
        host = self.local_host_for(flow)
        shown = f"[{host}]" if ":" in host else host
        port = flow.local[1]
        kind = flow.kind.value
        param = "" if flow.kind is TransportKind.UDP else f";transport={kind.lower()}"
        return Endpoint(
            via=f"SIP/2.0/{kind} {shown}:{port};rport",
            contact=f"<sip:cloudpbx@{shown}:{port}{param}>",
        )

    def new_branch(self) -> str:
        """RFC 3261 §8.1.1.7: the magic cookie and 64 random bits."""
        return MAGIC_COOKIE + secrets.token_hex(8)

    # --- TU: calls and dialogs (thin wrappers feeding loop.time()) ---------------------------

    def create_invite(self, **kwargs: Any) -> Request:
        """:meth:`DialogLayer.create_invite` (``addr`` is the flow to send on)."""
        invite = self.dialogs.create_invite(**kwargs)
        invite.headers.add("User-Agent", self.user_agent)
        return invite

    def send_invite(self, invite: Request, flow: Flow) -> Any:
        key = self.dialogs.send_invite(invite, flow, self.now)
        self._pump()
        return key

    def cancel(self, call: Any) -> bool:
        done = self.dialogs.cancel(call, self.now)
        self._pump()
        return done

    def respond(self, tx_key: TransactionKey, status: int, **kwargs: Any) -> Response | None:
        """:meth:`DialogLayer.respond`; None when the transaction is gone (the peer
        cancelled or the transport failed meanwhile: nothing left to answer)."""
        try:
            response = self.dialogs.respond(tx_key, status, self.now, **kwargs)
        except UnknownTransactionError:
            response = None
        self._pump()
        return response

    def bye(self, dialog_id: Any) -> TransactionKey | None:
        key = self.dialogs.bye(dialog_id, self.now)
        self._pump()
        return key

    def send_request(self, dialog_id: Any, method: str, **kwargs: Any) -> TransactionKey:
        key = self.dialogs.send_request(dialog_id, method, self.now, **kwargs)
        self._pump()
        return key

    def send_ack(self, dialog_id: Any, **kwargs: Any) -> None:
        self.dialogs.send_ack(dialog_id, self.now, **kwargs)
        self._pump()

    def prack(self, dialog_id: Any, **kwargs: Any) -> TransactionKey | None:
        key = self.dialogs.prack(dialog_id, self.now, **kwargs)
        self._pump()
        return key

    # --- TU: outside dialogs -----------------------------------------------------------------

    def send_response(self, response: Response, tx_key: TransactionKey) -> None:
        """Send a response built by a request handler (the registrar's 200/401 ...)."""
        with contextlib.suppress(UnknownTransactionError):
            self.transactions.send_response(response, self.now, tx_key=tx_key)
        self._pump()

    def request(self, request: Request, flow: Flow) -> asyncio.Future[Response | None]:
        """Send an out-of-dialog request (top Via from :meth:`via_for`); the future gets the
        final response, or None on timeout (RFC 3261 §17.1.2.2 Timer F) or transport error."""
        key = self.transactions.send_request(request, flow, self.now)
        future: asyncio.Future[Response | None] = self.loop.create_future()
        self._waiting[key] = future
        self._pump()
        return future

    def via_for(self, flow: Flow) -> str:
        """A complete top Via for a request we send on ``flow`` (fresh branch, rport)."""
        return f"{self.endpoint_for(flow).via};branch={self.new_branch()}"

    # --- LayerShell's hooks: where events and closed flows go ---------------------------------

    def _dispatch(self, event: LayerEvent) -> None:
        if isinstance(event, RequestReceived):
            self._out_of_dialog(event)
        elif isinstance(event, ResponseReceived):
            if event.response.status >= 200:
                self._resolve(event.tx_key, event.response)
        elif isinstance(event, TransactionTimeout | TransportError | TransactionTerminated):
            self._resolve(event.tx_key, None)
        elif isinstance(event, CancelReceived):
            pass  # the dialog layer answered it (481 for an unknown INVITE)
        else:
            self._guarded(self.dialog_handler, event)

    def _out_of_dialog(self, event: RequestReceived) -> None:
        method = event.request.method
        handler = self._request_handlers.get(method)
        if handler is not None:
            if not self._guarded(handler, event):
                self._answer(event.tx_key, 500)
        elif method == "OPTIONS":
            self._answer(event.tx_key, 200, [("Allow", ALLOW), ("Accept", "application/sdp")])
        elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
            self._answer(event.tx_key, 481)  # RFC 3261 §15.1.2, §12.2.2: no such dialog
        else:
            self._answer(event.tx_key, 405, [("Allow", ALLOW)])

    def _answer(
        self, tx_key: TransactionKey, status: int, headers: list[tuple[str, Any]] | None = None
    ) -> None:
        with contextlib.suppress(UnknownTransactionError):
            self.dialogs.respond(tx_key, status, self.now, headers=headers or ())

    def _resolve(self, key: TransactionKey, response: Response | None) -> None:
        future = self._waiting.pop(key, None)
        if future is not None and not future.done():
            future.set_result(response)

    def _guarded(self, handler: Callable[[Any], None], arg: Any) -> bool:
        try:
            handler(arg)
        except Exception:
            self.stats.handler_errors += 1
            logger.exception("SIP handler failed on %s", type(arg).__name__)
            return False
        return True

    def _flow_closed(self, flow: Flow) -> None:
        # RFC 5626 §5.2: the registrar drops the bindings of the flow.
        for handler in self.flow_closed_handlers:
            self._guarded(handler, flow)


def _is_wildcard(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    return False


def _route_source(remote: str) -> str:
    """The local address the kernel routes from towards ``remote`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in remote else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((remote, 9))
            return str(sock.getsockname()[0])
    except OSError:
        return "127.0.0.1" if family == socket.AF_INET else "::1"


def _set_receive_buffer(udp: UDPTransport, size: int) -> None:
    # A burst while the loop is busy must not overflow the default ~208 KiB buffer.
    transport = udp._transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def _ignore(event: LayerEvent) -> None:
    logger.debug("unhandled SIP event %s", type(event).__name__)
