"""The DP-4 table of PRODUCT.md §3, row by row: each test quotes the rule it proves.

The interpreter is pure: every instant is passed in, so the tests use fixed datetimes.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudpbx.dialplan import (
    Action,
    Condition,
    DatedException,
    Dialplan,
    Schedule,
    Step,
    TargetKind,
    TargetRef,
    TimeRange,
)
from cloudpbx.dialplan.interpreter import (
    DEFAULT_RING_MAX_S,
    CallRun,
    EndCall,
    Ending,
    Menu,
    MenuCollect,
    MenuDial,
    MenuFailed,
    MenuPlay,
    MenuRun,
    Outcome,
    RunAction,
    effective_timeout,
    ring_failure_outcome,
    unknown_number,
)

MSK = "Europe/Moscow"
UTC = dt.UTC
# Monday 2026-03-02 12:00 Moscow (UTC+3, no DST) = 09:00 UTC.
MONDAY_NOON = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PORT = TargetRef(kind=TargetKind.PORT, id=7)
PORT_B = TargetRef(kind=TargetKind.PORT, id=8)
MEDIA = TargetRef(kind=TargetKind.MEDIA_FILE, id=3)
QUEUE = TargetRef(kind=TargetKind.QUEUE, id=4)
BOX = TargetRef(kind=TargetKind.VOICEMAIL_BOX, id=5)
MENU = TargetRef(kind=TargetKind.VOICE_MENU, id=6)
FWD = TargetRef(kind=TargetKind.FORWARDING_NUMBER, id=9)
CLS = TargetRef(kind=TargetKind.CLASSIFIER, id=10)
NUMBER_200 = TargetRef(kind=TargetKind.INTERNAL_NUMBER, id=20)
OFFICE = Schedule(
    days=frozenset(range(5)),
    ranges=(TimeRange(start=dt.time(9), end=dt.time(18)),),
)


def ring(level: int, timeout: int = 5, target: TargetRef = PORT, **conditions: int) -> Step:
    return Step(
        level=level, action=Action.RING_PORT, target=target, timeout=timeout, conditions=conditions
    )


def message(level: int, **conditions: int) -> Step:
    return Step(level=level, action=Action.PLAY_MESSAGE, target=MEDIA, conditions=conditions)


def plan(*steps: Step, version: int = 1) -> Dialplan:
    return Dialplan.from_steps(steps, version=version)


def run_of(dialplan: Dialplan, **kw: object) -> CallRun:
    return CallRun(dialplan, time_zone=MSK, number="100", **kw)  # type: ignore[arg-type]


def later(seconds: float) -> dt.datetime:
    return MONDAY_NOON + dt.timedelta(seconds=seconds)


def action(decision: object) -> RunAction:
    assert isinstance(decision, RunAction), decision
    return decision


def ended(decision: object) -> EndCall:
    assert isinstance(decision, EndCall), decision
    return decision


SEED = plan(ring(1, 5, no_answer=2), message(2))
"""The seed's example (figures 1–9): ring "Линия 1" 5 s, no answer → the message."""


# --- entry ------------------------------------------------------------------------------------


def test_entry_is_step_1() -> None:
    """DP-4 "entry": a call enters at step 1."""
    run = run_of(plan(message(2), ring(1)))
    first = action(run.start(MONDAY_NOON))
    assert first.level == 1
    assert run.steps == [1]
    assert (run.trace[0].from_level, run.trace[0].to_level) == (None, 1)
    assert run.trace[0].condition == "entry"


def test_no_step_1_is_480() -> None:
    """DP-4 "condition with no target": no step 1 → 480."""
    run = run_of(plan(message(2)))
    end = ended(run.start(MONDAY_NOON))
    assert (end.outcome, end.sip_status) == (Ending.NO_ENTRY, 480)
    assert run.trace[-1].to_level is None


# --- on entering a step -----------------------------------------------------------------------


def test_forward_is_taken_at_once_skipping_action_and_schedule() -> None:
    """DP-4 "on entering a step" (1): Forward set → go to its step at once, skipping action
    and schedule."""
    closed = Schedule(days=frozenset())
    first = Step(
        level=1,
        action=Action.RING_PORT,
        target=PORT,
        schedule=closed,
        conditions={Condition.FORWARD: 2, Condition.NO_ROUTE: 3},
    )
    run = run_of(plan(first, message(2), message(3)))
    decision = action(run.start(MONDAY_NOON))
    assert decision.level == 2
    assert run.steps == [1, 2]
    assert run.trace[1].condition == "forward"
    assert "forward" in run.trace[1].reason


