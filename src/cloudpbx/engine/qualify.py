"""Keep-alive and qualify of registered contacts (PRT-1), as Asterisk's ``qualify`` does.

Every ``interval`` seconds each binding gets an OPTIONS through the flow it registered on.
Any final response proves the phone is there (405 or 501 too: it answered), except 408; no
answer within ``timeout`` seconds, a 408, a transaction timeout or a transport error make the
contact *unavailable* (the B2BUA then does not ring it and a port with no available contact
is not available); the next answer makes it available again. On UDP the OPTIONS traffic also
keeps the phone's NAT binding open, so the registrar can reach it between registrations.

:class:`QualifySchedule` is the pure core: which probe is due, which timed out, what an
answer means; time is passed in. :class:`Qualifier` is the small shell: it follows the
registrar's changes, sends the OPTIONS through a :class:`SipClient` (the engine's SipStack,
or :class:`~cloudpbx.engine.registrar_service.EndpointClient` over a SipEndpoint) and
reports availability to the registrar. Its :meth:`Qualifier.tick` is called by the owner's
periodic timer (once a second), so it creates no timer or task itself.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cloudpbx.engine.location import Binding, BindingKey
from cloudpbx.engine.registrar import BindingChange, ChangeReason, Registrar
from cloudpbx.sip.headers import Headers
from cloudpbx.sip.message import Request, Response
from cloudpbx.sip.uri import parse_via
from cloudpbx.transport.base import Flow

__all__ = ["Due", "Qualifier", "QualifySchedule", "SipClient", "options_request"]

logger = logging.getLogger(__name__)


class _Kind(enum.Enum):
    PROBE = 1
    TIMEOUT = 2


@dataclass(slots=True)
class _Entry:
    generation: int  # heap items of older generations are stale (lazy deletion)
    probe: int = 0  # id of the latest probe sent
    sent_at: float | None = None  # set while that probe waits for an answer


@dataclass(frozen=True, slots=True)
class Due:
    """What :meth:`QualifySchedule.due` found: probes to send and probes that timed out."""

    probes: list[tuple[BindingKey, int]]  # (binding, probe id)
    failed: list[BindingKey]


class QualifySchedule:
    """When to send OPTIONS to each binding and what the answers mean (pure)."""

    def __init__(self, *, interval: float = 30.0, timeout: float = 5.0) -> None:
        if interval <= 0 or not 0 < timeout < interval:
            raise ValueError("need 0 < timeout < interval")
        self.interval = interval
        self.timeout = timeout
        self._entries: dict[BindingKey, _Entry] = {}
        self._heap: list[tuple[float, int, BindingKey, _Kind]] = []
        self._counter = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def track(self, key: BindingKey, now: float, *, delay: float | None = None) -> None:
        """Start probing ``key``: first after ``delay`` (default one interval)."""
        if key in self._entries:
            return
        entry = _Entry(generation=0)
        self._entries[key] = entry
        self._push(key, entry, now + (self.interval if delay is None else delay), _Kind.PROBE)

    def untrack(self, key: BindingKey) -> None:
        self._entries.pop(key, None)

    def next_deadline(self) -> float | None:
        while self._heap and not self._valid(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> Due:
        probes: list[tuple[BindingKey, int]] = []
        failed: list[BindingKey] = []
        while self._heap and self._heap[0][0] <= now:
            item = heapq.heappop(self._heap)
            if not self._valid(item):
                continue
            key, kind = item[2], item[3]
            entry = self._entries[key]
            if kind is _Kind.PROBE:
                entry.probe += 1
                entry.sent_at = now
                self._push(key, entry, now + self.timeout, _Kind.TIMEOUT)
                probes.append((key, entry.probe))
            else:
                failed.append(key)
                self._finish(key, entry, now)
        return Due(probes, failed)

    def answered(self, key: BindingKey, probe: int, now: float, status: int | None) -> bool | None:
        """A probe's outcome (``status`` None: transaction timeout or transport error).

        Returns the availability it proves, or ``None`` when it changes nothing: a result of
        a superseded probe, or a failure already counted when the probe timed out.
        """
        entry = self._entries.get(key)
        if entry is None or probe != entry.probe:
            return None
        alive = status is not None and status != 408
        if entry.sent_at is not None:
            self._finish(key, entry, now)
            return alive
        return True if alive else None  # a late answer still proves the phone is back

    def _finish(self, key: BindingKey, entry: _Entry, now: float) -> None:
        sent_at = entry.sent_at if entry.sent_at is not None else now
        entry.sent_at = None
        self._push(key, entry, max(now, sent_at + self.interval), _Kind.PROBE)

    def _push(self, key: BindingKey, entry: _Entry, at: float, kind: _Kind) -> None:
        self._counter += 1
        entry.generation = self._counter
        heapq.heappush(self._heap, (at, self._counter, key, kind))

    def _valid(self, item: tuple[float, int, BindingKey, _Kind]) -> bool:
        entry = self._entries.get(item[2])
        return entry is not None and entry.generation == item[1]


class SipClient(Protocol):
    """Sends an out-of-dialog request; the future gets the final response or ``None``
    (timeout, transport error). The engine's ``SipStack`` has exactly this shape."""

    def via_for(self, flow: Flow) -> str: ...

    def request(self, request: Request, flow: Flow) -> asyncio.Future[Response | None]: ...


