"""UDP transport over loopback, the token-bucket rate limiter, and the shared types."""

from __future__ import annotations

import asyncio

import pytest

from cloudpbx.sip import ParseError, bad_request_response, parse_message
from cloudpbx.transport import (
    Flow,
    FlowClosedError,
    QueueSink,
    Received,
    TokenBucketLimiter,
    TransportError,
    TransportEvent,
    TransportKind,
    TransportSet,
    UDPTransport,
)

from . import eventually, next_event, requires_ipv6, run, sip_request


async def _pair(
    host: str = "127.0.0.1", rate_limiter: TokenBucketLimiter | None = None
) -> tuple[UDPTransport, QueueSink, UDPTransport, QueueSink]:
    server_sink, client_sink = QueueSink(), QueueSink()
    server = UDPTransport(server_sink, rate_limiter=rate_limiter)
    client = UDPTransport(client_sink)
    await server.listen(host, 0)
    await client.listen(host, 0)
    return server, server_sink, client, client_sink


async def _round_trip(host: str) -> None:
    server, server_sink, client, client_sink = await _pair(host)
    request = sip_request(transport="UDP")
    client.send(request, server.local_addr)  # type: ignore[arg-type]
    got = await next_event(server_sink, Received)
    assert got.data == request
    assert got.flow.kind is TransportKind.UDP
    assert got.flow.remote == client.local_addr
    assert got.flow.local == server.local_addr
    assert abs(got.now - asyncio.get_running_loop().time()) < 1.0

    server.send(b"SIP/2.0 200 OK\r\n\r\n", got.flow)  # back along the same flow
    reply = await next_event(client_sink, Received)
    assert reply.data == b"SIP/2.0 200 OK\r\n\r\n"
    assert reply.flow.remote == server.local_addr
    assert (server.stats.received, server.stats.sent) == (1, 1)
    server.close()
    client.close()
    await server.wait_closed()
    await client.wait_closed()


def test_udp_round_trip_ipv4() -> None:
    run(_round_trip("127.0.0.1"))


@requires_ipv6
def test_udp_round_trip_ipv6() -> None:
    run(_round_trip("::1"))


def test_udp_bare_crlf_keepalives_are_ignored() -> None:
    async def main() -> None:
        server, sink, client, _ = await _pair()
        dest = server.local_addr
        assert dest is not None
        for ping in (b"\r\n\r\n", b"\r\n", b"\0\0\0\0"):
            client.send(ping, dest)
        client.send(sip_request(transport="UDP"), dest)
        got = await next_event(sink, Received)
        assert got.data.startswith(b"OPTIONS")
        assert server.stats.keepalives == 3
        assert sink.queue.empty()
        server.close()
        client.close()

    run(main())


def test_udp_garbage_is_delivered_and_answered_by_the_parser_layer() -> None:
    """The transport hands garbage up unparsed; the layer that parses answers 400 (or
    drops) and the socket keeps serving."""

    async def main() -> None:
        client_sink = QueueSink()
        server = UDPTransport(lambda event: parse_or_answer(server, event))
        client = UDPTransport(client_sink)
        dest = await server.listen("127.0.0.1", 0)
        await client.listen("127.0.0.1", 0)
        good = sip_request("ok", transport="UDP")
        bad = sip_request("bad", transport="UDP").replace(b"Max-Forwards: 70", b"Max-Forwards: x")
        for data in (b"\x00\xffnot SIP at all", bad, good):
            client.send(data, dest)
        answer = await next_event(client_sink, Received)
        assert answer.data.startswith(b"SIP/2.0 400 Bad Request")
        assert b"Call-ID: bad" in answer.data
        await eventually(lambda: server.stats.received == 3)
        assert parsed == ["ok"]
        server.close()
        client.close()

    parsed: list[str] = []

    def parse_or_answer(transport: UDPTransport, event: TransportEvent) -> None:
        assert isinstance(event, Received)
        try:
            parsed.append(parse_message(event.data).call_id)
        except ParseError as exc:
            answer = bad_request_response(event.data, exc, to_tag="t1")
            if answer is not None:
                transport.send(answer, event.flow)

    run(main())


def test_udp_rate_limiter_drops_over_limit_traffic() -> None:
    async def main() -> None:
        limiter = TokenBucketLimiter(rate=0.001, burst=3)
        server, sink, client, _ = await _pair(rate_limiter=limiter)
        dest = server.local_addr
        assert dest is not None
        for i in range(10):
            client.send(sip_request(f"c{i}", transport="UDP"), dest)
        await eventually(lambda: server.stats.received + server.stats.rate_limited == 10)
        assert (server.stats.received, server.stats.rate_limited) == (3, 7)
        delivered = [parse_message((await next_event(sink, Received)).data) for _ in range(3)]
        assert [m.call_id for m in delivered] == ["c0", "c1", "c2"]
        server.close()
        client.close()

    run(main())