def test_closed_schedule_takes_no_route() -> None:
    """DP-4 "on entering a step" (2): schedule does not match now (client's time zone,
    checked on entry only) → No route."""
    first = Step(
        level=1,
        action=Action.RING_PORT,
        target=PORT,
        schedule=OFFICE,
        conditions={Condition.NO_ROUTE: 2},
    )
    saturday = dt.datetime(2026, 3, 7, 9, 0, tzinfo=UTC)
    run = run_of(plan(first, message(2)))
    assert action(run.start(saturday)).level == 2
    assert run.trace[1].condition == "no_route"
    assert "schedule is closed" in run.trace[1].reason


def test_schedule_uses_the_clients_time_zone() -> None:
    """DP-4 "on entering a step" (2): the schedule is matched in the client's time zone:
    08:30 UTC is 11:30 in Moscow (open) but 08:30 in London (closed)."""
    first = Step(level=1, action=Action.RING_PORT, target=PORT, schedule=OFFICE)
    instant = dt.datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    assert isinstance(run_of(plan(first)).start(instant), RunAction)
    london = CallRun(plan(first), time_zone="Europe/London")
    assert ended(london.start(instant)).sip_status == 480


def test_schedule_is_checked_on_entry_only() -> None:
    """DP-4 "on entering a step" (2): checked on entry only — a ring that runs past closing
    time still ends with its own outcome."""
    first = Step(
        level=1,
        action=Action.RING_PORT,
        target=PORT,
        schedule=OFFICE,
        conditions={Condition.NO_ANSWER: 2},
    )
    run = run_of(plan(first, message(2)))
    before_close = dt.datetime(2026, 3, 2, 14, 59, 58, tzinfo=UTC)  # 17:59:58 local
    action(run.start(before_close))
    after_close = before_close + dt.timedelta(seconds=5)
    assert action(run.report(Outcome.NO_ANSWER, after_close)).level == 2


def test_open_step_runs_its_action() -> None:
    """DP-4 "on entering a step" (3): run the action."""
    decision = action(run_of(SEED).start(MONDAY_NOON))
    assert decision.action is Action.RING_PORT
    assert decision.step.target == PORT
    assert decision.number == "100"


# --- ring port / forwarding number ------------------------------------------------------------


@pytest.mark.parametrize("target", [PORT, FWD])
def test_ring_answered_then_callee_hangs_up_is_after_answer(target: TargetRef) -> None:
    """DP-4 "ring port / forwarding number": answered → bridged, and when the called side
    hangs up with the caller still on the line → After answer."""
    kind = Action.RING_PORT if target is PORT else Action.RING_FORWARDING
    first = Step(level=1, action=kind, target=target, conditions={Condition.AFTER_ANSWER: 2})
    run = run_of(plan(first, message(2)))
    action(run.start(MONDAY_NOON))
    assert action(run.report(Outcome.AFTER_ANSWER, later(60), answered=True)).level == 2
    assert run.answered


def test_ring_timeout_is_no_answer() -> None:
    """DP-4 "ring port": timeout expires while anything rings → No answer (the seed's
    figures 8–9: after 5 s the message plays)."""
    run = run_of(SEED)
    assert action(run.start(MONDAY_NOON)).timeout_s == 5
    decision = action(run.report(Outcome.NO_ANSWER, later(5)))
    assert decision.action is Action.PLAY_MESSAGE
    assert run.steps == [1, 2]


@pytest.mark.parametrize("status", [486, 600, 603])
def test_ring_branch_busy_statuses_make_busy(status: int) -> None:
    """DP-4 "ring port": every branch failed and one said 486/600/603 → Busy."""
    assert ring_failure_outcome([404, status, None]) is Outcome.BUSY


def test_ring_concurrent_limit_is_busy() -> None:
    """DP-4 "ring port": the target's concurrent limit is reached → Busy."""
    assert ring_failure_outcome([], limit_reached=True) is Outcome.BUSY


