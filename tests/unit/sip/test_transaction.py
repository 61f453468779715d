"""The transaction layer (RFC 3261 §17, §9, §13.3.1.4; RFC 6026): matching, retransmission
absorption, ACK and CANCEL handling, the 2xx/ACK exchange, overload and transport errors.

Timer schedules are in test_transaction_timers.py. Every test drives the layer with a fake
clock that jumps to ``get_timer()`` (never sleeps), through messages serialized and parsed
again as the transport would.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from typing import Any

import pytest

from cloudpbx.sip import Request, Response, make_response, parse_message
from cloudpbx.sip.events import (
    AckReceived,
    AckTimeout,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from cloudpbx.sip.transaction import (
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    Input,
    TimerConfig,
    TransactionLayer,
    TransactionState,
    TransactionStateError,
    UnknownTransactionError,
)

from .test_torture import load

PEER = ("192.0.2.20", 5060)
OTHER = ("192.0.2.30", 5060)


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKa1",
    transport: str = "UDP",
    sent_by: str = "192.0.2.10:5060",
    cseq: int = 1,
    call_id: str = "call-1",
    from_tag: str = "ft1",
    to_tag: str | None = None,
    route: str | None = None,
) -> Request:
    """A request as parsed from the wire (CSeq method follows ``method``, except for ACK
    and CANCEL which keep their own)."""
    via = f"SIP/2.0/{transport} {sent_by}" + (f";branch={branch}" if branch else "")
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:bob@example.com SIP/2.0",
        f"Via: {via}",
        *([f"Route: {route}"] if route else []),
        "Max-Forwards: 70",
        f"From: <sip:alice@example.com>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Content-Length: 0",
    ]
    msg = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def response(req: Request, status: int, to_tag: str | None = "tt1") -> Response:
    return make_response(req, status, to_tag=None if status == 100 else to_tag)


def wire(msg: Request | Response) -> Request | Response:
    return parse_message(bytes(msg))


def ack_for_2xx(invite: Request, to_tag: str = "tt1", branch: str = "z9hG4bKack1") -> Request:
    """The UAC core's ACK for a 2xx (RFC 3261 §13.2.2.4): a new branch."""
    return request(
        "ACK",
        branch=branch,
        cseq=invite.cseq.number,
        call_id=invite.call_id,
        from_tag=invite.from_.tag or "",
        to_tag=to_tag,
    )


class Harness:
    """A layer, a fake clock that jumps to the next timer, and everything it sent."""

    def __init__(self, **kwargs: Any) -> None:
        tags = itertools.count(1)
        self.layer = TransactionLayer(new_tag=lambda: f"gen{next(tags)}", **kwargs)
        self.now = 0.0
        self.sent: list[tuple[float, bytes, Any]] = []
        self.events: list[TransactionEvent] = []

    def pump(self) -> None:
        for data, addr in self.layer.datagrams_to_send(self.now):
            self.sent.append((self.now, data, addr))
        while (event := self.layer.next_event()) is not None:
            self.events.append(event)

    def advance(self, until: float) -> None:
        """Run every timer due up to ``until``, jumping the clock from deadline to deadline."""
        while (deadline := self.layer.get_timer()) is not None and deadline <= until:
            self.now = max(self.now, deadline)
            self.layer.handle_timer(self.now)
            self.pump()
        self.now = max(self.now, until)

    def run_out(self, max_steps: int = 10_000) -> None:
        for _ in range(max_steps):
            deadline = self.layer.get_timer()
            if deadline is None:
                return
            self.advance(deadline)
        raise AssertionError("timers never ran out")

    def take_sent(self) -> list[bytes]:
        sent = [data for _, data, _ in self.sent]
        self.sent.clear()
        return sent

    def take_events(self) -> list[TransactionEvent]:
        events = self.events[:]
        self.events.clear()
        return events

    def send_request(self, req: Request, addr: Any = PEER, **kwargs: Any) -> TransactionKey:
        key = self.layer.send_request(req, addr, self.now, **kwargs)
        self.pump()
        return key

    def receive(self, msg: Request | Response, addr: Any = PEER, **kwargs: Any) -> None:
        self.layer.receive(wire(msg), addr, self.now, **kwargs)
        self.pump()

    def send_response(self, resp: Response) -> None:
        self.layer.send_response(resp, self.now)
        self.pump()


