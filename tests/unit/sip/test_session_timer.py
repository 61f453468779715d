"""Session timers (RFC 4028): negotiation, refresher role, refresh at half the interval,
expiry when the peer goes silent, 422 and Min-SE, peers that do not support timers.

Uses the back-to-back harness of test_dialog.py with a fake clock that jumps to the next
timer (a 30-minute call costs a few dozen jumps).
"""

from __future__ import annotations

import pytest

from cloudpbx.sip import ParseError
from cloudpbx.sip.dialog import (
    DialogConfig,
    SessionExpires,
    expiry_delay,
    parse_session_expires,
)
from cloudpbx.sip.events import (
    CallAnswered,
    CallFailed,
    DialogTerminated,
    IncomingCall,
    ReInvite,
    SessionExpired,
    TerminationReason,
    Update,
)

from .test_dialog import A_ADDR, B_ADDR, OFFER, SDP, Net, Party, establish, pair

NO_TIMERS = DialogConfig(supported=frozenset({"100rel"}))


def when(party: Party, kind: type) -> list[float]:
    """The times at which ``party`` reported events of ``kind``."""
    return [t for t, e in zip(party.times, party.events, strict=True) if isinstance(e, kind)]


def sent_times(net: Net, src: tuple[str, int], method: str) -> list[float]:
    return [t for t, msg in net.sent_by(src, method + " ")]


def test_expiry_and_header_parsing() -> None:
    # RFC 4028 §10: the non-refresher gives up min(32, interval/3) before the interval ends.
    assert expiry_delay(1800) == 1768
    assert expiry_delay(90) == 60
    assert parse_session_expires("1800;refresher=UAC") == SessionExpires(1800, "uac")
    assert parse_session_expires(" 90 ") == SessionExpires(90, None)
    assert parse_session_expires("600;foo;refresher=uas") == SessionExpires(600, "uas")
    for bad in ("", "abc", "90;refresher=proxy", "-5", "90;;"):
        with pytest.raises(ParseError):
            parse_session_expires(bad)
    with pytest.raises(ValueError, match="90"):
        DialogConfig(min_se=60)
    with pytest.raises(ValueError, match="min_se <= session_expires"):
        DialogConfig(session_expires=100, min_se=200)


def test_negotiation_and_refresh_at_half_the_interval() -> None:
    net, a, b = pair()
    a_id, b_id = establish(net, a, b)
    ok = a.last(CallAnswered).response
    # RFC 4028 §9: the UAC supports timers and left the choice open: it refreshes.
    assert ok.headers.get("session-expires") == "1800;refresher=uac"
    assert "timer" in ok.headers.values("require")
    a_timer = a.layer.dialog(a_id).session_timer  # type: ignore[union-attr]
    b_timer = b.layer.dialog(b_id).session_timer  # type: ignore[union-attr]
    assert a_timer is not None
    assert a_timer.we_refresh
    assert a_timer.interval == 1800
    assert b_timer is not None
    assert not b_timer.we_refresh
    assert a_timer.refresh_at == 900
    assert b_timer.expires_at == 1768

    net.advance(3000)
    # The peer allows UPDATE: refreshes are bodiless UPDATEs, every 900 s.
    assert sent_times(net, A_ADDR, "UPDATE") == [900, 1800, 2700]
    update = net.requests(A_ADDR, "UPDATE")[0]
    assert update.headers.get("session-expires") == "1800;refresher=uac"
    assert update.headers.get("min-se") == "90"
    assert not update.body
    assert all(u.auto_answered for u in b.of(Update))
    assert not a.of(SessionExpired)
    assert not b.of(SessionExpired)
    b_timer = b.layer.dialog(b_id).session_timer  # type: ignore[union-attr]
    assert b_timer is not None
    assert b_timer.refreshed_at == 2700
    assert a.layer.dialog_count == b.layer.dialog_count == 1


def test_silent_peer_expires_the_session_at_the_right_time() -> None:
    net, a, b = pair()
    _, b_id = establish(net, a, b)
    net.advance(1000)  # one refresh went through, at 900
    net.drop = lambda src, dst, data: src == A_ADDR  # alice's phone dies
    net.advance(5000)
    # Bob expected the next refresh by 900 + 1800; he gives up at 900 + 1768.
    assert when(b, SessionExpired) == [900 + 1768]
    assert b.last(SessionExpired).dialog_id == b_id
    assert b.layer.dialog(b_id) is not None  # ending the call is the TU's: BYE
    b.layer.bye(b_id, net.now)
    net.flush()
    assert b.last(DialogTerminated).reason is TerminationReason.LOCAL_BYE
    net.run_out()
    assert b.layer.is_idle()


