"""Voice menus with real phones (IVR-1, PRODUCT.md DP-4 "voice menu" row): the caller hears the
announcement, a key (RFC 4733, SIP INFO or in-band) continues on that number's dialplan, an
invalid key replays the menu, no input four times ends the step with No answer (then BYE)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cloudpbx.db.models import VoiceMenu, VoiceMenuKey

from ..sip.conftest import Phone, phones  # noqa: F401 - the pjsua2 phone fixture
from .pbx_harness import Pbx, Seeder, read_channel, step, tone_ratio, write_tone

ANNOUNCEMENT_HZ = 700.0


def build(s: Seeder) -> None:
    """alice (caller ID 100) and bob (200); menu "main" (a 0.8 s 700 Hz announcement, digit
    timeout 1 s, key 1 → 200); 600 is the menu."""
    alice = s.port("alice")
    bob = s.port("bob")
    announcement = s.media("menu", write_tone(s.media_dir / "menu.wav", 0.8, ANNOUNCEMENT_HZ))
    s.number("100", [step(1, "ring_port", 20, port_id=alice)])
    s.number("200", [step(1, "ring_port", 20, port_id=bob)])
    menu = VoiceMenu(
        client_id=s.seed.client_id,
        name="main",
        announcement_id=announcement,
        digit_timeout_s=1,
        keys=[
            VoiceMenuKey(key="1", internal_number_id=s.seed.numbers["200"]),
        ],
    )
    s.session.add(menu)
    s.session.flush()
    s.number("600", [step(1, "voice_menu", 0, voice_menu_id=menu.id)])
    s.caller_id("alice", "100")
    s.caller_id("bob", "200")


BUILD = build


def _pair(pbx: Pbx, start: Callable[[], Phone]) -> tuple[Phone, Phone]:
    alice, bob = start(), start()
    assert pbx.register(alice, "alice")["code"] == 200
    assert pbx.register(bob, "bob")["code"] == 200
    return alice, bob


def _kinds(pbx: Pbx) -> tuple[str, list[str], list[str]]:
    [(call, _legs, events)] = pbx.records()
    return call.outcome, [e.kind for e in events], [str(e.detail) for e in events]


def test_announcement_then_key_1_rings_200(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """IVR-1: the menu answers, plays its announcement (the caller hears 700 Hz), key 1 by RFC
    4733 goes to 200 at once: bob rings, answers, the call is bridged."""
    alice, bob = _pair(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("600"))
    alice.expect("call_state", state="CONFIRMED")
    heard = tmp_path / "heard.wav"
    alice.send(cmd="record", file=str(heard))
    time.sleep(0.5)
    alice.send(cmd="stop_record")
    alice.expect("recorded")
    assert tone_ratio(read_channel(heard), ANNOUNCEMENT_HZ) > 100
    alice.send(cmd="dtmf", digits="1", method="rfc2833")
    bob.expect("incoming")
    bob.expect("call_state", state="CONFIRMED")
    pbx.wait_until(lambda: len(pbx.active_calls()[0].legs) == 2, timeout=5)
    alice.send(cmd="hangup")
    bob.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    outcome, kinds, details = _kinds(pbx)
    assert outcome == "answered"
    assert kinds.index("menu") < kinds.index("menu_choice") < kinds.index("answered")
    assert any("1 -> 200" in d for d in details)


def test_invalid_key_replays_then_inband_key(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """IVR-1 / DP-4: key 9 (by SIP INFO) is not in the map: after the digit timeout the menu
    plays again; key 1 sent in-band (no telephone-event negotiated) then dials 200."""
    alice, bob = _pair(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("600"), rfc2833=False)
    alice.expect("call_state", state="CONFIRMED")
    alice.send(cmd="dtmf", digits="9", method="info")
    pbx.wait_until(lambda: "menu_replay" in _events_so_far(pbx), timeout=5)
    alice.send(cmd="dtmf", digits="1", method="inband", on_ms=120, off_ms=80)
    bob.expect("incoming", timeout=5)
    bob.expect("call_state", state="CONFIRMED")
    alice.send(cmd="hangup")
    bob.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    outcome, kinds, _details = _kinds(pbx)
    assert outcome == "answered"
    assert kinds.count("menu_replay") == 1
    assert kinds.index("menu_replay") < kinds.index("menu_choice")


def _events_so_far(pbx: Pbx) -> list[str]:
    pbx.thread.run(pbx.runtime.cdr.flush())
    records = pbx.records()
    return [e.kind for _call, _legs, events in records for e in events]


def test_no_input_four_times_is_no_answer(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """DP-4 "voice menu": no input replays the menu 3 times (4 plays), then the step ends with
    No answer; 600 has no next step, so the answered caller gets a BYE."""
    alice = phones()
    assert pbx.register(alice, "alice")["code"] == 200
    started = time.monotonic()
    alice.send(cmd="call", uri=pbx.uri("600"))
    alice.expect("call_state", state="CONFIRMED")
    alice.expect("call_state", state="DISCONNECTED", timeout=12)
    assert time.monotonic() - started >= 4 * (0.8 + 1.0) - 0.5
    pbx.wait_idle()
    outcome, kinds, _details = _kinds(pbx)
    assert outcome == "answered"
    assert kinds.count("menu_replay") == 3
    assert "menu_failed" in kinds