@pytest.mark.parametrize("statuses", [[], [404], [408, 480], [503], [None]])
def test_ring_other_failures_are_no_route(statuses: list[int | None]) -> None:
    """DP-4 "ring port": otherwise (not registered, 404/408/480/503, no 1xx within 2 s,
    transport error, trunk down) → No route."""
    assert ring_failure_outcome(statuses) is Outcome.NO_ROUTE


def test_ring_busy_and_no_route_take_their_conditions() -> None:
    """DP-4 "ring port": the Busy and No route outcomes take the step's conditions."""
    dialplan = plan(ring(1, busy=2, no_route=3), message(2), message(3))
    busy = run_of(dialplan)
    action(busy.start(MONDAY_NOON))
    assert action(busy.report(Outcome.BUSY, later(1))).level == 2
    unreachable = run_of(dialplan)
    action(unreachable.start(MONDAY_NOON))
    assert action(unreachable.report(Outcome.NO_ROUTE, later(0))).level == 3


# --- queue ------------------------------------------------------------------------------------


def test_queue_outcomes_take_their_conditions() -> None:
    """DP-4 "queue": no available agent → No route; queue full → Busy; maximum wait (the
    timeout) reached → No answer; answered → bridged, then as above."""
    first = Step(
        level=1,
        action=Action.RING_QUEUE,
        target=QUEUE,
        timeout=90,
        conditions={"no_route": 2, "busy": 3, "no_answer": 4, "after_answer": 5},
    )
    dialplan = plan(first, *(message(n) for n in (2, 3, 4, 5)))
    expected = {
        Outcome.NO_ROUTE: 2,
        Outcome.BUSY: 3,
        Outcome.NO_ANSWER: 4,
        Outcome.AFTER_ANSWER: 5,
    }
    for outcome, level in expected.items():
        run = run_of(dialplan)
        assert action(run.start(MONDAY_NOON)).timeout_s == 90
        assert action(run.report(outcome, later(90))).level == level


# --- message, voicemail, fax, menu ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        (Action.PLAY_MESSAGE, MEDIA),
        (Action.VOICEMAIL, BOX),
        (Action.FAX_RECEIVER, None),
        (Action.VOICE_MENU, MENU),
    ],
)
def test_answering_actions_finish_with_after_answer(kind: Action, target: TargetRef | None) -> None:
    """DP-4 "message, voicemail, fax, menu": answer the caller (200 OK, billing starts);
    when finished → After answer; without a next step the answered call gets a BYE."""
    first = Step(level=1, action=kind, target=target, conditions={"after_answer": 2})
    run = run_of(plan(first, Step(level=2, action=Action.HANGUP)))
    action(run.start(MONDAY_NOON))
    end = ended(run.report(Outcome.AFTER_ANSWER, later(10), answered=True))
    assert (end.outcome, end.sip_status) == (Ending.HANGUP, None)
    assert run.steps == [1, 2]


# --- voice menu -------------------------------------------------------------------------------

KEYS = Menu(keys={"1": "200", "2": "300"})
EXT = Menu(keys={"1": "200", "2": "300"}, extension_dialling=True, extensions={"100", "101", "150"})


def test_menu_mapped_key_goes_there_at_once() -> None:
    """DP-4 "voice menu": a key mapped to an internal number goes there at once."""
    menu = MenuRun(KEYS)
    assert menu.start() == MenuPlay(1)
    assert menu.digit("2") == MenuDial("300", "2")


def test_menu_key_waits_when_an_extension_starts_with_it() -> None:
    """DP-4 "voice menu": … unless extension dialling is on and an extension starts with
    that digit; `#` then ends the input."""
    menu = MenuRun(EXT)
    menu.start()
    assert menu.digit("1") == MenuCollect(3.0)
    assert menu.digit("5") == MenuCollect(3.0)
    assert menu.digit("0") == MenuCollect(3.0)
    assert menu.digit("#") == MenuDial("150", "150")


def test_menu_lone_key_ends_by_inter_digit_timeout() -> None:
    """DP-4 "voice menu": inter-digit timeout 3 s ends the input; a lone mapped key that
    waited for more digits then goes to its number."""
    menu = MenuRun(EXT)
    menu.start()
    menu.played()
    assert menu.digit("1") == MenuCollect(3.0)
    assert menu.timeout() == MenuDial("200", "1")


