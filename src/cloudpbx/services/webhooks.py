"""Signed webhooks of call events for CRMs (PRODUCT.md §6 "CRM телефония").

The engine publishes every change of an active call to the
:class:`~cloudpbx.engine.active_calls.CallRegistry` (AC-1). :class:`WebhookService` subscribes
to it for each client that has active webhooks and POSTs each event as JSON to the CRM::

    {"event": "answered", "ts": 1764145200123, "call": {"uuid": ..., "caller": ..., ...}}

with the headers ``X-Cloudpbx-Event``, ``X-Cloudpbx-Timestamp`` (epoch seconds) and
``X-Cloudpbx-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``
(:func:`sign`; a CRM checks it as :func:`verify` does, see docs/webhooks.md).

Decisions:

- the engine never waits for a CRM: events go into a bounded queue per webhook
  (:class:`DeliveryQueue`, oldest dropped with a log when full) served by one task per webhook;
- a delivery is tried 3 times with exponential backoff, short timeouts; a 2xx is success;
- SSRF guard: a URL whose host resolves to a loopback, private, link-local, multicast or
  reserved address is refused unless ``webhooks_allow_private`` is set (:func:`check_destination`);
- the subscription list follows configuration changes: the runtime's ``invalidate(client_id)``
  calls :meth:`WebhookService.invalidate`, which reloads that client's webhooks.

Limits: events are not persisted (a restart loses what is queued); the address is checked when
the request is made, and httpx resolves the name again (a DNS answer that changes in between is
not caught).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.engine.active_calls import (
    ActiveCall,
    CallRegistry,
    CallUpdate,
    SubscriberDroppedError,
    Subscription,
)
from cloudpbx.security import SecretBox

__all__ = [
    "EVENTS",
    "DeliveryQueue",
    "DestinationRefusedError",
    "WebhookService",
    "WebhookTarget",
    "WebhookWorker",
    "call_json",
    "check_destination",
    "deliver",
    "deliver_once",
    "is_internal",
    "payload",
    "sign",
    "url_problem",
    "verify",
]

log = logging.getLogger(__name__)

EVENTS = ("started", "answered", "held", "resumed", "updated", "ended")
"""Call event kinds a webhook may subscribe to (engine/active_calls.py EventKind)."""

ATTEMPTS = 3
BACKOFF_S = (1.0, 4.0)  # waits before the 2nd and 3rd attempts
TIMEOUT = httpx.Timeout(5.0, connect=3.0)
QUEUE_MAX = 500
REPLAY_WINDOW_S = 300
USER_AGENT = "cloudpbx-webhooks/1"

Sleep = Callable[[float], Awaitable[None]]
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


# --- payload and signature ---------------------------------------------------------------------


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def call_json(call: ActiveCall) -> dict[str, Any]:
    """The call as a CRM sees it: times in ISO 8601 UTC, no client id (it is the CRM's own)."""
    data = call.to_json()
    data.pop("client_id", None)
    data["start"] = _iso(data.pop("start_ms"))
    data["answer"] = _iso(data.pop("answer_ms"))
    return data


def payload(kind: str, call: dict[str, Any], ts_ms: int) -> bytes:
    """The request body: compact JSON, UTF-8 (numbers and names as they are)."""
    body = {"event": kind, "call": call, "ts": ts_ms}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``"<timestamp>." + body``: the timestamp is signed
    too, so a captured request cannot be replayed later with a fresh timestamp."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float,
    window_s: int = REPLAY_WINDOW_S,
) -> bool:
    """What a CRM does with a delivery: the signature matches and the timestamp is recent."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > window_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


def signed_headers(kind: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Cloudpbx-Event": kind,
        "X-Cloudpbx-Timestamp": str(timestamp),
        "X-Cloudpbx-Signature": sign(secret, timestamp, body),
    }


# --- URL checks (SSRF guard) ---------------------------------------------------------------------


class DestinationRefusedError(Exception):
    """The webhook URL points where the installation may not send requests."""


def url_problem(url: str) -> str | None:
    """Why a webhook URL is unacceptable (scheme, host, credentials), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "scheme must be http or https"
    if not parts.hostname:
        return "a host is required"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed (the signature authenticates)"
    if parts.fragment:
        return "a fragment is not allowed"
    return None


def is_internal(address: str) -> bool:
    """Loopback, private (RFC 1918, RFC 4193), link-local, multicast, reserved or unspecified."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


async def _resolve(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_destination(url: str, *, allow_private: bool, resolve: Resolve = _resolve) -> None:
    """Refuse a URL that is malformed or whose host resolves to an internal address."""
    problem = url_problem(url)
    if problem is not None:
        raise DestinationRefusedError(problem)
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise DestinationRefusedError(f"cannot resolve {host}: {exc}") from exc
    internal = [a for a in addresses if is_internal(a)]
    if internal or not addresses:
        raise DestinationRefusedError(
            f"{host} resolves to an internal address ({', '.join(internal) or 'none'}); "
            "set webhooks_allow_private to allow it"
        )


# --- one delivery --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A webhook as the engine uses it: its secret in clear, its event filter."""

    id: int
    client_id: int
    url: str
    secret: str
    events: frozenset[str] = frozenset()

    def wants(self, kind: str) -> bool:
        return not self.events or kind in self.events


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one POST: an HTTP status, or an error text."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retry(self) -> bool:
        """Network errors, 429 and 5xx may pass later; a refusal or another 4xx will not."""
        if self.status is None:
            return not (self.error or "").startswith("refused")
        return self.status == 429 or self.status >= 500


