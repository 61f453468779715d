"""Reliable provisional responses and PRACK (RFC 3262): the UAS side (RSeq, Require: 100rel,
retransmission at T1 doubling, 5xx after 64*T1, the 2xx held until the PRACK), the UAC side
(PRACK with RAck, duplicates and gaps ignored), offers in reliable 1xx and in PRACK.

Uses the back-to-back harness of test_dialog.py.
"""

from __future__ import annotations

import pytest

from cloudpbx.sip import make_response, parse_message
from cloudpbx.sip.dialog import DialogConfig, OfferAnswerState, parse_rack
from cloudpbx.sip.events import (
    CallAnswered,
    CallFailed,
    DialogTerminated,
    EarlyDialog,
    IncomingCall,
    PrackReceived,
    ProvisionalReceived,
    ResponseReceived,
    TerminationReason,
)

from .test_dialog import (
    A_ADDR,
    ANSWER,
    B_ADDR,
    C_ADDR,
    OFFER,
    SDP,
    Net,
    Party,
    pair,
    peer_request,
)


def test_reliable_183_is_pracked_and_the_call_proceeds() -> None:
    net, a, b = pair()
    a.invite(b)
    incoming = b.last(IncomingCall)
    progress = b.layer.respond(incoming.tx_key, 183, net.now, body=ANSWER, content_type=SDP)
    # RFC 3262 §3: a 1xx with a body to a UAC supporting 100rel is sent reliably.
    assert progress.headers.get("require") == "100rel"
    rseq = int(progress.headers.get("rseq", "0"))
    assert 1 <= rseq < 2**31
    net.flush()
    early = a.last(EarlyDialog)
    assert early.reliable
    assert not early.prack_pending
    (prack,) = net.requests(A_ADDR, "PRACK")
    assert parse_rack(prack.headers.get("rack", "")) == (rseq, 1, "INVITE")
    assert prack.cseq.number == 2
    assert str(prack.uri) == "sip:bob@192.0.2.2:5060"
    received = b.last(PrackReceived)
    assert not received.needs_answer
    assert received.dialog_id == incoming.dialog_id
    assert net.responses(B_ADDR, 200)[0].cseq.method == "PRACK"  # the layer answered it
    a_dialog = a.layer.dialog(early.dialog_id)
    b_dialog = b.layer.dialog(incoming.dialog_id)
    assert a_dialog is not None
    assert b_dialog is not None
    assert a_dialog.offer_answer is b_dialog.offer_answer is OfferAnswerState.STABLE

    # The answer went in the 183: the 2xx needs no body.
    b.layer.respond(incoming.tx_key, 200, net.now)
    net.flush()
    assert a.last(CallAnswered).dialog_id == early.dialog_id
    net.advance(net.now + 10)
    assert len(net.responses(B_ADDR, 183)) == 1  # acknowledged at once: never repeated


def test_unacknowledged_1xx_is_retransmitted_then_the_invite_fails() -> None:
    net, a, b = pair()
    net.drop = lambda src, dst, data: data.startswith(b"PRACK ")
    call = a.invite(b)
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 183, net.now, body=ANSWER, content_type=SDP)
    net.flush()
    net.advance(40.0)
    # RFC 3262 §3: T1, doubling (no T2 cap), until 64*T1; then a 5xx to the INVITE.
    sends = [t for t, r in net.sent_by(B_ADDR, "SIP/2.0 183")]
    assert sends == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    (failure,) = net.responses(B_ADDR, 500)
    assert failure.cseq.method == "INVITE"
    assert b.last(DialogTerminated).reason is TerminationReason.PRACK_TIMEOUT
    assert a.last(CallFailed).call == call
    assert a.last(CallFailed).status == 500
    # The UAC PRACKed the first copy only: one PRACK transaction (its own retransmissions).
    assert len({p.via[0].branch for p in net.requests(A_ADDR, "PRACK")}) == 1
    assert len(a.of(EarlyDialog)) == 1
    assert not a.of(ProvisionalReceived)
    net.run_out()
    assert a.layer.is_idle()
    assert b.layer.is_idle()


