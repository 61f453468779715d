"""Call queues with real phones (Q-1, PRODUCT.md DP-4 "queue" row): the caller is answered and
hears music on hold, agents ring by the queue's strategy, the first to answer is bridged; the
maximum wait is No answer, no registered agent No route, a full queue Busy."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cloudpbx.db.models import Queue, QueueAgent

from ..sip.conftest import Phone, phones  # noqa: F401 - the pjsua2 phone fixture
from .pbx_harness import Pbx, Seeder, read_channel, step, tone_ratio, write_tone

MOH_HZ = 1000.0


def _queue(s: Seeder, name: str, strategy: str, agents: list[str], **options: object) -> int:
    queue = Queue(
        client_id=s.seed.client_id,
        name=name,
        strategy=strategy,
        agents=[QueueAgent(port_id=s.seed.ports[a], position=i) for i, a in enumerate(agents)],
        **options,
    )
    s.session.add(queue)
    s.session.flush()
    return queue.id


def build(s: Seeder) -> None:
    """alice (caller ID 100); agents bob and carol; dave never registers. Music on hold is a
    1 kHz tone (the default pack). 700: ringall bob+carol; 701: leastrecent bob+carol; 702: a
    queue of dave only; 703: waits at most 2 s (bob rung 1 s per attempt), No answer → 0.5 s
    message; 704: at most one caller waits (bob)."""
    alice = s.port("alice")
    for name in ("bob", "carol", "dave"):
        s.port(name)
    s.media("moh", write_tone(s.media_dir / "moh.wav", 2.0, MOH_HZ))
    message = s.media("short", write_tone(s.media_dir / "short.wav", 0.5, MOH_HZ))
    s.number("100", [step(1, "ring_port", 20, port_id=alice)])
    sales = _queue(s, "sales", "ringall", ["bob", "carol"], agent_ring_s=10)
    support = _queue(s, "support", "leastrecent", ["bob", "carol"], agent_ring_s=10)
    empty = _queue(s, "empty", "ringall", ["dave"])
    slow = _queue(s, "slow", "ringall", ["bob"], agent_ring_s=1)
    small = _queue(s, "small", "ringall", ["bob"], max_callers=1)
    s.number("700", [step(1, "ring_queue", 20, queue_id=sales)])
    s.number("701", [step(1, "ring_queue", 20, queue_id=support)])
    s.number("702", [step(1, "ring_queue", 20, queue_id=empty)])
    s.number(
        "703",
        [
            step(1, "ring_queue", 2, queue_id=slow, conditions={"no_answer": 2}),
            step(2, "play_message", 0, media_file_id=message),
        ],
    )
    s.number("704", [step(1, "ring_queue", 10, queue_id=small)])
    s.caller_id("alice", "100")


BUILD = build


def _phones(
    pbx: Pbx, start: Callable[[], Phone], names: list[str], *, answers: bool
) -> list[Phone]:
    out = []
    for name in names:
        phone = start()
        if name != "alice":
            phone.send(cmd="set", auto_answer=answers)
        assert pbx.register(phone, name)["code"] == 200
        out.append(phone)
    return out


def _details(pbx: Pbx) -> list[tuple[str, str]]:
    [(_call, _legs, events)] = pbx.records()
    return [(e.kind, str((e.detail or {}).get("detail", ""))) for e in events]


def test_ringall_both_ring_first_answer_is_bridged(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Q-1 ringall / DP-4 "queue": the caller is answered and hears music on hold; both agents
    ring; bob answers and is bridged, carol's INVITE is cancelled; bob's hang-up ends the step
    with After answer (no next step: BYE to the caller)."""
    alice, bob, carol = _phones(pbx, phones, ["alice", "bob", "carol"], answers=False)
    alice.send(cmd="call", uri=pbx.uri("700"))
    alice.expect("call_state", state="CONFIRMED")
    bob.expect("incoming")
    carol.expect("incoming")
    heard = tmp_path / "moh.wav"
    alice.send(cmd="record", file=str(heard))
    time.sleep(0.5)
    alice.send(cmd="stop_record")
    alice.expect("recorded")
    assert tone_ratio(read_channel(heard), MOH_HZ) > 100
    bob.send(cmd="answer", code=200)
    bob.expect("call_state", state="CONFIRMED")
    carol.expect("call_state", state="DISCONNECTED")
    pbx.wait_until(lambda: len(pbx.active_calls()[0].legs) == 2, timeout=5)
    bob.send(cmd="hangup")
    alice.expect("call_state", state="DISCONNECTED", timeout=5)
    pbx.wait_idle()
    [(call, legs, _events)] = pbx.records()
    assert call.outcome == "answered"
    outs = {leg.party: leg.outcome for leg in legs if leg.direction == "out"}
    assert outs == {"bob": "answered", "carol": "cancelled"}
    kinds = dict(_details(pbx))
    assert kinds["queue_ring"] == "bob, carol"
    assert kinds["queue_answered"] == "bob"