def test_menu_key_not_shadowed_goes_at_once_with_extension_dialling() -> None:
    """DP-4 "voice menu": with extension dialling on, a key no extension starts with still
    goes there at once."""
    menu = MenuRun(EXT)
    menu.start()
    assert menu.digit("2") == MenuDial("300", "2")


def test_menu_invalid_or_no_input_replays_three_times_then_no_answer() -> None:
    """DP-4 "voice menu": invalid or no input replays the menu up to 3 times, then No
    answer."""
    menu = MenuRun(KEYS)
    assert menu.start() == MenuPlay(1)
    assert menu.played() == MenuCollect(3.0)
    assert menu.timeout() == MenuPlay(2)  # no input
    assert menu.digit("9") == MenuCollect(3.0)
    assert menu.digit("#") == MenuPlay(3)  # invalid key
    assert menu.digit("#") == MenuPlay(4)  # nothing before '#'
    assert menu.played() == MenuCollect(3.0)
    assert menu.timeout() == MenuFailed(4)
    with pytest.raises(RuntimeError):
        menu.digit("1")


def test_menu_extension_only_with_extension_dialling() -> None:
    """DP-4 "voice menu": dialling an extension works only when extension dialling is on."""
    without = MenuRun(Menu(keys={}, extensions={"150"}))
    without.start()
    without.digit("1")
    without.digit("5")
    without.digit("0")
    assert without.digit("#") == MenuPlay(2)


def test_menu_failure_is_the_steps_no_answer_and_a_key_continues_in_another_dialplan() -> None:
    """DP-4 "voice menu": No answer after the replays takes the step's No answer; a key
    continues the call with that number's dialplan (`CallRun.goto`)."""
    first = Step(level=1, action=Action.VOICE_MENU, target=MENU, conditions={"no_answer": 2})
    dialplan = plan(first, message(2))
    run = run_of(dialplan)
    action(run.start(MONDAY_NOON))
    assert action(run.report(Outcome.NO_ANSWER, later(30), answered=True)).level == 2
    other = run_of(dialplan)
    action(other.start(MONDAY_NOON))
    target = plan(ring(1, target=PORT_B), version=7)
    decision = action(other.goto(target, later(8), number="200", answered=True))
    assert decision.step.target == PORT_B
    assert decision.number == "200"
    assert other.answered


# --- timeout meaning --------------------------------------------------------------------------


def test_ring_timeout_zero_is_the_installation_maximum() -> None:
    """DP-4 "timeout meaning": ringing: ring time (0 = installation maximum, default 120 s)."""
    assert action(run_of(plan(ring(1, 0))).start(MONDAY_NOON)).timeout_s == DEFAULT_RING_MAX_S
    assert action(run_of(plan(ring(1, 0)), ring_max_s=90).start(MONDAY_NOON)).timeout_s == 90
    forwarding = Step(level=1, action=Action.RING_FORWARDING, target=FWD, timeout=25)
    assert effective_timeout(forwarding, 120) == 25


def test_queue_and_voicemail_timeouts() -> None:
    """DP-4 "timeout meaning": queue: maximum wait; voicemail: maximum message length."""
    queue = Step(level=1, action=Action.RING_QUEUE, target=QUEUE, timeout=300)
    box = Step(level=1, action=Action.VOICEMAIL, target=BOX, timeout=60)
    assert effective_timeout(queue, 120) == 300
    assert effective_timeout(box, 120) == 60


def test_message_timeout_is_ignored() -> None:
    """DP-4 "timeout meaning": message: ignored."""
    step = Step(level=1, action=Action.PLAY_MESSAGE, target=MEDIA, timeout=7)
    assert action(run_of(plan(step)).start(MONDAY_NOON)).timeout_s is None


# --- condition with no target -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "status"),
    [(Outcome.BUSY, 486), (Outcome.NO_ROUTE, 480), (Outcome.NO_ANSWER, 480)],
)
def test_exit_without_target_ends_with_its_status(outcome: Outcome, status: int) -> None:
    """DP-4 "condition with no target": Busy → 486; No route → 480; No answer → 480."""
    run = run_of(plan(ring(1)))
    action(run.start(MONDAY_NOON))
    end = ended(run.report(outcome, later(5)))
    assert (end.outcome.value, end.sip_status, end.level) == (outcome.value, status, 1)
    assert run.finished
    assert f"SIP {status}" in run.trace[-1].reason


