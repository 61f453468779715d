"""The location service: where each port's phones can be reached (PRT-1, RFC 3261 §10.3).

A :class:`Binding` is one registered contact of one port together with the *flow* its
REGISTER came on: requests to the phone go back through that flow (the UDP source address
and port, i.e. ``received``/``rport``, or the very TCP/TLS/WS connection), which is what
gets them through NAT (RFC 5626 §5.2 in spirit, without requiring ``outbound`` support).

:class:`LocationStore` is the protocol the registrar writes through; :class:`MemoryLocationStore`
is the one-process implementation. The protocol only speaks values (bindings keyed by
``(port_id, uri)``) and has no iteration-order or identity promises, so a Redis hash per
port plus a sorted set of expiry times can implement it too (ENGINEERING.md §1).

Times are wall-clock seconds (``time.time()``), injected by the caller: expiry times are
persisted for UDP bindings and must mean the same after a restart.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from cloudpbx.transport.base import Address, Flow, TransportKind

__all__ = ["Binding", "BindingKey", "LocationStore", "MemoryLocationStore"]

BindingKey = tuple[int, str]
"""``(port_id, contact uri)``: a binding's identity (RFC 3261 §10.3 step 7 compares URIs)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """One contact of one port (RFC 3261 §10.3): immutable; updates replace it."""

    port_id: int
    client_id: int
    uri: str  # the Contact URI as the phone registered it
    flow: Flow  # how to reach it: the flow the REGISTER came on
    expires_at: float  # wall-clock seconds
    call_id: str  # RFC 3261 §10.3 step 7: ordering of updates within one Call-ID
    cseq: int
    user_agent: str = ""
    q: float | None = None  # contact preference (RFC 3261 §20.10)
    available: bool = True  # False while qualify gets no answer

    @property
    def key(self) -> BindingKey:
        return (self.port_id, self.uri)

    @property
    def source(self) -> Address:
        """The address the REGISTER came from (after NAT)."""
        return self.flow.remote

    @property
    def transport(self) -> TransportKind:
        return self.flow.kind

    def expires_in(self, now: float) -> int:
        """Whole seconds left, never negative (what a 200 to REGISTER announces)."""
        return max(0, int(self.expires_at - now + 0.5))


class LocationStore(Protocol):
    """Bindings by port; one writer (the registrar), any number of readers."""

    def bindings(self, port_id: int) -> list[Binding]:
        """Every stored binding of the port, expired ones included (the caller filters)."""
        ...

    def get(self, key: BindingKey) -> Binding | None: ...

    def put(self, binding: Binding) -> None:
        """Add or replace the binding with the same key."""
        ...

    def remove(self, key: BindingKey) -> Binding | None: ...

    def remove_flow(self, flow: Flow) -> list[Binding]:
        """Drop and return the bindings reached through ``flow`` (a closed connection)."""
        ...

    def pop_expired(self, now: float) -> list[Binding]:
        """Drop and return the bindings whose expiry time is not after ``now``."""
        ...

    def all(self) -> Iterator[Binding]: ...

    def __len__(self) -> int: ...


class MemoryLocationStore:
    """In-process :class:`LocationStore`: dicts plus an expiry heap (lazy deletion)."""

    def __init__(self) -> None:
        self._ports: dict[int, dict[str, Binding]] = {}
        self._by_flow: dict[Flow, set[BindingKey]] = {}
        self._expiry: list[tuple[float, int, str]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def bindings(self, port_id: int) -> list[Binding]:
        return list(self._ports.get(port_id, {}).values())

    def get(self, key: BindingKey) -> Binding | None:
        return self._ports.get(key[0], {}).get(key[1])

    def all(self) -> Iterator[Binding]:
        for port in list(self._ports.values()):
            yield from list(port.values())

    def put(self, binding: Binding) -> None:
        old = self._detach(binding.key)
        port = self._ports.setdefault(binding.port_id, {})
        port[binding.uri] = binding
        self._count += 1
        if binding.flow.kind.reliable:
            self._by_flow.setdefault(binding.flow, set()).add(binding.key)
        if old is None or old.expires_at != binding.expires_at:
            heapq.heappush(self._expiry, (binding.expires_at, binding.port_id, binding.uri))

    def remove(self, key: BindingKey) -> Binding | None:
        return self._detach(key)

    def remove_flow(self, flow: Flow) -> list[Binding]:
        keys = self._by_flow.pop(flow, set())
        removed = [self._detach(key) for key in sorted(keys)]
        return [b for b in removed if b is not None]

    def pop_expired(self, now: float) -> list[Binding]:
        expired: list[Binding] = []
        heap = self._expiry
        while heap and heap[0][0] <= now:
            at, port_id, uri = heapq.heappop(heap)
            binding = self.get((port_id, uri))
            # Lazy deletion: a heap entry is stale once the binding moved or went away.
            if binding is not None and binding.expires_at == at:
                self._detach(binding.key)
                expired.append(binding)
        return expired

    def _detach(self, key: BindingKey) -> Binding | None:
        port = self._ports.get(key[0])
        binding = port.pop(key[1], None) if port is not None else None
        if binding is None:
            return None
        self._count -= 1
        if port is not None and not port:
            del self._ports[key[0]]
        keys = self._by_flow.get(binding.flow)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_flow[binding.flow]
        return binding
