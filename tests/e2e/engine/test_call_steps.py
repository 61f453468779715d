"""Dialplan steps with real pjsua2 phones (issue 5 items 4, 9): no answer and no route lead
to a sound message step, and the message is heard. The client is
:func:`.pbx_harness.build_client`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..sip.conftest import Phone, phones  # noqa: F401 - the pjsua2 phone fixture
from .pbx_harness import (
    Pbx,
    build_client,
    pair,
    read_channel,
    tone_ratio,
)

BUILD = build_client


def test_no_answer_then_sound_message(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """DP-4: ring bob for 2 s, nobody answers → No answer → step 2 answers the caller and
    plays the message (the caller hears 1 kHz), then BYE (after answer, no next step)."""
    alice, bob = pair(pbx, phones, answers=False)
    alice.send(cmd="call", uri=pbx.uri("300"))
    bob.expect("incoming")
    bob.expect("call_state", state="DISCONNECTED", timeout=8)  # our CANCEL after 2 s
    alice.expect("call_state", state="CONFIRMED", timeout=5)
    heard = tmp_path / "heard.wav"
    alice.send(cmd="record", file=str(heard))
    time.sleep(1.0)  # stop inside the 1.6 s message: pjsua fails to stop after the call
    alice.send(cmd="stop_record")
    alice.expect("recorded")
    assert tone_ratio(read_channel(heard), 1000.0) > 100
    ended = alice.expect("call_state", state="DISCONNECTED", timeout=10)
    assert ended["code"] == 200  # our BYE
    pbx.wait_idle()
    [(call, legs, _events)] = pbx.records()
    assert call.steps == [1, 2]
    assert call.outcome == "answered"
    assert {leg.outcome for leg in legs if leg.direction == "out"} == {"cancelled"}


def test_unregistered_port_takes_no_route(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """DP-4 "ring port": a port with no registration → No route: without a No route step the
    caller gets 480; with one (301) the message plays."""
    alice = phones()
    assert pbx.register(alice, "alice")["code"] == 200
    alice.send(cmd="call", uri=pbx.uri("201"))
    ended = alice.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 480, ended
    alice.send(cmd="call", uri=pbx.uri("301"))
    alice.expect("call_state", state="CONFIRMED")
    alice.expect("call_state", state="DISCONNECTED", timeout=10)
    pbx.wait_idle()
    first, second = pbx.records()
    assert (first[0].outcome, first[0].steps) == ("no_route", [1])
    assert (second[0].outcome, second[0].steps) == ("answered", [1, 2])
