"""Active calls (AC-1): what is up right now, per client, and a live feed of changes.

The B2BUA tells the :class:`CallRegistry` when a call starts (:meth:`CallRegistry.add`), when
its state or legs change (:meth:`CallRegistry.update`) and when it ends
(:meth:`CallRegistry.remove`). The API lists a client's calls and streams their events through
:mod:`cloudpbx.engine.control`, never touching SIP objects (ENGINEERING.md §1).

:class:`CallRegistry` is the in-process implementation of :class:`CallRegistryProtocol`; a Redis
one (a hash per client plus pub/sub) can sit behind the same protocol when engine and API nodes
are separate processes.

Subscribers get events through a bounded queue each. The engine never waits for a subscriber:
a subscriber whose queue is full is dropped (its iterator raises
:class:`SubscriberDroppedError`) and may subscribe again — a slow browser costs its own
stream, never a call. Publishing is safe from any thread: an event for a subscriber on another
event loop is handed over with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal, Protocol

__all__ = [
    "ActiveCall",
    "ActiveLeg",
    "CallFeed",
    "CallRegistry",
    "CallRegistryProtocol",
    "CallState",
    "CallUpdate",
    "SubscriberDroppedError",
    "Subscription",
    "event_kind",
]

DEFAULT_QUEUE = 256
"""Events a subscriber may lag behind before it is dropped."""


class CallState(StrEnum):
    RINGING = "ringing"
    ANSWERED = "answered"
    HELD = "held"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveLeg:
    """One SIP dialog of an active call: who is on it and through which port."""

    leg_id: str
    direction: Literal["in", "out"]
    party: str
    port_id: int | None = None
    state: CallState = CallState.RINGING


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveCall:
    """A call while it lasts (AC-1); immutable, updates replace it. Times are epoch ms."""

    uuid: str
    client_id: int
    caller: str
    called: str
    internal_number: str | None
    state: CallState = CallState.RINGING
    start_ms: int
    answer_ms: int | None = None
    legs: tuple[ActiveLeg, ...] = ()

    def with_leg(self, leg: ActiveLeg) -> ActiveCall:
        """This call with ``leg`` added, or replacing the leg of the same id."""
        others = tuple(x for x in self.legs if x.leg_id != leg.leg_id)
        return replace(self, legs=(*others, leg))

    def without_leg(self, leg_id: str) -> ActiveCall:
        return replace(self, legs=tuple(x for x in self.legs if x.leg_id != leg_id))

    def to_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "client_id": self.client_id,
            "caller": self.caller,
            "called": self.called,
            "internal_number": self.internal_number,
            "state": self.state.value,
            "start_ms": self.start_ms,
            "answer_ms": self.answer_ms,
            "legs": [
                {
                    "leg_id": leg.leg_id,
                    "direction": leg.direction,
                    "party": leg.party,
                    "port_id": leg.port_id,
                    "state": leg.state.value,
                }
                for leg in self.legs
            ],
        }


EventKind = Literal["started", "answered", "held", "resumed", "updated", "ended"]


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """One change of one call, as subscribers receive it."""

    kind: EventKind
    call: ActiveCall


def event_kind(before: ActiveCall, after: ActiveCall) -> EventKind:
    """Name a state change: answered, held, resumed, or just updated (legs, numbers)."""
    if before.state is after.state:
        return "updated"
    if after.state is CallState.ANSWERED:
        return "resumed" if before.state is CallState.HELD else "answered"
    if after.state is CallState.HELD:
        return "held"
    return "updated"


class SubscriberDroppedError(Exception):
    """The subscriber fell more than its queue size behind and was cut off."""


_DROPPED: Any = object()
_CLOSED: Any = object()


class Subscription:
    """An async iterator of one client's :class:`CallUpdate` s; ``close()`` when done."""

    def __init__(self, registry: CallRegistry, client_id: int, max_queue: int) -> None:
        self.client_id = client_id
        self.dropped = False
        self._registry = registry
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._max = max_queue
        self._closed = False

    def __aiter__(self) -> AsyncIterator[CallUpdate]:
        return self

    async def __anext__(self) -> CallUpdate:
        item = await self._queue.get()
        if item is _DROPPED:
            raise SubscriberDroppedError(f"more than {self._max} call events behind")
        if item is _CLOSED:
            raise StopAsyncIteration
        update: CallUpdate = item
        return update

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._registry.unsubscribe(self)
            self._deliver(_CLOSED)

    def publish(self, update: CallUpdate) -> None:
        """Called by the registry from any thread; never blocks."""
        self._deliver(update)

    def _deliver(self, item: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._put(item)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._put, item)

    def _put(self, item: Any) -> None:
        if self.dropped:
            return
        if item is not _CLOSED and self._queue.qsize() >= self._max:
            # AC-1: the engine never waits for a slow reader; the reader loses its stream.
            self.dropped = True
            self._registry.unsubscribe(self)
            self._drain()
            item = _DROPPED
        self._queue.put_nowait(item)

    def _drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()


