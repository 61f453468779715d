"""How calls end besides a party's BYE, with real phones over loopback (issue 5 items 4, 5, 8;
PRT-1 limits, AC-1 hang-up, DP-7 go-to): a port's max concurrent incoming gives Busy, its max
incoming duration ends the call, a caller that sends no RTP or stops refreshing its session
timer is hung up, an administrator hangs up through ``EngineControl``, "go to internal
number" continues in the other number's dialplan, and a caller over SIP-over-WebSocket (RFC
7118) is served like any other. Callers that pjsua2 cannot play (silent, non-refreshing, WS)
are :class:`.pbx_harness.StackCaller` UACs; each ended leg carries its media quality."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cloudpbx.sip.dialog import DialogConfig

from ..sip.conftest import Phone, phones  # noqa: F401 - the pjsua2 phone fixture
from .pbx_harness import (
    Pbx,
    Seeder,
    StackCaller,
    jump_sip_clock,
    pair,
    step,
    write_tone,
)


def build_control_client(s: Seeder) -> None:
    """alice (caller ID 100), bob (200, at most 1 incoming call), carol (201, calls last at
    most 2 s), erin (a StackCaller); 701 plays a message, 700 goes to 701."""
    alice = s.port("alice")
    bob = s.port("bob", max_concurrent_incoming=1)
    carol = s.port("carol", max_incoming_duration_s=2)
    s.port("erin")
    message = s.media("message", write_tone(s.media_dir / "message.wav", 0.6, 1000.0))
    s.number("100", [step(1, "ring_port", 20, port_id=alice)])
    s.number("200", [step(1, "ring_port", 20, port_id=bob)])
    s.number("201", [step(1, "ring_port", 20, port_id=carol)])
    target = s.number("701", [step(1, "play_message", 0, media_file_id=message)])
    s.number("700", [step(1, "goto_number", 0, goto_number_id=target)])
    s.caller_id("alice", "100")


BUILD = build_control_client
PBX_OPTIONS = {"ws": True}


@pytest.fixture
def pbx(engine_pbx: Pbx) -> Iterator[Pbx]:
    """The module's engine, with only this test's call records visible."""
    engine_pbx.reset()
    yield engine_pbx
    engine_pbx.wait_idle()


@pytest.fixture
def erin(pbx: Pbx) -> Iterator[Callable[..., StackCaller]]:
    """A factory of started StackCallers with erin's credentials (closed afterwards)."""
    made: list[StackCaller] = []

    def make(**options: object) -> StackCaller:
        caller = StackCaller(pbx, "erin", **options)  # type: ignore[arg-type]
        pbx.thread.run(caller.start())
        made.append(caller)
        return caller

    yield make
    for caller in made:
        pbx.thread.run(caller.close())


def hangup_causes(legs: list[object]) -> set[str | None]:
    return {getattr(leg, "hangup_cause", None) for leg in legs}


def test_max_concurrent_incoming_gives_busy(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    erin: Callable[..., StackCaller],
) -> None:
    """PRT-1 / issue 5 item 5: bob's port takes at most one incoming call; a second call to
    200 while the first lasts is Busy (DP-4), and without a Busy step the caller gets 486."""
    alice, _bob = pair(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("200"))
    alice.expect("call_state", state="CONFIRMED")
    second = erin()
    assert pbx.thread.run(second.call("200")) == 486
    alice.send(cmd="hangup")
    alice.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    first, busy = pbx.records()
    assert first[0].outcome == "answered"
    assert busy[0].outcome == "busy"
    assert any(e.kind == "limit" for e in busy[2])
    assert [leg.direction for leg in busy[1]] == ["in"]  # no INVITE went to bob


