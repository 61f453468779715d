"""The engine's SIP stack over loopback UDP (issue 5 item 4): out-of-dialog requests are
routed by method, answered by default, and our own requests resolve futures."""

from __future__ import annotations

import asyncio

from cloudpbx.engine.sipstack import SipStack
from cloudpbx.sip.events import RequestReceived
from cloudpbx.sip.message import Request, Response
from cloudpbx.transport.base import Flow, TransportKind

HOST = "127.0.0.1"


def _request(stack: SipStack, flow: Flow, method: str) -> Request:
    return Request(
        method,
        f"sip:{HOST}:{flow.remote[1]}",
        [
            ("Via", stack.via_for(flow)),
            ("Max-Forwards", 70),
            ("From", f"<sip:test@{HOST}>;tag=t1"),
            ("To", f"<sip:{HOST}>"),
            ("Call-ID", f"{method}-1"),
            ("CSeq", f"1 {method}"),
        ],
    )


async def _pair() -> tuple[SipStack, SipStack, Flow]:
    server, client = SipStack(), SipStack()
    addr = await server.listen_udp(HOST, 0)
    await client.listen_udp(HOST, 0)
    return server, client, client.udp_flow_to(addr)


def test_options_and_unknown_methods_get_default_answers() -> None:
    """RFC 3261 §11.2: OPTIONS → 200 with Allow; §8.2.1: an unserved method → 405."""

    async def main() -> tuple[Response | None, Response | None]:
        server, client, flow = await _pair()
        try:
            options = await client.request(_request(client, flow, "OPTIONS"), flow)
            publish = await client.request(_request(client, flow, "PUBLISH"), flow)
        finally:
            await server.close()
            await client.close()
        return options, publish

    options, publish = asyncio.run(main())
    assert options is not None
    assert options.status == 200
    assert "INVITE" in options.headers.get("allow", "")
    assert publish is not None
    assert publish.status == 405


def test_requests_are_routed_to_their_handler() -> None:
    """REGISTER goes to the registrar's handler, which answers through the stack."""
    seen: list[str] = []

    async def main() -> Response | None:
        server, client, flow = await _pair()

        def on_register(event: RequestReceived) -> None:
            seen.append(event.request.method)
            server.respond(event.tx_key, 200)

        server.on_request("REGISTER", on_register)
        try:
            return await client.request(_request(client, flow, "REGISTER"), flow)
        finally:
            await server.close()
            await client.close()

    response = asyncio.run(main())
    assert seen == ["REGISTER"]
    assert response is not None
    assert response.status == 200


def test_our_address_towards_a_peer() -> None:
    """Via/Contact: the advertised address when set, else the flow's address, and the
    routed source address when we listen on a wildcard."""
    wildcard = Flow(
        kind=TransportKind.UDP, local=("0.0.0.0", 5060), remote=(HOST, 5070), connection_id=1
    )
    assert SipStack().endpoint_for(wildcard).via == f"SIP/2.0/UDP {HOST}:5060;rport"
    assert SipStack(advertised_address="203.0.113.5").local_host_for(wildcard) == "203.0.113.5"
    tcp = Flow(kind=TransportKind.TCP, local=(HOST, 5060), remote=(HOST, 40000), connection_id=2)
    assert SipStack().endpoint_for(tcp).contact == f"<sip:cloudpbx@{HOST}:5060;transport=tcp>"