def test_udp_send_errors() -> None:
    async def main() -> None:
        server = UDPTransport(QueueSink())
        with pytest.raises(TransportError):
            server.send(b"x", ("127.0.0.1", 5060))  # not bound yet
        await server.listen("127.0.0.1", 0)
        with pytest.raises(TransportError):
            await server.listen("127.0.0.1", 0)
        with pytest.raises(TransportError, match="too large"):
            server.send(b"x" * 70000, ("127.0.0.1", 5060))
        foreign = Flow(
            kind=TransportKind.UDP,
            local=("127.0.0.1", 1),
            remote=("127.0.0.1", 2),
            connection_id=-1,
        )
        with pytest.raises(TransportError, match="not from this UDP socket"):
            server.send(b"x", foreign)
        server.close()
        await server.wait_closed()
        with pytest.raises(TransportError):
            server.send(b"x", ("127.0.0.1", 5060))
        assert server.closed

    run(main())


def test_transport_set_routes_flows_to_their_owner() -> None:
    async def main() -> None:
        a, _a_sink, b, b_sink = await _pair()
        peer = UDPTransport(QueueSink())
        await peer.listen("127.0.0.1", 0)
        assert b.local_addr is not None
        both = TransportSet(a)
        both.add(peer)
        both.send(b"via a", a.flow_to(b.local_addr))
        both.send(b"via peer", peer.flow_to(b.local_addr))
        first = await next_event(b_sink, Received)
        second = await next_event(b_sink, Received)
        assert {first.flow.remote, second.flow.remote} == {a.local_addr, peer.local_addr}
        with pytest.raises(FlowClosedError):
            both.send(b"x", b.flow_to(a.local_addr))  # type: ignore[arg-type]
        both.close()
        await both.wait_closed()
        b.close()

    run(main())


# Pure parts: no sockets.


def test_token_bucket_burst_then_refill() -> None:
    limiter = TokenBucketLimiter(rate=2.0, burst=3)
    assert [limiter.allow("10.0.0.1", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("10.0.0.2", 0.0)  # another source has its own bucket
    assert not limiter.allow("10.0.0.1", 0.25)  # half a token
    assert limiter.allow("10.0.0.1", 0.5)
    assert not limiter.allow("10.0.0.1", 0.5)
    assert [limiter.allow("10.0.0.1", 100.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_memory_is_bounded() -> None:
    limiter = TokenBucketLimiter(rate=1.0, burst=5, max_sources=100)
    for i in range(10000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(limiter) <= 100
    # Idle buckets (full again) are forgotten as traffic goes on.
    for _ in range(100):
        limiter.allow("192.0.2.1", 1000.0)
    assert len(limiter) == 1


def test_token_bucket_eviction_is_lossless_for_idle_sources() -> None:
    limiter = TokenBucketLimiter(rate=1.0, burst=2)
    assert limiter.allow("a", 0.0)
    assert limiter.allow("a", 0.0)
    assert not limiter.allow("a", 0.0)
    limiter.allow("b", 10.0)  # "a" is full again by now, so it may go
    assert limiter.allow("a", 10.0)
    assert limiter.allow("a", 10.0)


def test_token_bucket_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucketLimiter(rate=-1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucketLimiter(burst=0)


def test_queue_sink_is_bounded() -> None:
    async def main() -> None:
        sink = QueueSink(maxsize=2)
        flow = Flow(kind=TransportKind.TCP, local=("::1", 1), remote=("::1", 2), connection_id=7)
        for _ in range(3):
            sink(Received(data=b"x", flow=flow, now=0.0))
        assert sink.dropped == 1
        assert sink.queue.qsize() == 2

    run(main())


def test_flow_and_kind() -> None:
    flow = Flow(
        kind=TransportKind.TLS, local=("::1", 5061), remote=("127.0.0.1", 40000), connection_id=3
    )
    assert str(flow) == "TLS:[::1]:5061->127.0.0.1:40000#3"
    assert flow == Flow(
        kind=TransportKind.TLS, local=("::1", 5061), remote=("127.0.0.1", 40000), connection_id=3
    )
    assert TransportKind.TLS.reliable
    assert TransportKind.TLS.secure
    assert not TransportKind.UDP.reliable
    assert not TransportKind.WS.secure
    assert TransportKind.WSS.value == "WSS"  # the Via transport token (RFC 7118 §5)
