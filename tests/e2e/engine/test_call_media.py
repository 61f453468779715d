"""Media features of bridged calls with real phones (issue 5 item 4, §4.9): automatic
recording keeps what was said; hold plays music on hold; ringback replaced by music. The client is
:func:`.pbx_harness.build_client`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..sip.conftest import Phone, phones  # noqa: F401 - the pjsua2 phone fixture
from .pbx_harness import (
    Pbx,
    StackPhone,
    build_client,
    pair,
    read_channel,
    tone_ratio,
    write_tone,
)

BUILD = build_client


def test_automatic_recording_keeps_what_was_said(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """§4.9 automatic recording on dave's port: alice says 1 kHz, the recording in the call
    record has it on the caller's channel."""
    alice, dave = pair(pbx, phones, "dave")
    alice.send(cmd="call", uri=pbx.uri("202"))
    alice.expect("call_state", state="CONFIRMED")
    dave.expect("call_state", state="CONFIRMED")
    alice.send(cmd="play", file=str(write_tone(tmp_path / "say.wav", 1.5, 1000.0)))
    alice.expect("played", timeout=10)
    alice.send(cmd="hangup")
    dave.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    [row] = pbx.recordings()
    path = Path(pbx.settings.recordings_dir or "") / row.storage_path
    assert row.duration_ms >= 1200
    assert tone_ratio(read_channel(path, 0), 1000.0) > 100  # the caller, left channel


def test_hold_plays_music_on_hold(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """§4.9 hold: the callee's re-INVITE with ``a=sendonly`` puts the caller on hold: the
    caller hears the client's music on hold (the default pack's file, 1 kHz here); the
    re-INVITE with ``sendrecv`` stops it; the call record has both events."""
    erin = StackPhone(pbx, "erin")
    pbx.thread.run(erin.start())
    alice = phones()
    assert pbx.register(alice, "alice")["code"] == 200
    alice.send(cmd="call", uri=pbx.uri("203"))
    alice.expect("call_state", state="CONFIRMED")
    pbx.call(erin.reinvite, "sendonly")
    pbx.wait_until(lambda: pbx.active_calls()[0].state.value == "held", timeout=5)
    held = tmp_path / "held.wav"
    alice.send(cmd="record", file=str(held))
    time.sleep(1.5)
    alice.send(cmd="stop_record")
    alice.expect("recorded")
    assert tone_ratio(read_channel(held), 1000.0) > 100
    pbx.call(erin.reinvite, "sendrecv")
    pbx.wait_until(lambda: pbx.active_calls()[0].state.value == "answered", timeout=5)
    pbx.call(erin.hangup)
    alice.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    pbx.thread.run(erin.close())
    [(_call, _legs, events)] = pbx.records()
    kinds = [e.kind for e in events]
    assert "hold" in kinds
    assert "unhold" in kinds


def test_ringback_replaced_by_music(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """§4.9 "ringback replacement": frank's port has ``ringback: music``: while frank rings the
    caller gets 183 with our SDP and hears the music on hold as early media; frank answers and
    the call is bridged on the same media address."""
    alice, frank = pair(pbx, phones, "frank", answers=False)
    alice.send(cmd="call", uri=pbx.uri("204"))
    frank.expect("incoming")
    alice.expect("media", state="active")
    early = tmp_path / "early.wav"
    alice.send(cmd="record", file=str(early))
    time.sleep(1.2)
    alice.send(cmd="stop_record")
    alice.expect("recorded")
    assert tone_ratio(read_channel(early), 1000.0) > 100
    frank.send(cmd="answer", code=200)
    alice.expect("call_state", state="CONFIRMED")
    alice.send(cmd="hangup")
    frank.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    [(call, _legs, _events)] = pbx.records()
    assert call.outcome == "answered"