async def deliver(
    http: httpx.AsyncClient,
    target: WebhookTarget,
    kind: str,
    call: dict[str, Any],
    *,
    now: float,
    allow_private: bool,
    resolve: Resolve = _resolve,
) -> Attempt:
    """POST one signed event once; never raises for network or HTTP errors."""
    timestamp = int(now)
    body = payload(kind, call, int(now * 1000))
    try:
        await check_destination(target.url, allow_private=allow_private, resolve=resolve)
        response = await http.post(
            target.url,
            content=body,
            headers=signed_headers(kind, target.secret, timestamp, body),
            follow_redirects=False,  # a redirect could lead past the SSRF guard
        )
    except DestinationRefusedError as exc:
        return Attempt(None, f"refused: {exc}")
    except httpx.HTTPError as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}")
    return Attempt(response.status_code)


async def deliver_once(
    target: WebhookTarget, kind: str, call: dict[str, Any], allow_private: bool
) -> Attempt:
    """One delivery with a client of its own (the API's "test delivery")."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        return await deliver(http, target, kind, call, now=time.time(), allow_private=allow_private)


# --- per-webhook queue and worker ----------------------------------------------------------------


class DeliveryQueue:
    """A bounded FIFO of events: when full the oldest is dropped (a CRM that is down must not
    grow the engine's memory), and the drop is counted and logged."""

    def __init__(self, maxlen: int = QUEUE_MAX) -> None:
        self._items: deque[tuple[str, dict[str, Any]]] = deque()
        self._maxlen = maxlen
        self._ready = asyncio.Event()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, kind: str, call: dict[str, Any]) -> bool:
        """Queue an event; False when the oldest one had to go to make room."""
        kept = True
        if len(self._items) >= self._maxlen:
            self._items.popleft()
            self.dropped += 1
            kept = False
        self._items.append((kind, call))
        self._ready.set()
        return kept

    async def get(self) -> tuple[str, dict[str, Any]]:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


@dataclass
class WebhookWorker:
    """Delivers one webhook's events in order, each with retries and backoff."""

    target: WebhookTarget
    http: httpx.AsyncClient
    allow_private: bool
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.time
    backoff: Sequence[float] = BACKOFF_S
    resolve: Resolve = _resolve
    queue: DeliveryQueue = field(default_factory=DeliveryQueue)
    delivered: int = 0
    failed: int = 0
    _task: asyncio.Task[None] | None = None

    def enqueue(self, kind: str, call: dict[str, Any]) -> None:
        if not self.queue.put(kind, call):
            log.warning(
                "webhook %d: queue full (%d), oldest event dropped (%d so far); is %s down?",
                self.target.id,
                len(self.queue),
                self.queue.dropped,
                self.target.url,
            )

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            kind, call = await self.queue.get()
            await self.send(kind, call)

    async def send(self, kind: str, call: dict[str, Any]) -> Attempt:
        """Up to :data:`ATTEMPTS` tries; the last outcome is returned and counted."""
        attempt = Attempt(None, "not tried")
        for number in range(ATTEMPTS):
            if number:
                await self.sleep(self.backoff[min(number - 1, len(self.backoff) - 1)])
            attempt = await deliver(
                self.http,
                self.target,
                kind,
                call,
                now=self.clock(),
                allow_private=self.allow_private,
                resolve=self.resolve,
            )
            if attempt.ok or not attempt.retry:
                break
        self._count(kind, call, attempt)
        return attempt

    def _count(self, kind: str, call: dict[str, Any], attempt: Attempt) -> None:
        if attempt.ok:
            self.delivered += 1
            return
        self.failed += 1
        log.warning(
            "webhook %d: %s of call %s not delivered to %s: %s",
            self.target.id,
            kind,
            call.get("uuid"),
            self.target.url,
            attempt.error or f"HTTP {attempt.status}",
        )


# --- the service ---------------------------------------------------------------------------------


Loader = Callable[[int | None], list[WebhookTarget]]


def db_loader(sessions: sessionmaker[Session], box: SecretBox) -> Loader:
    """Active webhooks from the database: all of them, or one client's (blocking; run it in a
    thread)."""
    from cloudpbx.db.models.telephony import Webhook

    def load(client_id: int | None) -> list[WebhookTarget]:
        query = select(Webhook).where(Webhook.is_active.is_(True))
        if client_id is not None:
            query = query.where(Webhook.client_id == client_id)
        with sessions() as session:
            return [_target(row, box) for row in session.scalars(query)]

    return load


