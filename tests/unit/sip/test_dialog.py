"""The dialog layer (RFC 3261 §12-§15, RFC 3311, RFC 6026 for the 2xx ACK): dialog state,
route sets, CSeq rules, forking, target refresh, glare, late offer, option tags, 481/501,
CANCEL, and a Hypothesis test over random message orders.

Two dialog layers are wired back to back through a fake network (:class:`Net`) with a fake
clock that jumps to the next timer; messages go through bytes and the parser as on the wire.
Session timers are in test_session_timer.py, 100rel/PRACK in test_prack.py (both reuse the
harness below).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cloudpbx.sip import Request, Response, make_response, parse_message
from cloudpbx.sip.dialog import (
    DIALOG_TRANSITIONS,
    Dialog,
    DialogConfig,
    DialogInput,
    DialogLayer,
    DialogState,
    DialogStateError,
    Endpoint,
    OfferAnswerState,
    UnknownDialogError,
)
from cloudpbx.sip.events import (
    ByeReceived,
    CallAnswered,
    CallFailed,
    CallKey,
    DialogAckReceived,
    DialogId,
    DialogRequest,
    DialogResponse,
    DialogTerminated,
    EarlyDialog,
    IncomingCall,
    InviteCancelled,
    PrackReceived,
    ProvisionalReceived,
    ReInvite,
    RequestReceived,
    ResponseReceived,
    SessionExpired,
    TerminationReason,
    TransactionEvent,
    TransactionKey,
    TransactionTerminated,
    Update,
)
from cloudpbx.sip.transaction import (
    TimerConfig,
    TransactionLayer,
    TransactionStateError,
    UnknownTransactionError,
)
from cloudpbx.sip.uri import parse_name_addr, parse_uri

Addr = tuple[str, int]
A_ADDR: Addr = ("192.0.2.1", 5060)
B_ADDR: Addr = ("192.0.2.2", 5060)
C_ADDR: Addr = ("192.0.2.3", 5060)
SDP = "application/sdp"
OFFER = b"v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns=-\r\n"
ANSWER = b"v=0\r\no=bob 1 1 IN IP4 192.0.2.2\r\ns=-\r\n"
E = TypeVar("E")


# --- the harness: two (or more) layers, a network, a clock ----------------------------------------


class Party:
    """One endpoint: a dialog layer with deterministic tokens, and the events it reported."""

    def __init__(
        self,
        net: Net,
        name: str,
        addr: Addr,
        *,
        config: DialogConfig | None = None,
        timers: TimerConfig | None = None,
        transport: str = "UDP",
    ) -> None:
        self.name, self.addr, self.net = name, addr, net
        tokens = itertools.count(1)

        def token() -> str:
            return f"{name}{next(tokens)}"

        endpoint = Endpoint(
            f"SIP/2.0/{transport} {addr[0]}:{addr[1]}", f"<sip:{name}@{addr[0]}:{addr[1]}>"
        )
        self.layer = DialogLayer(
            TransactionLayer(new_tag=token, config=timers),
            new_token=token,
            endpoint_for=lambda _addr: endpoint,
            config=config,
        )
        self.events: list[Any] = []
        self.times: list[float] = []  # when each event was drained
        net.parties[addr] = self

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def last(self, kind: type[E]) -> E:
        found = self.of(kind)
        assert found, f"{self.name} has no {kind.__name__} in {self.events}"
        return found[-1]

    def drain(self) -> None:
        while (event := self.layer.next_event()) is not None:
            self.events.append(event)
            self.times.append(self.net.now)

    def invite(
        self, to: Party | Addr, *, body: bytes = OFFER, headers: tuple[tuple[str, str], ...] = ()
    ) -> CallKey:
        addr = to.addr if isinstance(to, Party) else to
        name = to.name if isinstance(to, Party) else "peer"
        invite = self.layer.create_invite(
            request_uri=f"sip:{name}@{addr[0]}:{addr[1]}",
            from_=f"<sip:{self.name}@example.com>",
            to=f"<sip:{name}@example.com>",
            addr=addr,
            body=body,
            content_type=SDP if body else None,
            headers=headers,
        )
        call = self.layer.send_invite(invite, addr, self.net.now)
        self.net.flush()
        return call


class Net:
    """Delivers every datagram to the party at its destination (source address attached),
    unless ``drop`` says otherwise; keeps everything sent, with the time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.parties: dict[Addr, Party] = {}
        self.sent: list[tuple[float, Addr, Addr, bytes]] = []
        self.drop: Callable[[Addr, Addr, bytes], bool] = lambda src, dst, data: False

    def flush(self) -> None:
        moved = True
        while moved:
            moved = False
            for party in list(self.parties.values()):
                party.drain()
                for data, dst in party.layer.datagrams_to_send(self.now):
                    moved = True
                    self.sent.append((self.now, party.addr, dst, data))
                    peer = self.parties.get(dst)
                    if peer is not None and not self.drop(party.addr, dst, data):
                        peer.layer.receive_datagram(data, party.addr, self.now)
        for party in self.parties.values():
            party.drain()

    def next_deadline(self) -> float | None:
        deadlines = [d for p in self.parties.values() if (d := p.layer.get_timer()) is not None]
        return min(deadlines, default=None)

    def advance(self, until: float) -> None:
        """Run every timer due up to ``until``, jumping from deadline to deadline."""
        while (deadline := self.next_deadline()) is not None and deadline <= until:
            self.now = max(self.now, deadline)
            for party in list(self.parties.values()):
                timer = party.layer.get_timer()
                if timer is not None and timer <= self.now:
                    party.layer.handle_timer(self.now)
            self.flush()
        self.now = max(self.now, until)

    def run_out(self, limit: float = 100_000.0) -> None:
        while (deadline := self.next_deadline()) is not None:
            assert deadline < limit, "timers never ran out"
            self.advance(deadline)

    def sent_by(self, src: Addr, start: str = "") -> list[tuple[float, Request | Response]]:
        out = []
        for when, source, _dst, data in self.sent:
            if source == src and data.decode(errors="replace").startswith(start):
                out.append((when, parse_message(data)))
        return out

    def requests(self, src: Addr, method: str) -> list[Request]:
        return [m for _, m in self.sent_by(src, method + " ") if isinstance(m, Request)]

    def responses(self, src: Addr, status: int | None = None) -> list[Response]:
        found = [m for _, m in self.sent_by(src, "SIP/2.0 ") if isinstance(m, Response)]
        return [m for m in found if status is None or m.status == status]


