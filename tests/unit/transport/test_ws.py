"""SIP over WebSocket (RFC 7118) over loopback, against the ``websockets`` asyncio client
(an independent implementation) and against our own client."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from cloudpbx.transport import (
    Address,
    FlowClosed,
    QueueSink,
    Received,
    StreamLimits,
    TokenBucketLimiter,
    TransportError,
    TransportKind,
    WSTransport,
)

from . import eventually, next_event, requires_ipv6, run, sip_request, tls_contexts

SIP = [Subprotocol("sip")]


async def _server(
    host: str = "127.0.0.1",
    *,
    limits: StreamLimits | None = None,
    rate_limiter: TokenBucketLimiter | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[WSTransport, QueueSink, Address]:
    sink = QueueSink()
    server = WSTransport(sink, limits=limits, rate_limiter=rate_limiter, ssl_context=ssl_context)
    addr = await server.listen(host, 0)
    return server, sink, addr


def _uri(addr: Address) -> str:
    return f"ws://{addr[0]}:{addr[1]}/"


def test_ws_with_the_sip_subprotocol() -> None:
    async def main() -> None:
        server, sink, addr = await _server()
        async with ws_connect(_uri(addr), subprotocols=SIP) as ws:
            assert ws.subprotocol == "sip"
            request = sip_request(transport="WS")
            await ws.send(request.decode())  # a text frame
            got = await next_event(sink, Received)
            assert got.data == request
            assert got.flow.kind is TransportKind.WS
            assert got.flow.local == addr
            server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", got.flow)
            assert await ws.recv() == "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
            await ws.send(b"\xffbinary SIP\r\n\r\n")  # binary frames are SIP too
            assert (await next_event(sink, Received)).data == b"\xffbinary SIP\r\n\r\n"
        closed = await next_event(sink, FlowClosed)
        assert closed.flow == got.flow
        await server.wait_closed()

    run(main())


@pytest.mark.parametrize("offered", [None, [Subprotocol("chat")]])
def test_ws_refuses_clients_without_the_sip_subprotocol(offered: list[Subprotocol] | None) -> None:
    async def main() -> None:
        server, sink, addr = await _server()
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(_uri(addr), subprotocols=offered):
                pass
        assert refused.value.response.status_code == 400
        await eventually(lambda: server.connection_count == 0)
        assert sink.queue.empty()  # never a flow, so no FlowClosed either
        await server.wait_closed()

    run(main())


def test_ws_own_client_round_trip_and_reuse() -> None:
    async def main() -> None:
        server, server_sink, addr = await _server()
        client_sink = QueueSink()
        client = WSTransport(client_sink)
        flow = await client.connect(addr, path="/sip")
        assert flow.kind is TransportKind.WS
        assert flow.remote == addr
        assert await client.connect(addr) == flow  # one connection per remote address
        message = sip_request(transport="WS", body="é".encode())
        client.send(message, addr)
        got = await next_event(server_sink, Received)
        assert got.data == message
        assert got.flow.remote == flow.local
        server.send(b"\x00\xff not UTF-8 \r\n\r\n", got.flow)  # goes as a binary frame
        reply = await next_event(client_sink, Received)
        assert reply.data == b"\x00\xff not UTF-8 \r\n\r\n"
        assert reply.flow == flow
        assert (server.connection_count, client.connection_count) == (1, 1)
        with pytest.raises(TransportError, match="no WS connection"):
            server.send(b"x", ("127.0.0.1", 9))  # a server cannot open a WebSocket
        client.close()
        await next_event(server_sink, FlowClosed)
        await client.wait_closed()
        await server.wait_closed()

    run(main())


def test_ws_own_client_refuses_a_server_without_sip() -> None:
    async def main() -> None:
        async def handler(ws: object) -> None:
            return None

        async with ws_serve(handler, "127.0.0.1", 0) as plain:  # no subprotocol at all
            port = plain.sockets[0].getsockname()[1]
            client = WSTransport(QueueSink())
            with pytest.raises(TransportError):
                await client.connect(("127.0.0.1", port))
            assert client.connection_count == 0
            await client.wait_closed()

    run(main())


def test_ws_oversized_message_closes_with_1009() -> None:
    async def main() -> None:
        server, sink, addr = await _server(limits=StreamLimits(max_message_size=1024))
        async with ws_connect(_uri(addr), subprotocols=SIP) as ws:
            await ws.send(sip_request(body=b"x" * 2000).decode())
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1009
        closed = await next_event(sink, FlowClosed)
        assert "too big" in closed.reason
        assert server.stats.received == 0
        await server.wait_closed()

    run(main())


def test_ws_keepalives() -> None:
    async def main() -> None:
        server, _, addr = await _server()
        async with ws_connect(_uri(addr), subprotocols=SIP) as ws:
            await ws.send("\r\n\r\n")  # CRLF ping as a message (SIP.js)
            assert await ws.recv() == "\r\n"
            await ws.send("\r\n")  # a lone CRLF: ignored
            pong_waiter = await ws.ping(b"hi")  # WebSocket ping, RFC 6455 §5.5.2
            await pong_waiter
        assert server.stats.keepalives == 2
        assert server.stats.received == 0
        await server.wait_closed()

    run(main())


def test_ws_rate_limiter_drops_messages() -> None:
    async def main() -> None:
        limiter = TokenBucketLimiter(rate=0.001, burst=3)  # handshake + 2 messages
        server, sink, addr = await _server(rate_limiter=limiter)
        async with ws_connect(_uri(addr), subprotocols=SIP) as ws:
            for i in range(5):
                await ws.send(sip_request(f"m{i}").decode())
            await eventually(lambda: server.stats.rate_limited == 3)
        assert server.stats.received == 2
        first = await next_event(sink, Received)
        assert b"Call-ID: m0" in first.data
        await server.wait_closed()

    run(main())


def test_ws_idle_timeout() -> None:
    async def main() -> None:
        server, sink, addr = await _server(limits=StreamLimits(idle_timeout=0.1))
        async with ws_connect(_uri(addr), subprotocols=SIP) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001  # going away
        assert (await next_event(sink, FlowClosed)).reason == "idle timeout"
        await server.wait_closed()

    run(main())


def test_wss_round_trip(tmp_path: Path) -> None:
    async def main() -> None:
        server_ctx, client_ctx = tls_contexts(tmp_path)
        server, server_sink, addr = await _server(ssl_context=server_ctx)
        assert server.kind is TransportKind.WSS
        client_sink = QueueSink()
        client = WSTransport(client_sink, client_ssl_context=client_ctx)
        flow = await client.connect(addr, host="localhost")
        assert flow.kind is TransportKind.WSS
        client.send(sip_request(transport="WSS"), flow)
        got = await next_event(server_sink, Received)
        assert got.flow.kind is TransportKind.WSS
        server.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", got.flow)
        assert (await next_event(client_sink, Received)).flow == flow
        # The library client, over TLS, agrees.
        async with ws_connect(f"wss://localhost:{addr[1]}/", subprotocols=SIP, ssl=client_ctx):
            await eventually(lambda: server.connection_count == 2)
        client.close()
        await client.wait_closed()
        await server.wait_closed()

    run(main())


@requires_ipv6
def test_ws_ipv6() -> None:
    async def main() -> None:
        server, server_sink, addr = await _server("::1")
        client = WSTransport(QueueSink())
        flow = await client.connect(addr)
        assert flow.remote == addr
        client.send(sip_request(transport="WS"), flow)
        assert (await next_event(server_sink, Received)).flow.remote == flow.local
        client.close()
        await client.wait_closed()
        await server.wait_closed()

    run(main())
