"""The registrar (PRT-1, RFC 3261 §10.3), sans-I/O: a REGISTER in, a response out.

``Registrar.handle_register(request, flow, now) -> Response`` authenticates the request with
Digest (:mod:`cloudpbx.sip.auth`: stateless HMAC nonces, MD5 / SHA-256, ``stale``, the same
answer for an unknown login as for a wrong password) against the port whose SIP login is the
digest username. Logins are unique in the installation, so the domain the phone puts in its
URIs (often just the server's IP address) plays no part: there is one realm. A disabled port
is refused like a wrong password (403).

The binding rules are RFC 3261 §10.3 steps 6-8: several contacts per port; the expiry of a
contact is its ``expires`` parameter, else the ``Expires`` header, else ``default_expires``;
0 removes it; below ``min_expires`` the whole request fails with 423 and ``Min-Expires``;
above ``max_expires`` it is clamped; ``Contact: *`` with ``Expires: 0`` removes every
binding; an update with the Call-ID of an existing binding and a CSeq not higher than its
own fails (500) and changes nothing (updates are all-or-nothing). The 200 lists every current
binding with its remaining time.

Each binding remembers the :class:`~cloudpbx.transport.base.Flow` its REGISTER came on;
requests to the phone go through it (NAT). ``flow_closed(flow)`` drops the bindings of a
closed TCP/TLS/WS connection, ``sweep(now)`` the expired ones, ``set_available`` records
what qualify (:mod:`cloudpbx.engine.qualify`) found. Every change is reported to
``listeners`` as a :class:`BindingChange` (persistence of UDP bindings, port status).

Time is wall-clock seconds, passed in (``now``) or read from the injected ``clock`` by the
read-only queries; randomness (nonces, tags) comes from the injected ``rand``.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from email.utils import formatdate
from typing import Protocol

from cloudpbx.engine.location import Binding, BindingKey, LocationStore
from cloudpbx.sip.auth import (
    Algorithm,
    Authorization,
    AuthOutcome,
    AuthParseError,
    Credentials,
    DigestServer,
    RandomSource,
)
from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.headers import HeaderValue
from cloudpbx.sip.message import Request, Response, make_response
from cloudpbx.sip.uri import NameAddr, SipURI, Star
from cloudpbx.transport.base import Flow

__all__ = [
    "BindingChange",
    "ChangeReason",
    "ContactStatus",
    "PortCredentials",
    "PortDirectory",
    "PortStatus",
    "Registrar",
]


class PortCredentials(Protocol):
    """What the registrar needs of a port (engine/snapshot.py ``PortInfo`` has it)."""

    @property
    def id(self) -> int: ...
    @property
    def client_id(self) -> int: ...
    @property
    def login(self) -> str: ...
    @property
    def secret(self) -> str: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def is_active(self) -> bool: ...


class PortDirectory(Protocol):
    """Ports by SIP login (unique in the installation); the snapshot store implements it."""

    def port_by_login(self, login: str) -> PortCredentials | None: ...


class ChangeReason(enum.Enum):
    REGISTERED = "registered"  # a new contact
    REFRESHED = "refreshed"  # an existing contact registered again (new expiry or flow)
    UNREGISTERED = "unregistered"  # expires=0 or Contact: *
    EXPIRED = "expired"
    FLOW_CLOSED = "flow_closed"  # its TCP/TLS/WS connection closed (RFC 5626 §5.2)
    EVICTED = "evicted"  # pushed out by newer contacts beyond max_contacts
    REMOVED = "removed"  # the port was deleted or disabled
    AVAILABLE = "available"  # qualify got an answer again
    UNAVAILABLE = "unavailable"  # qualify got none
    RESTORED = "restored"  # loaded from the database at start


@dataclass(frozen=True, slots=True)
class BindingChange:
    """One change of the location service; ``binding`` is ``None`` when it was removed."""

    key: BindingKey
    binding: Binding | None
    reason: ChangeReason
    previous: Binding | None = None


@dataclass(frozen=True, slots=True)
class ContactStatus:
    """One contact as the API shows it."""

    uri: str
    source: str  # host:port the REGISTER came from
    transport: str
    expires_in: int
    user_agent: str
    available: bool


@dataclass(frozen=True, slots=True)
class PortStatus:
    """A port's availability (PRT-1: available = a live, answering registration)."""

    registered: bool
    available: bool
    contacts: tuple[ContactStatus, ...]