def pair(
    a_config: DialogConfig | None = None,
    b_config: DialogConfig | None = None,
    *,
    timers: TimerConfig | None = None,
) -> tuple[Net, Party, Party]:
    net = Net()
    return (
        net,
        Party(net, "alice", A_ADDR, config=a_config, timers=timers),
        Party(net, "bob", B_ADDR, config=b_config, timers=timers),
    )


def establish(
    net: Net,
    a: Party,
    b: Party,
    *,
    offer: bytes = OFFER,
    ring: bool = True,
    headers: tuple[tuple[str, str], ...] = (),
) -> tuple[DialogId, DialogId]:
    """A basic call from ``a`` to ``b``; returns the dialog ids on both sides."""
    a.invite(b, body=offer, headers=headers)
    incoming = b.last(IncomingCall)
    if ring:
        b.layer.respond(incoming.tx_key, 180, net.now)
        net.flush()
    body = ANSWER
    b.layer.respond(incoming.tx_key, 200, net.now, body=body, content_type=SDP)
    net.flush()
    answered = a.last(CallAnswered)
    if answered.ack_pending:
        a.layer.send_ack(answered.dialog_id, net.now, body=OFFER, content_type=SDP)
        net.flush()
    return answered.dialog_id, incoming.dialog_id


def mirrored(a_id: DialogId, b_id: DialogId) -> bool:
    return a_id == DialogId(b_id.call_id, b_id.remote_tag, b_id.local_tag)


def peer_request(
    party: Party,
    dialog_id: DialogId,
    method: str,
    *,
    cseq: int | None = None,
    body: bytes = b"",
    rack: str | None = None,
) -> TransactionKey:
    """Send a request straight through ``party``'s transaction layer, bypassing its dialog
    layer's checks (to play a misbehaving or racing peer)."""
    dialog = party.layer.dialog(dialog_id)
    assert dialog is not None
    request = dialog.make_request(
        method, via=f"SIP/2.0/UDP {party.addr[0]}:{party.addr[1]}", branch=f"z9hG4bKraw{cseq}"
    )
    if cseq is not None:
        request.headers.set("CSeq", f"{cseq} {method}")
    if rack is not None:
        request.headers.add("RAck", rack)
    if body:
        request.set_body(body, SDP)
    key = party.layer.transactions.send_request(request, dialog.peer_addr, party.net.now)
    party.net.flush()
    return key


# --- basic call -----------------------------------------------------------------------------------


def test_basic_call_setup_and_teardown() -> None:
    net, a, b = pair()
    call = a.invite(b)
    incoming = b.last(IncomingCall)
    assert incoming.request.body == OFFER
    assert b.layer.dialog(incoming.dialog_id) is None  # no dialog before a 1xx/2xx

    b.layer.respond(incoming.tx_key, 180, net.now)
    net.flush()
    early = a.last(EarlyDialog)
    assert early.call == call
    assert not early.reliable
    assert mirrored(early.dialog_id, incoming.dialog_id)
    a_dialog = a.layer.dialog(early.dialog_id)
    b_dialog = b.layer.dialog(incoming.dialog_id)
    assert a_dialog is not None
    assert b_dialog is not None
    assert a_dialog.state is b_dialog.state is DialogState.EARLY

    b.layer.respond(incoming.tx_key, 200, net.now, body=ANSWER, content_type=SDP)
    net.flush()
    answered = a.last(CallAnswered)
    assert answered.dialog_id == early.dialog_id
    assert not answered.ack_pending
    assert b.last(DialogAckReceived).dialog_id == incoming.dialog_id
    assert a_dialog.state is b_dialog.state is DialogState.CONFIRMED
    # §12.1: remote targets are the Contacts, the offer/answer is complete on both sides.
    assert a_dialog.remote_target == parse_uri("sip:bob@192.0.2.2:5060")
    assert b_dialog.remote_target == parse_uri("sip:alice@192.0.2.1:5060")
    assert a_dialog.offer_answer is b_dialog.offer_answer is OfferAnswerState.STABLE
    assert a_dialog.remote_body == ANSWER
    assert b_dialog.remote_body == OFFER
    assert a_dialog.local_seq == 1
    assert a_dialog.remote_seq is None
    assert b_dialog.local_seq is None
    assert b_dialog.remote_seq == 1

    a.layer.bye(answered.dialog_id, net.now)
    net.flush()
    assert a.last(DialogTerminated).reason is TerminationReason.LOCAL_BYE
    assert b.last(ByeReceived).dialog_id == incoming.dialog_id
    assert b.last(DialogTerminated).reason is TerminationReason.REMOTE_BYE
    assert a.layer.dialog_count == b.layer.dialog_count == 0
    net.run_out()
    assert a.layer.is_idle()
    assert b.layer.is_idle()
    # Exactly one ACK went out (the 2xx came once), with the INVITE's CSeq number.
    (ack,) = net.requests(A_ADDR, "ACK")
    assert ack.cseq.number == 1
    assert ack.via[0].branch != net.requests(A_ADDR, "INVITE")[0].via[0].branch
    (bye,) = net.requests(A_ADDR, "BYE")
    assert bye.cseq.number == 2
    assert str(bye.uri) == "sip:bob@192.0.2.2:5060"


def test_responses_carry_tag_contact_and_capabilities() -> None:
    net, a, b = pair()
    a.invite(b)
    incoming = b.last(IncomingCall)
    ringing = b.layer.respond(incoming.tx_key, 180, net.now)
    assert ringing.to.tag == incoming.dialog_id.local_tag
    assert ringing.headers.get("contact") == "<sip:bob@192.0.2.2:5060>"
    assert "timer" in ringing.headers.get("supported", "")
    assert "UPDATE" in ringing.headers.get("allow", "")
    invite = net.requests(A_ADDR, "INVITE")[0]
    assert invite.headers.get("session-expires") == "1800"
    assert invite.headers.get("min-se") == "90"


# --- route sets and request building (§12.1, §12.2.1.1) -----------------------------------------


