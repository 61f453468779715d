"""Calls through the B2BUA with real pjsua2 phones over loopback (issue 5 items 4, 5, 9):
the bridged call and the ways a call fails or is abandoned. The client is
:func:`.pbx_harness.build_client`."""

from __future__ import annotations

from collections.abc import Callable

from ..sip.conftest import Phone, phones  # noqa: F401 - the pjsua2 phone fixture
from .pbx_harness import Pbx, build_client, pair

BUILD = build_client


def test_port_to_port_call_is_bridged_and_recorded(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """PRT-1, DP-4 "ring port", CDR-1, AC-1: 100 calls 200, 200 answers, media is relayed
    both ways, the caller hangs up; the call record has both legs, outcome answered, steps
    [1]; the active-calls list shows the call while it lasts and not after."""
    alice, bob = pair(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("200"))
    bob.expect("incoming")
    alice.expect("call_state", state="CONFIRMED")
    active = pbx.active_calls()
    assert len(active) == 1
    assert active[0].state.value == "answered"

    def relayed() -> bool:
        sessions = pbx.call(lambda: list(pbx.runtime.relays.sessions))
        if len(sessions) != 1:
            return False
        a_to_b, b_to_a = pbx.call(sessions[0].stats)
        return a_to_b.packets_forwarded > 10 and b_to_a.packets_forwarded > 10

    pbx.wait_until(relayed, timeout=5)
    alice.send(cmd="hangup")
    bob.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    assert pbx.active_calls() == []
    [(call, legs, events)] = pbx.records()
    assert (call.caller, call.called, call.outcome) == ("100", "200", "answered")
    assert call.steps == [1]
    assert call.answer_ms is not None
    assert call.end_ms is not None
    assert sorted(leg.direction for leg in legs) == ["in", "out"]
    assert {leg.outcome for leg in legs} == {"answered"}
    assert any(e.kind == "step" and e.step_level == 1 for e in events)


def test_callee_hangs_up_first(pbx: Pbx, phones: Callable[[], Phone]) -> None:  # noqa: F811
    """RFC 3261 §15: BYE from the callee; DP-4: After answer with no next step → BYE to
    the caller."""
    alice, bob = pair(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("200"))
    alice.expect("call_state", state="CONFIRMED")
    bob.expect("call_state", state="CONFIRMED")
    bob.send(cmd="hangup")
    alice.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    [(call, _legs, _events)] = pbx.records()
    assert call.outcome == "answered"


def test_unknown_number_gets_404(pbx: Pbx, phones: Callable[[], Phone]) -> None:  # noqa: F811
    """DP-4: 404 only when the dialled number does not exist."""
    alice = phones()
    assert pbx.register(alice, "alice")["code"] == 200
    alice.send(cmd="call", uri=pbx.uri("400"))
    ended = alice.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 404, ended
    assert pbx.records() == []


def test_unauthenticated_caller_is_challenged(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """PRODUCT.md §3a: the caller is the authenticated port; no credentials → 407 and no
    call (pjsua's local account has none to answer the challenge with)."""
    stranger = phones()
    stranger.send(cmd="local")
    stranger.expect("local")
    stranger.send(cmd="call", uri=pbx.uri("200"))
    ended = stranger.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 407, ended
    assert pbx.call(lambda: pbx.runtime.b2bua.counters.get("407", 0)) >= 1
    assert pbx.records() == []


def test_caller_cancels_while_ringing(pbx: Pbx, phones: Callable[[], Phone]) -> None:  # noqa: F811
    """RFC 3261 §9: the caller hangs up while the callee rings: CANCEL both ways, the call
    record says cancelled."""
    alice, bob = pair(pbx, phones, answers=False)
    alice.send(cmd="call", uri=pbx.uri("200"))
    bob.expect("incoming")
    alice.expect("call_state", state="EARLY")
    alice.send(cmd="hangup")
    bob.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    [(call, legs, _events)] = pbx.records()
    assert call.outcome == "cancelled"
    assert call.answer_ms is None
    assert len(legs) == 2


def test_busy_callee(pbx: Pbx, phones: Callable[[], Phone]) -> None:  # noqa: F811
    """DP-4 "ring port": the only branch says 486 → Busy; no Busy step → 486 to the caller."""
    alice, bob = pair(pbx, phones, answers=False)
    alice.send(cmd="call", uri=pbx.uri("200"))
    bob.expect("incoming")
    bob.send(cmd="answer", code=486)
    ended = alice.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 486, ended
    pbx.wait_idle()
    [(call, _legs, _events)] = pbx.records()
    assert call.outcome == "busy"


def test_other_contacts_stop_ringing_when_one_answers(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """PRT-1, DP-4 "ring port" (forking): the port 200 has two registered phones; both ring,
    the first to answer gets the call and the other is cancelled at once (RFC 3261 §9.1),
    while the conversation goes on -- not when it ends."""
    alice, desk = pair(pbx, phones)
    mobile = phones()
    mobile.send(cmd="set", auto_answer=False)
    assert pbx.register(mobile, "bob")["code"] == 200
    alice.send(cmd="call", uri=pbx.uri("200"))
    mobile.expect("incoming")
    desk.expect("incoming")
    alice.expect("call_state", state="CONFIRMED")
    mobile.expect("call_state", state="DISCONNECTED", timeout=5)
    assert len(pbx.active_calls()) == 1  # the conversation is still up
    alice.send(cmd="hangup")
    desk.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    [(call, legs, _events)] = pbx.records()
    assert call.outcome == "answered"
    assert sorted(leg.outcome or "" for leg in legs).count("answered") == 2