def test_uac_ignores_duplicates_and_gaps_in_rseq() -> None:
    net = Net()
    a = Party(net, "alice", A_ADDR)
    a.invite(C_ADDR)
    (invite,) = net.requests(A_ADDR, "INVITE")

    def reliable(rseq: int, status: int = 180) -> None:
        response = make_response(invite, status, to_tag="t1")
        response.headers.add("Contact", "<sip:t1@192.0.2.3>")
        response.headers.add("Require", "100rel")
        response.headers.add("RSeq", rseq)
        a.layer.receive(parse_message(bytes(response)), C_ADDR, net.now)
        net.flush()

    reliable(10)
    reliable(10)  # a retransmission: RFC 3262 §4, not processed again
    reliable(12)  # a gap: not processed (the UAS will retransmit 11)
    reliable(11, 183)
    reliable(12, 183)
    pracks = net.requests(A_ADDR, "PRACK")
    assert [parse_rack(p.headers.get("rack", ""))[0] for p in pracks] == [10, 11, 12]
    assert [p.cseq.number for p in pracks] == [2, 3, 4]
    assert len(a.of(EarlyDialog)) == 1
    assert len(a.of(ProvisionalReceived)) == 2


def test_2xx_waits_for_the_prack_of_a_1xx_with_sdp() -> None:
    net, a, b = pair()
    a.invite(b)
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 183, net.now, body=ANSWER, content_type=SDP)
    b.layer.respond(incoming.tx_key, 200, net.now)  # before the PRACK could come
    out = b.layer.datagrams_to_send(net.now)
    assert [data[:12] for data, _ in out] == [b"SIP/2.0 183 "]  # RFC 3262 §3: held
    for data, _ in out:
        net.sent.append((net.now, B_ADDR, A_ADDR, data))
        a.layer.receive_datagram(data, B_ADDR, net.now)
    net.flush()
    statuses = [(r.status, r.cseq.method) for r in net.responses(B_ADDR)]
    assert statuses == [(183, "INVITE"), (200, "PRACK"), (200, "INVITE")]
    assert a.last(CallAnswered)


def test_2xx_does_not_wait_for_a_1xx_without_sdp() -> None:
    net, a, b = pair()
    net.drop = lambda src, dst, data: data.startswith(b"PRACK ")
    a.invite(b)
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 180, net.now, reliable=True)
    b.layer.respond(incoming.tx_key, 200, net.now, body=ANSWER, content_type=SDP)
    net.flush()
    assert a.last(CallAnswered)
    net.advance(net.now + 5)
    assert len(net.responses(B_ADDR, 180)) == 1  # the final response stopped the 180


def test_reliable_responses_are_sent_one_at_a_time() -> None:
    net, a, b = pair()
    net.drop = lambda src, dst, data: data.startswith(b"PRACK ")
    a.invite(b)
    incoming = b.last(IncomingCall)
    first = b.layer.respond(incoming.tx_key, 180, net.now, reliable=True)
    second = b.layer.respond(incoming.tx_key, 183, net.now, body=ANSWER, content_type=SDP)
    assert int(second.headers.get("rseq", "0")) == int(first.headers.get("rseq", "0")) + 1
    net.flush()
    assert not net.responses(B_ADDR, 183)  # RFC 3262 §3: after the first is acknowledged
    net.drop = lambda src, dst, data: False
    net.advance(net.now + 1)  # the PRACK retransmission gets through
    assert len(net.responses(B_ADDR, 183)) == 1
    assert [p.needs_answer for p in b.of(PrackReceived)] == [False, False]


def test_offer_in_reliable_1xx_is_answered_in_the_prack() -> None:
    net, a, b = pair()
    a.invite(b, body=b"")  # no offer in the INVITE
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 183, net.now, body=ANSWER, content_type=SDP)
    net.flush()
    early = a.last(EarlyDialog)
    assert early.reliable
    assert early.prack_pending
    assert not net.requests(A_ADDR, "PRACK")
    a_dialog = a.layer.dialog(early.dialog_id)
    b_dialog = b.layer.dialog(incoming.dialog_id)
    assert a_dialog is not None
    assert b_dialog is not None
    assert a_dialog.offer_answer is OfferAnswerState.REMOTE_OFFER
    a.layer.prack(early.dialog_id, net.now, body=OFFER, content_type=SDP)
    net.flush()
    (prack,) = net.requests(A_ADDR, "PRACK")
    assert prack.body == OFFER
    assert not b.last(PrackReceived).needs_answer  # it was the answer
    assert a_dialog.offer_answer is b_dialog.offer_answer is OfferAnswerState.STABLE
    assert b_dialog.remote_body == OFFER
    b.layer.respond(incoming.tx_key, 200, net.now)
    net.flush()
    assert not a.last(CallAnswered).ack_pending