def test_record_route_gives_route_sets_in_the_right_order() -> None:
    net, a, b = pair()
    # As recorded by two proxies: p1 next to the caller, p2 next to the callee (each
    # proxy puts its Record-Route on top).
    rr = (("Record-Route", "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>"),)
    a_id, b_id = establish(net, a, b, headers=rr)
    a_dialog, b_dialog = a.layer.dialog(a_id), b.layer.dialog(b_id)
    assert a_dialog is not None
    assert b_dialog is not None
    # §12.1.1: the UAS keeps the Record-Route order; §12.1.2: the UAC reverses it.
    assert [str(r.uri) for r in b_dialog.route_set] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]
    assert [str(r.uri) for r in a_dialog.route_set] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    # The 2xx copied the Record-Route; the ACK and BYE follow the route set.
    ok = a.last(CallAnswered).response
    assert ok.headers.values("record-route") == [
        "<sip:p2.example.com;lr>",
        "<sip:p1.example.com;lr>",
    ]
    (ack,) = net.requests(A_ADDR, "ACK")
    assert ack.headers.values("route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert str(ack.uri) == "sip:bob@192.0.2.2:5060"
    b.layer.bye(b_id, net.now)
    net.flush()
    (bye,) = net.requests(B_ADDR, "BYE")
    assert bye.headers.values("route") == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert str(bye.uri) == "sip:alice@192.0.2.1:5060"
    assert a.last(DialogTerminated).reason is TerminationReason.REMOTE_BYE


def make_dialog(routes: tuple[str, ...]) -> Dialog:
    return Dialog(
        id=DialogId("c1", "lt", "rt"),
        state=DialogState.CONFIRMED,
        is_uac=True,
        local_uri=parse_name_addr("<sip:a@example.com>;tag=lt"),
        remote_uri=parse_name_addr("<sip:b@example.com>;tag=rt"),
        local_seq=5,
        remote_seq=None,
        remote_target=parse_uri("sip:b@192.0.2.9:5070"),
        route_set=tuple(parse_name_addr(r) for r in routes),
        secure=False,
        local_contact="<sip:a@192.0.2.1>",
        peer_addr=B_ADDR,
    )


def test_loose_routing_keeps_the_remote_target_in_the_request_uri() -> None:
    dialog = make_dialog(("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr;foo=bar>"))
    request = dialog.make_request("INFO", via="SIP/2.0/UDP 192.0.2.1", branch="z9hG4bKx")
    assert str(request.uri) == "sip:b@192.0.2.9:5070"
    assert request.headers.values("route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr;foo=bar>",
    ]
    assert request.cseq.number == 6
    assert dialog.local_seq == 6
    assert request.to.tag == "rt"
    assert request.from_.tag == "lt"
    assert request.call_id == "c1"
    assert "contact" not in request.headers  # INFO is no target refresh
    invite = dialog.make_request("INVITE", via="SIP/2.0/UDP 192.0.2.1", branch="z9hG4bKy")
    assert invite.cseq.number == 7
    assert invite.headers.get("contact") == "<sip:a@192.0.2.1>"


def test_strict_router_goes_in_the_request_uri() -> None:
    # §12.2.1.1: no lr on the first route: it becomes the Request-URI (without parameters
    # not allowed there), the rest of the route set and then the remote target go in Route.
    dialog = make_dialog(("<sip:strict.example.com;method=INVITE;transport=udp>", "<sip:p2;lr>"))
    request = dialog.make_request("BYE", via="SIP/2.0/UDP 192.0.2.1", branch="z9hG4bKx")
    assert str(request.uri) == "sip:strict.example.com;transport=udp"
    assert request.headers.values("route") == ["<sip:p2;lr>", "<sip:b@192.0.2.9:5070>"]


def test_ack_for_2xx_keeps_cseq_and_is_resent_for_each_retransmission() -> None:
    net, a, b = pair()
    acks_lost = True
    net.drop = lambda src, dst, data: acks_lost and data.startswith(b"ACK ")
    a.invite(b)
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 200, net.now, body=ANSWER, content_type=SDP)
    net.flush()
    net.advance(net.now + 1.6)  # B retransmits the 2xx at T1 and 2*T1 (RFC 3261 §13.3.1.4)
    acks = net.requests(A_ADDR, "ACK")
    assert len(acks) == 3
    assert len({bytes(x) for x in acks}) == 1
    assert len(a.of(CallAnswered)) == 1
    acks_lost = False
    net.advance(net.now + 3)
    assert len(b.of(DialogAckReceived)) == 1


def test_secure_flag_for_sips_over_tls() -> None:
    net = Net()
    a = Party(net, "alice", A_ADDR, transport="TLS")
    b = Party(net, "bob", B_ADDR, transport="TLS")
    invite = a.layer.create_invite(
        request_uri="sips:bob@192.0.2.2:5061",
        from_="<sips:alice@example.com>",
        to="<sips:bob@example.com>",
        addr=B_ADDR,
    )
    a.layer.send_invite(invite, B_ADDR, net.now)
    net.flush()
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 200, net.now, body=ANSWER, content_type=SDP)
    net.flush()
    a_dialog = a.layer.dialog(a.last(CallAnswered).dialog_id)
    b_dialog = b.layer.dialog(incoming.dialog_id)
    assert a_dialog is not None
    assert a_dialog.secure
    assert b_dialog is not None
    assert b_dialog.secure
    net2, c, d = pair()
    c_id, _ = establish(net2, c, d)
    assert not c.layer.dialog(c_id).secure  # type: ignore[union-attr]


# --- CSeq rules -----------------------------------------------------------------------------------


def test_local_cseq_increments_and_uas_starts_its_own() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    a.layer.send_request(a_id, "INFO", net.now)
    a.layer.send_request(a_id, "INFO", net.now)
    net.flush()
    infos = b.of(DialogRequest)
    assert [r.request.cseq.number for r in infos] == [2, 3]
    for info in infos:
        b.layer.respond(info.tx_key, 200, net.now)
    net.flush()
    assert [r.status for r in a.of(DialogResponse)] == [200, 200]
    # The callee's local sequence number was empty: its first request starts one.
    b.layer.send_request(b_id, "INFO", net.now)
    net.flush()
    assert a.last(DialogRequest).request.cseq.number == 1
    assert b.layer.dialog(b_id).remote_seq == 3  # type: ignore[union-attr]


def test_out_of_order_request_gets_500() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    a.layer.send_request(a_id, "INFO", net.now, body=b"x", content_type="text/plain")  # CSeq 2
    net.flush()
    b.layer.respond(b.last(DialogRequest).tx_key, 200, net.now)
    net.flush()
    key = peer_request(a, a_id, "INFO", cseq=1)  # §12.2.2: lower than the last: 500
    answer = [e for e in a.of(ResponseReceived) if e.tx_key == key]
    assert answer
    assert answer[0].response.status == 500
    assert len(b.of(DialogRequest)) == 1
    assert b.layer.dialog(b_id).remote_seq == 2  # type: ignore[union-attr]


# --- forking (§13.2.2.4) --------------------------------------------------------------------------


