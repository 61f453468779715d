"""The asyncio shell of the registrar (PRT-1): wiring, one periodic timer, persistence.

:class:`RegistrarService` owns no socket. Whoever owns the SIP stack hands it REGISTER
requests (:meth:`RegistrarService.on_request` with a ``respond`` callback) and closed flows
(:meth:`RegistrarService.on_flow_closed`); it sends qualify OPTIONS through a
:class:`~cloudpbx.engine.qualify.SipClient`. With the engine's ``SipStack``::

    service = RegistrarService(registrar, stack, db=RegistrationDb(sessions))
    service.attach(stack)                      # REGISTER handler + flow-closed hook
    await service.start(udp_flow_to=stack.udp_flow_to)
    ...
    await service.stop()

Once a second (``tick_interval``) the timer sweeps expired bindings and runs qualify.
UDP bindings are written to the ``registrations`` table off the event loop (the default
executor), batched and coalesced: while one batch is written, the next accumulates the latest
state of each binding. At start, the stored ones that have not expired are restored onto the
current UDP socket (``udp_flow_to``), and qualify probes them soon.

:class:`RegistrarServer` is a stand-alone registrar over a
:class:`~cloudpbx.transport.endpoint.SipEndpoint` (UDP + TCP), for tests and tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from cloudpbx.engine.location import Binding, BindingKey
from cloudpbx.engine.qualify import Qualifier, SipClient
from cloudpbx.engine.registrar import BindingChange, ChangeReason, Registrar
from cloudpbx.engine.registration_db import RegistrationDb, StoredRegistration
from cloudpbx.sip.events import (
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from cloudpbx.sip.message import Request, Response, make_response
from cloudpbx.transport.base import Address, Flow, TransportKind
from cloudpbx.transport.endpoint import SipEndpoint

__all__ = ["EndpointClient", "RegistrarServer", "RegistrarService"]

logger = logging.getLogger(__name__)

Respond = Callable[[Response], None]
FlowFactory = Callable[[Address], Flow]

_NOT_PERSISTED = frozenset(
    {ChangeReason.AVAILABLE, ChangeReason.UNAVAILABLE, ChangeReason.RESTORED}
)


class _Stack(Protocol):
    """What :meth:`RegistrarService.attach` needs of the engine's SipStack."""

    flow_closed_handlers: list[Callable[[Flow], None]]

    def on_request(self, method: str, handler: Callable[[RequestReceived], None]) -> None: ...

    def send_response(self, response: Response, tx_key: TransactionKey) -> None: ...


class _Persister:
    """Write-behind of UDP bindings: at most one batch in the executor at a time."""

    def __init__(self, db: RegistrationDb, *, retry_after: float = 1.0) -> None:
        self.db = db
        self.retry_after = retry_after
        self.batches = 0
        self._pending: dict[BindingKey, Binding | None] = {}
        self._running: asyncio.Future[None] | None = None

    def on_change(self, change: BindingChange) -> None:
        if change.reason in _NOT_PERSISTED:
            return
        now_udp = change.binding is not None and change.binding.transport is TransportKind.UDP
        was_udp = change.previous is not None and change.previous.transport is TransportKind.UDP
        if now_udp or was_udp:
            self._pending[change.key] = change.binding if now_udp else None
            self._schedule()

    def _schedule(self) -> None:
        if self._running is not None or not self._pending:
            return
        batch = list(self._pending.items())
        self._pending = {}
        loop = asyncio.get_running_loop()
        self._running = loop.run_in_executor(None, self.db.write, batch)
        self._running.add_done_callback(lambda f: self._written(f, batch))

    def _written(
        self, future: asyncio.Future[None], batch: list[tuple[BindingKey, Binding | None]]
    ) -> None:
        self._running = None
        if future.cancelled() or future.exception() is not None:
            logger.error("writing %d registrations failed: %r", len(batch), future.exception())
            for key, binding in batch:  # keep what changed since: it is newer
                self._pending.setdefault(key, binding)
            asyncio.get_running_loop().call_later(self.retry_after, self._schedule)
            return
        self.batches += 1
        self._schedule()

    async def drain(self) -> None:
        """Wait until every change so far is written (or gave up after one more try)."""
        for _ in range(3):
            if self._running is None:
                self._schedule()
            if self._running is None:
                return
            with contextlib.suppress(Exception):
                await asyncio.shield(self._running)


