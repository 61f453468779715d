"""Trunks to carriers (TRK-1): calls in to the clients' external numbers, calls out to
forwarding numbers (FWD-1), registration with carriers that want it.

Operators are installation-wide (not a client's), so they are not in a
:class:`~cloudpbx.engine.snapshot.ClientSnapshot`: :func:`load_trunks` reads them with their
rewrite rules (secrets decrypted through :class:`~cloudpbx.security.SecretBox`, host names
resolved) into immutable :class:`TrunkInfo` values, off the event loop, and
:class:`TrunkService` swaps the whole set in at once (``reload()``; at start, every
``reload_s`` to re-resolve host names, and when the API reports an operator change through
``EngineRuntime.reload_trunks``).

**In** (:meth:`TrunkService.on_invite`, called first by ``B2bua.on_invite``): an INVITE
without ``Proxy-Authorization`` is a carrier's when its source is one of a trunk's
``allowed_addresses`` (IP or network, IP authentication), or the trunk's own ``host:port``,
or when its Request-URI user is the contact token we registered with (a registering trunk).
It is never digest-challenged. The DID is read where the trunk says (Request-URI, To or the
top-most Diversion, RFC 5806), rewritten by the trunk's inbound ``called`` rules, normalised
to E.164 (PRODUCT.md §3a) and looked up among the external numbers of all clients
(:meth:`SnapshotStore.number_by_did`): the number picks the client, its dialplan runs, the
call's direction is ``incoming`` and its operator the trunk (CDR-1). Unknown DID → 404; no
channel left on the trunk (``max_channels``) → 503.

**Out** (:meth:`TrunkService.ring_forwarding`, DP-2 "Заданный номер"): see
:class:`_Dial`; the DP-4 "ring port / forwarding number" mapping is applied to the carrier's
answers; a rated client out of money (ADM-5, :func:`cloudpbx.billing.limits.spend_refusal`)
gets No route and an event ``spend_limit`` instead. Choice of trunk (decision): the operator
of the external number shown as caller ID when that trunk is usable, else the first usable
trunk by id. Usable: active, transport UDP or TCP, registered when it registers, a channel free.

**Registration** (:class:`TrunkRegistration`): REGISTER as a UAC through the engine's
:class:`~cloudpbx.engine.sipstack.SipStack`, Digest (RFC 2617/7616) on 401/407, refreshed
before expiry (:func:`refresh_delay`), retried after ``retry_s`` on failure, removed
(``Expires: 0``) at stop. ``TrunkService.status()`` (``EngineRuntime.trunk_status()``) and the
log show each trunk's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.billing.limits import spend_refusal
from cloudpbx.db.models import Operator
from cloudpbx.dialplan.interpreter import NO_PROVISIONAL_S, Outcome, RunAction, ring_failure_outcome
from cloudpbx.engine.b2bua import offer_of
from cloudpbx.engine.call import Call, Leg, LegState
from cloudpbx.numbers import InvalidNumber, NumberingPlan, normalize_e164
from cloudpbx.security import SecretBox
from cloudpbx.sip.auth import AuthParseError, DigestClient
from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.events import IncomingCall
from cloudpbx.sip.headers import parse_contact_list
from cloudpbx.sip.message import Request, Response
from cloudpbx.sip.sdp import PCMA, PCMU, TELEPHONE_EVENT, make_offer
from cloudpbx.sip.transaction import TransactionState
from cloudpbx.sip.uri import SipURI, TelURI, parse_name_addr
from cloudpbx.transport.base import Flow
from cloudpbx.transport.base import TransportError as SendError

__all__ = [
    "RewriteRuleInfo",
    "TrunkInfo",
    "TrunkRegistration",
    "TrunkService",
    "TrunkStatus",
    "did_from",
    "load_trunks",
    "refresh_delay",
    "rewrite",
    "to_e164",
]

log = logging.getLogger(__name__)

SDP = "application/sdp"
OFFER_CODECS = (PCMU, PCMA, TELEPHONE_EVENT)
CHALLENGES = {401: "www-authenticate", 407: "proxy-authenticate"}
ANSWERS = {401: "Authorization", 407: "Proxy-Authorization"}
SUPPORTED_TRANSPORTS = ("udp", "tcp")


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RewriteRuleInfo:
    """§3a: ``re.sub(match, replace, number)`` for one direction and field, in order."""

    direction: str  # inbound / outbound
    field: str  # caller / called
    match: str
    replace: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkInfo:
    """TRK-1: one operator as the engine uses it."""

    id: int
    name: str
    host: str
    port: int
    transport: str
    register: bool
    username: str | None
    secret: str | None = field(repr=False)
    allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    addresses: tuple[str, ...]  # the host's resolved IPs (the first one is dialled)
    did_source: str
    max_channels: int | None
    is_active: bool
    rules: tuple[RewriteRuleInfo, ...]

    def allows(self, source: tuple[str, int]) -> bool:
        """IP authentication: an allowed address/network, or the trunk's own host:port."""
        try:
            ip = ipaddress.ip_address(source[0])
        except ValueError:
            return False
        if any(ip in net for net in self.allowed):
            return True
        return source[0] in self.addresses and source[1] == self.port

    @property
    def target(self) -> tuple[str, int] | None:
        return (self.addresses[0], self.port) if self.addresses else None