class FakeFork:
    """Plays two callees behind a forking proxy: builds responses to the INVITE ``a`` sent."""

    def __init__(self, net: Net, a: Party) -> None:
        self.net, self.a = net, a
        (self.invite,) = net.requests(A_ADDR, "INVITE")

    def respond(self, status: int, tag: str | None, body: bytes = b"") -> Response:
        response = make_response(self.invite, status, to_tag=tag)
        response.headers.add("Contact", f"<sip:{tag or 'x'}@192.0.2.3:5060>")
        if body:
            response.set_body(body, SDP)
        self.a.layer.receive(parse_message(bytes(response)), C_ADDR, self.net.now)
        self.net.flush()
        return response


def test_forking_second_2xx_gets_ack_and_bye() -> None:
    net = Net()
    a = Party(net, "alice", A_ADDR)
    call = a.invite(C_ADDR)  # nobody answers at C: the test plays the forks
    fork = FakeFork(net, a)
    fork.respond(100, None)  # hop by hop: not reported
    fork.respond(183, None)  # no To tag: no dialog
    (tagless,) = a.of(ProvisionalReceived)
    assert tagless.dialog_id is None
    assert tagless.call == call
    a.events.clear()
    fork.respond(180, "t1")
    fork.respond(183, "t2")
    early = a.of(EarlyDialog)
    assert [e.dialog_id.remote_tag for e in early] == ["t1", "t2"]
    assert all(e.call == call for e in early)
    fork.respond(180, "t1")  # more ringing in the first early dialog
    assert len(a.of(ProvisionalReceived)) == 1

    fork.respond(200, "t1", ANSWER)
    answered = a.last(CallAnswered)
    assert answered.dialog_id.remote_tag == "t1"
    # The other early dialog is over for the TU at once.
    (ended,) = a.of(DialogTerminated)
    assert ended.dialog_id.remote_tag == "t2"
    assert ended.reason is TerminationReason.OTHER_FORK
    assert a.layer.dialog_count == 1

    fork.respond(200, "t2", ANSWER)  # the second fork answers too: ACK and BYE it
    acks = net.requests(A_ADDR, "ACK")
    assert [ack.to.tag for ack in acks] == ["t1", "t2"]
    (bye,) = net.requests(A_ADDR, "BYE")
    assert bye.to.tag == "t2"
    assert str(bye.uri) == "sip:t2@192.0.2.3:5060"
    assert len(a.of(CallAnswered)) == 1
    assert a.layer.dialog_count == 1

    fork.respond(200, "t1", ANSWER)  # a retransmission of the first 2xx: the same ACK again
    fork.respond(200, "t2", ANSWER)  # ... and of the second: its ACK again, no second BYE
    acks = net.requests(A_ADDR, "ACK")
    assert [ack.to.tag for ack in acks] == ["t1", "t2", "t1", "t2"]
    assert bytes(acks[0]) == bytes(acks[2])
    assert len(net.requests(A_ADDR, "BYE")) == 1


def test_final_failure_ends_every_early_dialog() -> None:
    net = Net()
    a = Party(net, "alice", A_ADDR)
    call = a.invite(C_ADDR)
    fork = FakeFork(net, a)
    fork.respond(180, "t1")
    fork.respond(180, "t2")
    fork.respond(486, "t3")
    assert a.last(CallFailed) == CallFailed(
        call=call, status=486, response=a.last(CallFailed).response
    )
    ended = a.of(DialogTerminated)
    assert sorted(e.dialog_id.remote_tag for e in ended) == ["t1", "t2"]
    assert {e.reason for e in ended} == {TerminationReason.REJECTED}
    net.run_out()
    assert a.layer.is_idle()


# --- re-INVITE, UPDATE, glare ---------------------------------------------------------------------


def test_reinvite_refreshes_the_target() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    b_dialog, a_dialog = b.layer.dialog(b_id), a.layer.dialog(a_id)
    assert a_dialog is not None
    assert b_dialog is not None
    b_dialog.local_contact = "<sip:bob@192.0.2.22:5062>"  # bob moved
    hold = ANSWER + b"a=sendonly\r\n"
    key = b.layer.send_request(b_id, "INVITE", net.now, body=hold, content_type=SDP)
    net.flush()
    reinvite = a.last(ReInvite)
    assert not reinvite.auto_answered
    assert reinvite.request.body == hold
    assert a_dialog.offer_answer is OfferAnswerState.REMOTE_OFFER
    assert a_dialog.remote_target == parse_uri("sip:bob@192.0.2.2:5060")  # not yet (RFC 6141)
    a.layer.respond(reinvite.tx_key, 200, net.now, body=OFFER + b"a=recvonly\r\n", content_type=SDP)
    net.flush()
    assert a_dialog.remote_target == parse_uri("sip:bob@192.0.2.22:5062")
    response = b.last(DialogResponse)
    assert (response.tx_key, response.method, response.status) == (key, "INVITE", 200)
    assert a.last(DialogAckReceived).request.cseq.number == 1
    assert a_dialog.offer_answer is b_dialog.offer_answer is OfferAnswerState.STABLE
    assert b_dialog.remote_body == OFFER + b"a=recvonly\r\n"


def test_rejected_reinvite_keeps_the_old_session() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    b.layer.send_request(b_id, "INVITE", net.now, body=ANSWER + b"x", content_type=SDP)
    net.flush()
    a.layer.respond(a.last(ReInvite).tx_key, 488, net.now)
    net.flush()
    assert b.last(DialogResponse).status == 488
    for party, dialog_id in ((a, a_id), (b, b_id)):
        dialog = party.layer.dialog(dialog_id)
        assert dialog is not None
        assert dialog.state is DialogState.CONFIRMED
        assert dialog.offer_answer is OfferAnswerState.STABLE
    net.advance(net.now + 4000)  # the session timer keeps refreshing; nothing breaks
    assert a.layer.dialog_count == b.layer.dialog_count == 1


def test_unchanged_reinvite_is_answered_by_the_layer() -> None:
    net, a, b = pair()
    a_id, _ = establish(net, a, b)
    a.layer.send_request(a_id, "INVITE", net.now, body=OFFER, content_type=SDP)
    net.flush()
    assert b.last(ReInvite).auto_answered  # a session refresh (RFC 4028): same offer
    assert a.last(DialogResponse).response.body == ANSWER  # type: ignore[union-attr]