class CallFeed(Protocol):
    """A live feed of call updates (a :class:`Subscription`, or an empty one); close it."""

    def __aiter__(self) -> AsyncIterator[CallUpdate]: ...
    async def __anext__(self) -> CallUpdate: ...
    def close(self) -> None: ...


class CallRegistryProtocol(Protocol):
    """What the engine writes and the API reads; in-process or shared (Redis)."""

    def add(self, call: ActiveCall) -> None: ...
    def update(self, call: ActiveCall) -> None: ...
    def remove(self, uuid: str) -> ActiveCall | None: ...
    def get(self, uuid: str) -> ActiveCall | None: ...
    def list(self, client_id: int) -> list[ActiveCall]: ...
    def subscribe(self, client_id: int, *, max_queue: int = DEFAULT_QUEUE) -> Subscription: ...


class CallRegistry:
    """The in-process active-call registry (AC-1): calls by uuid, grouped by client."""

    def __init__(self) -> None:
        self._calls: dict[str, ActiveCall] = {}
        self._by_client: dict[int, dict[str, ActiveCall]] = {}
        self._subscribers: dict[int, set[Subscription]] = {}
        # The engine writes from its loop; the API (or a test) may read from another thread.
        self._lock = threading.Lock()

    def add(self, call: ActiveCall) -> None:
        """A new call; publishes ``started``. Adding a known uuid is an update."""
        with self._lock:
            before = self._calls.get(call.uuid)
            self._store(call)
        self._publish(CallUpdate("started" if before is None else event_kind(before, call), call))

    def update(self, call: ActiveCall) -> None:
        """A changed call (state, answer time, legs); unknown uuids are ignored."""
        with self._lock:
            before = self._calls.get(call.uuid)
            if before is None:
                return
            self._store(call)
        self._publish(CallUpdate(event_kind(before, call), call))

    def remove(self, uuid: str) -> ActiveCall | None:
        """The call ended; publishes ``ended`` with its last state and returns it."""
        with self._lock:
            call = self._calls.pop(uuid, None)
            if call is None:
                return None
            calls = self._by_client.get(call.client_id, {})
            calls.pop(uuid, None)
            if not calls:
                self._by_client.pop(call.client_id, None)
        self._publish(CallUpdate("ended", call))
        return call

    def get(self, uuid: str) -> ActiveCall | None:
        return self._calls.get(uuid)

    def list(self, client_id: int) -> list[ActiveCall]:
        """The client's calls, oldest first."""
        with self._lock:
            calls = list(self._by_client.get(client_id, {}).values())
        return sorted(calls, key=lambda c: (c.start_ms, c.uuid))

    def count(self, client_id: int | None = None) -> int:
        if client_id is None:
            return len(self._calls)
        return len(self._by_client.get(client_id, ()))

    def subscribe(self, client_id: int, *, max_queue: int = DEFAULT_QUEUE) -> Subscription:
        """A live feed of the client's call events; must be created inside an event loop."""
        subscription = Subscription(self, client_id, max_queue)
        with self._lock:
            self._subscribers.setdefault(client_id, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(subscription.client_id)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    self._subscribers.pop(subscription.client_id, None)

    def subscriber_count(self, client_id: int) -> int:
        return len(self._subscribers.get(client_id, ()))

    def _store(self, call: ActiveCall) -> None:
        self._calls[call.uuid] = call
        self._by_client.setdefault(call.client_id, {})[call.uuid] = call

    def _publish(self, update: CallUpdate) -> None:
        subs = self._subscribers.get(update.call.client_id)
        if not subs:
            return
        with self._lock:
            targets = list(subs)
        for subscription in targets:
            subscription.publish(update)