def load_trunks(
    session: Session,
    secret_box: SecretBox,
    *,
    resolve: Callable[[str], tuple[str, ...]] | None = None,
) -> dict[int, TrunkInfo]:
    """Every operator with its rules (blocking: run it off the event loop)."""
    resolver = resolve or resolve_host
    out: dict[int, TrunkInfo] = {}
    for op in session.scalars(select(Operator).order_by(Operator.id)):
        secret = None
        if op.secret_enc is not None:
            try:
                secret = secret_box.open(op.secret_enc)
            except ValueError:
                log.error("trunk %s (%s): secret cannot be decrypted", op.id, op.name)
        out[op.id] = _trunk(op, secret, resolver(op.host))
    return out


def _trunk(op: Operator, secret: str | None, addresses: tuple[str, ...]) -> TrunkInfo:
    rules = tuple(
        RewriteRuleInfo(r.direction, r.field, r.match, r.replace)
        for r in sorted(op.rewrite_rules, key=lambda rule: (rule.position, rule.id or 0))
    )
    return TrunkInfo(
        id=op.id,
        name=op.name,
        host=op.host,
        port=op.port,
        transport=op.transport,
        register=op.register,
        username=op.username,
        secret=secret,
        allowed=tuple(ipaddress.ip_network(a, strict=False) for a in op.allowed_addresses or ()),
        addresses=addresses,
        did_source=op.did_source,
        max_channels=op.max_channels,
        is_active=op.is_active,
        rules=rules,
    )


def resolve_host(host: str) -> tuple[str, ...]:
    """The host's IP addresses (an IP stays itself); empty when it does not resolve."""
    bare = host.strip("[]")
    with contextlib.suppress(ValueError):
        return (str(ipaddress.ip_address(bare)),)
    try:
        infos = socket.getaddrinfo(bare, None, type=socket.SOCK_DGRAM)
    except OSError as exc:
        log.warning("trunk host %s does not resolve: %s", host, exc)
        return ()
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


# --- numbers (pure) ------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def rewrite(rules: Iterable[RewriteRuleInfo], direction: str, field_name: str, number: str) -> str:
    """§3a: apply the rules of ``direction``/``field_name`` in order, each to the result of
    the one before (as the API documents: ``re.sub(match, replace, number)``)."""
    for rule in rules:
        if rule.direction == direction and rule.field == field_name:
            number = _compiled(rule.match).sub(rule.replace, number)
    return number


def to_e164(number: str, plan: NumberingPlan) -> str | None:
    """The number in E.164, or None when it is not a telephone number."""
    try:
        return normalize_e164(number, plan)
    except InvalidNumber:
        return None


def _uri_user(uri: Any) -> str | None:
    if isinstance(uri, SipURI):
        return uri.user
    if isinstance(uri, TelURI):
        return uri.number
    return None


def did_from(request: Request, source: str) -> str | None:
    """§3a: the dialled DID where the trunk puts it: the Request-URI user, the To user, or
    the top-most Diversion (RFC 5806 §4: the last diversion, i.e. the number that sent the
    call to us). None when that header is missing or carries no number."""
    try:
        if source == "to":
            return _uri_user(request.to.uri)
        if source == "diversion":
            values = request.headers.get_all("diversion")
            return _uri_user(parse_name_addr(values[0].split(",")[0]).uri) if values else None
        return _uri_user(request.uri)
    except (ParseError, ValueError):
        return None


