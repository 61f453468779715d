"""Call pickup with real phones (PG-1): a member of a pickup group dialling ``888#`` takes a
call ringing another member (the ringing phone is cancelled, the picker is bridged with the
caller); ``888`` works too and also takes a call waiting in a queue of the group; nothing to
pick up is 480, a port in no group gets 404."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cloudpbx.db.models import PickupGroup, Queue, QueueAgent

from ..sip.conftest import Phone, phones  # noqa: F401 - the pjsua2 phone fixture
from .pbx_harness import Pbx, Seeder, read_channel, step, tone_ratio, write_tone

PICKER_HZ = 700.0


def build(s: Seeder) -> None:
    """Group 1 has bob (200) and carol (201); alice (100) calls; erin is in no group; dave
    (not in the group) is the only agent of queue "desk" (pickup group 1), number 700."""
    group = PickupGroup(client_id=s.seed.client_id, number="1")
    s.session.add(group)
    s.session.flush()
    alice = s.port("alice")
    bob = s.port("bob", pickup_group_id=group.id)
    carol = s.port("carol", pickup_group_id=group.id)
    dave = s.port("dave")
    s.port("erin")
    s.media("moh", write_tone(s.media_dir / "moh.wav", 1.0, 1000.0))
    s.number("100", [step(1, "ring_port", 20, port_id=alice)])
    s.number("200", [step(1, "ring_port", 20, port_id=bob)])
    s.number("201", [step(1, "ring_port", 20, port_id=carol)])
    desk = Queue(
        client_id=s.seed.client_id,
        name="desk",
        pickup_group_id=group.id,
        agents=[QueueAgent(port_id=dave, position=0)],
    )
    s.session.add(desk)
    s.session.flush()
    s.number("700", [step(1, "ring_queue", 20, queue_id=desk.id)])
    s.caller_id("alice", "100")


BUILD = build


def _registered(pbx: Pbx, start: Callable[[], Phone], name: str, *, answers: bool) -> Phone:
    phone = start()
    phone.send(cmd="set", auto_answer=answers)
    assert pbx.register(phone, name)["code"] == 200
    return phone


def test_888_hash_picks_up_a_call_ringing_in_the_group(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """PG-1: alice calls 200, bob rings; carol (same group) dials 888# (sent as 888%23): bob's
    INVITE is cancelled, carol and alice are bridged (alice hears carol's 700 Hz)."""
    alice = _registered(pbx, phones, "alice", answers=True)
    bob = _registered(pbx, phones, "bob", answers=False)
    carol = _registered(pbx, phones, "carol", answers=True)
    alice.send(cmd="call", uri=pbx.uri("200"))
    bob.expect("incoming")
    carol.send(cmd="call", uri=pbx.uri("888%23"))
    carol.expect("call_state", state="CONFIRMED")
    bob.expect("call_state", state="DISCONNECTED")
    alice.expect("call_state", state="CONFIRMED")
    tone = write_tone(tmp_path / "picker.wav", 2.0, PICKER_HZ)
    carol.send(cmd="play", file=str(tone), loop=True)
    heard = tmp_path / "heard.wav"
    time.sleep(0.2)
    alice.send(cmd="record", file=str(heard))
    time.sleep(0.5)
    alice.send(cmd="stop_record")
    alice.expect("recorded")
    assert tone_ratio(read_channel(heard), PICKER_HZ) > 100
    alice.send(cmd="hangup")
    carol.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    [(call, legs, events)] = pbx.records()
    assert call.outcome == "answered"
    outs = {leg.party: leg.outcome for leg in legs if leg.direction == "out"}
    assert outs == {"bob": "cancelled", "carol": "answered"}
    assert [e.kind for e in events].count("pickup") == 1


def test_888_picks_up_a_call_waiting_in_the_groups_queue(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """PG-1 with Q-1's pickup group: alice waits in "desk" (dave, in no group, rings); carol
    dials plain 888 and takes the call; dave's INVITE is cancelled."""
    alice = _registered(pbx, phones, "alice", answers=True)
    dave = _registered(pbx, phones, "dave", answers=False)
    carol = _registered(pbx, phones, "carol", answers=True)
    alice.send(cmd="call", uri=pbx.uri("700"))
    alice.expect("call_state", state="CONFIRMED")  # a queue answers on entry
    dave.expect("incoming")
    carol.send(cmd="call", uri=pbx.uri("888"))
    carol.expect("call_state", state="CONFIRMED")
    dave.expect("call_state", state="DISCONNECTED")
    carol.send(cmd="hangup")
    alice.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    [(call, legs, _events)] = pbx.records()
    assert call.outcome == "answered"
    outs = {leg.party: leg.outcome for leg in legs if leg.direction == "out"}
    assert outs == {"dave": "cancelled", "carol": "answered"}


def test_nothing_to_pick_up_480_no_group_404(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """PG-1 decisions: nothing ringing in the group → 480; a port in no group → 404."""
    carol = _registered(pbx, phones, "carol", answers=True)
    erin = _registered(pbx, phones, "erin", answers=True)
    carol.send(cmd="call", uri=pbx.uri("888%23"))
    assert carol.expect("call_state", state="DISCONNECTED")["code"] == 480
    erin.send(cmd="call", uri=pbx.uri("888%23"))
    assert erin.expect("call_state", state="DISCONNECTED")["code"] == 404
    pbx.wait_idle()
    assert pbx.records() == []
