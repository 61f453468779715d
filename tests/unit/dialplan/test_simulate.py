"""DP-6: the simulator drives the engine's `CallRun` with assumed states and outcomes."""

from __future__ import annotations

import datetime as dt

from cloudpbx.dialplan import Action, Dialplan, Schedule, Step, TargetKind, TargetRef, TimeRange
from cloudpbx.dialplan.interpreter import Ending, Menu
from cloudpbx.dialplan.simulate import Answer, Assumption, Simulator, StaticDirectory

UTC = dt.UTC
MONDAY_NOON = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
PORT = TargetRef(kind=TargetKind.PORT, id=7)
MEDIA = TargetRef(kind=TargetKind.MEDIA_FILE, id=3)
QUEUE = TargetRef(kind=TargetKind.QUEUE, id=4)
MENU = TargetRef(kind=TargetKind.VOICE_MENU, id=6)
CLS = TargetRef(kind=TargetKind.CLASSIFIER, id=10)
N200 = TargetRef(kind=TargetKind.INTERNAL_NUMBER, id=20)


def plan(*steps: Step) -> Dialplan:
    return Dialplan.from_steps(steps, version=1)


SEED = plan(
    Step(level=1, action=Action.RING_PORT, target=PORT, timeout=5, conditions={"no_answer": 2}),
    Step(level=2, action=Action.PLAY_MESSAGE, target=MEDIA),
)
OTHER = plan(Step(level=1, action=Action.RING_PORT, target=TargetRef(kind=TargetKind.PORT, id=8)))
DIRECTORY = StaticDirectory(
    numbers={"200": OTHER, "300": None},
    number_ids={20: "200"},
    menus={6: Menu(keys={"1": "200", "3": "300"})},
    media={3: 12.5},
    classifiers={10: frozenset({"+79161234567"})},
)


def simulator(**kw: object) -> Simulator:
    return Simulator(directory=DIRECTORY, time_zone="Europe/Moscow", **kw)  # type: ignore[arg-type]


def test_seed_no_answer_plays_the_message() -> None:
    """DP-6 on the seed's dialplan: nobody answers in 5 s, so step 2 plays the message, and
    each move has its reason."""
    result = simulator().run(SEED, MONDAY_NOON, number="100")
    assert result.steps == [1, 2]
    assert [m.condition for m in result.moves] == ["entry", "no_answer", "after_answer"]
    assert "port 7 rang 5 s" in result.moves[1].reason
    assert "message played for 12.5 s" in result.moves[2].reason
    assert (result.outcome, result.sip_status, result.answered) == (
        Ending.AFTER_ANSWER,
        None,
        True,
    )
    assert result.seconds == 17.5
    assert result.moves[2].at == MONDAY_NOON + dt.timedelta(seconds=17.5)


def test_answered_port_ends_after_the_talk() -> None:
    """DP-6: a port assumed to answer after 2 s and talk 40 s: After answer, BYE, 42 s."""
    sim = simulator(assumptions={PORT: Assumption(answer=Answer.ANSWER, after_s=2, talk_s=40)})
    result = sim.run(SEED, MONDAY_NOON)
    assert result.steps == [1]
    assert (result.outcome, result.sip_status, result.seconds) == (Ending.AFTER_ANSWER, None, 42)


def test_answer_after_the_timeout_is_no_answer() -> None:
    """DP-6 with DP-4 "ring port": an answer that would come after the ring time is No
    answer at the timeout."""
    sim = simulator(assumptions={PORT: Assumption(answer=Answer.ANSWER, after_s=9)})
    assert sim.run(SEED, MONDAY_NOON).steps == [1, 2]


def test_unregistered_busy_and_failing_ports() -> None:
    """DP-6: an unregistered port → No route (480), busy → 486, fail → No route."""
    single = plan(Step(level=1, action=Action.RING_PORT, target=PORT))
    cases = {
        Assumption(registered=False): (Ending.NO_ROUTE, 480, "not registered"),
        Assumption(answer=Answer.BUSY): (Ending.BUSY, 486, "busy"),
        Assumption(answer=Answer.FAIL): (Ending.NO_ROUTE, 480, "failed"),
    }
    for assumed, (outcome, status, why) in cases.items():
        result = simulator(assumptions={PORT: assumed}).run(single, MONDAY_NOON)
        assert (result.outcome, result.sip_status) == (outcome, status)
        assert why in result.moves[-1].reason


def test_time_advances_into_a_closed_schedule() -> None:
    """DP-6: the simulated clock advances, so a step entered after closing time takes its
    No route (17:59:58 + 5 s of ringing = 18:00:03, past 09:00–18:00)."""
    office = Schedule(
        days=frozenset(range(5)), ranges=(TimeRange(start=dt.time(9), end=dt.time(18)),)
    )
    dialplan = plan(
        Step(level=1, action=Action.RING_PORT, target=PORT, timeout=5, conditions={"no_answer": 2}),
        Step(level=2, action=Action.RING_PORT, target=PORT, schedule=office),
    )
    start = dt.datetime(2026, 3, 2, 14, 59, 58, tzinfo=UTC)
    result = simulator().run(dialplan, start)
    assert (result.outcome, result.sip_status) == (Ending.NO_ROUTE, 480)
    assert "schedule is closed" in result.moves[-1].reason