def caller_from(request: Request) -> str:
    """The carrier's caller number: P-Asserted-Identity (RFC 3325, a trusted peer's) or From."""
    for value in request.headers.get_all("p-asserted-identity"):
        with contextlib.suppress(ParseError, ValueError):
            user = _uri_user(parse_name_addr(value.split(",")[0]).uri)
            if user:
                return user
    with contextlib.suppress(ParseError, ValueError):
        return _uri_user(request.from_.uri) or "anonymous"
    return "anonymous"


def refresh_delay(granted_s: float) -> float:
    """When to refresh a registration granted for ``granted_s`` seconds: half-way for short
    ones, a minute early for long ones (the registration never lapses on a slow answer)."""
    if granted_s <= 120:
        return max(0.5, granted_s / 2)
    return granted_s - 60


def granted_expires(response: Response, token: str, asked: int) -> int:
    """RFC 3261 §10.2.4: our contact's ``expires`` in the 200, else Expires, else ``asked``."""
    with contextlib.suppress(ParseError, ValueError):
        contacts = parse_contact_list(response.headers.values("contact"))
        if isinstance(contacts, list):
            for contact in contacts:
                if _uri_user(contact.uri) == token and contact.expires is not None:
                    return contact.expires
    value = response.headers.get("expires")
    return int(value) if value and value.strip().isdigit() else asked


# --- registration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkStatus:
    """What ``EngineRuntime.trunk_status()`` shows of one trunk."""

    trunk_id: int
    name: str
    active: bool
    register: bool
    state: str  # "ip" (no registration), "registering", "registered", "failed", "inactive"
    expires_in_s: float | None = None
    last_status: int | None = None
    error: str = ""
    channels: int = 0

    @property
    def up(self) -> bool:
        return self.active and self.state in ("ip", "registered")


class TrunkRegistration:
    """Keeps one trunk registered with its carrier (RFC 3261 §10.2)."""

    def __init__(
        self, service: TrunkService, trunk: TrunkInfo, *, expires: int, retry_s: float
    ) -> None:
        self.service = service
        self.trunk = trunk
        self.expires = expires
        self.retry_s = retry_s
        self.token = f"trk{trunk.id}x{secrets.token_hex(6)}"  # our contact's user part
        self.call_id = f"reg-{secrets.token_hex(10)}"
        self.tag = secrets.token_hex(6)
        self.cseq = 0
        self.state = "registering"
        self.last_status: int | None = None
        self.error = ""
        self.expires_at: float | None = None
        self.digest = DigestClient(trunk.username or "", trunk.secret or "")
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"trunk-{self.trunk.id}"
        )

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.state == "registered":
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.register(0), timeout=2.0)
        self.state = "stopped"

    async def _run(self) -> None:
        while True:
            try:
                granted = await self.register(self.expires)
            except Exception as exc:  # a bug or a broken peer must not end the refreshes
                log.exception("trunk %s: registration error", self.trunk.name)
                self._failed(None, str(exc)[:200])
                granted = None
            delay = refresh_delay(granted) if granted else self.retry_s
            await asyncio.sleep(delay)

    async def register(self, expires: int) -> int | None:
        """One REGISTER (and its authenticated retry); the seconds granted, or None."""
        flow = await self.service.flow_for(self.trunk)
        if flow is None:
            self._failed(None, "no route to the carrier (transport)")
            return None
        response = await self._send(flow, expires, None)
        if response is not None and response.status in CHALLENGES:
            response = await self._send(flow, expires, self._answer("REGISTER", response))
        if response is None or not 200 <= response.status < 300:
            status = None if response is None else response.status
            self._failed(status, "no answer" if response is None else response.reason)
            return None
        granted = granted_expires(response, self.token, expires) if expires else 0
        self._registered(response.status, granted)
        return granted

    def _answer(self, method: str, response: Response) -> tuple[str, str] | None:
        status = response.status
        try:
            value = self.digest.authorize(
                method,
                self._uri(),
                response.headers.get_all(CHALLENGES[status]),
                cnonce_source=secrets.token_bytes,
            )
        except AuthParseError as exc:
            log.warning("trunk %s: unusable challenge: %s", self.trunk.name, exc)
            return None
        return (ANSWERS[status], value)

    def _uri(self) -> str:
        return f"sip:{_shown(self.trunk.host)}:{self.trunk.port}"

    async def _send(
        self, flow: Flow, expires: int, auth: tuple[str, str] | None
    ) -> Response | None:
        stack = self.service.stack
        self.cseq += 1
        host = _shown(stack.local_host_for(flow))
        aor = f"sip:{self.trunk.username}@{_shown(self.trunk.host)}"
        param = "" if self.trunk.transport == "udp" else f";transport={self.trunk.transport}"
        headers: list[tuple[str, Any]] = [
            ("Via", stack.via_for(flow)),
            ("Max-Forwards", 70),
            ("From", f"<{aor}>;tag={self.tag}"),
            ("To", f"<{aor}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", f"<sip:{self.token}@{host}:{flow.local[1]}{param}>"),
            ("Expires", expires),
            ("User-Agent", stack.user_agent),
        ]
        if auth is not None:
            headers.append(auth)
        response: Response | None = await stack.request(
            Request("REGISTER", self._uri(), headers), flow
        )
        return response

    def _registered(self, status: int, granted: int) -> None:
        self.last_status, self.error = status, ""
        if granted == 0:
            self.state, self.expires_at = "unregistered", None
            return
        if self.state != "registered":
            log.info("trunk %s: registered for %d s", self.trunk.name, granted)
        self.state = "registered"
        self.expires_at = asyncio.get_running_loop().time() + granted

    def _failed(self, status: int | None, error: str) -> None:
        log.warning(
            "trunk %s: registration failed: %s %s (retry in %s s)",
            self.trunk.name,
            status or "",
            error,
            self.retry_s,
        )
        self.state, self.last_status, self.error = "failed", status, error
        self.expires_at = None


