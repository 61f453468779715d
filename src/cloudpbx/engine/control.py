"""The narrow interface between the API and the call engine (ENGINEERING.md §1, AC-1, PRT-1).

The API never touches SIP objects: it asks an :class:`EngineControl` for a client's active
calls, a live feed of their events, the registration state of its ports, and to hang up one
call. Every method takes the client id, so one client can never reach another's calls.

- :class:`LocalEngineControl` is the in-process implementation the engine runtime builds from
  its :class:`~cloudpbx.engine.active_calls.CallRegistry`, a hang-up function and a port-status
  function (the registrar's bindings).
- :class:`NoEngine` is what the API holds when no engine runs in its process (``cloudpbx api``
  alone, tests): lists are empty and say so (``running`` is False), a hang-up raises
  :class:`EngineNotRunningError` (the API answers 503), and a subscription ends at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cloudpbx.engine.active_calls import (
    DEFAULT_QUEUE,
    ActiveCall,
    CallFeed,
    CallRegistryProtocol,
    CallUpdate,
    Subscription,
)

__all__ = [
    "BindingLike",
    "ContactStatus",
    "EngineControl",
    "EngineNotRunningError",
    "LocalEngineControl",
    "NoEngine",
    "PortStatus",
    "port_status_of",
]


class EngineNotRunningError(RuntimeError):
    """A command that needs the engine, sent to an API without one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactStatus:
    """One registered contact of a port (PRT-1): where the phone is and whether it answers."""

    uri: str
    transport: str
    source: str
    expires_at_ms: int
    user_agent: str
    available: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PortStatus:
    """PRT-1: a port is *available* when at least one of its contacts is live."""

    port_id: int
    contacts: tuple[ContactStatus, ...] = ()

    @property
    def registered(self) -> bool:
        return bool(self.contacts)

    @property
    def available(self) -> bool:
        return any(c.available for c in self.contacts)


class BindingLike(Protocol):
    """What :func:`port_status_of` reads of a registrar binding (engine/location.py)."""

    @property
    def uri(self) -> str: ...
    @property
    def expires_at(self) -> float: ...
    @property
    def user_agent(self) -> str: ...
    @property
    def available(self) -> bool: ...
    @property
    def transport(self) -> object: ...
    @property
    def source(self) -> object: ...


def port_status_of(port_id: int, bindings: Iterable[BindingLike]) -> PortStatus:
    """A port's status from its registrar bindings (expiry in wall-clock seconds)."""
    contacts = tuple(
        ContactStatus(
            uri=b.uri,
            transport=str(getattr(b.transport, "value", b.transport)),
            source=_address(b.source),
            expires_at_ms=int(b.expires_at * 1000),
            user_agent=b.user_agent,
            available=b.available,
        )
        for b in bindings
    )
    return PortStatus(port_id=port_id, contacts=contacts)


def _address(source: object) -> str:
    if isinstance(source, tuple) and len(source) >= 2:
        host, port = source[0], source[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(source)


class EngineControl(Protocol):
    """What the API may ask of the engine (AC-1, PRT-1)."""

    @property
    def running(self) -> bool: ...

    async def active_calls(self, client_id: int) -> list[ActiveCall]: ...

    async def hangup(self, client_id: int, call_uuid: str) -> bool:
        """End the client's call; False when the client has no such call."""
        ...

    async def port_status(self, client_id: int) -> Mapping[int, PortStatus]: ...

    def subscribe(self, client_id: int, *, max_queue: int = DEFAULT_QUEUE) -> CallFeed: ...


HangupFn = Callable[[str], Awaitable[bool]]
PortStatusFn = Callable[[int], Mapping[int, PortStatus]]


class LocalEngineControl:
    """EngineControl over an engine in this process.

    ``hangup(uuid)`` is the engine's own call teardown (BYE/CANCEL both sides, CDR outcome);
    ``port_status(client_id)`` maps each of the client's ports to its status.
    """

    running = True

    def __init__(
        self, registry: CallRegistryProtocol, *, hangup: HangupFn, port_status: PortStatusFn
    ) -> None:
        self._registry = registry
        self._hangup = hangup
        self._port_status = port_status

    async def active_calls(self, client_id: int) -> list[ActiveCall]:
        return self._registry.list(client_id)

    async def hangup(self, client_id: int, call_uuid: str) -> bool:
        call = self._registry.get(call_uuid)
        if call is None or call.client_id != client_id:
            return False  # ADM-4: another client's call does not exist for this one
        return await self._hangup(call_uuid)

    async def port_status(self, client_id: int) -> Mapping[int, PortStatus]:
        return self._port_status(client_id)

    def subscribe(self, client_id: int, *, max_queue: int = DEFAULT_QUEUE) -> Subscription:
        return self._registry.subscribe(client_id, max_queue=max_queue)


class NoEngine:
    """The API's EngineControl when no engine runs in its process: honest empties."""

    running = False

    async def active_calls(self, client_id: int) -> list[ActiveCall]:
        return []

    async def hangup(self, client_id: int, call_uuid: str) -> bool:
        raise EngineNotRunningError("engine not running")

    async def port_status(self, client_id: int) -> Mapping[int, PortStatus]:
        return {}

    def subscribe(self, client_id: int, *, max_queue: int = DEFAULT_QUEUE) -> CallFeed:
        return _EmptyFeed()


class _EmptyFeed:
    """A feed that ends at once: without an engine no call event will ever come."""

    def __aiter__(self) -> _EmptyFeed:
        return self

    async def __anext__(self) -> CallUpdate:
        raise StopAsyncIteration

    def close(self) -> None:
        return None