def test_reinvite_glare_gets_491_on_both_sides() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    a.layer.send_request(a_id, "INVITE", net.now, body=OFFER + b"1", content_type=SDP)
    b.layer.send_request(b_id, "INVITE", net.now, body=ANSWER + b"1", content_type=SDP)
    net.flush()
    assert a.last(DialogResponse).status == 491
    assert b.last(DialogResponse).status == 491
    assert not a.of(ReInvite)
    assert not b.of(ReInvite)
    for party, dialog_id in ((a, a_id), (b, b_id)):
        dialog = party.layer.dialog(dialog_id)
        assert dialog is not None
        assert dialog.offer_answer is OfferAnswerState.STABLE
    # Afterwards a re-INVITE goes through (§14.1: the TU retries after a random wait).
    a.layer.send_request(a_id, "INVITE", net.now, body=OFFER + b"2", content_type=SDP)
    net.flush()
    assert a.last(DialogResponse).status == 100 or b.of(ReInvite)


def test_second_invite_while_one_is_pending_gets_500_with_retry_after() -> None:
    net, a, b = pair()
    a_id, _ = establish(net, a, b)
    a.layer.send_request(a_id, "INVITE", net.now, body=OFFER + b"1", content_type=SDP)
    net.flush()
    assert b.last(ReInvite)  # bob does not answer yet
    # A racing peer sends another INVITE: §14.2: 500 with Retry-After between 0 and 10.
    key = peer_request(a, a_id, "INVITE", cseq=9)
    (answer,) = [e.response for e in a.of(ResponseReceived) if e.tx_key == key]
    assert answer.status == 500
    assert 0 <= int(answer.headers.get("retry-after", "-1")) <= 10
    with pytest.raises(DialogStateError):  # our own TU may not do that (§14.1)
        a.layer.send_request(a_id, "INVITE", net.now)


def test_update_with_and_without_offer() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    key = a.layer.send_request(a_id, "UPDATE", net.now, body=OFFER + b"u", content_type=SDP)
    a_dialog, b_dialog = a.layer.dialog(a_id), b.layer.dialog(b_id)
    assert a_dialog is not None
    assert b_dialog is not None
    assert a_dialog.offer_answer is OfferAnswerState.LOCAL_OFFER
    with pytest.raises(DialogStateError):  # one offer at a time (RFC 3311 §5.1)
        a.layer.send_request(a_id, "UPDATE", net.now, body=OFFER, content_type=SDP)
    net.flush()
    update = b.last(Update)
    assert not update.auto_answered
    assert b_dialog.offer_answer is OfferAnswerState.REMOTE_OFFER
    b.layer.respond(update.tx_key, 200, net.now, body=ANSWER + b"u", content_type=SDP)
    net.flush()
    response = a.last(DialogResponse)
    assert (response.tx_key, response.method, response.status) == (key, "UPDATE", 200)
    assert a_dialog.offer_answer is b_dialog.offer_answer is OfferAnswerState.STABLE
    assert a_dialog.remote_body == ANSWER + b"u"
    # Without an offer: a refresh the layer answers by itself.
    a.layer.send_request(a_id, "UPDATE", net.now)
    net.flush()
    assert b.last(Update).auto_answered
    assert a.last(DialogResponse).status == 200


def test_update_offer_against_outstanding_offer_gets_491() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    b.layer.send_request(b_id, "UPDATE", net.now, body=ANSWER + b"b", content_type=SDP)
    # Alice's UPDATE with an offer crosses bob's (both sides have an offer outstanding).
    key = peer_request(a, a_id, "UPDATE", cseq=7, body=OFFER + b"a")
    (answer,) = [e.response for e in a.of(ResponseReceived) if e.tx_key == key]
    assert answer.status == 491


def test_reinvite_without_offer_against_outstanding_offer_gets_491() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    b.layer.send_request(b_id, "UPDATE", net.now, body=ANSWER + b"b", content_type=SDP)
    # Its 2xx would have to carry an offer while bob's is outstanding: it cannot be answered.
    key = peer_request(a, a_id, "INVITE", cseq=7)
    (answer,) = [e.response for e in a.of(ResponseReceived) if e.tx_key == key]
    assert answer.status == 491
    assert not b.of(ReInvite)


# --- late offer (§13.2.1, §13.3.1.4) --------------------------------------------------------------


def test_late_offer_answer_in_ack() -> None:
    net, a, b = pair()
    a.invite(b, body=b"")
    incoming = b.last(IncomingCall)
    with pytest.raises(DialogStateError):  # the 2xx to an INVITE without offer must have one
        b.layer.respond(incoming.tx_key, 200, net.now)
    assert b.layer.dialog(incoming.dialog_id) is None  # refused: nothing changed
    b.layer.respond(incoming.tx_key, 200, net.now, body=ANSWER, content_type=SDP)
    net.flush()
    answered = a.last(CallAnswered)
    assert answered.ack_pending
    assert not net.requests(A_ADDR, "ACK")
    a_dialog = a.layer.dialog(answered.dialog_id)
    b_dialog = b.layer.dialog(incoming.dialog_id)
    assert a_dialog is not None
    assert b_dialog is not None
    assert a_dialog.offer_answer is OfferAnswerState.REMOTE_OFFER
    assert b_dialog.offer_answer is OfferAnswerState.LOCAL_OFFER
    # A second offer while this one is outstanding is refused: ours raises ...
    with pytest.raises(DialogStateError):
        a.layer.send_request(answered.dialog_id, "UPDATE", net.now, body=OFFER, content_type=SDP)
    # ... theirs gets 500 + Retry-After (they would be answering their own offer).
    net.advance(net.now + 0.6)  # a 2xx retransmission meanwhile: no ACK yet
    assert not net.requests(A_ADDR, "ACK")
    a.layer.send_ack(answered.dialog_id, net.now, body=OFFER, content_type=SDP)
    net.flush()
    (ack,) = net.requests(A_ADDR, "ACK")
    assert ack.body == OFFER
    assert ack.content_type == SDP
    assert b.last(DialogAckReceived).request.body == OFFER
    assert a_dialog.offer_answer is b_dialog.offer_answer is OfferAnswerState.STABLE
    net.advance(net.now + 5)
    assert len(net.requests(A_ADDR, "ACK")) == 1  # the ACK stopped the 2xx retransmissions


def test_reinvite_without_offer_gets_offer_in_2xx_and_answer_in_ack() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    b.layer.dialog(b_id).remote_body = b"changed"  # type: ignore[union-attr]  # no auto-answer
    a.layer.send_request(a_id, "INVITE", net.now)
    net.flush()
    reinvite = b.last(ReInvite)
    assert reinvite.auto_answered  # no offer: bob offers his last description again
    response = a.last(DialogResponse)
    assert response.ack_pending
    assert response.response.body == ANSWER
    a.layer.send_ack(a_id, net.now, body=OFFER, content_type=SDP)
    net.flush()
    assert b.last(DialogAckReceived).request.body == OFFER