def test_leastrecent_picks_the_other_agent_next_time(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """Q-1 leastrecent: the first call goes to bob (nobody called yet, first position), the
    second to carol, the agent connected least recently from this queue."""
    alice, bob, carol = _phones(pbx, phones, ["alice", "bob", "carol"], answers=True)
    for agent in (bob, carol):
        alice.send(cmd="call", uri=pbx.uri("701"))
        agent.expect("call_state", state="CONFIRMED")
        alice.send(cmd="hangup")
        alice.expect("call_state", state="DISCONNECTED")
        agent.expect("call_state", state="DISCONNECTED")
        pbx.wait_idle()
    answered = [
        next(str(e.detail["detail"]) for e in events if e.kind == "queue_answered")
        for _call, _legs, events in pbx.records()
    ]
    assert answered == ["bob", "carol"]


def test_maximum_wait_is_no_answer(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """DP-4 "queue": the maximum wait (the step timeout, 2 s) reached → No answer → step 2;
    bob, who never answers, is rung again after each 1 s agent timeout."""
    alice, bob = _phones(pbx, phones, ["alice", "bob"], answers=False)
    started = time.monotonic()
    alice.send(cmd="call", uri=pbx.uri("703"))
    alice.expect("call_state", state="CONFIRMED")
    bob.expect("incoming")
    bob.expect("incoming", timeout=3)  # the second attempt
    ended = alice.expect("call_state", state="DISCONNECTED", timeout=10)
    assert ended["code"] == 200  # our BYE after the message
    assert time.monotonic() - started > 2.4  # 2 s in the queue, then the 0.5 s message
    pbx.wait_idle()
    [(call, legs, _events)] = pbx.records()
    assert (call.outcome, call.steps) == ("answered", [1, 2])
    kinds = [kind for kind, _detail in _details(pbx)]
    assert kinds.count("queue_ring") >= 2
    assert "queue_timeout" in kinds
    assert {leg.outcome for leg in legs if leg.direction == "out"} == {"cancelled"}


def test_no_registered_agent_is_no_route(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """DP-4 "queue": no logged-in registered agent → No route: 480 to the (unanswered)
    caller, who never hears music."""
    [alice] = _phones(pbx, phones, ["alice"], answers=True)
    alice.send(cmd="call", uri=pbx.uri("702"))
    ended = alice.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 480
    pbx.wait_idle()
    [(call, _legs, _events)] = pbx.records()
    assert (call.outcome, call.steps) == ("no_route", [1])


def test_full_queue_is_busy(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """DP-4 "queue": the queue full (max callers 1, one waits) → Busy: 486 to the second;
    the waiting caller hanging up cancels the agent's INVITE."""
    alice, bob = _phones(pbx, phones, ["alice", "bob"], answers=False)
    alice.send(cmd="call", uri=pbx.uri("704"))
    alice.expect("call_state", state="CONFIRMED")
    bob.expect("incoming")
    alice.send(cmd="call", uri=pbx.uri("704"))
    ended = alice.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 486
    alice.send(cmd="hangup")  # the waiting caller gives up: bob stops ringing
    bob.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    outcomes = sorted(str(call.outcome) for call, _legs, _events in pbx.records())
    assert outcomes == ["answered", "busy"]
