"""The asyncio shell around the sans-I/O transaction layer (ENGINEERING.md §3).

:class:`SipEndpoint` owns one :class:`~cloudpbx.sip.transaction.TransactionLayer` and the
transports it listens on. The shell machinery -- parse and stamp what transports hand up, feed
the layer with ``loop.time()``, drain its events to the application callback, transmit what it
queued, re-arm ONE ``loop.call_at`` timer -- is :class:`~cloudpbx.transport.shell.LayerShell`,
shared with the engine's dialog-layer stack. Nothing here creates a task.

Responses go back over the flow the request came on. On UDP that is the request's source
address and port -- what ``received``/``rport`` name -- whether or not the client asked for
``rport``: symmetric response routing (RFC 3581 §4) is what phones behind NAT need, as
Asterisk (``force_rport``) and Kamailio do, instead of the sent-by port of RFC 3261 §18.2.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from cloudpbx.sip.events import (
    CancelReceived,
    RequestReceived,
    TransactionEvent,
    TransactionKey,
)
from cloudpbx.sip.message import Request, Response, make_response
from cloudpbx.sip.transaction import (
    MAGIC_COOKIE,
    TimerConfig,
    TransactionLayer,
    TransactionStateError,
    UnknownTransactionError,
)
from cloudpbx.transport.base import (
    Address,
    Flow,
    RateLimiter,
    Transport,
    TransportError,
    TransportKind,
    TransportSet,
)
from cloudpbx.transport.shell import LayerShell, stamp_via
from cloudpbx.transport.tcp import TCPTransport
from cloudpbx.transport.udp import UDPTransport

__all__ = [
    "GC_MODES",
    "EndpointStats",
    "EventHandler",
    "SipEndpoint",
    "configure_gc",
    "event_loop_factory",
    "run",
    "stamp_via",
]

logger = logging.getLogger(__name__)

EventHandler = Callable[[TransactionEvent], None]
"""The transaction user: called once per event, synchronously; it may call back into the
endpoint (``send_response``, ``send_request`` ...), whose output goes out after it returns."""

_T = TypeVar("_T")

UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def event_loop_factory(
    prefer_uvloop: bool = True,
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when it is importable and wanted, else ``None`` (asyncio's).

    BENCHMARKING.md: a UDP echo costs ~21 µs of CPU on asyncio and ~5 µs on uvloop.
    """
    if not prefer_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, _T], *, prefer_uvloop: bool = True) -> _T:
    """``asyncio.run`` on uvloop when available (ENGINEERING.md §1)."""
    with asyncio.Runner(loop_factory=event_loop_factory(prefer_uvloop)) as runner:
        return runner.run(main)


GC_MODES = ("tuned", "default", "off")


def configure_gc(mode: str = "tuned") -> None:
    """The process's garbage-collector policy, for a SIP server's latency.

    ``tuned``: freeze what exists (imported modules, start-up state: out of every future
    scan) and make full collections rare (third threshold 1000 instead of 10). A full
    collection walks every object alive -- over UDP each call leaves its INVITE and BYE
    transactions for 64*T1 (Timers L and J), ~64,000 transactions at 1,000 calls/s -- and
    measured 150-300 ms there: long enough to overflow the socket buffer and push the
    response time p99 past 50 ms (bench/sip_uas_load.py). Reference counting frees the call
    path's objects (those collections found nothing to collect); young generations are
    still collected. ``off`` disables the collector (for measurements); ``default`` leaves
    CPython's settings.
    """
    if mode not in GC_MODES:
        raise ValueError(f"GC mode must be one of {GC_MODES}, not {mode!r}")
    if mode == "off":
        gc.disable()
    elif mode == "tuned":
        gc.collect()
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, 1000)