def test_after_answer_without_target_is_bye() -> None:
    """DP-4 "condition with no target": after answer → BYE."""
    run = run_of(plan(message(1)))
    action(run.start(MONDAY_NOON))
    end = ended(run.report(Outcome.AFTER_ANSWER, later(12), answered=True))
    assert (end.outcome, end.sip_status) == (Ending.AFTER_ANSWER, None)


def test_exit_without_target_after_an_answer_is_bye() -> None:
    """DP-4 "condition with no target": once the caller was answered a final 4xx is
    impossible, so a No answer without a next step (a menu with no valid input) is a BYE."""
    first = Step(level=1, action=Action.VOICE_MENU, target=MENU)
    run = run_of(plan(first))
    action(run.start(MONDAY_NOON))
    assert ended(run.report(Outcome.NO_ANSWER, later(20), answered=True)).sip_status is None


def test_unknown_number_is_404() -> None:
    """DP-4 "condition with no target": 404 only when the dialled number does not exist."""
    end = unknown_number("555")
    assert (end.outcome, end.sip_status) == (Ending.UNKNOWN_NUMBER, 404)


def test_classifier_exits_and_empty_exit() -> None:
    """DP-2 classifier exits ("found → step", "not found → step"); an empty exit is a
    condition with no target (No route → 480)."""
    first = Step(level=1, action=Action.CLASSIFIER, target=CLS, params={"found_step": 2})
    dialplan = plan(first, message(2))
    found = run_of(dialplan)
    action(found.start(MONDAY_NOON))
    assert action(found.classified(True, MONDAY_NOON)).level == 2
    assert found.trace[-1].condition == "found_step"
    missing = run_of(dialplan)
    action(missing.start(MONDAY_NOON))
    assert ended(missing.classified(False, MONDAY_NOON)).sip_status == 480


def test_hangup_action_rejects_or_byes() -> None:
    """DP-2 "hang up": an unanswered caller gets 603 Decline, an answered one a BYE."""
    run = run_of(plan(Step(level=1, action=Action.HANGUP)))
    assert ended(run.start(MONDAY_NOON)) == EndCall(Ending.HANGUP, 603, 1)


# --- loop guard -------------------------------------------------------------------------------


def test_loop_guard_ends_after_50_transitions() -> None:
    """DP-4 "loop guard": at most 50 step transitions per call, then the call ends with
    outcome "loop"."""
    run = run_of(plan(ring(1, no_answer=1)))
    decision = run.start(MONDAY_NOON)
    rings = 0
    while isinstance(decision, RunAction):
        rings += 1
        decision = run.report(Outcome.NO_ANSWER, later(5 * rings))
    end = ended(decision)
    assert end.outcome is Ending.LOOP
    assert end.sip_status == 480
    assert run.transitions == 50
    assert rings == 51  # the entry plus 50 transitions back to step 1


def test_loop_guard_counts_goto_number() -> None:
    """DP-4 "loop guard": go to internal number continues under the same loop guard."""
    goto = Step(level=1, action=Action.GOTO_NUMBER, target=NUMBER_200)
    dialplan = plan(goto)
    run = run_of(dialplan)
    decision = run.start(MONDAY_NOON)
    while isinstance(decision, RunAction):
        decision = run.goto(dialplan, MONDAY_NOON, number="200")
    assert ended(decision).outcome is Ending.LOOP
    assert run.transitions == 50


# --- versions ---------------------------------------------------------------------------------


def test_call_keeps_the_version_it_started_with() -> None:
    """DP-4 "versions": a call runs on the dialplan version it started with; saving never
    disturbs live calls."""
    v1 = plan(ring(1, no_answer=2), message(2), version=1)
    run = run_of(v1)
    action(run.start(MONDAY_NOON))
    v2 = plan(ring(1, no_answer=3), message(3), version=2)  # saved meanwhile
    assert v2.version == 2
    assert action(run.report(Outcome.NO_ANSWER, later(5))).level == 2
    assert run.dialplan is v1


# --- schedules --------------------------------------------------------------------------------


