"""CRM webhooks (PRODUCT.md §6 "CRM телефония"): signature, SSRF guard, retries, queue bound.

Deliveries go to a tiny HTTP/1.1 responder on 127.0.0.1 (``asyncio.start_server``, port 0);
backoff waits go through an injected sleep, so nothing here sleeps for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from cloudpbx.engine.active_calls import ActiveCall, ActiveLeg, CallRegistry, CallState
from cloudpbx.services.webhooks import (
    DeliveryQueue,
    DestinationRefusedError,
    WebhookService,
    WebhookTarget,
    WebhookWorker,
    call_json,
    check_destination,
    is_internal,
    payload,
    sign,
    url_problem,
    verify,
)

SECRET = "whsec-test-0123456789"


@dataclass
class Crm:
    """A CRM stub: answers each POST with the next status (then 200) and keeps what it got."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")[1:]
            headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append((headers, body))
            self.arrived.set()
            status = self.statuses.pop(0) if self.statuses else 200
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()


async def _serve(crm: Crm) -> asyncio.Server:
    server = await asyncio.start_server(lambda r, w: _quietly(crm.handle(r, w)), "127.0.0.1", 0)
    crm.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    return server


async def _quietly(coro: Any) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        await coro


def _call(state: CallState = CallState.RINGING, answer_ms: int | None = None) -> ActiveCall:
    return ActiveCall(
        uuid="c-1",
        client_id=7,
        caller="+79161234567",
        called="+74951234567",
        internal_number="100",
        state=state,
        start_ms=1_764_145_200_000,
        answer_ms=answer_ms,
        legs=(ActiveLeg(leg_id="a", direction="in", party="+79161234567"),),
    )


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# --- signature -----------------------------------------------------------------------------------


def test_signature_known_answer() -> None:
    """§6 webhooks: sha256=HMAC-SHA256(secret, "<ts>." + body) (openssl dgst -hmac)."""
    expected = "57286d5d58203f4aaa0c85d15bd4e2d1fb31fb82bb6c8e4fd19891a9ecb4fb52"
    assert sign(SECRET, 1764145200, b'{"event":"started"}') == "sha256=" + expected


def test_verify_checks_signature_and_replay_window() -> None:
    """§6 webhooks: a CRM accepts a fresh, correctly signed body and nothing else."""
    body = payload("started", call_json(_call()), 1_764_145_200_000)
    good = sign(SECRET, 1764145200, body)
    assert verify(SECRET, "1764145200", body, good, now=1764145260)
    assert not verify(SECRET, "1764145200", body + b" ", good, now=1764145260)
    assert not verify("other-secret-000000", "1764145200", body, good, now=1764145260)
    assert not verify(SECRET, "1764145201", body, good, now=1764145260)
    assert not verify(SECRET, "1764145200", body, good, now=1764145200 + 301)
    assert not verify(SECRET, "soon", body, good, now=1764145200)


def test_payload_shape() -> None:
    """§6 webhooks: event, ts (epoch ms) and the call with ISO times, no client id."""
    data = json.loads(
        payload("answered", call_json(_call(CallState.ANSWERED, 1_764_145_205_000)), 5)
    )
    assert data["event"] == "answered"
    assert data["ts"] == 5
    call = data["call"]
    assert call["uuid"] == "c-1"
    assert call["state"] == "answered"
    assert "client_id" not in call
    assert call["start"] == "2025-11-26T08:20:00.000+00:00"
    assert call["answer"] == "2025-11-26T08:20:05.000+00:00"
    assert call["legs"][0]["party"] == "+79161234567"


# --- URL checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://crm.example.com/hook", None),
        ("http://crm.example.com:8080/a?b=c", None),
        ("ftp://crm.example.com/", "scheme"),
        ("https://user:pw@crm.example.com/", "credentials"),
        ("https:///path", "host"),
        ("https://crm.example.com:99999/", "valid"),
        ("https://crm.example.com/#x", "fragment"),
    ],
)
def test_url_problem(url: str, problem: str | None) -> None:
    """§6 webhooks: http/https only, a host, no credentials in the URL."""
    found = url_problem(url)
    assert (found is None) if problem is None else (problem in (found or ""))


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "fd00::1",
    ],
)
def test_internal_addresses(address: str) -> None:
    """§6 webhooks, SSRF guard: internal ranges are recognised, IPv4-mapped IPv6 too."""
    assert is_internal(address)


def test_public_address_is_not_internal() -> None:
    assert not is_internal("93.184.216.34")
    assert not is_internal("2606:2800:220:1::1")


def test_check_destination_resolves_names() -> None:
    """§6 webhooks: a name resolving internally is refused unless private is allowed."""

    def resolver(addresses: Sequence[str]) -> Any:
        async def resolve(host: str, port: int) -> Sequence[str]:
            return addresses

        return resolve

    async def main() -> None:
        url = "https://crm.example.com/hook"
        await check_destination(url, allow_private=False, resolve=resolver(["93.184.216.34"]))
        with pytest.raises(DestinationRefusedError, match="internal"):
            await check_destination(
                url, allow_private=False, resolve=resolver(["93.184.216.34", "10.0.0.5"])
            )
        await check_destination(url, allow_private=True, resolve=resolver(["10.0.0.5"]))
        with pytest.raises(DestinationRefusedError, match="internal"):
            await check_destination("http://127.0.0.1:1/", allow_private=False)

    asyncio.run(main())