@dataclass(slots=True)
class EndpointStats:
    """Counters of one endpoint (all monotonic)."""

    received: int = 0  # messages handed up by the transports
    parse_errors: int = 0  # unparseable messages (answered 400/505/513 or dropped)
    stamped: int = 0  # requests whose top Via got received/rport
    sent: int = 0  # messages given to a transport
    send_errors: int = 0  # TransportError on send (reported to the layer)
    handler_errors: int = 0  # exceptions raised by the event handler (logged)


class SipEndpoint(LayerShell[TransactionEvent]):
    """One SIP endpoint: a transaction layer, its transports and its single timer.

    ``handler`` gets every :class:`~cloudpbx.sip.events.TransactionEvent`. The TU methods
    (``send_request``, ``send_response``, ``send_stateless``, ``cancel``, ``respond_487``)
    feed the layer with ``loop.time()`` and transmit at once -- or, when called from the
    handler, right after it returns. Must be used from the loop's thread only.
    """

    def __init__(
        self,
        handler: EventHandler | None = None,
        *,
        config: TimerConfig | None = None,
        max_server_transactions: int = 100_000,
        rate_limiter: RateLimiter | None = None,
        new_tag: Callable[[], str] | None = None,
    ) -> None:
        self.new_tag: Callable[[], str] = new_tag or (lambda: secrets.token_hex(6))
        self.layer = TransactionLayer(
            new_tag=self.new_tag,
            config=config,
            max_server_transactions=max_server_transactions,
        )
        super().__init__(self.layer, self.new_tag)
        self.transports = TransportSet()
        self.stats: EndpointStats = EndpointStats()
        self.on_flow_closed: Callable[[Flow], None] | None = None
        self._handler: EventHandler = handler or _ignore
        self._rate_limiter = rate_limiter
        self._udp: UDPTransport | None = None
        self._tcp: TCPTransport | None = None

    # --- set-up ----------------------------------------------------------------------------

    @property
    def handler(self) -> EventHandler:
        return self._handler

    @handler.setter
    def handler(self, handler: EventHandler) -> None:
        self._handler = handler

    @property
    def udp(self) -> UDPTransport | None:
        return self._udp

    async def listen_udp(
        self, host: str, port: int, *, receive_buffer: int | None = UDP_RECEIVE_BUFFER
    ) -> Address:
        """Bind a UDP socket (port 0 picks one); returns the bound address.

        ``receive_buffer`` sets SO_RCVBUF (the kernel caps it at ``net.core.rmem_max``):
        the default ~208 KiB holds a few hundred datagrams, a 100 ms pause of the loop at
        a few thousand datagrams/s -- a garbage collection -- and the kernel drops
        requests (``UdpRcvbufErrors``) that then come back as retransmissions.
        """
        udp = UDPTransport(self.sink, rate_limiter=self._rate_limiter)
        addr = await udp.listen(host, port, receive_buffer=receive_buffer)
        self._udp = udp
        self.add_transport(udp)
        return addr

    async def listen_tcp(self, host: str, port: int) -> Address:
        """Listen on TCP (port 0 picks one); returns the bound address."""
        return await self._bind_tcp(host, port)

    async def listen_udp_tcp(self, host: str, port: int, *, attempts: int = 8) -> Address:
        """UDP and TCP on one port number (RFC 3261 §18); returns the UDP address. With port 0
        the kernel's UDP pick may be taken on TCP (another process's ephemeral connection):
        then both are bound again on a new port."""
        for attempt in range(attempts):
            udp = UDPTransport(self.sink, rate_limiter=self._rate_limiter)
            addr = await udp.listen(host, port, receive_buffer=UDP_RECEIVE_BUFFER)
            try:
                await self._bind_tcp(host, addr[1])
            except OSError:
                udp.close()
                if port != 0 or attempt == attempts - 1:
                    raise
                continue
            self._udp = udp
            self.add_transport(udp)
            return addr
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _bind_tcp(self, host: str, port: int) -> Address:
        tcp = TCPTransport(self.sink, rate_limiter=self._rate_limiter, tag_factory=self.new_tag)
        addr = await tcp.listen(host, port)
        self._tcp = tcp
        self.add_transport(tcp)
        return addr

    def add_transport(self, transport: Transport) -> None:
        """Send through ``transport`` too (built with :meth:`sink` as its sink)."""
        self.transports.add(transport)

    async def flow_to(self, remote: Address, kind: TransportKind = TransportKind.UDP) -> Flow:
        """A flow to ``remote`` for a request we send: from our UDP socket, or over a TCP
        connection (an existing one or a new one, RFC 3261 §18.1.1, RFC 5923)."""
        if kind is TransportKind.UDP and self._udp is not None:
            return self._udp.flow_to(remote)
        if kind is TransportKind.TCP and self._tcp is not None:
            return await self._tcp.connect(remote)
        raise TransportError(f"no {kind.value} transport to reach {remote}")

    async def close(self) -> None:
        self._cancel_timer()
        self.transports.close()
        await self.transports.wait_closed()

    # --- identifiers (randomness lives in the shell, not in sip/) ----------------------------

    @staticmethod
    def new_branch() -> str:
        """An RFC 3261 §8.1.1.7 branch: the magic cookie and 64 random bits."""
        return MAGIC_COOKIE + secrets.token_hex(8)

    @staticmethod
    def new_call_id() -> str:
        return secrets.token_hex(12)

    def via_for(self, flow: Flow) -> str:
        """The Via value of a request we send on ``flow``, asking for ``rport`` (RFC 3581
        §3) and with a fresh branch."""
        host, port = flow.local
        host = f"[{host}]" if ":" in host else host
        return f"SIP/2.0/{flow.kind.value} {host}:{port};rport;branch={self.new_branch()}"

    # --- from the TU ---------------------------------------------------------------------

    def send_request(self, request: Request, flow: Flow) -> TransactionKey:
        """Start a client transaction (the top Via needs a fresh branch: :meth:`via_for`)."""
        key = self.layer.send_request(request, flow, self.loop.time(), reliable=flow.kind.reliable)
        self._pump()
        return key

    def send_response(self, response: Response, *, tx_key: TransactionKey | None = None) -> None:
        self.layer.send_response(response, self.loop.time(), tx_key=tx_key)
        self._pump()

    def send_stateless(self, message: Request | Response, flow: Flow) -> None:
        """Outside any transaction: the ACK for a 2xx (RFC 3261 §13.2.2.4)."""
        self.layer.send_stateless(message, flow)
        self._pump()

    def cancel(self, tx_key: TransactionKey) -> TransactionKey | None:
        key = self.layer.cancel(tx_key, self.loop.time())
        self._pump()
        return key

    def respond_487(
        self, cancel_key: TransactionKey, *, to_tag: str | None = None
    ) -> TransactionKey | None:
        key = self.layer.respond_487(cancel_key, self.loop.time(), to_tag=to_tag)
        self._pump()
        return key

    # --- LayerShell's hooks: where events and closed flows go ---------------------------------

    def _dispatch(self, event: TransactionEvent) -> None:
        try:
            self._handler(event)
        except Exception:
            self.stats.handler_errors += 1
            logger.exception("SIP event handler failed on %s", type(event).__name__)
            if isinstance(event, RequestReceived | CancelReceived):
                self._answer_500(event.request, event.tx_key)

    def _answer_500(self, request: Request, tx_key: TransactionKey) -> None:
        """RFC 3261 §21.5.1: a TU failure still ends the server transaction (an INVITE
        server transaction has no timer of its own while it waits for the TU)."""
        response = make_response(request, 500, to_tag=self.new_tag())
        with contextlib.suppress(TransactionStateError, UnknownTransactionError):
            self.layer.send_response(response, self.loop.time(), tx_key=tx_key)

    def _flow_closed(self, flow: Flow) -> None:
        if self.on_flow_closed is not None:
            self.on_flow_closed(flow)


def _ignore(event: TransactionEvent) -> None:
    """The default handler: a server that answers nothing (the layer still absorbs
    retransmissions and answers garbage)."""