def _target(row: Any, box: SecretBox) -> WebhookTarget:
    return WebhookTarget(
        id=row.id,
        client_id=row.client_id,
        url=row.url,
        secret=box.open(row.secret_enc),
        events=frozenset(row.events or ()),
    )


class WebhookService:
    """Fans a client's call events out to its webhooks (see the module docstring).

    ``start()`` / ``stop()`` on the engine's loop; ``invalidate(client_id)`` from any thread.
    """

    def __init__(
        self,
        registry: CallRegistry,
        load: Loader,
        *,
        allow_private: bool = False,
        http: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        backoff: Sequence[float] = BACKOFF_S,
    ) -> None:
        self.registry = registry
        self.load = load
        self.allow_private = allow_private
        self.sleep = sleep
        self.backoff = backoff
        self._http = http
        self._own_http = http is None
        self.workers: dict[int, WebhookWorker] = {}
        self._pumps: dict[int, asyncio.Task[None]] = {}
        self._feeds: dict[int, Subscription] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reloads: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Load every active webhook and subscribe to its client's calls; returns how many."""
        self._loop = asyncio.get_running_loop()
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=TIMEOUT, headers={"User-Agent": USER_AGENT})
        targets = await asyncio.to_thread(self.load, None)
        self._apply(targets, clients=None)
        return len(targets)

    async def stop(self) -> None:
        """Stop the feeds and the workers; queued events are dropped (not persisted)."""
        for task in [*self._pumps.values(), *self._reloads]:
            task.cancel()
        await asyncio.gather(*self._pumps.values(), *self._reloads, return_exceptions=True)
        self._pumps.clear()
        for feed in self._feeds.values():
            feed.close()  # a pump cancelled before it ran never closed its own
        self._feeds.clear()
        for worker in list(self.workers.values()):
            await worker.stop()
        self.workers.clear()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
        self._loop = None

    def invalidate(self, client_id: int) -> None:
        """The client's configuration changed: reload its webhooks (callable from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._schedule_reload, client_id)

    async def reload(self, client_id: int) -> None:
        targets = await asyncio.to_thread(self.load, client_id)
        if self._loop is not None:
            self._apply(targets, clients={client_id})

    def _schedule_reload(self, client_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(client_id))
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def _apply(self, targets: Iterable[WebhookTarget], *, clients: set[int] | None) -> None:
        """Make the running workers and feeds match ``targets`` (for ``clients``, or all)."""
        wanted = {t.id: t for t in targets}
        for wid, worker in list(self.workers.items()):
            in_scope = clients is None or worker.target.client_id in clients
            if in_scope and wanted.get(wid) != worker.target:
                self._retire(self.workers.pop(wid))
        for wid, target in wanted.items():
            if wid not in self.workers:
                self.workers[wid] = self._worker(target)
        self._sync_pumps()

    def _worker(self, target: WebhookTarget) -> WebhookWorker:
        assert self._http is not None
        worker = WebhookWorker(
            target, self._http, self.allow_private, sleep=self.sleep, backoff=self.backoff
        )
        worker.start()
        return worker

    def _retire(self, worker: WebhookWorker) -> None:
        task = asyncio.get_running_loop().create_task(worker.stop())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    def _sync_pumps(self) -> None:
        clients = {w.target.client_id for w in self.workers.values()}
        for cid in set(self._pumps) - clients:
            self._pumps.pop(cid).cancel()
            self._feeds.pop(cid).close()
        loop = asyncio.get_running_loop()
        for cid in clients - set(self._pumps):
            # Subscribed now, not when the task first runs: no event slips in between.
            first = self._feeds[cid] = self.registry.subscribe(cid)
            self._pumps[cid] = loop.create_task(self._pump(cid, first))

    async def _pump(self, client_id: int, subscription: Subscription) -> None:
        """The client's call events into its webhooks' queues; resubscribes when dropped."""
        while True:
            try:
                await self._drain(subscription)
                return
            except SubscriberDroppedError:
                log.warning("webhooks of client %d fell behind the call feed", client_id)
            finally:
                subscription.close()
            subscription = self._feeds[client_id] = self.registry.subscribe(client_id)

    async def _drain(self, subscription: Subscription) -> None:
        async for update in subscription:
            self.dispatch(update)

    def dispatch(self, update: CallUpdate) -> None:
        """Queue one event for every interested webhook of its client (never blocks)."""
        call = call_json(update.call)
        for worker in self.workers.values():
            target = worker.target
            if target.client_id == update.call.client_id and target.wants(update.kind):
                worker.enqueue(update.kind, call)

    def stats(self) -> dict[int, dict[str, int]]:
        return {
            wid: {"queued": len(w.queue), "delivered": w.delivered, "failed": w.failed}
            for wid, w in self.workers.items()
        }
