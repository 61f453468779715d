"""The asyncio shell shared by the SIP layers (ENGINEERING.md §3).

"The asyncio shell is small: feed the core with ``loop.time()``, drain events, transmit,
re-arm one timer." :class:`LayerShell` is that shell, once, for any sans-I/O SIP core with the
uniform interface (:class:`SipCore`: ``receive``, ``next_event``, ``datagrams_to_send``,
``get_timer``, ``handle_timer``, ``transport_error_for_address``).
:class:`~cloudpbx.transport.endpoint.SipEndpoint` runs it over the transaction layer and
:class:`~cloudpbx.engine.sipstack.SipStack` over the dialog layer; each says only where events
go (:meth:`LayerShell._dispatch`) and who hears of a closed flow
(:meth:`LayerShell._flow_closed`).

For every message a transport hands up the shell parses the bytes (garbage gets its 400,
RFC 3261 §21.4.1, or is dropped), stamps ``received``/``rport`` on a request's top Via
(RFC 3261 §18.2.1, RFC 3581 §4) and feeds the core. Nothing here creates a task: transports
call :meth:`LayerShell.sink` synchronously, and the timer is a single kept handle.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ipaddress
import logging
import math
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.message import Request, Response, bad_request_response, parse_message
from cloudpbx.sip.uri import Via
from cloudpbx.transport.base import (
    Address,
    Flow,
    FlowClosed,
    Received,
    SendFailed,
    TransportError,
    TransportEvent,
    TransportSet,
)

__all__ = ["LayerShell", "ShellStats", "SipCore", "stamp_via"]

logger = logging.getLogger(__name__)

EventT = TypeVar("EventT")
EventT_co = TypeVar("EventT_co", covariant=True)


class SipCore(Protocol[EventT_co]):
    """What the shell needs of a sans-I/O SIP layer (ENGINEERING.md §3)."""

    def receive(
        self, msg: Request | Response, addr: Any, now: float, *, reliable: bool | None = None
    ) -> None: ...

    def next_event(self) -> EventT_co | None: ...

    def datagrams_to_send(self, now: float | None = None) -> list[tuple[bytes, Any]]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...

    def transport_error_for_address(self, addr: Any, now: float) -> None: ...


class ShellStats(Protocol):
    """The counters the shell keeps (the owner's stats object may have more)."""

    received: int  # messages handed up by the transports
    parse_errors: int  # unparseable messages (answered 400/505/513 or dropped)
    stamped: int  # requests whose top Via got received/rport
    sent: int  # messages given to a transport
    send_errors: int  # TransportError on send (reported to the layer)


def _ip_text(host: str) -> str:
    """A Via host as an IP in canonical text form (hostnames are returned as they are)."""
    host = host.strip("[]")
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))
    return host


def stamp_via(request: Request, source: Address) -> bool:
    """Add ``received`` / ``rport`` to the request's top Via; True when it changed.

    RFC 3261 §18.2.1: ``received`` when the sent-by host is not the source IP. RFC 3581 §4:
    with an ``rport`` parameter, ``rport`` is set to the source port and ``received`` is
    added even when the addresses match. IPv6 ``received`` is written without brackets
    (RFC 3261 §20.42 grammar; RFC 5118 §4.5).
    """
    via = request.via[0]
    host, port = source
    rport = via.has_rport
    if not rport and (via.host == host or _ip_text(via.host) == host):
        return False  # the fast path: nothing to add, the message stays byte-exact
    stamped: Via = via.with_param("received", host)
    if rport:
        stamped = stamped.with_param("rport", str(port))
    request.headers.replace_first("via", str(stamped))
    return True


class LayerShell(abc.ABC, Generic[EventT]):
    """One SIP core, the transports it sends through and its single timer.

    Subclasses set ``transports`` and ``stats`` and implement :meth:`_dispatch`. TU methods
    feed the core with ``self.loop.time()`` and then call :meth:`_pump`: output goes out at
    once, or right after the handler returns when called from inside it. Use from the loop's
    thread only.
    """

    transports: TransportSet
    stats: ShellStats

    def __init__(self, core: SipCore[EventT], new_tag: Callable[[], str]) -> None:
        self._core = core
        self._new_tag = new_tag  # the To tag of a 400 answering garbage
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._pumping = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- what the subclass decides ----------------------------------------------------------

    @abc.abstractmethod
    def _dispatch(self, event: EventT) -> None:
        """Hand one event of the core to the application (called inside :meth:`_pump`)."""

    def _flow_closed(self, flow: Flow) -> None:
        """A connection ended (the core has already failed its transactions)."""

    # --- from the transports ----------------------------------------------------------------

    def sink(self, event: TransportEvent) -> None:
        """The transports' sink: called synchronously for each event."""
        if isinstance(event, Received):
            self._receive(event.data, event.flow, event.now)
        elif isinstance(event, FlowClosed):
            # RFC 3261 §17.1.4 / §17.2.4: transactions on a dead connection fail.
            self._core.transport_error_for_address(event.flow, event.now)
            self._flow_closed(event.flow)
        elif isinstance(event, SendFailed) and event.flow is not None:
            self._core.transport_error_for_address(event.flow, event.now)
        self._pump()

    def _receive(self, data: bytes, flow: Flow, now: float) -> None:
        self.stats.received += 1
        try:
            msg = parse_message(data)
        except ParseError as exc:
            # RFC 3261 §21.4.1 / RFC 4475: a 400 (505, 513) when a response can be built,
            # else a silent drop; the answer goes back the way the request came.
            self.stats.parse_errors += 1
            answer = bad_request_response(data, exc, to_tag=self._new_tag())
            if answer is not None:
                self._transmit(answer, flow, now)
            return
        if isinstance(msg, Request) and msg.method != "ACK" and stamp_via(msg, flow.remote):
            self.stats.stamped += 1  # an ACK gets no response: nothing to route back
        self._core.receive(msg, flow, now, reliable=flow.kind.reliable)

    # --- the pump: events out, bytes out, one timer -----------------------------------------

    def _pump(self) -> None:
        """Drain events to :meth:`_dispatch` and datagrams to the transports until both are
        empty, then re-arm the timer. Re-entrant calls (the handler sending) return at once:
        the outer loop picks up what they queued."""
        if self._pumping:
            return
        self._pumping = True
        core = self._core
        try:
            while True:
                event = core.next_event()
                if event is not None:
                    self._dispatch(event)
                    continue
                out = core.datagrams_to_send()
                if not out:
                    break
                now = self.loop.time()
                for data, flow in out:
                    self._transmit(data, flow, now)
        finally:
            self._pumping = False
        self._rearm()

    def _transmit(self, data: bytes, flow: Flow, now: float) -> None:
        try:
            self.transports.send(data, flow)
        except TransportError as exc:
            # RFC 3261 §18.4: report the failure to the transaction layer.
            self.stats.send_errors += 1
            logger.debug("send to %s failed: %s", flow, exc)
            self._core.transport_error_for_address(flow, now)
        else:
            self.stats.sent += 1

    def _rearm(self) -> None:
        """Keep ONE timer handle, at or before the core's next deadline. A later deadline
        keeps the earlier handle (it fires, finds little to do, and re-arms): cheaper than
        cancelling and re-creating a handle per message."""
        deadline = self._core.get_timer()
        if deadline is None or deadline >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        due = self._timer_at
        self._timer = None
        self._timer_at = math.inf
        # call_at may run a hair early (the loop's clock resolution): the deadline is due.
        self._core.handle_timer(max(self.loop.time(), due))
        self._pump()