def test_max_incoming_duration_ends_the_call(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """PRT-1 / issue 5 item 5: carol's calls last at most 2 s: at the limit both phones get
    BYE; the call record says why on both legs."""
    alice, carol = pair(pbx, phones, "carol")
    alice.send(cmd="call", uri=pbx.uri("201"))
    alice.expect("call_state", state="CONFIRMED")
    alice.expect("call_state", state="DISCONNECTED", timeout=6)
    carol.expect("call_state", state="DISCONNECTED", timeout=3)
    pbx.wait_idle()
    [(call, legs, events)] = pbx.records()
    assert call.outcome == "answered"
    assert call.answer_ms is not None
    assert call.end_ms is not None
    assert 1800 <= call.end_ms - call.answer_ms <= 3500
    assert hangup_causes(legs) == {"max incoming duration 2 s"}
    assert any(e.kind == "hangup" for e in events)


def test_rtp_inactivity_ends_the_call(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    erin: Callable[..., StackCaller],
) -> None:
    """Issue 5 item 4: a caller that sends no RTP is dead once the call is bridged: after the
    inactivity timeout (1.5 s here; ``rtp_timeout_s`` in production, >= 5 s) both sides get
    BYE and the call record says "RTP inactivity" (event ``rtp_timeout`` names side a)."""
    bob = phones()
    assert pbx.register(bob, "bob")["code"] == 200
    relays = pbx.runtime.relays
    saved = relays.inactivity_timeout
    pbx.call(setattr, relays, "inactivity_timeout", 1.5)
    try:
        silent = erin()
        assert pbx.thread.run(silent.call("200")) == 200
        bob.expect("call_state", state="CONFIRMED")
        bob.expect("call_state", state="DISCONNECTED", timeout=5)
        pbx.wait_until(lambda: silent.ended.done() and silent.bye_received, timeout=3)
    finally:
        pbx.call(setattr, relays, "inactivity_timeout", saved)
    pbx.wait_idle()
    [(call, legs, events)] = pbx.records()
    assert call.outcome == "answered"
    assert hangup_causes(legs) == {"RTP inactivity"}
    assert [e.detail for e in events if e.kind == "rtp_timeout"] == [{"detail": "a"}]
    caller_leg = next(leg for leg in legs if leg.direction == "in")
    callee_leg = next(leg for leg in legs if leg.direction == "out")
    assert caller_leg.quality["rx_packets"] == 0
    assert callee_leg.quality["rx_packets"] > 20  # bob's phone kept sending


def test_session_timer_expiry_ends_the_call(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    erin: Callable[..., StackCaller],
) -> None:
    """RFC 4028: the caller asks for ``Session-Expires: 90`` as the refresher and never
    refreshes; when the session expires (the engine's SIP clock is run 100 s ahead) the PBX
    sends BYE to both sides (§10) and the call record says "session expired"."""
    bob = phones()
    assert pbx.register(bob, "bob")["code"] == 200
    caller = erin(dialog_config=DialogConfig(session_expires=90))
    assert pbx.thread.run(caller.call("200")) == 200
    expires = caller.answered_response.headers.get("session-expires")
    assert expires.replace(" ", "").startswith("90;refresher=uac"), expires
    bob.expect("call_state", state="CONFIRMED")
    jump_sip_clock(pbx, 100.0)
    bob.expect("call_state", state="DISCONNECTED", timeout=5)
    pbx.wait_until(lambda: caller.ended.done() and caller.bye_received, timeout=3)
    pbx.wait_idle()
    [(call, legs, _events)] = pbx.records()
    assert call.outcome == "answered"
    assert hangup_causes(legs) == {"session expired (RFC 4028)"}


def test_hangup_from_the_api(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """AC-1: ``EngineControl.hangup`` (what ``POST .../calls/{uuid}/hangup`` calls) ends an
    answered call with BYE to both phones; another client's or an unknown call is refused.
    Each leg's record has its media quality (packets, loss, jitter, codec)."""
    alice, bob = pair(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("200"))
    alice.expect("call_state", state="CONFIRMED")
    bob.expect("call_state", state="CONFIRMED")
    pbx.wait_until(lambda: pbx.runtime.relays.sessions and relayed(pbx), timeout=5)
    [active] = pbx.active_calls()
    control = pbx.runtime.control
    client = pbx.seed.client_id
    assert pbx.thread.run(control.hangup(client + 1, active.uuid)) is False
    assert pbx.thread.run(control.hangup(client, "no-such-call")) is False
    assert pbx.thread.run(control.hangup(client, active.uuid)) is True
    alice.expect("call_state", state="DISCONNECTED")
    bob.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    assert pbx.active_calls() == []
    [(call, legs, events)] = pbx.records()
    assert call.outcome == "answered"
    assert hangup_causes(legs) == {"hung up by an administrator"}
    assert [e.detail for e in events if e.kind == "hangup"] == [
        {"detail": "hung up by an administrator"}
    ]
    for leg in legs:
        assert leg.quality["codec"] in ("PCMU", "PCMA")
        assert leg.quality["rx_packets"] > 10
        assert leg.quality["rx_lost"] == 0


def relayed(pbx: Pbx) -> bool:
    sessions = pbx.call(lambda: list(pbx.runtime.relays.sessions))
    a_to_b, b_to_a = pbx.call(sessions[0].stats)
    return bool(a_to_b.packets_forwarded > 10 and b_to_a.packets_forwarded > 10)


def test_goto_internal_number_continues_in_its_dialplan(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """DP-2 "go to internal number", DP-7: 700's step 1 goes to 701, whose step 1 plays the
    message (the caller is answered, hears it, gets BYE); the call record keeps the steps
    of both dialplans and the ``goto_number`` event."""
    alice = phones()
    assert pbx.register(alice, "alice")["code"] == 200
    alice.send(cmd="call", uri=pbx.uri("700"))
    alice.expect("call_state", state="CONFIRMED")
    alice.expect("call_state", state="DISCONNECTED", timeout=5)
    pbx.wait_idle()
    [(call, _legs, events)] = pbx.records()
    assert call.outcome == "answered"
    assert call.steps == [1, 1]
    assert [e.detail for e in events if e.kind == "goto_number"] == [{"detail": "701"}]
    assert [e.detail for e in events if e.kind == "play"] == [{"detail": "message.wav"}]


def test_call_over_websocket(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    erin: Callable[..., StackCaller],
) -> None:
    """Issue 5 item 8 / RFC 7118: a caller on the WebSocket listener is challenged, calls 200
    and is bridged; its BYE over the same connection ends the call."""
    bob = phones()
    assert pbx.register(bob, "bob")["code"] == 200
    browser = erin(ws_port=pbx.ws_port)
    assert browser.flow.kind.value == "WS"
    assert pbx.thread.run(browser.call("200")) == 200
    bob.expect("call_state", state="CONFIRMED")
    pbx.call(browser.hangup)
    bob.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    [(call, legs, _events)] = pbx.records()
    assert call.outcome == "answered"
    assert sorted(leg.direction for leg in legs) == ["in", "out"]