class RegistrarService:
    """REGISTER handling, expiry sweep, qualify and persistence around one Registrar."""

    def __init__(
        self,
        registrar: Registrar,
        client: SipClient | None,
        *,
        db: RegistrationDb | None = None,
        qualify_interval: float | None = 30.0,
        qualify_timeout: float = 5.0,
        tick_interval: float = 1.0,
        user_agent: str = "cloudpbx",
    ) -> None:
        self.registrar = registrar
        self.db = db
        self.tick_interval = tick_interval
        self.qualifier: Qualifier | None = None
        if client is not None and qualify_interval:
            self.qualifier = Qualifier(
                registrar,
                client,
                interval=qualify_interval,
                timeout=qualify_timeout,
                user_agent=user_agent,
            )
        self.persister = _Persister(db) if db is not None else None
        if self.persister is not None:
            registrar.listeners.append(self.persister.on_change)
        self._timer: asyncio.TimerHandle | None = None

    # --- wiring ------------------------------------------------------------------------------

    def on_request(self, request: Request, flow: Flow, respond: Respond) -> None:
        """A request routed here (REGISTER; anything else gets 405)."""
        if request.method != "REGISTER":
            respond(self.registrar.reply(request, 405, headers=[("Allow", "REGISTER")]))
            return
        respond(self.registrar.handle_register(request, flow, self.registrar.clock()))

    def on_flow_closed(self, flow: Flow) -> None:
        self.registrar.flow_closed(flow)

    def attach(self, stack: _Stack) -> None:
        """Take REGISTER requests and closed flows from the engine's SipStack."""

        def on_register(event: RequestReceived) -> None:
            def respond(response: Response) -> None:
                stack.send_response(response, event.tx_key)

            self.on_request(event.request, event.addr, respond)

        stack.on_request("REGISTER", on_register)
        stack.flow_closed_handlers.append(self.on_flow_closed)

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self, *, udp_flow_to: FlowFactory | None = None) -> int:
        """Restore persisted UDP bindings (when a db and a flow factory are given) and start
        the timer; returns how many bindings were restored."""
        restored = 0
        if self.db is not None and udp_flow_to is not None:
            now = self.registrar.clock()
            rows = await asyncio.get_running_loop().run_in_executor(None, self.db.load, now)
            bindings = [_binding(row, udp_flow_to) for row in rows]
            restored = self.registrar.restore(bindings, now)
            logger.info("restored %d of %d stored registrations", restored, len(rows))
        self._arm()
        return restored

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.persister is not None:
            await self.persister.drain()

    def tick(self) -> None:
        """Sweep expired bindings and run qualify (the timer calls it; tests may too)."""
        now = self.registrar.clock()
        self.registrar.sweep(now)
        if self.qualifier is not None:
            self.qualifier.tick(now)

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.tick_interval, self._on_timer)

    def _on_timer(self) -> None:
        try:
            self.tick()
        except Exception:
            logger.exception("registrar tick failed")
        self._arm()


def _binding(row: StoredRegistration, udp_flow_to: FlowFactory) -> Binding:
    return Binding(
        port_id=row.port_id,
        client_id=row.client_id,
        uri=row.uri,
        flow=udp_flow_to(row.source),
        expires_at=row.expires_at,
        call_id=row.call_id,
        cseq=row.cseq,
        user_agent=row.user_agent,
    )


# --- over a SipEndpoint -------------------------------------------------------------------------


def _client_key(request: Request) -> TransactionKey:
    """RFC 3261 §17.1.3: a client transaction is its top Via branch and its method."""
    return TransactionKey(request.via[0].branch or "", "", request.method, False)


class EndpointClient:
    """A :class:`~cloudpbx.engine.qualify.SipClient` over a SipEndpoint: feed it the
    endpoint's events (:meth:`handle_event`) and it resolves the futures of its requests."""

    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self._waiting: dict[TransactionKey, asyncio.Future[Response | None]] = {}

    def via_for(self, flow: Flow) -> str:
        return self.endpoint.via_for(flow)

    def request(self, request: Request, flow: Flow) -> asyncio.Future[Response | None]:
        future: asyncio.Future[Response | None] = self.endpoint.loop.create_future()
        # Registered before sending: a transport error is reported while sending.
        self._waiting[_client_key(request)] = future
        self.endpoint.send_request(request, flow)
        return future

    def handle_event(self, event: TransactionEvent) -> bool:
        """Resolve a waiting request; True when the event was one of ours."""
        if isinstance(event, ResponseReceived):
            if event.tx_key not in self._waiting:
                return False
            if event.response.status >= 200:
                self._resolve(event.tx_key, event.response)
            return True
        failed = isinstance(event, TransactionTimeout | TransportError | TransactionTerminated)
        if failed and event.tx_key in self._waiting:
            self._resolve(event.tx_key, None)
            return True
        return False

    def _resolve(self, key: TransactionKey, response: Response | None) -> None:
        future = self._waiting.pop(key)
        if not future.done():
            future.set_result(response)


class RegistrarServer:
    """A stand-alone registrar on its own SipEndpoint (UDP and TCP on one port number)."""

    def __init__(
        self,
        registrar: Registrar,
        *,
        db: RegistrationDb | None = None,
        qualify_interval: float | None = 30.0,
        qualify_timeout: float = 5.0,
        tick_interval: float = 1.0,
    ) -> None:
        self.endpoint = SipEndpoint(self._handle)
        self.client = EndpointClient(self.endpoint)
        self.service = RegistrarService(
            registrar,
            self.client,
            db=db,
            qualify_interval=qualify_interval,
            qualify_timeout=qualify_timeout,
            tick_interval=tick_interval,
        )
        self.endpoint.on_flow_closed = self.service.on_flow_closed

    @property
    def registrar(self) -> Registrar:
        return self.service.registrar

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, tcp: bool = True) -> Address:
        """Listen (UDP, and TCP on the same port number) and start; returns the address."""
        if tcp:
            addr = await self.endpoint.listen_udp_tcp(host, port)
        else:
            addr = await self.endpoint.listen_udp(host, port)
        udp = self.endpoint.udp
        assert udp is not None
        await self.service.start(udp_flow_to=udp.flow_to)
        return addr

    async def close(self) -> None:
        await self.service.stop()
        await self.endpoint.close()

    def _handle(self, event: TransactionEvent) -> None:
        if self.client.handle_event(event) or not isinstance(event, RequestReceived):
            return
        request, key = event.request, event.tx_key

        def respond(response: Response) -> None:
            self.endpoint.send_response(response, tx_key=key)

        if request.method == "OPTIONS":
            response = make_response(request, 200, to_tag=self.endpoint.new_tag())
            response.headers.add("Allow", "OPTIONS, REGISTER")
            respond(response)
        else:
            self.service.on_request(request, event.addr, respond)