def test_refresher_ends_the_call_when_its_refresh_times_out() -> None:
    net, a, b = pair()
    establish(net, a, b)
    net.drop = lambda src, dst, data: src == B_ADDR or dst == B_ADDR  # bob is gone
    net.advance(2000)
    # The refresh at 900 times out 64*T1 later: RFC 4028 §10 / RFC 3261 §12.2.1.2 -> BYE.
    assert when(a, DialogTerminated) == [932]
    assert a.last(DialogTerminated).reason is TerminationReason.TIMEOUT
    assert sent_times(net, A_ADDR, "BYE")[0] == 932
    net.run_out()
    assert a.layer.is_idle()


def test_422_makes_the_uac_retry_with_the_larger_interval() -> None:
    net = Net()
    a = Party(net, "alice", A_ADDR, config=DialogConfig(session_expires=600))
    b = Party(net, "bob", B_ADDR, config=DialogConfig(session_expires=3600, min_se=1800))
    call = a.invite(b)
    first, second = net.requests(A_ADDR, "INVITE")
    assert first.headers.get("session-expires") == "600"
    (reject,) = net.responses(B_ADDR, 422)
    assert reject.headers.get("min-se") == "1800"
    # RFC 4028 §7.3: the same call again, CSeq + 1, a new branch, the new minimum.
    assert second.call_id == first.call_id
    assert second.from_.tag == first.from_.tag
    assert second.cseq.number == 2
    assert second.via[0].branch != first.via[0].branch
    assert second.headers.get("session-expires") == "1800"
    assert second.headers.get("min-se") == "1800"
    (incoming,) = b.of(IncomingCall)  # the rejected attempt never reached bob's TU
    assert not a.of(CallFailed)
    b.layer.respond(incoming.tx_key, 200, net.now, body=OFFER, content_type=SDP)
    net.flush()
    answered = a.last(CallAnswered)
    assert answered.call == call
    assert answered.response.headers.get("session-expires") == "1800;refresher=uac"
    net.advance(1000)
    assert sent_times(net, A_ADDR, "UPDATE") == [900]


def test_no_422_to_a_uac_without_timer_support() -> None:
    net = Net()
    a = Party(net, "alice", A_ADDR, config=NO_TIMERS)
    b = Party(net, "bob", B_ADDR)
    a.invite(b, headers=(("Session-Expires", "60"),))  # e.g. set by a proxy
    incoming = b.last(IncomingCall)
    ok = b.layer.respond(incoming.tx_key, 200, net.now, body=OFFER, content_type=SDP)
    # It could not understand a 422: the UAS raises the interval and refreshes itself.
    assert ok.headers.get("session-expires") == "90;refresher=uas"
    assert "require" not in ok.headers


def test_uas_refreshes_when_asked() -> None:
    net, a, b = pair()
    invite = a.layer.create_invite(
        request_uri="sip:bob@192.0.2.2",
        from_="<sip:alice@example.com>",
        to="<sip:bob@example.com>",
        addr=B_ADDR,
        body=OFFER,
        content_type=SDP,
    )
    invite.headers.set("Session-Expires", "1200;refresher=uas")
    a.layer.send_invite(invite, B_ADDR, net.now)
    net.flush()
    b.layer.respond(b.last(IncomingCall).tx_key, 200, net.now, body=OFFER, content_type=SDP)
    net.flush()
    assert a.last(CallAnswered).response.headers.get("session-expires") == "1200;refresher=uas"
    net.advance(1500)
    assert sent_times(net, B_ADDR, "UPDATE") == [600, 1200]
    assert not sent_times(net, A_ADDR, "UPDATE")
    refresh = net.requests(B_ADDR, "UPDATE")[0]
    # In the refresh bob is the UAC of the transaction: "refresher=uac" names him.
    assert refresh.headers.get("session-expires") == "1200;refresher=uac"