def test_schedule_range_end_is_excluded_and_exceptions_override() -> None:
    """DP-4 "schedules": time ranges are [start, end); dated exceptions (Russian
    transferred working days, holidays) override week days."""
    holidays = Schedule(
        days=OFFICE.days,
        ranges=OFFICE.ranges,
        exceptions=(
            DatedException(date=dt.date(2026, 3, 9), open=False),
            DatedException(date=dt.date(2026, 3, 7), open=True),
        ),
    )
    first = Step(level=1, action=Action.RING_PORT, target=PORT, schedule=holidays)
    dialplan = plan(first)

    def opened(utc: dt.datetime) -> bool:
        return isinstance(run_of(dialplan).start(utc), RunAction)

    assert opened(dt.datetime(2026, 3, 2, 6, 0, tzinfo=UTC))  # Mon 09:00 local
    assert not opened(dt.datetime(2026, 3, 2, 15, 0, tzinfo=UTC))  # Mon 18:00 local
    assert opened(dt.datetime(2026, 3, 7, 12, 0, tzinfo=UTC))  # working Saturday
    assert not opened(dt.datetime(2026, 3, 9, 9, 0, tzinfo=UTC))  # holiday Monday


# --- misuse -----------------------------------------------------------------------------------


def test_misuse_is_an_error() -> None:
    """DP-4: a report without a running action, or after the end, is a programming error."""
    run = run_of(SEED)
    with pytest.raises(RuntimeError):
        run.report(Outcome.NO_ANSWER, MONDAY_NOON)
    action(run.start(MONDAY_NOON))
    with pytest.raises(RuntimeError):
        run.start(MONDAY_NOON)
    with pytest.raises(RuntimeError):
        run.classified(True, MONDAY_NOON)


def test_naive_time_and_unknown_zone_are_rejected() -> None:
    """DP-4 schedules need an instant: a naive datetime or an unknown zone is refused."""
    with pytest.raises(ValueError, match="aware"):
        run_of(SEED).start(dt.datetime(2026, 3, 2, 9, 0))
    with pytest.raises(Exception, match="Nowhere"):
        CallRun(SEED, time_zone="Nowhere/Atlantis")


# --- property: every run ends within the loop guard -------------------------------------------

LEVELS = st.integers(min_value=1, max_value=6)
CONDITIONS = st.dictionaries(st.sampled_from(list(Condition)), LEVELS, max_size=5)
ACTIONS = st.sampled_from(list(Action))


@st.composite
def dialplans(draw: st.DrawFn) -> Dialplan:
    levels = draw(st.sets(LEVELS, min_size=1, max_size=6))
    steps = []
    for level in levels:
        kind = draw(ACTIONS)
        params = {"found_step": draw(LEVELS)} if kind is Action.CLASSIFIER else {}
        schedule = draw(st.sampled_from([Schedule.ALWAYS, OFFICE, Schedule(days=frozenset())]))
        conditions = draw(CONDITIONS)
        steps.append(
            Step(
                level=level,
                action=kind,
                schedule=schedule,
                conditions=conditions,
                params=params,
                timeout=draw(st.integers(0, 30)),
            )
        )
    return plan(*steps)


@settings(max_examples=300, deadline=None)
@given(
    dialplan=dialplans(),
    choices=st.lists(st.integers(0, 5), min_size=200, max_size=200),
    start=st.datetimes(
        min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
)
def test_every_run_ends_within_the_loop_guard(
    dialplan: Dialplan, choices: list[int], start: dt.datetime
) -> None:
    """DP-4 "loop guard": whatever the outcomes, every call ends, after at most 50
    transitions, and its trace starts at the entry and ends with the end of the call."""
    run = CallRun(dialplan, time_zone=MSK)
    decision = run.start(start)
    for choice in choices:
        if isinstance(decision, EndCall):
            break
        decision = _answer(run, decision, dialplan, choice, start)
    end = ended(decision)
    assert run.transitions <= 50
    assert run.trace[0].condition == "entry"
    assert run.trace[-1].to_level is None
    assert (end.sip_status is None) == run.answered
    assert len(run.trace) == run.transitions + 2


def _answer(
    run: CallRun, decision: RunAction, dialplan: Dialplan, choice: int, now: dt.datetime
) -> object:
    if decision.action is Action.CLASSIFIER:
        return run.classified(choice % 2 == 0, now)
    if choice == 5:
        return run.goto(dialplan, now, number="x")
    outcome = list(Outcome)[choice % 4]
    return run.report(outcome, now, answered=choice == 0)