# --- option tags and rejections -------------------------------------------------------------------


def test_unsupported_require_gets_420_with_unsupported() -> None:
    net, a, b = pair()
    a.invite(b, headers=(("Require", "foo, 100rel, bar"), ("Proxy-Require", "baz")))
    assert not b.of(IncomingCall)
    (reject,) = net.responses(B_ADDR, 420)
    assert reject.headers.get("unsupported") == "bar, foo"
    assert a.last(CallFailed).status == 420
    # Proxy-Require is for proxies: a UA ignores it (§8.2.2.3).
    a.invite(b, headers=(("Proxy-Require", "baz"),))
    assert b.of(IncomingCall)


def test_unknown_dialog_gets_481() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    b.layer.bye(b_id, net.now)
    net.flush()
    dialog = make_dialog(())
    dialog.id = DialogId(a_id.call_id, a_id.local_tag, a_id.remote_tag)
    dialog.remote_target, dialog.local_seq = parse_uri("sip:bob@192.0.2.2"), 10
    request = dialog.make_request("INFO", via="SIP/2.0/UDP 192.0.2.1:5060", branch="z9hG4bKz")
    request.headers.set("To", f"<sip:bob@example.com>;tag={a_id.remote_tag}")
    request.headers.set("From", f"<sip:alice@example.com>;tag={a_id.local_tag}")
    request.headers.set("Call-ID", a_id.call_id)
    key = a.layer.transactions.send_request(parse_message(bytes(request)), B_ADDR, net.now)  # type: ignore[arg-type]
    net.flush()
    (answer,) = [e.response for e in a.of(ResponseReceived) if e.tx_key == key]
    assert answer.status == 481


def test_unsupported_method_in_dialog_gets_501_with_allow() -> None:
    net, a, b = pair()
    a_id, _ = establish(net, a, b)
    key = peer_request(a, a_id, "FROB", cseq=5)
    (answer,) = [e.response for e in a.of(ResponseReceived) if e.tx_key == key]
    assert answer.status == 501
    assert "UPDATE" in answer.headers.get("allow", "")


def test_merged_request_gets_482() -> None:
    net, a, b = pair()
    a.invite(b)
    (invite,) = net.requests(A_ADDR, "INVITE")
    looped = invite.copy()
    looped.headers.replace_first("Via", "SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKloop")
    b.layer.receive(parse_message(bytes(looped)), ("192.0.2.9", 5060), net.now)
    net.flush()
    assert len(b.of(IncomingCall)) == 1
    assert net.responses(B_ADDR, 482)


def test_out_of_dialog_requests_pass_through() -> None:
    net, a, b = pair()
    dialog = make_dialog(())
    request = dialog.make_request("OPTIONS", via="SIP/2.0/UDP 192.0.2.1:5060", branch="z9hG4bKo")
    request.headers.set("To", "<sip:bob@example.com>")
    key = a.layer.transactions.send_request(parse_message(bytes(request)), B_ADDR, net.now)  # type: ignore[arg-type]
    net.flush()
    received = b.last(RequestReceived)
    assert received.request.method == "OPTIONS"
    b.layer.respond(received.tx_key, 200, net.now)
    net.flush()
    (answer,) = [e.response for e in a.of(ResponseReceived) if e.tx_key == key]
    assert answer.status == 200
    assert answer.to.tag is not None
    net.run_out()
    assert any(isinstance(e, TransactionTerminated) for e in b.events)
    assert a.layer.is_idle()
    assert b.layer.is_idle()
    with pytest.raises(UnknownTransactionError):
        b.layer.respond(received.tx_key, 200, net.now)


# --- CANCEL, BYE rules, timeouts ------------------------------------------------------------------


def test_cancel_before_answer() -> None:
    net, a, b = pair()
    call = a.invite(b)
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 180, net.now)
    net.flush()
    assert a.layer.cancel(call, net.now)
    net.flush()
    cancelled = b.last(InviteCancelled)
    assert cancelled.initial
    assert cancelled.dialog_id == incoming.dialog_id
    assert b.last(DialogTerminated).reason is TerminationReason.CANCELLED
    assert a.last(CallFailed).status == 487
    assert a.last(DialogTerminated).reason is TerminationReason.CANCELLED
    assert not a.layer.cancel(call, net.now)
    with pytest.raises(UnknownTransactionError, match="answered"):  # 487 went out already
        b.layer.respond(incoming.tx_key, 200, net.now, body=ANSWER, content_type=SDP)
    net.run_out()
    assert a.layer.is_idle()
    assert b.layer.is_idle()


def test_2xx_crossing_cancel_is_acked_and_byed() -> None:
    net, a, b = pair()
    call = a.invite(b)
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 180, net.now)
    net.flush()
    a.layer.cancel(call, net.now)
    b.layer.respond(incoming.tx_key, 200, net.now, body=ANSWER, content_type=SDP)  # crosses
    net.flush()
    assert a.last(CallFailed).status == 200
    assert not a.of(CallAnswered)
    assert net.requests(A_ADDR, "ACK")
    assert net.requests(A_ADDR, "BYE")
    assert b.last(DialogTerminated).reason is TerminationReason.REMOTE_BYE
    net.run_out()
    assert a.layer.is_idle()
    assert b.layer.is_idle()


def test_callee_cannot_bye_early_and_waits_for_ack() -> None:
    net, a, b = pair()
    ack_lost = True
    net.drop = lambda src, dst, data: ack_lost and data.startswith(b"ACK ")
    a.invite(b)
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 180, net.now)
    net.flush()
    with pytest.raises(DialogStateError):  # §15: MUST NOT BYE an early dialog
        b.layer.bye(incoming.dialog_id, net.now)
    b.layer.respond(incoming.tx_key, 200, net.now, body=ANSWER, content_type=SDP)
    net.flush()
    reason = (("Reason", "Q.850;cause=16"),)
    assert b.layer.bye(incoming.dialog_id, net.now, headers=reason) is None  # waits for ACK
    net.flush()
    assert b.last(DialogTerminated).reason is TerminationReason.LOCAL_BYE
    assert not net.requests(B_ADDR, "BYE")
    ack_lost = False
    net.advance(net.now + 1)  # the 2xx retransmission brings the ACK, then the BYE goes
    (bye,) = net.requests(B_ADDR, "BYE")
    assert bye.headers.get("reason") == "Q.850;cause=16"
    assert a.last(ByeReceived)
    assert b.layer.bye(incoming.dialog_id, net.now) is None  # idempotent