def test_refresh_by_reinvite_when_update_is_not_allowed() -> None:
    no_update = DialogConfig(allow=("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "PRACK"))
    net, a, b = pair(b_config=no_update)
    a_id, _ = establish(net, a, b)
    net.advance(1000)
    assert not net.requests(A_ADDR, "UPDATE")
    (reinvite,) = [r for r in net.requests(A_ADDR, "INVITE") if r.to.tag]
    # Our last session description again, unchanged (RFC 3264 §8): the peer's layer answers.
    assert reinvite.body == OFFER
    assert reinvite.headers.get("session-expires", "").startswith("1800")
    assert b.last(ReInvite).auto_answered
    timer = a.layer.dialog(a_id).session_timer  # type: ignore[union-attr]
    assert timer is not None
    assert timer.refreshed_at == 900


def test_unaware_peer_is_refreshed_and_its_death_noticed() -> None:
    net = Net()
    a = Party(net, "alice", A_ADDR, config=NO_TIMERS)
    b = Party(net, "bob", B_ADDR)
    a_id, b_id = establish(net, a, b)
    ok = a.last(CallAnswered).response
    assert ok.headers.get("session-expires") == "1800;refresher=uas"  # RFC 4028 §9
    assert a.layer.dialog(a_id).session_timer is None  # type: ignore[union-attr]
    net.advance(1000)
    assert sent_times(net, B_ADDR, "UPDATE") == [900]
    assert "session-expires" not in net.responses(A_ADDR, 200)[-1].headers
    timer = b.layer.dialog(b_id).session_timer  # type: ignore[union-attr]
    assert timer is not None
    assert timer.we_refresh
    assert timer.refreshed_at == 900
    net.drop = lambda src, dst, data: src == A_ADDR
    net.advance(3000)
    assert when(b, DialogTerminated) == [1800 + 32]
    assert b.last(DialogTerminated).reason is TerminationReason.TIMEOUT


def test_rfc_strict_mode_turns_the_timer_off_for_unaware_peers() -> None:
    net = Net()
    a = Party(net, "alice", A_ADDR, config=NO_TIMERS)
    b = Party(net, "bob", B_ADDR, config=DialogConfig(refresh_unaware_peers=False))
    _, b_id = establish(net, a, b)
    net.advance(1000)
    # RFC 4028 §7.2: the 2xx to the refresh had no Session-Expires: no session timer.
    assert b.layer.dialog(b_id).session_timer is None  # type: ignore[union-attr]
    net.advance(10_000)
    assert sent_times(net, B_ADDR, "UPDATE") == [900]


def test_timers_off_everywhere() -> None:
    net, a, b = pair(NO_TIMERS, NO_TIMERS)
    establish(net, a, b)
    assert "session-expires" not in net.requests(A_ADDR, "INVITE")[0].headers
    assert "session-expires" not in a.last(CallAnswered).response.headers
    assert net.next_deadline() is not None  # only transaction timers ...
    net.run_out()  # ... which run out: no session timer keeps the call alive
    assert a.layer.dialog_count == b.layer.dialog_count == 1


def test_malformed_session_expires_gets_400() -> None:
    net, a, b = pair()
    invite = a.layer.create_invite(
        request_uri="sip:bob@192.0.2.2",
        from_="<sip:alice@example.com>",
        to="<sip:bob@example.com>",
        addr=B_ADDR,
    )
    invite.headers.set("Session-Expires", "soon")
    a.layer.send_invite(invite, B_ADDR, net.now)
    net.flush()
    (bad,) = net.responses(B_ADDR, 400)
    assert "Session-Expires" in bad.reason
    assert a.last(CallFailed).status == 400
    assert not b.of(IncomingCall)


def test_refresh_answered_422_is_retried_with_the_larger_interval() -> None:
    net, a, b = pair(DialogConfig(session_expires=900))
    a_id, b_id = establish(net, a, b)
    assert a.last(CallAnswered).response.headers.get("session-expires") == "900;refresher=uac"
    b.layer.config = DialogConfig(session_expires=1800, min_se=1200)  # bob got stricter
    net.advance(500)
    first, second = net.requests(A_ADDR, "UPDATE")
    assert first.headers.get("session-expires") == "900;refresher=uac"
    assert net.responses(B_ADDR, 422)[0].headers.get("min-se") == "1200"
    # RFC 4028 §7.4: again at once, with the interval and Min-SE the 422 asked for.
    assert second.headers.get("session-expires") == "1200;refresher=uac"
    assert second.headers.get("min-se") == "1200"
    timer = a.layer.dialog(a_id).session_timer  # type: ignore[union-attr]
    assert timer is not None
    assert timer.interval == 1200
    assert timer.refreshed_at == 450
    assert b.layer.dialog(b_id).session_timer.interval == 1200  # type: ignore[union-attr]
    net.advance(1100)
    assert sent_times(net, A_ADDR, "UPDATE") == [450, 450, 1050]


def test_refused_update_falls_back_to_reinvite() -> None:
    net, a, b = pair()
    a_id, _ = establish(net, a, b)
    b.layer.config = DialogConfig(allow=("INVITE", "ACK", "BYE", "CANCEL"))  # UPDATE now 501
    net.advance(910)
    assert net.responses(B_ADDR, 501)
    reinvites = [r for r in net.requests(A_ADDR, "INVITE") if r.to.tag]
    assert len(reinvites) == 1
    assert reinvites[0].body == OFFER
    refresh_time = next(t for t, r in net.sent_by(A_ADDR, "INVITE ") if r.to.tag)  # type: ignore[union-attr]
    assert 900 + 2.1 <= refresh_time <= 900 + 4
    timer = a.layer.dialog(a_id).session_timer  # type: ignore[union-attr]
    assert timer is not None
    assert timer.refreshed_at == refresh_time