class _RegisterFailedError(Exception):
    """A REGISTER that fails as a whole (RFC 3261 §10.3: nothing is changed)."""

    def __init__(
        self, status: int, reason: str | None = None, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = headers


@dataclass(frozen=True, slots=True)
class _Update:
    uri: str  # the binding key (the parsed URI rendered canonically)
    expires: int  # 0 = remove
    q: float | None = None


_DEFAULT_ALGORITHMS = (Algorithm.MD5,)


class Registrar:
    """The registrar and location service of one installation (see the module docstring)."""

    def __init__(
        self,
        ports: PortDirectory,
        store: LocationStore,
        *,
        realm: str,
        nonce_key: bytes,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_contacts: int = 10,
        nonce_ttl: float = 300.0,
        rand: RandomSource = os.urandom,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < min_expires <= default_expires <= max_expires:
            raise ValueError("need 0 < min_expires <= default_expires <= max_expires")
        self.ports = ports
        self.store = store
        self.realm = realm
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_contacts = max_contacts
        self.digest = DigestServer(realm, nonce_key, nonce_ttl, rand=rand)
        self.listeners: list[Callable[[BindingChange], None]] = []
        self._rand = rand
        self.clock = clock

    # --- REGISTER ---------------------------------------------------------------------------

    def handle_register(self, request: Request, flow: Flow, now: float) -> Response:
        """The final response to ``request`` (a REGISTER that arrived on ``flow``)."""
        try:
            port = self._admit(request, now)
            updates = self._updates(port, request, now)
            changes = self._apply(port, request, flow, now, updates)
        except _RegisterFailedError as rejected:
            return self.reply(request, rejected.status, rejected.reason, rejected.headers)
        except ParseError as exc:
            # A header only the registrar reads (Expires, a contact parameter) is malformed.
            return self.reply(request, 400, exc.reason_phrase)
        self._emit(changes)
        return self._ok(request, port.id, now)

    def _admit(self, request: Request, now: float) -> PortCredentials:
        if not isinstance(request.uri, SipURI):
            raise _RegisterFailedError(416)  # RFC 3261 §10.3 step 1 / §8.2.2.1
        required = request.headers.values("require")
        if required:  # §10.3 step 2 / §8.2.2.3: we support no extension
            raise _RegisterFailedError(420, headers=[("Unsupported", tag) for tag in required])
        return self._authenticate(request, now)

    def _authenticate(self, request: Request, now: float) -> PortCredentials:
        """RFC 3261 §10.3 step 3, §22.4: the port the credentials prove, or a rejection."""
        result = None
        for value in request.headers.get_all("authorization"):
            result = self.digest.verify(
                request.method, value, now, self._credentials, body=request.body
            )
            if result.ok and result.username is not None:
                port = self._active_port(result.username)
                if port is not None:
                    return port
        if result is not None and result.outcome is AuthOutcome.BAD_CREDENTIALS:
            # Wrong password, unknown login or disabled port: never told apart, no retry.
            raise _RegisterFailedError(403)
        stale = result is not None and result.rechallenge_stale
        algorithms = self._algorithms_for(request)
        challenges = self.digest.challenge(now, algorithms, stale=stale)
        raise _RegisterFailedError(401, headers=[("WWW-Authenticate", c) for c in challenges])

    def _active_port(self, login: str) -> PortCredentials | None:
        port = self.ports.port_by_login(login)
        return port if port is not None and port.is_active else None

    def _credentials(self, login: str) -> Credentials | None:
        port = self._active_port(login)
        return Credentials(password=port.secret) if port is not None else None

    def _algorithms_for(self, request: Request) -> Sequence[Algorithm]:
        """The port's algorithm when the request names a port (most phones read only the
        first challenge, RFC 8760 §2.4); MD5, as for unknown logins, otherwise."""
        port = self._active_port(_claimed_login(request))
        if port is None:
            return _DEFAULT_ALGORITHMS
        try:
            return (Algorithm.parse(port.algorithm),)
        except AuthParseError:
            return _DEFAULT_ALGORITHMS

    # --- RFC 3261 §10.3 steps 6-7 -------------------------------------------------------------

    def _updates(self, port: PortCredentials, request: Request, now: float) -> list[_Update]:
        contacts = request.contact
        header_expires = request.expires
        live = {b.uri: b for b in self.store.bindings(port.id) if b.expires_at > now}
        if isinstance(contacts, Star):
            if header_expires != 0:  # step 6: "*" only with Expires: 0
                raise _RegisterFailedError(400, "Wildcard Contact needs Expires: 0")
            updates = [_Update(uri, 0) for uri in live]
        else:
            updates = [self._update(c, header_expires) for c in contacts]
        for update in updates:
            _check_order(live.get(update.uri), request)
        return updates

    def _update(self, contact: NameAddr, header_expires: int | None) -> _Update:
        if not isinstance(contact.uri, SipURI):
            raise _RegisterFailedError(400, "Contact must be a sip: or sips: URI")
        expires = contact.expires
        if expires is None:
            expires = header_expires if header_expires is not None else self.default_expires
        if 0 < expires < self.min_expires:
            # Step 7: the whole request fails, telling the phone what it may ask for.
            raise _RegisterFailedError(423, headers=[("Min-Expires", str(self.min_expires))])
        return _Update(str(contact.uri), min(expires, self.max_expires), contact.q)

    def _apply(
        self,
        port: PortCredentials,
        request: Request,
        flow: Flow,
        now: float,
        updates: list[_Update],
    ) -> list[BindingChange]:
        added = sum(1 for u in updates if u.expires)
        if added > self.max_contacts:
            raise _RegisterFailedError(403, "Too Many Contacts")
        changes: list[BindingChange] = []
        for update in updates:
            key = (port.id, update.uri)
            if update.expires == 0:
                old = self.store.remove(key)
                if old is not None:
                    changes.append(BindingChange(key, None, ChangeReason.UNREGISTERED, old))
                continue
            changes.append(self._bind(port, request, flow, now, update))
        changes += self._evict(port.id, now, {u.uri for u in updates})
        return changes

    def _bind(
        self, port: PortCredentials, request: Request, flow: Flow, now: float, update: _Update
    ) -> BindingChange:
        binding = Binding(
            port_id=port.id,
            client_id=port.client_id,
            uri=update.uri,
            flow=flow,
            expires_at=now + update.expires,
            call_id=request.call_id,
            cseq=request.cseq.number,
            user_agent=request.headers.get("user-agent", ""),
            q=update.q,
            available=True,  # it just spoke to us
        )
        old = self.store.get(binding.key)
        self.store.put(binding)
        fresh = old is None or old.expires_at <= now
        reason = ChangeReason.REGISTERED if fresh else ChangeReason.REFRESHED
        return BindingChange(binding.key, binding, reason, old)

    def _evict(self, port_id: int, now: float, keep: set[str]) -> list[BindingChange]:
        """Beyond ``max_contacts`` the bindings closest to expiry go: a phone that rebooted
        onto a new port must not lock itself out with its own stale contacts."""
        bindings = sorted(self.store.bindings(port_id), key=lambda b: b.expires_at)
        excess = len(bindings) - self.max_contacts
        changes = []
        for binding in bindings:
            if excess <= 0:
                break
            if binding.uri in keep and binding.expires_at > now:
                continue
            self.store.remove(binding.key)
            reason = ChangeReason.EXPIRED if binding.expires_at <= now else ChangeReason.EVICTED
            changes.append(BindingChange(binding.key, None, reason, binding))
            excess -= 1
        return changes

    # --- responses ----------------------------------------------------------------------------

    def reply(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        headers: Iterable[tuple[str, HeaderValue]] = (),
    ) -> Response:
        """A final response to ``request`` with a fresh To tag (RFC 3261 §8.2.6.2)."""
        response = make_response(request, status, reason, to_tag=self._rand(6).hex())
        for name, value in headers:
            response.headers.add(name, value)
        return response

    def _ok(self, request: Request, port_id: int, now: float) -> Response:
        """Step 8: every current binding with its remaining time, and the Date."""
        headers: list[tuple[str, HeaderValue]] = [
            ("Contact", f"<{b.uri}>;expires={b.expires_in(now)}")
            for b in self.contacts(port_id, now)
        ]
        headers.append(("Date", formatdate(now, usegmt=True)))
        return self.reply(request, 200, headers=headers)

    # --- the location service ----------------------------------------------------------------

    def contacts(self, port_id: int, now: float | None = None) -> list[Binding]:
        """The port's live bindings: highest ``q`` first, then the most recent."""
        at = self.clock() if now is None else now
        live = [b for b in self.store.bindings(port_id) if b.expires_at > at]
        live.sort(key=lambda b: (-(b.q if b.q is not None else 1.0), -b.expires_at, b.uri))
        return live

    def is_available(self, port_id: int, now: float | None = None) -> bool:
        """PRT-1: a port is available when a live binding answers."""
        return any(b.available for b in self.contacts(port_id, now))

    def status(self, port_id: int, now: float | None = None) -> PortStatus:
        at = self.clock() if now is None else now
        contacts = tuple(_contact_status(b, at) for b in self.contacts(port_id, at))
        return PortStatus(
            registered=bool(contacts),
            available=any(c.available for c in contacts),
            contacts=contacts,
        )

    def sweep(self, now: float) -> list[Binding]:
        """Drop the expired bindings (run about once a second)."""
        expired = self.store.pop_expired(now)
        self._emit([BindingChange(b.key, None, ChangeReason.EXPIRED, b) for b in expired])
        return expired

    def flow_closed(self, flow: Flow) -> list[Binding]:
        """A connection closed: its bindings are unreachable (RFC 5626 §5.2)."""
        if not flow.kind.reliable:
            return []
        dropped = self.store.remove_flow(flow)
        self._emit([BindingChange(b.key, None, ChangeReason.FLOW_CLOSED, b) for b in dropped])
        return dropped

    def set_available(self, key: BindingKey, available: bool) -> Binding | None:
        """Record a qualify result; reported only when it changes."""
        binding = self.store.get(key)
        if binding is None or binding.available == available:
            return binding
        updated = replace(binding, available=available)
        self.store.put(updated)
        reason = ChangeReason.AVAILABLE if available else ChangeReason.UNAVAILABLE
        self._emit([BindingChange(key, updated, reason, binding)])
        return updated

    def drop_port(self, port_id: int) -> list[Binding]:
        """Forget a deleted or disabled port's bindings."""
        dropped = [b for b in self.store.bindings(port_id) if self.store.remove(b.key)]
        self._emit([BindingChange(b.key, None, ChangeReason.REMOVED, b) for b in dropped])
        return dropped

    def restore(self, bindings: Iterable[Binding], now: float) -> int:
        """Load persisted bindings at start (expired ones are skipped); returns the count."""
        changes = []
        for binding in bindings:
            if binding.expires_at > now and self.store.get(binding.key) is None:
                self.store.put(binding)
                changes.append(BindingChange(binding.key, binding, ChangeReason.RESTORED))
        self._emit(changes)
        return len(changes)

    def _emit(self, changes: list[BindingChange]) -> None:
        for change in changes:
            for listener in self.listeners:
                listener(change)


def _claimed_login(request: Request) -> str:
    """The login a REGISTER claims: its credentials' username, else the To user."""
    for value in request.headers.get_all("authorization"):
        try:
            return Authorization.parse(value).username
        except AuthParseError:
            continue
    uri = request.to.uri
    return uri.user or "" if isinstance(uri, SipURI) else ""


def _check_order(existing: Binding | None, request: Request) -> None:
    """RFC 3261 §10.3 step 7: within one Call-ID, only a higher CSeq may change a binding."""
    if existing is None or existing.call_id != request.call_id:
        return
    if request.cseq.number <= existing.cseq:
        raise _RegisterFailedError(500, "Out Of Order CSeq")


def _contact_status(binding: Binding, now: float) -> ContactStatus:
    host, port = binding.source
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return ContactStatus(
        uri=binding.uri,
        source=shown,
        transport=binding.transport.value,
        expires_in=binding.expires_in(now),
        user_agent=binding.user_agent,
        available=binding.available,
    )