def kinds(events: list[TransactionEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode()


def server_key(events: list[TransactionEvent]) -> TransactionKey:
    (event,) = [e for e in events if isinstance(e, RequestReceived | CancelReceived)]
    return event.tx_key


# --- the tables --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "peer_inputs"),
    [
        (INVITE_CLIENT, {Input.PROVISIONAL, Input.SUCCESS, Input.FAILURE, Input.TRANSPORT_ERROR}),
        (
            NON_INVITE_CLIENT,
            {Input.PROVISIONAL, Input.SUCCESS, Input.FAILURE, Input.TRANSPORT_ERROR},
        ),
        (INVITE_SERVER, {Input.REQUEST, Input.ACK, Input.TRANSPORT_ERROR}),
        (NON_INVITE_SERVER, {Input.REQUEST, Input.TRANSPORT_ERROR}),
    ],
)
def test_every_peer_input_has_a_transition_in_every_live_state(
    table: dict[tuple[TransactionState, Input], Any], peer_inputs: set[Input]
) -> None:
    """A peer cannot make the layer raise: whatever arrives, every live state knows it."""
    states = {state for state, _ in table}
    assert TransactionState.TERMINATED not in states  # nothing leaves Terminated
    for state in states:
        for event in peer_inputs:
            assert (state, event) in table, (state, event)


def test_illegal_transition_names_machine_state_and_event() -> None:
    h = Harness()
    invite = request()
    h.receive(invite)
    h.send_response(response(invite, 486))
    with pytest.raises(
        TransactionStateError, match=r"INVITE server.*Completed.*1xx from TU"
    ) as exc:
        h.send_response(response(invite, 180))
    assert exc.value.state is TransactionState.COMPLETED
    assert exc.value.event is Input.SEND_PROVISIONAL


def test_events_are_frozen_slotted_keyword_only() -> None:
    key = TransactionKey("z9hG4bK1", "", "INVITE", False)
    event = TransactionTimeout(tx_key=key)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.tx_key = key  # type: ignore[misc]
    with pytest.raises(TypeError):
        TransactionTimeout(key)  # type: ignore[call-arg]
    assert not hasattr(event, "__dict__")


def test_timer_config_is_checked() -> None:
    with pytest.raises(ValueError, match="T1"):
        TimerConfig(t1=5.0, t2=4.0)
    assert TimerConfig(t1=0.25).t64 == 16.0


# --- client transactions -----------------------------------------------------------------------


def test_send_request_refuses_what_is_not_a_client_transaction() -> None:
    h = Harness()
    with pytest.raises(ValueError, match="ACK"):
        h.send_request(request("ACK"))
    with pytest.raises(ValueError, match="z9hG4bK"):
        h.send_request(request(branch="1234"))
    h.send_request(request())
    with pytest.raises(ValueError, match="already exists"):
        h.send_request(request())


def test_responses_match_by_branch_and_cseq_method() -> None:
    """RFC 3261 §17.1.3; RFC 6026: a response matching no transaction is discarded."""
    h = Harness()
    invite = request()
    key = h.send_request(invite)
    h.take_sent()
    h.receive(response(request(branch="z9hG4bKother"), 180))
    h.receive(response(request("CANCEL"), 200))  # same branch, other method
    assert h.take_events() == []
    assert h.layer.dropped == 2
    ringing = response(invite, 180)
    h.receive(ringing)
    (event,) = h.take_events()
    assert isinstance(event, ResponseReceived)
    assert event.tx_key == key
    assert event.response.status == 180
    assert h.layer.state_of(key) is TransactionState.PROCEEDING


def test_invite_client_failure_is_acked_per_17_1_1_3() -> None:
    h = Harness()
    invite = request(route="<sip:proxy1.example.com;lr>, <sip:proxy2.example.com;lr>")
    key = h.send_request(invite)
    h.take_sent()
    h.receive(response(invite, 180))
    busy = response(invite, 486, to_tag="uas")
    h.receive(busy)
    assert kinds(h.take_events()) == ["ResponseReceived", "ResponseReceived"]
    (ack_bytes,) = h.take_sent()
    ack = parse_message(ack_bytes)
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert str(ack.uri) == "sip:bob@example.com"
    assert [v.branch for v in ack.via] == ["z9hG4bKa1"]  # a single Via: the INVITE's top one
    assert ack.to.tag == "uas"  # the To of the response
    assert ack.from_ == invite.from_
    assert ack.call_id == invite.call_id
    assert (ack.cseq.number, ack.cseq.method) == (1, "ACK")
    assert ack.headers.values("route") == invite.headers.values("route")
    assert h.sent == []
    # A retransmitted 486 gets the same ACK again and is not passed up.
    h.receive(busy)
    assert h.take_sent() == [ack_bytes]
    assert h.take_events() == []
    assert h.layer.state_of(key) is TransactionState.COMPLETED
    h.run_out()
    assert kinds(h.take_events()) == ["TransactionTerminated"]
    assert h.layer.is_idle()


def test_invite_client_accepted_passes_every_2xx_up() -> None:
    """RFC 6026 §8.4: 2xx retransmissions (and forks) reach the TU, which re-sends its ACK;
    after Timer M a 2xx matches nothing and is dropped."""
    h = Harness()
    invite = request()
    key = h.send_request(invite)
    ok = response(invite, 200)
    h.receive(ok)
    h.receive(ok)
    h.receive(response(invite, 200, to_tag="fork2"))
    h.receive(response(invite, 180))  # late provisional: absorbed
    events = h.take_events()
    assert kinds(events) == ["ResponseReceived"] * 3
    assert h.layer.state_of(key) is TransactionState.ACCEPTED
    h.take_sent()
    assert h.sent == []  # the transaction never ACKs a 2xx: that is the TU's job
    h.layer.send_stateless(ack_for_2xx(invite), PEER)
    h.pump()
    assert [first_line(d) for d in h.take_sent()] == ["ACK sip:bob@example.com SIP/2.0"]
    h.run_out()
    assert h.events == [TransactionTerminated(tx_key=key)]
    h.receive(ok)
    assert h.layer.dropped == 1


def test_non_invite_client_absorbs_retransmitted_final_responses() -> None:
    h = Harness()
    options = request("OPTIONS")
    key = h.send_request(options)
    h.receive(response(options, 100))
    h.receive(response(options, 200))
    h.receive(response(options, 200))
    h.receive(response(options, 100))
    assert kinds(h.take_events()) == ["ResponseReceived", "ResponseReceived"]
    assert h.layer.state_of(key) is TransactionState.COMPLETED


def test_request_reliability_follows_the_via_unless_told() -> None:
    h = Harness()
    h.send_request(request("OPTIONS", branch="z9hG4bKtcp", transport="TCP"))
    h.send_request(request("OPTIONS", branch="z9hG4bKudp", transport="UDP"), reliable=True)
    h.take_sent()
    h.advance(31.9)
    assert h.sent == []  # no Timer E for either


# --- server transactions -----------------------------------------------------------------------


def test_invite_server_absorbs_retransmissions_and_repeats_the_last_response() -> None:
    h = Harness()
    invite = request()
    h.receive(invite)
    (event,) = h.take_events()
    assert isinstance(event, RequestReceived)
    assert event.addr == PEER
    key = event.tx_key
    assert key == TransactionKey("z9hG4bKa1", "192.0.2.10:5060", "INVITE", True)
    # Retransmission before any response: the client is waiting, so 100 Trying at once.
    h.receive(invite)
    assert [first_line(d) for d in h.take_sent()] == ["SIP/2.0 100 Trying"]
    h.send_response(response(invite, 180))
    h.receive(invite)
    assert [first_line(d) for d in h.take_sent()] == ["SIP/2.0 180 Ringing"] * 2
    h.send_response(response(invite, 486))
    h.receive(invite)
    assert [first_line(d) for d in h.take_sent()] == ["SIP/2.0 486 Busy Here"] * 2
    assert h.take_events() == []  # never a second RequestReceived
    assert all(addr == PEER for _, _, addr in h.sent)


def test_invite_server_ack_confirms_and_is_absorbed() -> None:
    h = Harness()
    invite = request()
    h.receive(invite)
    key = server_key(h.take_events())
    busy = response(invite, 486)
    h.send_response(busy)
    ack = request("ACK", to_tag="tt1")  # same branch: part of the INVITE transaction
    h.receive(ack)
    assert h.layer.state_of(key) is TransactionState.CONFIRMED
    h.receive(ack)
    h.receive(invite)
    assert h.take_events() == []
    assert len(h.take_sent()) == 1  # just the 486
    h.run_out()
    assert h.take_events() == [TransactionTerminated(tx_key=key)]
    assert h.take_sent() == []  # the ACK stopped Timer G


def test_server_matching_uses_sent_by_and_method() -> None:
    """RFC 3261 §17.2.3: same branch from another sent-by, or another method (CANCEL), is
    another transaction."""
    h = Harness()
    h.receive(request())
    h.receive(request(sent_by="192.0.2.99:5060"))
    h.receive(request("OPTIONS"))
    keys = [e.tx_key for e in h.take_events() if isinstance(e, RequestReceived)]
    assert len(set(keys)) == 3
    assert h.layer.server_transaction_count == 3


def test_non_invite_server_retransmissions() -> None:
    h = Harness()
    register = request("REGISTER")
    h.receive(register)
    key = server_key(h.take_events())
    h.receive(register)  # Trying: nothing to repeat
    assert h.take_sent() == []
    h.send_response(response(register, 200))
    h.receive(register)
    assert [first_line(d) for d in h.take_sent()] == ["SIP/2.0 200 OK"] * 2
    assert h.layer.state_of(key) is TransactionState.COMPLETED
    with pytest.raises(TransactionStateError, match=r"non-INVITE server.*Completed"):
        h.send_response(response(register, 200))


def test_non_invite_server_repeats_its_provisional() -> None:
    h = Harness()
    subscribe = request("SUBSCRIBE")
    h.receive(subscribe)
    h.send_response(response(subscribe, 100))
    h.receive(subscribe)
    assert [first_line(d) for d in h.take_sent()] == ["SIP/2.0 100 Trying"] * 2


def test_100_trying_after_200_ms_unless_the_tu_answers() -> None:
    """RFC 3261 §17.2.1."""
    h = Harness()
    h.receive(request(branch="z9hG4bKslow"))
    h.advance(0.19)
    assert h.sent == []
    h.advance(0.2)
    (sent,) = h.take_sent()
    assert first_line(sent) == "SIP/2.0 100 Trying"
    assert parse_message(sent).to.tag is None
    fast = request(branch="z9hG4bKfast")
    h.receive(fast)
    h.now = 0.3
    h.send_response(response(fast, 180))
    h.advance(1.0)
    assert [first_line(d) for d in h.take_sent()] == ["SIP/2.0 180 Ringing"]


def test_trying_delay_zero_answers_at_once() -> None:
    h = Harness(config=TimerConfig(trying=0.0))
    h.receive(request())
    assert [first_line(d) for d in h.take_sent()] == ["SIP/2.0 100 Trying"]


def test_send_response_needs_a_live_transaction() -> None:
    h = Harness()
    with pytest.raises(UnknownTransactionError):
        h.send_response(response(request(), 200))
    with pytest.raises(UnknownTransactionError):
        h.layer.respond_487(TransactionKey("z9hG4bKx", "h", "CANCEL", True), 0.0)


def test_server_cap_answers_503_statelessly() -> None:
    h = Harness(max_server_transactions=2)
    first = request(branch="z9hG4bK1")
    h.receive(first)
    h.receive(request("OPTIONS", branch="z9hG4bK2"))
    h.take_sent()
    h.receive(request(branch="z9hG4bK3"))
    (busy,) = h.take_sent()
    answer = parse_message(busy)
    assert isinstance(answer, Response)
    assert answer.status == 503
    assert answer.to.tag == "gen1"
    assert h.layer.rejected == 1
    assert h.layer.server_transaction_count == 2
    assert kinds(h.take_events()) == ["RequestReceived", "RequestReceived"]
    h.receive(first)  # retransmissions of live transactions still absorbed
    assert [first_line(d) for d in h.take_sent()] == ["SIP/2.0 100 Trying"]


# --- the 2xx and its ACK (RFC 3261 §13.3.1.4, RFC 6026 §8.7) ----------------------------------


def test_uas_2xx_retransmitted_until_the_ack() -> None:
    h = Harness()
    invite = request()
    h.receive(invite)
    key = server_key(h.take_events())
    ok = response(invite, 200, to_tag="uas")
    h.send_response(ok)
    assert h.layer.state_of(key) is TransactionState.ACCEPTED
    h.advance(2.0)
    assert [t for t, _, _ in h.sent] == [0.0, 0.5, 1.5]
    h.take_sent()
    h.receive(invite)  # Accepted absorbs the INVITE: the core's retransmissions cover it
    assert h.take_sent() == []
    h.receive(ack_for_2xx(invite, to_tag="uas"))
    (event,) = h.take_events()
    assert isinstance(event, AckReceived)
    assert event.tx_key is None  # a new branch: no transaction's
    assert event.request.method == "ACK"
    assert h.layer.pending_2xx_count == 0
    h.run_out()
    assert h.take_sent() == []
    assert h.take_events() == [TransactionTerminated(tx_key=key)]
    assert h.layer.is_idle()


def test_ack_reusing_the_invite_branch_reaches_the_tu_through_accepted() -> None:
    h = Harness()
    invite = request()
    h.receive(invite)
    key = server_key(h.take_events())
    h.send_response(response(invite, 200, to_tag="uas"))
    h.receive(request("ACK", to_tag="uas"))
    (event,) = h.take_events()
    assert isinstance(event, AckReceived)
    assert event.tx_key == key
    assert h.layer.pending_2xx_count == 0


def test_uas_2xx_without_ack_advises_bye_at_64_t1() -> None:
    h = Harness()
    invite = request(call_id="lost-ack", from_tag="caller", cseq=7)
    h.receive(invite)
    key = server_key(h.take_events())
    h.send_response(response(invite, 200, to_tag="callee"))
    h.run_out()
    timeout = [e for e in h.events if isinstance(e, AckTimeout)]
    assert timeout == [
        AckTimeout(tx_key=key, call_id="lost-ack", local_tag="callee", remote_tag="caller", cseq=7)
    ]
    assert h.now == 32.0


def test_tu_can_stop_2xx_retransmission() -> None:
    h = Harness()
    invite = request()
    h.receive(invite)
    h.send_response(response(invite, 200, to_tag="uas"))
    assert h.layer.stop_2xx_retransmission("call-1", "uas", "ft1", 1)
    assert not h.layer.stop_2xx_retransmission("call-1", "uas", "ft1", 1)
    h.take_sent()
    h.run_out()
    assert h.sent == []
    assert not any(isinstance(e, AckTimeout) for e in h.events)


def test_2xx_retransmission_can_be_left_to_the_tu() -> None:
    h = Harness(retransmit_2xx=False)
    invite = request()
    h.receive(invite)
    ok = response(invite, 200)
    h.send_response(ok)
    h.send_response(ok)  # the TU's own retransmission passes through Accepted
    h.advance(5.0)
    assert [t for t, _, _ in h.sent] == [0.0, 0.0]
    assert h.layer.pending_2xx_count == 0


def test_stray_ack_goes_to_the_tu() -> None:
    h = Harness()
    h.receive(ack_for_2xx(request()))
    (event,) = h.take_events()
    assert isinstance(event, AckReceived)
    assert h.layer.transaction_count == 0


# --- CANCEL (RFC 3261 §9) -----------------------------------------------------------------------


def test_cancel_waits_for_a_provisional_response() -> None:
    h = Harness()
    invite = request(route="<sip:proxy.example.com;lr>")
    key = h.send_request(invite)
    h.take_sent()
    cancel_key = h.layer.cancel(key, h.now)
    assert cancel_key == key._replace(method="CANCEL")
    assert h.layer.cancel(key, h.now) == cancel_key  # idempotent
    h.pump()
    assert h.take_sent() == []  # §9.1: not before a provisional response
    h.now = 0.2
    h.receive(response(invite, 180))
    (sent,) = h.take_sent()
    cancel = parse_message(sent)
    assert isinstance(cancel, Request)
    assert cancel.method == "CANCEL"
    assert str(cancel.uri) == str(invite.uri)
    assert [v.branch for v in cancel.via] == ["z9hG4bKa1"]
    assert (cancel.cseq.number, cancel.cseq.method) == (1, "CANCEL")
    assert cancel.to == invite.to
    assert cancel.from_ == invite.from_
    assert cancel.call_id == invite.call_id
    assert cancel.headers.values("route") == ["<sip:proxy.example.com;lr>"]
    assert h.layer.state_of(cancel_key) is TransactionState.TRYING
    # The UAS answers 200 to the CANCEL and 487 to the INVITE.
    h.receive(response(cancel, 200))
    h.receive(response(invite, 487))
    events = h.take_events()
    statuses = [
        (e.tx_key.method, e.response.status) for e in events if isinstance(e, ResponseReceived)
    ]
    assert statuses == [("INVITE", 180), ("CANCEL", 200), ("INVITE", 487)]
    assert first_line(h.take_sent()[0]) == "ACK sip:bob@example.com SIP/2.0"
    h.run_out()
    terminated = {e.tx_key for e in h.events if isinstance(e, TransactionTerminated)}
    assert terminated == {key, cancel_key}


def test_cancel_not_sent_when_a_final_response_comes_first() -> None:
    h = Harness()
    invite = request()
    key = h.send_request(invite)
    cancel_key = h.layer.cancel(key, h.now)
    assert cancel_key is not None
    h.receive(response(invite, 200))
    events = h.take_events()
    assert TransactionTerminated(tx_key=cancel_key) in events
    assert h.layer.state_of(cancel_key) is None
    assert h.layer.cancel(key, h.now) == cancel_key
    h.take_sent()
    h.run_out()
    assert h.sent == []


def test_cancel_after_final_response_or_unknown_is_none() -> None:
    h = Harness()
    invite = request()
    key = h.send_request(invite)
    h.receive(response(invite, 486))
    assert h.layer.cancel(key, h.now) is None
    options_key = h.send_request(request("OPTIONS", branch="z9hG4bKo"))
    assert h.layer.cancel(options_key, h.now) is None  # §9.1: only INVITE is cancelled
    assert h.layer.cancel(TransactionKey("z9hG4bKnone", "", "INVITE", False), 0.0) is None


def test_pending_cancel_ends_with_timer_b() -> None:
    h = Harness()
    key = h.send_request(request())
    cancel_key = h.layer.cancel(key, h.now)
    assert cancel_key is not None
    h.run_out()
    assert h.events == [
        TransactionTimeout(tx_key=key),
        TransactionTerminated(tx_key=key),
        TransactionTerminated(tx_key=cancel_key),
    ]


def test_invite_gives_up_64_t1_after_cancel_without_final_response() -> None:
    """RFC 3261 §9.1: no final response 64*T1 after the CANCEL: destroy the transaction."""
    h = Harness()
    invite = request()
    key = h.send_request(invite)
    h.receive(response(invite, 180))
    h.now = 10.0
    cancel_key = h.layer.cancel(key, h.now)
    assert cancel_key is not None
    h.pump()
    h.receive(response(last_request_sent(h), 200))
    h.advance(41.9)
    assert h.layer.state_of(key) is TransactionState.PROCEEDING
    h.advance(42.0)
    assert h.layer.state_of(key) is None
    assert TransactionTimeout(tx_key=key) in h.events
    assert TransactionTerminated(tx_key=cancel_key) in h.events


def last_request_sent(h: Harness) -> Request:
    msg = parse_message(h.sent[-1][1])
    assert isinstance(msg, Request)
    return msg


def test_uas_cancel_answers_200_and_487_with_the_same_tag() -> None:
    h = Harness()
    invite = request()
    h.receive(invite)
    invite_key = server_key(h.take_events())
    h.send_response(response(invite, 180, to_tag="ring"))
    h.take_sent()
    h.receive(request("CANCEL"))
    (event,) = h.take_events()
    assert isinstance(event, CancelReceived)
    assert event.invite_key == invite_key
    assert h.layer.respond_487(event.tx_key, h.now) == invite_key
    h.pump()
    answers = [parse_message(d) for d in h.take_sent()]
    assert [(a.cseq.method, a.status) for a in answers if isinstance(a, Response)] == [
        ("CANCEL", 200),
        ("INVITE", 487),
    ]
    assert {a.to.tag for a in answers} == {"ring"}
    assert h.layer.state_of(invite_key) is TransactionState.COMPLETED
    h.receive(request("ACK", to_tag="ring"))
    assert h.layer.state_of(invite_key) is TransactionState.CONFIRMED
    assert h.take_events() == []


def test_uas_cancel_after_final_response_only_gets_200() -> None:
    h = Harness()
    invite = request()
    h.receive(invite)
    h.send_response(response(invite, 200, to_tag="uas"))
    h.take_sent()
    h.receive(request("CANCEL"))
    cancel = next(e for e in h.take_events() if isinstance(e, CancelReceived))
    assert h.layer.respond_487(cancel.tx_key, h.now) is None
    h.pump()
    (answer,) = [parse_message(d) for d in h.take_sent()]
    assert isinstance(answer, Response)
    assert (answer.status, answer.cseq.method, answer.to.tag) == (200, "CANCEL", "uas")


def test_uas_cancel_without_invite_gets_481() -> None:
    h = Harness()
    h.receive(request("CANCEL"))
    (event,) = h.take_events()
    assert isinstance(event, CancelReceived)
    assert event.invite_key is None
    assert h.layer.respond_487(event.tx_key, h.now, to_tag="x") is None
    h.pump()
    assert [first_line(d) for d in h.take_sent()] == ["SIP/2.0 481 Call/Transaction Does Not Exist"]


# --- transport errors ---------------------------------------------------------------------------


def test_client_transport_error_informs_the_tu() -> None:
    h = Harness()
    key = h.send_request(request())
    h.layer.transport_error(key, h.now)
    h.layer.transport_error(key, h.now)  # gone: ignored
    h.pump()
    assert h.events == [TransportError(tx_key=key), TransactionTerminated(tx_key=key)]
    assert h.layer.is_idle()  # Timers A and B went with it


def test_transport_error_for_address_fails_its_transactions_only() -> None:
    h = Harness()
    a = h.send_request(request("OPTIONS", branch="z9hG4bKa"), PEER)
    b = h.send_request(request("OPTIONS", branch="z9hG4bKb"), OTHER)
    h.receive(request(branch="z9hG4bKs"), PEER)
    server = server_key(h.take_events())
    h.layer.transport_error_for_address(PEER, h.now)
    h.pump()
    failed = {e.tx_key for e in h.events if isinstance(e, TransportError)}
    assert failed == {a, server}
    assert h.layer.state_of(b) is TransactionState.TRYING


def test_server_transport_error_in_completed() -> None:
    h = Harness()
    register = request("REGISTER")
    h.receive(register)
    key = server_key(h.take_events())
    h.send_response(response(register, 200))
    h.layer.transport_error(key, h.now)
    h.pump()
    assert kinds(h.events) == ["TransportError", "TransactionTerminated"]


# --- RFC 2543 peers and garbage -----------------------------------------------------------------


def test_rfc2543_request_without_magic_cookie() -> None:
    """RFC 3261 §17.2.3 fallback: Call-ID, From tag, CSeq number and top Via identify it
    (RFC 4475 §3.4.1 inv2543 has no branch at all)."""
    h = Harness()
    invite = request(branch=None)
    h.receive(invite)
    key = server_key(h.take_events())
    assert key.branch.startswith("rfc2543 ")
    h.receive(invite)
    assert h.take_events() == []
    h.send_response(response(invite, 486, to_tag="old"))
    h.receive(request("ACK", branch=None, to_tag="old"))
    assert h.layer.state_of(key) is TransactionState.CONFIRMED
    h.receive(request(branch="1234old", call_id="other"))  # a branch without cookie
    assert kinds(h.take_events()) == ["RequestReceived"]


def test_torture_inv2543_and_badbranch_use_rfc2543_matching() -> None:
    """RFC 4475 §3.4.1 (no branch at all) and §3.2.1 (a bare magic cookie): matched the RFC
    2543 way, so retransmissions are absorbed and unrelated requests stay apart."""
    h = Harness()
    inv2543 = load("rfc4475/inv2543.dat")
    h.layer.receive_datagram(inv2543, PEER, 0.0)
    h.layer.receive_datagram(inv2543, PEER, 0.1)
    h.pump()
    (event,) = h.take_events()
    assert isinstance(event, RequestReceived)
    key = event.tx_key
    h.send_response(response(event.request, 486, to_tag="x"))
    head = inv2543.split(b"\r\n\r\n")[0].replace(b"INVITE sip:", b"ACK sip:", 1)
    head = head.replace(b"56 INVITE", b"56 ACK")
    head = head.replace(b"user=phone\r\nCall", b"user=phone;tag=x\r\nCall")
    h.layer.receive_datagram(head + b"\r\nContent-Length: 0\r\n\r\n", PEER, 0.2)
    assert h.layer.state_of(key) is TransactionState.CONFIRMED
    badbranch = load("rfc4475/badbranch.dat")
    h.layer.receive_datagram(badbranch, PEER, 0.0)
    h.layer.receive_datagram(badbranch.replace(b"Call-ID: bad", b"Call-ID: other"), PEER, 0.0)
    h.layer.receive_datagram(badbranch, PEER, 0.0)
    h.pump()
    keys = [e.tx_key for e in h.take_events() if isinstance(e, RequestReceived)]
    assert len(set(keys)) == 2
    assert all(k.branch.startswith("rfc2543 ") for k in keys)
    with pytest.raises(ValueError, match="z9hG4bK"):
        h.send_request(request(branch="z9hG4bK"))


def test_garbage_gets_400_or_nothing() -> None:
    h = Harness()
    bad = bytes(request()).replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE")
    h.layer.receive_datagram(bad, PEER, 0.0)
    h.layer.receive_datagram(b"SIP/2.0 999 Nope\r\n\r\n", PEER, 0.0)
    h.layer.receive_datagram(b"\r\n\r\n", PEER, 0.0)
    h.pump()
    (answer,) = h.take_sent()
    assert first_line(answer).startswith("SIP/2.0 400 Bad Request")
    assert h.events == []
    assert h.layer.dropped == 3
    h.layer.receive_datagram(bytes(request()), PEER, 0.0)
    h.pump()
    assert kinds(h.events) == ["RequestReceived"]


# --- bounded memory -----------------------------------------------------------------------------


def test_every_key_terminates_once_and_memory_returns_to_zero() -> None:
    h = Harness()
    for n in range(50):
        invite = request(branch=f"z9hG4bKc{n}", call_id=f"c{n}")
        h.send_request(invite)
        h.receive(response(invite, 200 if n % 2 else 486))
        incoming = request(branch=f"z9hG4bKs{n}", call_id=f"s{n}", sent_by="192.0.2.50")
        h.receive(incoming)
        h.send_response(response(incoming, 180))
        h.send_response(response(incoming, 200 if n % 3 else 603))
    h.run_out()
    counts = Counter(e.tx_key for e in h.events if isinstance(e, TransactionTerminated))
    assert len(counts) == 100
    assert set(counts.values()) == {1}
    assert h.layer.is_idle()


def test_stale_timers_do_not_pile_up() -> None:
    """Cancelled timers stay in the heap until they come due; the heap is rebuilt when they
    outnumber the live ones, so it stays proportional to the live timers."""
    h = Harness()
    for n in range(2_000):
        invite = request(branch=f"z9hG4bKs{n}", call_id=f"s{n}")
        h.receive(invite)
        h.send_response(response(invite, 180))  # disarms the 100 Trying timer
    live = sum(len(tx.timers) for tx in h.layer._server.values())
    assert live == 0
    assert len(h.layer._heap) <= 64


def test_unvalidated_messages_with_broken_headers_are_dropped() -> None:
    """``receive`` expects validated messages; if a caller skips validation, a header the
    layer needs that does not parse drops the message instead of raising."""
    h = Harness()
    h.send_request(request("OPTIONS"))
    broken_via = bytes(request("OPTIONS")).replace(b"Via: SIP/2.0/UDP", b"Via: SIP/2.0/UDP ;;")
    broken_to = bytes(ack_for_2xx(request())).replace(b"To: <sip:", b"To: <<sip:")
    no_via = bytes(response(request("OPTIONS"), 200)).replace(b"Via:", b"X-Via:")
    for data in (broken_via, broken_to, no_via):
        h.layer.receive(parse_message(data, validate=False), PEER, 0.0)
    h.pump()
    assert h.events == []
    assert h.layer.dropped == 3


def test_respond_487_misuse() -> None:
    h = Harness()
    invite = request()
    h.receive(invite)
    invite_key = server_key(h.take_events())
    with pytest.raises(ValueError, match="not a CANCEL"):
        h.layer.respond_487(invite_key, h.now)
    h.receive(request("CANCEL"))
    cancel_key = server_key(h.take_events())
    assert h.layer.respond_487(cancel_key, h.now, to_tag="mine") == invite_key
    with pytest.raises(TransactionStateError, match="Completed"):
        h.layer.respond_487(cancel_key, h.now)


def test_cancel_before_any_response_uses_the_given_tag() -> None:
    h = Harness()
    invite = request()
    h.receive(invite)
    h.receive(request("CANCEL"))  # within 200 ms: not even a 100 Trying yet
    cancel = next(e for e in h.take_events() if isinstance(e, CancelReceived))
    h.layer.respond_487(cancel.tx_key, h.now, to_tag="mine")
    h.pump()
    answers = [parse_message(d) for d in h.take_sent()]
    assert [(a.cseq.method, a.to.tag) for a in answers] == [("CANCEL", "mine"), ("INVITE", "mine")]


def test_cancel_after_a_failure_keeps_its_tag() -> None:
    """The final response's To tag survives the release of the parsed messages (_linger)."""
    h = Harness()
    invite = request()
    h.receive(invite)
    h.send_response(response(invite, 486, to_tag="busy"))
    h.take_sent()
    h.receive(request("CANCEL"))
    cancel = next(e for e in h.take_events() if isinstance(e, CancelReceived))
    assert h.layer.respond_487(cancel.tx_key, h.now) is None
    h.pump()
    (answer,) = [parse_message(d) for d in h.take_sent()]
    assert (answer.cseq.method, answer.to.tag) == ("CANCEL", "busy")
