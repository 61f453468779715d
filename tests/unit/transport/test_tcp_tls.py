"""TCP and TLS transports over loopback: round trips, connection reuse, framing, limits."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from cloudpbx.sip import parse_message
from cloudpbx.transport import (
    Address,
    FlowClosed,
    FlowClosedError,
    QueueSink,
    Received,
    SendFailed,
    StreamLimits,
    TCPTransport,
    TokenBucketLimiter,
    TransportError,
    TransportKind,
    TransportSet,
)

from . import eventually, next_event, requires_ipv6, run, sip_request, tls_contexts


async def _server(
    host: str = "127.0.0.1",
    *,
    limits: StreamLimits | None = None,
    rate_limiter: TokenBucketLimiter | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[TCPTransport, QueueSink, Address]:
    sink = QueueSink()
    server = TCPTransport(
        sink,
        limits=limits,
        rate_limiter=rate_limiter,
        ssl_context=ssl_context,
        tag_factory=lambda: "srvtag",
    )
    addr = await server.listen(host, 0)
    return server, sink, addr


async def _raw(addr: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*addr)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _round_trip(host: str) -> None:
    server, server_sink, addr = await _server(host)
    client_sink = QueueSink()
    client = TCPTransport(client_sink)
    flow = await client.connect(addr)
    assert flow.kind is TransportKind.TCP
    assert flow.remote == addr

    request = sip_request(body=b"v=0\r\n")
    client.send(request, flow)
    got = await next_event(server_sink, Received)
    assert got.data == request
    assert got.flow.remote == flow.local
    assert got.flow.local == flow.remote
    assert got.flow.kind is TransportKind.TCP

    response = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
    server.send(response, got.flow)  # through the connection the request came on
    reply = await next_event(client_sink, Received)
    assert reply.data == response
    assert reply.flow == flow

    client.close()
    closed = await next_event(server_sink, FlowClosed)
    assert closed.flow == got.flow
    await client.wait_closed()
    await server.wait_closed()


def test_tcp_round_trip_ipv4() -> None:
    run(_round_trip("127.0.0.1"))


@requires_ipv6
def test_tcp_round_trip_ipv6() -> None:
    run(_round_trip("::1"))


def test_tcp_connection_reuse() -> None:
    async def main() -> None:
        server, server_sink, addr = await _server()
        client_sink = QueueSink()
        client = TCPTransport(client_sink)
        # Sends to an address with no connection open one; the next sends reuse it.
        client.send(sip_request("one"), addr)
        client.send(sip_request("two"), addr)
        flow = await client.connect(addr)
        client.send(sip_request("three"), addr)
        got = [await next_event(server_sink, Received) for _ in range(3)]
        assert [parse_message(g.data).call_id for g in got] == ["one", "two", "three"]
        assert len({g.flow for g in got}) == 1
        assert server.connection_count == 1
        assert client.connection_count == 1
        assert client.flows() == [flow]

        # The server reaches the client by address through the inbound connection too.
        server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", got[0].flow.remote)
        reply = await next_event(client_sink, Received)
        assert reply.flow == flow
        assert server.connection_count == 1
        client.close()
        server.close()
        await client.wait_closed()
        await server.wait_closed()

    run(main())


def test_tcp_framing_across_segment_boundaries() -> None:
    async def main() -> None:
        server, sink, addr = await _server()
        _, writer = await _raw(addr)
        first, second = sip_request("a", body=b"hello"), sip_request("b", body=b"world!")
        stream = b"\r\n" + first + second  # a leading CRLF is skipped (RFC 3261 §7.5)
        cuts = [1, 7, 60, len(first) - 3, len(first) + 2, len(first) + 100, len(stream) - 1]
        pieces = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.002)  # separate segments
        got = [await next_event(sink, Received) for _ in range(2)]
        assert [g.data for g in got] == [first, second]
        assert got[0].flow == got[1].flow
        writer.close()
        await server.wait_closed()

    run(main())


def test_tcp_oversized_message_gets_513_and_close() -> None:
    async def main() -> None:
        server, sink, addr = await _server()
        reader, writer = await _raw(addr)
        head = sip_request("big").replace(b"Content-Length: 0", b"Content-Length: 70000")
        writer.write(head + b"x" * 1000)
        answer = await reader.read()  # until the server closes
        assert answer.startswith(b"SIP/2.0 513 Message Too Large")
        assert b"Call-ID: big\r\n" in answer
        assert b"tag=srvtag" in answer
        assert server.stats.framing_errors == 1
        closed = await next_event(sink, FlowClosed)
        assert "framing error" in closed.reason
        writer.close()
        await server.wait_closed()

    run(main())


def test_tcp_garbage_gets_400_and_the_listener_keeps_serving() -> None:
    async def main() -> None:
        server, sink, addr = await _server()
        reader, writer = await _raw(addr)
        bad = sip_request("bad").replace(b"Content-Length: 0", b"Content-Length: zero")
        writer.write(bad)
        answer = await reader.read()
        assert answer.startswith(b"SIP/2.0 400 Bad Request")
        writer.close()

        reader, writer = await _raw(addr)
        writer.write(b"\x16\x03\x01 not even text\r\n\r\n")  # TLS hello on the TCP port
        assert await reader.read() == b""  # nothing to answer to: just closed
        writer.close()

        reader, writer = await _raw(addr)
        writer.write(sip_request("good"))
        got = await next_event(sink, Received)
        assert parse_message(got.data).call_id == "good"
        assert server.stats.framing_errors == 2
        writer.close()
        await server.wait_closed()

    run(main())


def test_tcp_keepalive_ping_gets_a_pong() -> None:
    async def main() -> None:
        server, sink, addr = await _server()
        reader, writer = await _raw(addr)
        writer.write(b"\r\n\r\n")  # RFC 5626 §4.4.1 ping
        assert await asyncio.wait_for(reader.readexactly(2), 2) == b"\r\n"
        writer.write(sip_request("after-ping"))
        got = await next_event(sink, Received)
        assert parse_message(got.data).call_id == "after-ping"
        assert server.stats.keepalives == 1
        writer.close()
        await server.wait_closed()

    run(main())


def test_tcp_idle_connections_are_closed() -> None:
    async def main() -> None:
        server, sink, addr = await _server(limits=StreamLimits(idle_timeout=0.1))
        reader, writer = await _raw(addr)
        writer.write(sip_request())
        await next_event(sink, Received)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        closed = await next_event(sink, FlowClosed)
        assert closed.reason == "idle timeout"
        assert server.stats.idle_closed == 1
        assert server.connection_count == 0
        writer.close()
        await server.wait_closed()

    run(main())


def test_tcp_connection_limit() -> None:
    async def main() -> None:
        server, sink, addr = await _server(limits=StreamLimits(max_connections=1))
        _, first = await _raw(addr)
        first.write(sip_request("first"))
        await next_event(sink, Received)
        reader, second = await _raw(addr)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # refused
        assert server.stats.connections_refused == 1
        assert server.connection_count == 1
        client = TCPTransport(QueueSink(), limits=StreamLimits(max_connections=0))
        with pytest.raises(TransportError, match="connection limit"):
            await client.connect(addr)
        first.close()
        second.close()
        await server.wait_closed()

    run(main())


def test_tcp_rate_limiter_drops_messages() -> None:
    async def main() -> None:
        limiter = TokenBucketLimiter(rate=0.001, burst=3)  # accept + 2 messages
        server, sink, addr = await _server(rate_limiter=limiter)
        _, writer = await _raw(addr)
        writer.write(b"".join(sip_request(f"m{i}") for i in range(5)))
        await eventually(lambda: server.stats.rate_limited == 3)
        got = [parse_message((await next_event(sink, Received)).data).call_id for _ in range(2)]
        assert got == ["m0", "m1"]
        assert server.stats.received == 2
        reader, other = await _raw(addr)  # no tokens left: the connection is refused
        assert await asyncio.wait_for(reader.read(), 2) == b""
        assert server.stats.connections_refused == 1
        writer.close()
        other.close()
        await server.wait_closed()

    run(main())


def test_tcp_send_errors() -> None:
    async def main() -> None:
        server, server_sink, addr = await _server()
        client_sink = QueueSink()
        client = TCPTransport(client_sink, limits=StreamLimits(max_write_buffer=1000))
        flow = await client.connect(addr)
        client.send(sip_request(), flow)
        inbound = (await next_event(server_sink, Received)).flow
        client.close()
        await next_event(server_sink, FlowClosed)
        with pytest.raises(FlowClosedError):
            server.send(b"late", inbound)  # RFC 5626: no silent re-routing of a dead flow
        with pytest.raises(FlowClosedError):
            TransportSet(server).send(b"late", inbound)
        with pytest.raises(TransportError, match="closed"):
            client.send(b"x", addr)

        # Nothing listens on a port we just freed: the connect fails.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            dead = sock.getsockname()
        other = TCPTransport(QueueSink())
        with pytest.raises(TransportError, match="cannot connect"):
            await other.connect(dead)
        # Asynchronously, for a plain send: reported as SendFailed.
        sink = QueueSink()
        sender = TCPTransport(sink, limits=StreamLimits(max_write_buffer=1000))
        sender.send(b"x" * 600, dead)
        with pytest.raises(TransportError, match="too much data queued"):
            sender.send(b"y" * 600, dead)
        failed = await next_event(sink, SendFailed)
        assert failed.remote == dead
        assert "cannot connect" in failed.reason
        await server.wait_closed()

    run(main())


def test_tls_round_trip(tmp_path: Path) -> None:
    async def main() -> None:
        server_ctx, client_ctx = tls_contexts(tmp_path)
        server, server_sink, addr = await _server(ssl_context=server_ctx)
        assert server.kind is TransportKind.TLS
        client_sink = QueueSink()
        client = TCPTransport(client_sink, client_ssl_context=client_ctx)
        flow = await client.connect(addr)
        assert flow.kind is TransportKind.TLS
        request = sip_request(transport="TLS")
        client.send(request, flow)
        got = await next_event(server_sink, Received)
        assert got.data == request
        assert got.flow.kind is TransportKind.TLS
        server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", got.flow)
        assert (await next_event(client_sink, Received)).flow == flow
        assert await client.connect(addr) == flow  # reused

        # A client that does not trust the certificate cannot connect.
        untrusting = TCPTransport(QueueSink(), client_ssl_context=ssl.create_default_context())
        with pytest.raises(TransportError, match="cannot connect"):
            await untrusting.connect(addr)
        # Nor can a server listen for TLS without a certificate.
        with pytest.raises(TransportError, match="ssl_context"):
            await TCPTransport(QueueSink(), client_ssl_context=client_ctx).listen("127.0.0.1", 0)
        client.close()
        await client.wait_closed()
        await server.wait_closed()

    run(main())


def test_tls_framing_error_is_answered(tmp_path: Path) -> None:
    async def main() -> None:
        server_ctx, client_ctx = tls_contexts(tmp_path)
        server, _, addr = await _server(ssl_context=server_ctx)
        reader, writer = await asyncio.open_connection(*addr, ssl=client_ctx)
        writer.write(sip_request("tls").replace(b"Content-Length: 0\r\n", b""))
        answer = await reader.read()
        assert answer.startswith(b"SIP/2.0 400 Bad Request (missing Content-Length")
        writer.close()
        await server.wait_closed()

    run(main())


def test_tcp_peer_not_reading_is_disconnected() -> None:
    async def main() -> None:
        server, sink, addr = await _server(limits=StreamLimits(max_write_buffer=256 * 1024))
        _, writer = await _raw(addr)  # this peer never reads
        writer.write(sip_request())
        flow = (await next_event(sink, Received)).flow
        chunk = b"x" * 60000
        with pytest.raises(TransportError, match="write buffer"):  # noqa: PT012
            for _ in range(5000):
                server.send(chunk, flow)
        closed = await next_event(sink, FlowClosed)
        assert "not reading" in closed.reason
        writer.close()
        await server.wait_closed()

    run(main())


@requires_ipv6
def test_tcp_addresses_are_compared_canonically() -> None:
    async def main() -> None:
        server, sink, addr = await _server("::1")
        client = TCPTransport(QueueSink())
        flow = await client.connect(("0:0:0::1", addr[1]))
        assert flow.remote == addr
        client.send(sip_request("a"), ("[0::1]", addr[1]))  # the same connection
        got = await next_event(sink, Received)
        assert got.flow.remote == flow.local
        assert client.connection_count == 1
        # TLS without a client context cannot open connections: said at once.
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with pytest.raises(TransportError, match="client_ssl_context"):
            TCPTransport(QueueSink(), ssl_context=server_ctx).send(b"x", addr)
        client.close()
        await client.wait_closed()
        await server.wait_closed()

    run(main())