# --- delivery ------------------------------------------------------------------------------------


def _target(url: str, events: frozenset[str] = frozenset()) -> WebhookTarget:
    return WebhookTarget(id=1, client_id=7, url=url, secret=SECRET, events=events)


def test_retries_with_backoff_then_success() -> None:
    """§6 webhooks: 503, 503, 200 → three signed POSTs, backoff 1 s then 4 s."""

    async def main() -> tuple[Crm, WebhookWorker, Any]:
        crm = Crm(statuses=[503, 503])
        server = await _serve(crm)
        sleeps = Sleeps()
        async with httpx.AsyncClient() as http:
            worker = WebhookWorker(
                _target(crm.url), http, True, sleep=sleeps, clock=lambda: 1764145200.5
            )
            attempt = await worker.send("started", call_json(_call()))
        server.close()
        return crm, worker, (attempt, sleeps.waits)

    crm, worker, (attempt, waits) = asyncio.run(main())
    assert attempt.ok
    assert attempt.status == 200
    assert waits == [1.0, 4.0]
    assert worker.delivered == 1
    assert worker.failed == 0
    assert len(crm.received) == 3
    headers, body = crm.received[-1]
    assert headers["x-cloudpbx-event"] == "started"
    assert headers["x-cloudpbx-timestamp"] == "1764145200"
    assert headers["content-type"] == "application/json"
    assert verify(SECRET, "1764145200", body, headers["x-cloudpbx-signature"], now=1764145201)


def test_gives_up_after_three_attempts_and_not_on_4xx() -> None:
    """§6 webhooks: 3 attempts at most; a 4xx other than 429 is final; refused URLs unsent."""

    async def main() -> tuple[Crm, list[Any]]:
        crm = Crm(statuses=[500, 500, 500, 404])
        server = await _serve(crm)
        async with httpx.AsyncClient() as http:
            worker = WebhookWorker(_target(crm.url), http, True, sleep=Sleeps())
            results = [await worker.send("ended", {"uuid": "x"})]
            results.append(await worker.send("ended", {"uuid": "y"}))
            guarded = WebhookWorker(_target(crm.url), http, False, sleep=Sleeps())
            results.append(await guarded.send("ended", {"uuid": "z"}))
            results.append(worker.failed)
        server.close()
        return crm, results

    crm, (first, second, refused, failed) = asyncio.run(main())
    assert first.status == 500
    assert not first.ok
    assert second.status == 404
    assert refused.status is None
    assert "refused" in (refused.error or "")
    assert len(crm.received) == 4
    assert failed == 2


def test_queue_drops_oldest_when_full() -> None:
    """§6 webhooks: a CRM that is down loses its oldest events, not our memory."""

    async def main() -> tuple[list[str], int]:
        queue = DeliveryQueue(maxlen=2)
        assert queue.put("started", {"n": 1})
        assert queue.put("answered", {"n": 2})
        assert not queue.put("ended", {"n": 3})
        got = [(await queue.get())[0], (await queue.get())[0]]
        return got, queue.dropped

    assert asyncio.run(main()) == (["answered", "ended"], 1)


def test_service_delivers_registry_events_and_follows_changes() -> None:
    """§6 webhooks: started/answered/ended reach the client's webhook in order; events filter;
    another client's calls do not; invalidate() picks up a new webhook."""

    async def main() -> tuple[Crm, Crm]:
        crm, crm2 = Crm(), Crm()
        server, server2 = await _serve(crm), await _serve(crm2)
        hooks = {7: [_target(crm.url)]}
        registry = CallRegistry()
        service = WebhookService(
            registry, lambda cid: _load(hooks, cid), allow_private=True, sleep=Sleeps()
        )
        assert await service.start() == 1
        await _one_call(registry, client_id=7)  # at once: subscribed within start()
        await _one_call(registry, client_id=8)  # another tenant: not delivered
        await _until(lambda: len(crm.received) == 3)
        hooks[7].append(
            WebhookTarget(
                id=2, client_id=7, url=crm2.url, secret=SECRET, events=frozenset({"ended"})
            )
        )
        await asyncio.to_thread(service.invalidate, 7)
        await _until(lambda: 2 in service.workers)
        await _one_call(registry, client_id=7)
        await _until(lambda: len(crm.received) == 6 and len(crm2.received) == 1)
        await service.stop()
        assert registry.subscriber_count(7) == 0
        server.close()
        server2.close()
        return crm, crm2

    crm, crm2 = asyncio.run(main())
    events = [h["x-cloudpbx-event"] for h, _ in crm.received]
    assert events == ["started", "answered", "ended"] * 2
    assert all(json.loads(b)["call"]["caller"] == "+79161234567" for _, b in crm.received)
    assert [h["x-cloudpbx-event"] for h, _ in crm2.received] == ["ended"]


def _load(hooks: dict[int, list[WebhookTarget]], client_id: int | None) -> list[WebhookTarget]:
    if client_id is None:
        return [t for targets in hooks.values() for t in targets]
    return list(hooks.get(client_id, []))


async def _one_call(registry: CallRegistry, *, client_id: int) -> None:
    from dataclasses import replace

    call = replace(_call(), client_id=client_id)
    registry.add(call)
    registry.update(replace(call, state=CallState.ANSWERED, answer_ms=call.start_ms + 5000))
    registry.remove(call.uuid)
    await asyncio.sleep(0)


async def _until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