# --- the service ----------------------------------------------------------------------------


class TrunkService:
    """The engine's trunks: configuration, registrations, calls in and out (module doc)."""

    def __init__(
        self,
        stack: Any,
        sessions: sessionmaker[Session],
        secret_box: SecretBox,
        snapshots: Any,
        *,
        numbering: NumberingPlan | None = None,
        register_expires: int = 300,
        retry_s: float = 30.0,
        reload_s: float | None = 30.0,
        resolve: Callable[[str], tuple[str, ...]] | None = None,
    ) -> None:
        self.stack = stack
        self.sessions = sessions
        self.secret_box = secret_box
        self.snapshots = snapshots
        self.numbering = numbering or NumberingPlan()
        self.register_expires = register_expires
        self.retry_s = retry_s
        self.reload_s = reload_s
        self.resolve = resolve
        self.trunks: Mapping[int, TrunkInfo] = {}
        self.registrations: dict[int, TrunkRegistration] = {}
        self.b2bua: Any = None  # set by the first call (channel counts read its calls)
        self._forwarding: dict[int, int] = {}  # forwarding number id -> calls out now (FWD-1)
        self._reloader: asyncio.Task[None] | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        await self.reload()
        if self.reload_s:
            self._reloader = asyncio.get_running_loop().create_task(self._reload_every())
        return len(self.trunks)

    async def stop(self) -> None:
        for task in (self._reloader, self._reloading):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.gather(*(r.stop() for r in self.registrations.values()))
        self.registrations.clear()

    async def reload(self) -> None:
        """Read the operators again and swap them in; (re)start registrations that changed."""
        loop = asyncio.get_running_loop()
        trunks = await loop.run_in_executor(None, self._load)
        self.trunks = trunks
        for trunk_id, registration in list(self.registrations.items()):
            if trunks.get(trunk_id) != registration.trunk:
                del self.registrations[trunk_id]
                await registration.stop()
        for trunk in trunks.values():
            if trunk.register and trunk.is_active and trunk.id not in self.registrations:
                registration = TrunkRegistration(
                    self, trunk, expires=self.register_expires, retry_s=self.retry_s
                )
                self.registrations[trunk.id] = registration
                registration.start()

    def invalidate(self, _client_id: int | None = None) -> None:
        """Reload soon (any thread): the API does not tell operator changes apart."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._schedule_reload)

    def _schedule_reload(self) -> None:
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.get_running_loop().create_task(self._safe_reload())

    async def _reload_every(self) -> None:
        assert self.reload_s
        while True:
            await asyncio.sleep(self.reload_s)
            await self._safe_reload()

    async def _safe_reload(self) -> None:
        try:
            await self.reload()
        except Exception:
            log.exception("trunks: reload failed; keeping the old configuration")

    def _load(self) -> dict[int, TrunkInfo]:
        with self.sessions() as session:
            return load_trunks(session, self.secret_box, resolve=self.resolve)

    # --- state ----------------------------------------------------------------------------

    def status(self) -> dict[int, TrunkStatus]:
        now = asyncio.get_running_loop().time()
        return {t.id: self._status(t, now) for t in self.trunks.values()}

    def _status(self, trunk: TrunkInfo, now: float) -> TrunkStatus:
        reg = self.registrations.get(trunk.id)
        state = "inactive" if not trunk.is_active else ("ip" if reg is None else reg.state)
        expires = None
        if reg is not None and reg.expires_at is not None:
            expires = max(0.0, reg.expires_at - now)
        return TrunkStatus(
            trunk_id=trunk.id,
            name=trunk.name,
            active=trunk.is_active,
            register=trunk.register,
            state=state,
            expires_in_s=expires,
            last_status=reg.last_status if reg is not None else None,
            error=reg.error if reg is not None else "",
            channels=self.channels(trunk.id),
        )

    def channels(self, trunk_id: int) -> int:
        """Legs alive over the trunk, in and out (``max_channels``)."""
        if self.b2bua is None:
            return 0
        return sum(
            1
            for call in self.b2bua.calls.values()
            for leg in call.live_legs()
            if leg.operator_id == trunk_id
        )

    def _has_channel(self, trunk: TrunkInfo) -> bool:
        return trunk.max_channels is None or self.channels(trunk.id) < trunk.max_channels

    def usable(self, trunk: TrunkInfo) -> str | None:
        """Why the trunk cannot carry a call now (None: it can)."""
        if not trunk.is_active:
            return "inactive"
        if trunk.transport not in SUPPORTED_TRANSPORTS:
            return f"not implemented: transport {trunk.transport}"
        if trunk.target is None:
            return "host does not resolve"
        reg = self.registrations.get(trunk.id)
        if trunk.register and (reg is None or reg.state != "registered"):
            return "not registered"
        return None if self._has_channel(trunk) else "no channel free"

    async def flow_for(self, trunk: TrunkInfo) -> Flow | None:
        """Where to send to the carrier: a UDP flow from our socket, or a TCP connection."""
        target = trunk.target
        if target is None:
            return None
        try:
            if trunk.transport == "tcp":
                tcp = self.stack._tcp
                return None if tcp is None else await tcp.connect(target)
            flow: Flow = self.stack.udp_flow_to(target)
            return flow
        except (OSError, SendError) as exc:
            log.warning("trunk %s: cannot reach %s: %s", trunk.name, target, exc)
            return None

    # --- calls in -------------------------------------------------------------------------

    def match(self, request: Request, source: tuple[str, int]) -> TrunkInfo | None:
        """The trunk an unauthenticated INVITE comes from, or None (a port's: challenge it)."""
        if request.headers.get("proxy-authorization") is not None:
            return None
        user = _uri_user(request.uri)
        for reg in self.registrations.values():
            if user == reg.token and reg.trunk.is_active:
                return self.trunks.get(reg.trunk.id)
        for trunk in self.trunks.values():
            if trunk.is_active and trunk.allows(source):
                return trunk
        return None

    def on_invite(self, b2bua: Any, event: IncomingCall) -> bool:
        """``B2bua.on_invite``'s first look: True when the INVITE was a carrier's (handled)."""
        trunk = self.match(event.request, event.addr.remote)
        if trunk is None:
            return False
        self.b2bua = b2bua
        _Inbound(self, b2bua, trunk, event).accept()
        return True

    def find_did(self, trunk: TrunkInfo, request: Request) -> tuple[str, Any]:
        """The DID rewritten and normalised, and ``(snapshot, number)`` when it is known."""
        raw = did_from(request, trunk.did_source) or ""
        rewritten = rewrite(trunk.rules, "inbound", "called", raw)
        e164 = to_e164(rewritten, self.numbering)
        found = self.snapshots.number_by_did(e164) if e164 is not None else None
        return (e164 or rewritten, found)

    def caller_number(self, trunk: TrunkInfo, request: Request) -> str:
        rewritten = rewrite(trunk.rules, "inbound", "caller", caller_from(request))
        return to_e164(rewritten, self.numbering) or rewritten

    # --- calls out (FWD-1) ----------------------------------------------------------------

    async def ring_forwarding(
        self, b2bua: Any, call: Call, snapshot: Any, decision: RunAction
    ) -> Outcome:
        """DP-4 "ring forwarding number": dial it out through a trunk."""
        self.b2bua = b2bua
        target = decision.step.target
        fwd = snapshot.forwarding_numbers.get(target.id) if target is not None else None
        if fwd is None:
            b2bua._event(call, "no_route", decision.level, "no such forwarding number")
            return Outcome.NO_ROUTE
        limit = fwd.max_concurrent_incoming
        if limit is not None and self._forwarding.get(fwd.id, 0) >= limit:
            b2bua._event(call, "limit", decision.level, f"forwarding {fwd.id}: {limit} calls")
            return ring_failure_outcome([], limit_reached=True)
        refusal = spend_refusal(snapshot)  # ADM-5: a forwarding out costs the client too
        if refusal is not None:
            b2bua._event(call, "spend_limit", decision.level, refusal)
            return Outcome.NO_ROUTE
        caller_id = self.caller_id(call, snapshot)
        trunk = self.route(call, snapshot, caller_id, decision)
        if trunk is None:
            return Outcome.NO_ROUTE
        self._forwarding[fwd.id] = self._forwarding.get(fwd.id, 0) + 1
        try:
            return await _Dial(self, b2bua, call, snapshot, decision, trunk, fwd, caller_id).run()
        finally:
            self._forwarding[fwd.id] -= 1

    def caller_id(self, call: Call, snapshot: Any) -> str:
        """§3a: the calling port's external caller ID; for a carrier's call being forwarded,
        the client's DID it came in on; else the client's first external number."""
        port = snapshot.ports.get(call.caller_port_id)
        if port is not None and port.callerid_external:
            return str(port.callerid_external)
        if call.direction == "incoming":
            return call.called
        external = sorted(n.number for n in snapshot.numbers.values() if n.kind == "external")
        return external[0] if external else "anonymous"

    def route(
        self, call: Call, snapshot: Any, caller_id: str, decision: RunAction
    ) -> TrunkInfo | None:
        """The trunk for a call out (module doc: the caller ID's operator, else the first)."""
        number = snapshot.numbers.get(caller_id)
        preferred = self.trunks.get(number.operator_id) if number is not None else None
        candidates = [preferred] if preferred is not None else []
        candidates += [t for t in self.trunks.values() if t is not preferred]
        reasons = []
        for trunk in candidates:
            why = self.usable(trunk)
            if why is None:
                return trunk
            reasons.append(f"{trunk.name}: {why}")
        detail = "; ".join(reasons) or "no trunk configured"
        log.info("call %s: no trunk for the call out (%s)", call.uuid, detail)
        self.b2bua._event(call, "no_route", decision.level, f"trunk down: {detail}"[:200])
        return None


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# --- one call in -----------------------------------------------------------------------------


class _Inbound:
    """A carrier's INVITE to a DID: the call object, then ``B2bua._run_call`` as for a port."""

    def __init__(self, service: TrunkService, b2bua: Any, trunk: TrunkInfo, event: IncomingCall):
        self.service = service
        self.b2bua = b2bua
        self.trunk = trunk
        self.event = event

    def accept(self) -> None:
        b2bua, trunk, event = self.b2bua, self.trunk, self.event
        did, found = self.service.find_did(trunk, event.request)
        if found is None:
            log.info("trunk %s: INVITE to unknown DID %r: 404", trunk.name, did)
            self._reject("trunk_404", 404)  # DP-4: 404 only when the number does not exist
            return
        if not self.service._has_channel(trunk):
            log.warning("trunk %s: all %s channels busy: 503", trunk.name, trunk.max_channels)
            self._reject("trunk_503", 503)
            return
        offer = _offer(event.request)
        if offer is None:
            log.info("not implemented: INVITE without an SDP offer from trunk %s", trunk.name)
            self._reject("488", 488)
            return
        snapshot, number = found
        b2bua.stack.respond(event.tx_key, 100)
        call = self._call(snapshot, number)
        call.task = b2bua._spawn(b2bua._run_call(call, snapshot, number, offer))

    def _reject(self, counter: str, status: int) -> None:
        self.b2bua._count(counter)
        self.b2bua.stack.respond(self.event.tx_key, status)

    def _call(self, snapshot: Any, number: Any) -> Call:
        b2bua, trunk, event = self.b2bua, self.trunk, self.event
        caller = self.service.caller_number(trunk, event.request)
        call = Call(
            client_id=snapshot.client_id,
            caller_port_id=None,
            caller=caller,
            called=number.number,
            direction="incoming",
            operator_id=trunk.id,
        )
        leg = call.add_leg(
            Leg(
                call,
                "in",
                caller,
                flow=event.addr,
                dialog_id=event.dialog_id,
                invite_tx=event.tx_key,
                operator_id=trunk.id,
            )
        )
        leg.remote_sdp = event.request.body
        call.dialplan_version_id = number.dialplan_version_id
        b2bua.calls[call.uuid] = call
        b2bua._by_dialog[event.dialog_id] = leg
        b2bua._count("trunk_calls")
        return call


def _offer(request: Request) -> Any:
    if "sdp" not in request.headers.get("content-type", "").lower():
        return None
    return offer_of(request.body)


# --- one call out ----------------------------------------------------------------------------


class _Dial:
    """FWD-1 through a trunk, DP-4 "ring forwarding number":

    * INVITE to ``sip:<number>@host:port`` (the forwarding number after the trunk's outbound
      ``called`` rules), From and P-Asserted-Identity (RFC 3325) with the caller ID after the
      outbound ``caller`` rules; our offer is the relay's side ``b`` (PCMU, PCMA, events);
    * a 401/407 is answered once with Digest (RFC 3261 §22.2: same Call-ID and From tag,
      CSeq + 1) with the trunk's credentials; the challenged INVITE stays a leg of its own
      in the call record (hang-up cause "INVITE failed: 407");
    * 1xx → ringback to the caller (as for a port); 2xx → bridged (``B2bua._bridge``: the
      forwarding number's max incoming duration, automatic recording by its services);
    * 486/600/603 → Busy; 404/408/480/503, no 1xx within 2 s, a transport error → No route;
      the step's timeout while it rings → No answer (CANCEL).
    """

    def __init__(
        self,
        service: TrunkService,
        b2bua: Any,
        call: Call,
        snapshot: Any,
        decision: RunAction,
        trunk: TrunkInfo,
        fwd: Any,
        caller_id: str,
    ) -> None:
        self.service = service
        self.b2bua = b2bua
        self.call = call
        self.snapshot = snapshot
        self.decision = decision
        self.trunk = trunk
        self.fwd = fwd
        self.number = rewrite(trunk.rules, "outbound", "called", fwd.number)
        self.caller_id = rewrite(trunk.rules, "outbound", "caller", caller_id)
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.leg: Leg | None = None

    async def run(self) -> Outcome:
        flow = await self.service.flow_for(self.trunk)
        if flow is None:
            self._event("no_route", f"trunk {self.trunk.name}: transport error")
            return Outcome.NO_ROUTE
        if self.call.operator_id is None:
            self.call.operator_id = self.trunk.id  # CDR-1: the operator that carried it
        self._event("trunk", f"{self.trunk.name}: {self.number} as {self.caller_id}")
        self.leg = self._send(flow, None)
        try:
            return await self._wait(flow)
        finally:
            self.b2bua._stop_ringback(self.call)
            if self.leg is not None and self.leg is not self.call.callee:
                self.b2bua._drop_branch(self.leg)

    def _event(self, kind: str, detail: str) -> None:
        self.b2bua._event(self.call, kind, self.decision.level, detail)

    async def _wait(self, flow: Flow) -> Outcome:
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + (self.decision.timeout_s or self.b2bua.config.ring_max_s)
        authenticated = False
        while True:
            leg = self.leg
            assert leg is not None
            now = loop.time()
            silent_until = start + NO_PROVISIONAL_S
            silent = leg.state is LegState.TRYING and not self._proceeding(leg)
            if silent and now >= silent_until:
                self._event("no_route", f"no 1xx from {self.trunk.name} in {NO_PROVISIONAL_S} s")
                return Outcome.NO_ROUTE  # DP-4: no 1xx within 2 s
            if now >= deadline:
                self._event("no_answer", f"{self.decision.timeout_s} s")
                return Outcome.NO_ANSWER
            wake = min(deadline, silent_until) if silent else deadline
            try:
                ring = await asyncio.wait_for(self.queue.get(), timeout=max(0.0, wake - now))
            except TimeoutError:
                continue
            if ring.leg is not leg:
                continue  # a late event of the challenged attempt
            if ring.kind == "ringing":
                self.b2bua._ringback(self.call, self.snapshot, self.fwd)
            elif ring.kind == "answered":
                return await self._answered(leg)  # type: ignore[no-any-return]
            elif ring.status in CHALLENGES and not authenticated:
                authenticated = True
                auth = self._answer(leg)
                if auth is None:
                    return Outcome.NO_ROUTE
                self.leg = self._send(flow, auth, leg)
                start = loop.time()  # the 2 s rule applies to the new INVITE
            else:
                self._event("failed", f"{self.trunk.name}: {ring.status or 'no answer'}")
                return ring_failure_outcome([ring.status])

    def _proceeding(self, leg: Leg) -> bool:
        """Decision: a carrier's 100 Trying is the 1xx of DP-4's 2 s rule (the PSTN may take
        longer to ring, and the 100 already proves the trunk alive). The dialog layer does not
        report a 100; the INVITE's client transaction is then in Proceeding."""
        stack = self.b2bua.stack
        record = getattr(stack.dialogs, "_calls", {}).get(leg.call_key)
        if record is None:
            return False
        return bool(stack.transactions.state_of(record.tx_key) is TransactionState.PROCEEDING)

    async def _answered(self, leg: Leg) -> Any:
        return await self.b2bua._bridge(self.call, self.snapshot, self.fwd, leg, self.decision)

    def _answer(self, leg: Leg) -> tuple[str, str] | None:
        response = leg.final_response
        trunk = self.trunk
        if response is None or not trunk.username or trunk.secret is None:
            self._event("no_route", f"{trunk.name}: challenged, no credentials")
            return None
        try:
            value = DigestClient(trunk.username, trunk.secret).authorize(
                "INVITE",
                self._uri(),
                response.headers.get_all(CHALLENGES[response.status]),
                cnonce_source=secrets.token_bytes,
                body=leg.local_sdp,
            )
        except AuthParseError as exc:
            self._event("no_route", f"{trunk.name}: unusable challenge: {exc}")
            return None
        return (ANSWERS[response.status], value)

    def _uri(self) -> str:
        param = "" if self.trunk.transport == "udp" else f";transport={self.trunk.transport}"
        return f"sip:{self.number}@{_shown(self.trunk.host)}:{self.trunk.port}{param}"

    def _send(self, flow: Flow, auth: tuple[str, str] | None, previous: Leg | None = None) -> Leg:
        b2bua, call = self.b2bua, self.call
        assert call.relay is not None
        leg = call.add_leg(Leg(call, "out", self.number, flow=flow, operator_id=self.trunk.id))
        leg.ring_queue = self.queue
        if previous is not None:
            leg.local_sdp = previous.local_sdp  # the body the digest covered (auth-int)
        else:
            leg.local_sdp = make_offer(
                local_addr=b2bua._media_host(flow),
                port=call.relay.b.port,
                codecs=OFFER_CODECS,
                session_id=secrets.randbelow(2**31),
                version=1,
            ).to_bytes()
        invite = self._invite(flow, leg, auth, previous)
        leg.call_key = b2bua.stack.send_invite(invite, flow)
        b2bua._by_key[leg.call_key] = leg
        b2bua._safe(b2bua.cdr.leg_added, call, leg)
        return leg

    def _invite(
        self, flow: Flow, leg: Leg, auth: tuple[str, str] | None, previous: Leg | None
    ) -> Request:
        host = _shown(self.b2bua.stack.local_host_for(flow))
        identity = f"sip:{self.caller_id}@{host}"
        from_ = f'"{self.caller_id}" <{identity}>'
        call_id, cseq = None, 1
        if previous is not None and previous.call_key is not None:
            from_ += f";tag={previous.call_key.local_tag}"
            call_id, cseq = previous.call_key.call_id, 2
        headers: list[tuple[str, Any]] = [("P-Asserted-Identity", f"<{identity}>")]
        if auth is not None:
            headers.append(auth)
        request: Request = self.b2bua.stack.create_invite(
            request_uri=self._uri(),
            from_=from_,
            to=f"<sip:{self.number}@{_shown(self.trunk.host)}>",
            addr=flow,
            body=leg.local_sdp,
            content_type=SDP,
            headers=headers,
            call_id=call_id,
            cseq=cseq,
        )
        return request


def trunk_summary(statuses: Sequence[TrunkStatus]) -> str:
    """One log line: ``name=state`` per trunk."""
    return ", ".join(f"{s.name}={s.state}" for s in statuses) or "none"