def test_goto_number_continues_in_its_dialplan() -> None:
    """DP-6 with DP-2 "go to internal number": number 200's dialplan continues the call."""
    dialplan = plan(Step(level=1, action=Action.GOTO_NUMBER, target=N200))
    result = simulator().run(dialplan, MONDAY_NOON, number="100")
    assert result.steps == [1, 1]
    assert result.moves[1].condition == "goto_number"
    assert result.moves[1].number == "200"
    assert "port 8 rang 120 s" in result.moves[-1].reason


def test_menu_digits_choose_a_number() -> None:
    """DP-6 with DP-4 "voice menu": the caller keys 1 on the first play → number 200."""
    dialplan = plan(Step(level=1, action=Action.VOICE_MENU, target=MENU))
    result = simulator(menu_digits=("1",)).run(dialplan, MONDAY_NOON)
    assert result.moves[1].number == "200"
    assert "keyed 1" in result.moves[1].reason
    assert result.answered
    assert result.sip_status is None  # answered by the menu: the end is a BYE


def test_menu_without_input_is_no_answer_after_replays() -> None:
    """DP-6 with DP-4 "voice menu": no input → 3 replays (4 plays of 5 s + 3 s waits)
    → No answer."""
    dialplan = plan(
        Step(level=1, action=Action.VOICE_MENU, target=MENU, conditions={"no_answer": 2}),
        Step(level=2, action=Action.HANGUP),
    )
    result = simulator().run(dialplan, MONDAY_NOON)
    assert result.steps == [1, 2]
    assert result.seconds == 4 * (5 + 3)
    assert (result.outcome, result.sip_status) == (Ending.HANGUP, None)


def test_menu_key_to_a_number_without_dialplan_is_no_route() -> None:
    """DP-6: a key whose number has no dialplan takes the menu step's No route."""
    dialplan = plan(Step(level=1, action=Action.VOICE_MENU, target=MENU))
    sim = simulator(assumptions={MENU: Assumption(digits=("3",), after_s=2)})
    result = sim.run(dialplan, MONDAY_NOON)
    assert result.outcome is Ending.NO_ROUTE
    assert "300 has no dialplan" in result.moves[-1].reason


def test_classifier_uses_the_caller() -> None:
    """DP-6 with DP-2 classifier: the caller's number decides the exit."""
    dialplan = plan(
        Step(
            level=1,
            action=Action.CLASSIFIER,
            target=CLS,
            params={"found_step": 2, "not_found_step": 3},
        ),
        Step(level=2, action=Action.HANGUP),
        Step(level=3, action=Action.PLAY_MESSAGE, target=MEDIA),
    )
    assert simulator(caller="+79161234567").run(dialplan, MONDAY_NOON).steps == [1, 2]
    assert simulator(caller="+79990000000").run(dialplan, MONDAY_NOON).steps == [1, 3]
    forced = simulator(caller="x", assumptions={CLS: Assumption(found=True)})
    assert forced.run(dialplan, MONDAY_NOON).steps == [1, 2]


def test_queue_voicemail_and_fax() -> None:
    """DP-6 with DP-4 "queue" (no agent → No route) and voicemail / fax (answer, then After
    answer after the assumed time)."""
    box = TargetRef(kind=TargetKind.VOICEMAIL_BOX, id=5)
    dialplan = plan(
        Step(level=1, action=Action.RING_QUEUE, target=QUEUE, conditions={"no_route": 2}),
        Step(
            level=2, action=Action.VOICEMAIL, target=box, timeout=30, conditions={"after_answer": 3}
        ),
        Step(level=3, action=Action.FAX_RECEIVER),
    )
    sim = simulator(assumptions={QUEUE: Assumption(registered=False), box: Assumption(after_s=99)})
    result = sim.run(dialplan, MONDAY_NOON)
    assert result.steps == [1, 2, 3]
    assert "no agent available" in result.moves[1].reason
    assert result.seconds == 30 + 60


def test_loop_is_reported() -> None:
    """DP-6 with DP-4 "loop guard": a no-answer loop ends with outcome loop."""
    dialplan = plan(
        Step(level=1, action=Action.RING_PORT, target=PORT, timeout=1, conditions={"no_answer": 1})
    )
    result = simulator().run(dialplan, MONDAY_NOON)
    assert (result.outcome, result.transitions, result.sip_status) == (Ending.LOOP, 50, 480)
    assert result.seconds == 51