def test_new_offer_in_prack_is_answered_by_the_tu() -> None:
    net, a, b = pair()
    a.invite(b)
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 183, net.now, body=ANSWER, content_type=SDP)
    net.flush()  # offer (INVITE) and answer (183) done
    net.drop = lambda src, dst, data: data.startswith(b"PRACK ")
    ringing = b.layer.respond(incoming.tx_key, 180, net.now, reliable=True)
    net.flush()
    net.drop = lambda src, dst, data: False
    # RFC 3262 §5: after the answer, a PRACK may carry a new offer (played by hand here).
    early = a.last(EarlyDialog)
    rack = f"{ringing.headers.get('rseq')} 1 INVITE"
    key = peer_request(a, early.dialog_id, "PRACK", cseq=9, body=OFFER + b"2", rack=rack)
    received = b.last(PrackReceived)
    assert received.needs_answer
    b_dialog = b.layer.dialog(incoming.dialog_id)
    assert b_dialog is not None
    assert b_dialog.offer_answer is OfferAnswerState.REMOTE_OFFER
    b.layer.respond(received.tx_key, 200, net.now, body=ANSWER + b"2", content_type=SDP)
    net.flush()
    (answer,) = [e.response for e in a.of(ResponseReceived) if e.tx_key == key]
    assert answer.status == 200
    assert answer.body == ANSWER + b"2"
    assert b_dialog.offer_answer is OfferAnswerState.STABLE


def test_uac_requiring_100rel_gets_reliable_1xx_only() -> None:
    net, a, b = pair()
    a.invite(b, headers=(("Require", "100rel"),))
    incoming = b.last(IncomingCall)
    with pytest.raises(ValueError, match="requires 100rel"):
        b.layer.respond(incoming.tx_key, 180, net.now, reliable=False)
    ringing = b.layer.respond(incoming.tx_key, 180, net.now)
    assert ringing.headers.get("require") == "100rel"
    assert "rseq" in ringing.headers
    trying = b.layer.respond(incoming.tx_key, 100, net.now)
    assert "rseq" not in trying.headers  # RFC 3262 §3: never a reliable 100


def test_without_100rel_support() -> None:
    net, a, b = pair(b_config=DialogConfig(supported=frozenset({"timer"})))
    a.invite(b, headers=(("Require", "100rel"),))
    (reject,) = net.responses(B_ADDR, 420)
    assert reject.headers.get("unsupported") == "100rel"
    a.invite(b)  # only Supported: 100rel: the 183 goes unreliably
    incoming = b.last(IncomingCall)
    progress = b.layer.respond(incoming.tx_key, 183, net.now, body=ANSWER, content_type=SDP)
    assert "rseq" not in progress.headers
    net.flush()
    assert not a.last(EarlyDialog).reliable
    assert not net.requests(A_ADDR, "PRACK")
    with pytest.raises(ValueError, match="100rel"):
        b.layer.respond(incoming.tx_key, 180, net.now, reliable=True)


def test_prack_matching_nothing_gets_481() -> None:
    net, a, b = pair()
    a.invite(b)
    incoming = b.last(IncomingCall)
    b.layer.respond(incoming.tx_key, 183, net.now, body=ANSWER, content_type=SDP)
    net.flush()
    early = a.last(EarlyDialog)
    (prack,) = net.requests(A_ADDR, "PRACK")
    key = peer_request(a, early.dialog_id, "PRACK", cseq=7)  # no RAck at all
    key2 = peer_request(a, early.dialog_id, "PRACK", cseq=8)
    statuses = [e.response.status for e in a.of(ResponseReceived) if e.tx_key in (key, key2)]
    assert statuses == [481, 481]
    assert len(b.of(PrackReceived)) == 1
    assert prack.headers.get("rack")