def test_no_ack_ends_the_call_with_bye() -> None:
    net, a, b = pair()
    net.drop = lambda src, dst, data: data.startswith(b"ACK ")
    a.invite(b)
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 200, net.now, body=ANSWER, content_type=SDP)
    net.flush()
    net.advance(net.now + 32.0)  # §13.3.1.4: 64*T1 without ACK
    assert b.last(DialogTerminated).reason is TerminationReason.ACK_TIMEOUT
    assert net.requests(B_ADDR, "BYE")
    assert a.last(DialogTerminated).reason is TerminationReason.REMOTE_BYE


def test_no_response_to_invite_is_a_408_failure() -> None:
    net = Net()
    a = Party(net, "alice", A_ADDR)
    call = a.invite(C_ADDR)
    net.run_out()
    assert a.last(CallFailed) == CallFailed(call=call, status=408, response=None)
    assert a.layer.is_idle()


def test_in_dialog_request_timeout_ends_the_dialog() -> None:
    net, a, b = pair()
    a_id, _ = establish(net, a, b)
    net.drop = lambda src, dst, data: dst == B_ADDR
    a.layer.send_request(a_id, "INFO", net.now)
    net.advance(net.now + 32.0)
    assert a.last(DialogResponse).status == 408
    assert a.last(DialogTerminated).reason is TerminationReason.TIMEOUT  # §12.2.1.2, BYE sent
    assert net.requests(A_ADDR, "BYE")


def test_481_to_in_dialog_request_ends_the_dialog() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    net.drop = lambda src, dst, data: data.startswith(b"BYE ")
    b.layer.bye(b_id, net.now)  # lost: alice still believes in the dialog
    net.advance(net.now + 40)
    assert b.layer.dialog_count == 0
    assert a.layer.dialog_count == 1
    net.drop = lambda src, dst, data: False
    a.layer.send_request(a_id, "INFO", net.now)
    net.flush()
    assert a.last(DialogResponse).status == 481
    assert a.last(DialogTerminated).reason is TerminationReason.NO_DIALOG


def test_bye_with_pending_reinvite_answers_it_487() -> None:
    net, a, b = pair()
    a_id, _ = establish(net, a, b)
    a.layer.send_request(a_id, "INVITE", net.now, body=OFFER + b"hold", content_type=SDP)
    net.flush()
    assert not b.last(ReInvite).auto_answered
    a.layer.bye(a_id, net.now)  # alice hangs up before bob answers her re-INVITE
    net.flush()
    assert b.last(DialogTerminated).reason is TerminationReason.REMOTE_BYE
    assert net.responses(B_ADDR, 487)
    net.run_out()
    assert a.layer.is_idle()
    assert b.layer.is_idle()


def test_misuse_raises() -> None:
    net, a, b = pair()
    with pytest.raises(UnknownDialogError):
        a.layer.send_request(DialogId("x", "y", "z"), "INFO", net.now)
    a_id, _ = establish(net, a, b)
    with pytest.raises(ValueError, match="own method"):
        a.layer.send_request(a_id, "BYE", net.now)
    with pytest.raises(DialogStateError, match="ACK"):
        a.layer.send_ack(a_id, net.now)
    a.layer.send_ack(DialogId("x", "y", "z"), net.now)  # ended (or never was): nothing to do
    with pytest.raises(DialogStateError, match="PRACK"):
        a.layer.prack(a_id, net.now)


def test_transition_table_covers_every_peer_input() -> None:
    """Every input a peer can cause has a transition in every live state (so peer messages
    never raise); only our own misuse does (a BYE on an early dialog)."""
    peer_inputs = {
        DialogInput.PROVISIONAL,
        DialogInput.SUCCESS,
        DialogInput.FAILURE,
        DialogInput.BYE_RECEIVED,
        DialogInput.DIALOG_GONE,
    }
    for state in (DialogState.EARLY, DialogState.CONFIRMED, DialogState.TERMINATING):
        for given_input in peer_inputs:
            assert (state, given_input) in DIALOG_TRANSITIONS, (state, given_input)
    assert (DialogState.EARLY, DialogInput.SEND_BYE) not in DIALOG_TRANSITIONS
    assert not any(state is DialogState.TERMINATED for state, _ in DIALOG_TRANSITIONS)


# --- random orders (Hypothesis) -------------------------------------------------------------------


class Engine:
    """A TU that reacts to every event the way a call engine would, with session
    descriptions, so that any interleaving can run to its end."""

    def __init__(self, party: Party) -> None:
        self.party = party
        self.seen = 0
        self.incoming: list[TransactionKey] = []  # IncomingCall keys, newest last
        self.outgoing: list[CallKey] = []

    def react(self) -> None:
        layer, now = self.party.layer, self.party.net.now
        while self.seen < len(self.party.events):
            event = self.party.events[self.seen]
            self.seen += 1
            if isinstance(event, IncomingCall):
                self.incoming.append(event.tx_key)
            elif isinstance(event, CallAnswered | DialogResponse) and event.ack_pending:
                layer.send_ack(event.dialog_id, now, body=ANSWER, content_type=SDP)
            elif isinstance(event, EarlyDialog | ProvisionalReceived) and event.prack_pending:
                assert event.dialog_id is not None
                layer.prack(event.dialog_id, now, body=ANSWER, content_type=SDP)
            elif (isinstance(event, ReInvite | Update) and not event.auto_answered) or (
                isinstance(event, PrackReceived) and event.needs_answer
            ):
                self.answer(event.tx_key, 200, body=ANSWER, content_type=SDP)
            elif isinstance(event, DialogRequest):
                self.answer(event.tx_key, 200)
            elif isinstance(event, SessionExpired):
                layer.bye(event.dialog_id, now)

    def answer(self, tx_key: TransactionKey, status: int, **kwargs: Any) -> None:
        # Answered already (the layer answered 487 to a CANCEL or a BYE): the TU's race.
        with contextlib.suppress(DialogStateError, UnknownTransactionError):
            self.party.layer.respond(tx_key, status, self.party.net.now, **kwargs)

    def hang_up(self) -> None:
        # An INVITE in Proceeding has no timer of its own (RFC 3261 §17.1.1.2): ending a
        # call that rings forever is the TU's ring timeout, a CANCEL.
        layer, now = self.party.layer, self.party.net.now
        for call in self.outgoing:
            layer.cancel(call, now)
        for tx_key in self.incoming:
            self.answer(tx_key, 486)
        for dialog in layer.dialogs:
            if dialog.state is DialogState.CONFIRMED:
                layer.bye(dialog.id, now)