_UNTRACK = frozenset(
    {
        ChangeReason.UNREGISTERED,
        ChangeReason.EXPIRED,
        ChangeReason.FLOW_CLOSED,
        ChangeReason.EVICTED,
        ChangeReason.REMOVED,
    }
)


def options_request(binding: Binding, via: str, *, user_agent: str) -> Request:
    """An OPTIONS to a contact (RFC 3261 §11.1): Request-URI and To are the contact, From
    names us at the host of our Via (the address the phone can reach us at)."""
    host = parse_via(via).host
    headers = Headers(
        [
            ("Via", via),
            ("Max-Forwards", 70),
            ("From", f"<sip:qualify@{host}>;tag={secrets.token_hex(6)}"),
            ("To", f"<{binding.uri}>"),
            ("Call-ID", secrets.token_hex(12)),
            ("CSeq", "1 OPTIONS"),
            ("Accept", "application/sdp"),
            ("User-Agent", user_agent),
        ]
    )
    return Request("OPTIONS", binding.uri, headers)


class Qualifier:
    """Sends the probes :class:`QualifySchedule` asks for and records what they find."""

    def __init__(
        self,
        registrar: Registrar,
        client: SipClient,
        *,
        interval: float = 30.0,
        timeout: float = 5.0,
        user_agent: str = "cloudpbx",
    ) -> None:
        self.registrar = registrar
        self.client = client
        self.schedule = QualifySchedule(interval=interval, timeout=timeout)
        self.user_agent = user_agent
        self.sent = 0
        self._clock: Callable[[], float] = registrar.clock
        registrar.listeners.append(self.on_change)

    def on_change(self, change: BindingChange) -> None:
        """Registrar listener: follow bindings as they come and go."""
        if change.reason in _UNTRACK:
            self.schedule.untrack(change.key)
        elif change.reason is ChangeReason.RESTORED:
            # Restored bindings are probed soon (spread out): a restart may have lost them.
            delay = (hash(change.key) % 1000) / 1000 * self.schedule.timeout
            self.schedule.track(change.key, self._clock(), delay=delay)
        elif change.binding is not None:
            self.schedule.track(change.key, self._clock())

    def tick(self, now: float) -> None:
        due = self.schedule.due(now)
        for key in due.failed:
            self.registrar.set_available(key, False)
        for key, probe in due.probes:
            self._probe(key, probe)

    def _probe(self, key: BindingKey, probe: int) -> None:
        binding = self.registrar.store.get(key)
        if binding is None:
            self.schedule.untrack(key)
            return
        via = self.client.via_for(binding.flow)
        request = options_request(binding, via, user_agent=self.user_agent)
        try:
            future = self.client.request(request, binding.flow)
        except Exception as exc:  # the transport refused at once (a closed connection)
            logger.warning("qualify %s failed: %s", binding.uri, exc)
            self._result(key, probe, None)
            return
        self.sent += 1
        future.add_done_callback(lambda f: self._done(key, probe, f))

    def _done(self, key: BindingKey, probe: int, future: asyncio.Future[Response | None]) -> None:
        response = None if future.cancelled() or future.exception() else future.result()
        self._result(key, probe, response.status if response is not None else None)

    def _result(self, key: BindingKey, probe: int, status: int | None) -> None:
        alive = self.schedule.answered(key, probe, self._clock(), status)
        if alive is not None:
            self.registrar.set_available(key, alive)