class LossyNet(Net):
    """A network that holds datagrams until the test delivers, drops or duplicates them."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[Addr, Addr, bytes]] = []
        self.engines: list[Engine] = []

    def flush(self) -> None:
        for party in self.parties.values():
            party.drain()
            for data, dst in party.layer.datagrams_to_send(self.now):
                self.pending.append((party.addr, dst, data))
        for engine in self.engines:
            engine.react()

    def deliver(self, index: int, *, keep: bool = False) -> None:
        if not self.pending:
            return
        src, dst, data = self.pending[index % len(self.pending)]
        if not keep:
            del self.pending[index % len(self.pending)]
        peer = self.parties.get(dst)
        if peer is not None:
            peer.layer.receive_datagram(data, src, self.now)
        self.flush()

    def deliver_all(self) -> None:
        rounds = 0
        while self.pending:
            rounds += 1
            assert rounds < 10_000
            self.deliver(0)

    def settle(self) -> None:
        """Teardown on a perfect network: hang everything up, run every timer out."""
        for _ in range(3):
            self.deliver_all()
            while (deadline := self.next_deadline()) is not None:
                for engine in self.engines:
                    engine.hang_up()
                self.flush()
                self.deliver_all()
                self.advance(max(deadline, self.now))
                self.deliver_all()
            for engine in self.engines:
                engine.hang_up()
            self.flush()


# One action: a kind (weighted by repetition; sampled_from draws uniformly) and the
# parameters it may use: an index into the pending datagrams, a side, an SDP flag, a status,
# a wait.
KINDS = ["deliver"] * 6 + ["drop", "dup", "wait", "invite", "cancel", "bye"]
KINDS += ["answer"] * 3 + ["reinvite", "update", "info"]
ACTION = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 20),
    st.sampled_from([0, 1]),
    st.booleans(),
    st.sampled_from([180, 183, 200, 200, 200, 486]),
    st.sampled_from([0.1, 0.5, 2.0, 33.0, 900.0, 2000.0]),
)
Action = tuple[str, int, int, bool, int, float]
NO_UPDATE = DialogConfig(allow=("INVITE", "ACK", "BYE", "CANCEL", "PRACK", "INFO"))
SETUPS = st.sampled_from(
    [
        ("UDP", None, None),
        ("UDP", DialogConfig(supported=frozenset({"100rel"})), NO_UPDATE),
        ("UDP", DialogConfig(supported=frozenset()), None),
        ("TCP", None, None),
    ]
)
MISUSE = (DialogStateError, UnknownDialogError, TransactionStateError, UnknownTransactionError)


def run_action(net: LossyNet, engines: list[Engine], action: Action) -> None:
    kind, index, side, sdp, status, wait = action
    engine = engines[side]
    layer = engine.party.layer
    if kind == "deliver":
        net.deliver(index)
    elif kind == "drop" and net.pending:
        del net.pending[index % len(net.pending)]
    elif kind == "dup":
        net.deliver(index, keep=True)
    elif kind == "wait":
        net.advance(net.now + wait)
    elif kind == "invite":
        callee = engines[1 - side].party
        engine.outgoing.append(engine.party.invite(callee, body=OFFER if sdp else b""))
    elif kind == "answer" and engine.incoming:
        options = {"body": ANSWER, "content_type": SDP} if status in (183, 200) else {}
        engine.answer(engine.incoming[-1], status, **options)
    elif kind == "cancel" and engine.outgoing:
        layer.cancel(engine.outgoing[-1], net.now)
    elif kind in ("bye", "reinvite", "update", "info"):
        for dialog in layer.dialogs:
            if dialog.state is DialogState.CONFIRMED:
                with contextlib.suppress(*MISUSE):  # e.g. an INVITE in progress: the TU's error
                    in_dialog(layer, dialog.id, kind, sdp, net.now)
    net.flush()


def in_dialog(layer: DialogLayer, dialog_id: DialogId, kind: str, sdp: bool, now: float) -> None:
    if kind == "bye":
        layer.bye(dialog_id, now)
    elif kind == "info":
        layer.send_request(dialog_id, "INFO", now)
    else:
        method = "INVITE" if kind == "reinvite" else "UPDATE"
        body = OFFER + b"r" if sdp else b""
        layer.send_request(dialog_id, method, now, body=body, content_type=SDP)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SETUPS, st.sampled_from([0, 1]), st.lists(ACTION, min_size=30, max_size=100))
def test_random_orders_never_raise_and_memory_returns_to_zero(
    setup: tuple[str, DialogConfig | None, DialogConfig | None],
    caller: int,
    actions: list[Action],
) -> None:
    """Peer input (any order, loss, duplication) and time never raise; only TU actions the
    state does not allow do (our misuse). Once everyone hangs up and the timers run out,
    both layers are empty, every reported dialog ended exactly once and every call got
    exactly one outcome."""
    transport, a_config, b_config = setup
    net = LossyNet()
    a = Party(net, "alice", A_ADDR, config=a_config, transport=transport)
    b = Party(net, "bob", B_ADDR, config=b_config, transport=transport)
    net.engines = engines = [Engine(a), Engine(b)]
    for action in [("invite", 0, caller, True, 200, 0.0), *actions]:
        try:
            run_action(net, engines, action)
        except MISUSE:
            net.flush()  # a TU action the state did not allow: our misuse, not the peer's
    net.settle()
    answered = sum(isinstance(e, CallAnswered) for p in (a, b) for e in p.events)
    event(f"calls answered: {min(answered, 3)}")
    event(f"re-INVITEs: {min(sum(isinstance(e, ReInvite) for e in a.events + b.events), 2)}")
    for party, engine in zip((a, b), engines, strict=True):
        assert party.layer.is_idle(), party.name
        # Nothing of the dialog layer's own transactions leaks up.
        assert not any(isinstance(e, TransactionEvent) for e in party.events)
        reported = {
            e.dialog_id
            for e in party.events
            if isinstance(e, IncomingCall | EarlyDialog | CallAnswered)
        }
        ended = Counter(e.dialog_id for e in party.events if isinstance(e, DialogTerminated))
        assert set(ended) == reported, party.name
        assert all(count == 1 for count in ended.values()), ended
        outcomes = Counter(e.call for e in party.events if isinstance(e, CallAnswered | CallFailed))
        assert set(outcomes) == set(engine.outgoing)
        assert all(count == 1 for count in outcomes.values()), outcomes
