"""Tests for cloudpbx.dialplan.validate (DP-5) and the model it checks (DP-1, DP-2, DP-3)."""

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudpbx.dialplan import (
    ACTION_TARGET,
    CLASSIFIER_FOUND_STEP,
    CLASSIFIER_NOT_FOUND_STEP,
    MAX_TIMEOUT,
    Action,
    Condition,
    DatedException,
    Dialplan,
    Issue,
    IssueCode,
    Schedule,
    Severity,
    Step,
    TargetKind,
    TargetRef,
    TargetStatus,
    TimeRange,
    Transition,
    has_errors,
    references,
    validate,
)

PORT_7 = TargetRef(kind=TargetKind.PORT, id=7)
MOH = TargetRef(kind=TargetKind.MEDIA_FILE, id=3)
VIP = TargetRef(kind=TargetKind.CLASSIFIER, id=1)


def plan(*steps: Step) -> Dialplan:
    return Dialplan.from_steps(steps, version=1)


def ring(level: int, **kwargs: Any) -> Step:
    return Step(level=level, action=Action.RING_PORT, target=PORT_7, **kwargs)


def message(level: int, **kwargs: Any) -> Step:
    return Step(level=level, action=Action.PLAY_MESSAGE, target=MOH, **kwargs)


def hangup(level: int, **kwargs: Any) -> Step:
    return Step(level=level, action=Action.HANGUP, **kwargs)


def classify(level: int, **params: int | str | bool) -> Step:
    return Step(level=level, action=Action.CLASSIFIER, target=VIP, params=params)


def all_ok(ref: TargetRef) -> TargetStatus:
    return TargetStatus.OK


def found(issues: list[Issue]) -> list[tuple[str, int | None, str]]:
    return [(issue.code, issue.level, issue.field) for issue in issues]


def errors(dialplan: Dialplan) -> list[tuple[str, int | None, str]]:
    return found([i for i in validate(dialplan, all_ok) if i.severity is Severity.ERROR])


def warnings(dialplan: Dialplan) -> list[tuple[str, int | None, str]]:
    return found([i for i in validate(dialplan, all_ok) if i.severity is Severity.WARNING])


# The seed's example (figures 1–9): ring "Линия 1" for 5 s, then play a message.
SEED_EXAMPLE = plan(ring(1, timeout=5, conditions={Condition.NO_ANSWER: 2}), message(2))


@pytest.mark.parametrize(
    "dialplan",
    [
        pytest.param(plan(ring(1)), id="one-step"),
        pytest.param(SEED_EXAMPLE, id="seed-example"),
        pytest.param(
            plan(
                classify(1, found_step=2, not_found_step=3),
                ring(2, conditions={Condition.BUSY: 3, Condition.NO_ROUTE: 3}),
                hangup(3),
            ),
            id="classifier",
        ),
        pytest.param(plan(hangup(1, conditions={Condition.FORWARD: 2}), ring(2)), id="forward"),
        pytest.param(plan(ring(1, conditions={Condition.NO_ANSWER: 1})), id="ring-again-loop"),
        pytest.param(plan(Step(level=1, action=Action.FAX_RECEIVER)), id="fax-no-target"),
        pytest.param(
            plan(ring(1, timeout=MAX_TIMEOUT, conditions={Condition.BUSY: 3}), message(3)),
            id="gap-in-levels",
        ),
    ],
)
def test_valid_dialplans_have_no_issues(dialplan: Dialplan) -> None:
    """DP-5: a well-formed dialplan saves without errors or warnings."""
    assert validate(dialplan, all_ok) == []
    assert not has_errors([])


def test_step_1_is_the_entry() -> None:
    """DP-1: step 1 is the entry and must exist (DP-4: no step 1 → 480)."""
    issues = validate(plan(ring(2)), all_ok)
    assert found(issues) == [(IssueCode.NO_ENTRY, None, "steps")]
    assert issues[0].message == "step 1 is missing: every call enters at step 1"
    assert validate(plan(), all_ok)[0].code == "no_entry"


@pytest.mark.parametrize("level", [0, -1])
def test_levels_start_at_1(level: int) -> None:
    """DP-1: steps are numbered from 1."""
    dialplan = plan(ring(1), ring(level))
    assert (IssueCode.LEVEL_INVALID, level, "level") in errors(dialplan)


def test_level_matches_its_key() -> None:
    """DP-1: a step's level is its number in the dialplan."""
    dialplan = Dialplan(steps={1: ring(1, conditions={Condition.BUSY: 2}), 2: ring(3)}, version=1)
    assert errors(dialplan) == [(IssueCode.LEVEL_MISMATCH, 2, "level")]


@pytest.mark.parametrize(
    ("step", "field", "text"),
    [
        pytest.param(
            ring(3, conditions={Condition.NO_ANSWER: 7}),
            "conditions.no_answer",
            "step 3: condition 'no_answer' goes to step 7, which does not exist",
            id="condition",
        ),
        pytest.param(
            hangup(3, conditions={Condition.FORWARD: 9}),
            "conditions.forward",
            "step 3: condition 'forward' goes to step 9, which does not exist",
            id="forward",
        ),
        pytest.param(
            classify(3, found_step=8, not_found_step=1),
            "params.found_step",
            "step 3: parameter 'found_step' goes to step 8, which does not exist",
            id="classifier-found",
        ),
        pytest.param(
            classify(3, found_step=1, not_found_step=0),
            "params.not_found_step",
            "step 3: parameter 'not_found_step' goes to step 0, which does not exist",
            id="classifier-not-found",
        ),
    ],
)
def test_transition_to_missing_step(step: Step, field: str, text: str) -> None:
    """DP-5: transitions to missing steps are rejected, naming the step and the condition."""
    issues = validate(plan(ring(1, conditions={Condition.BUSY: 3}), step), all_ok)
    assert [(i.code, i.level, i.field, i.message) for i in issues] == [
        (IssueCode.TRANSITION_MISSING_STEP, 3, field, text)
    ]


@pytest.mark.parametrize("value", ["two", True, 2.5])
def test_classifier_step_param_must_be_a_step_number(value: Any) -> None:
    """DP-5 / DP-2: the classifier's found/not-found exits are step numbers."""
    issues = validate(plan(classify(1, found_step=value)), all_ok)
    assert found(issues) == [(IssueCode.TRANSITION_INVALID, 1, "params.found_step")]
    assert issues[0].message.startswith("step 1: parameter 'found_step' must be a step number")


@pytest.mark.parametrize(
    ("step", "code", "text"),
    [
        pytest.param(
            Step(level=1, action=Action.RING_PORT),
            IssueCode.TARGET_REQUIRED,
            "step 1: action 'ring_port' needs a port",
            id="ring-port-without-port",
        ),
        pytest.param(
            Step(level=1, action=Action.RING_FORWARDING),
            IssueCode.TARGET_REQUIRED,
            "step 1: action 'ring_forwarding' needs a forwarding number",
            id="forwarding-without-number",
        ),
        pytest.param(
            Step(level=1, action=Action.PLAY_MESSAGE, target=PORT_7),
            IssueCode.TARGET_WRONG_KIND,
            "step 1: action 'play_message' needs a media file, not a port",
            id="message-with-port",
        ),
        pytest.param(
            Step(level=1, action=Action.HANGUP, target=PORT_7),
            IssueCode.TARGET_UNEXPECTED,
            "step 1: action 'hangup' takes no target, but port 7 is set",
            id="hangup-with-target",
        ),
    ],
)
def test_action_target_kind(step: Step, code: IssueCode, text: str) -> None:
    """DP-5 / DP-1: actions with missing targets are rejected; targets are typed references."""
    issues = validate(plan(step), all_ok)
    assert [(i.code, i.level, i.field, i.message) for i in issues] == [(code, 1, "target", text)]


@pytest.mark.parametrize("status", [TargetStatus.MISSING, TargetStatus.FOREIGN])
def test_missing_and_foreign_targets_read_the_same(status: TargetStatus) -> None:
    """DP-5 / ADM-4: another client's object is reported exactly like a missing one, so the
    message leaks nothing about it (nor whether it exists)."""
    issues = validate(SEED_EXAMPLE, lambda ref: status if ref == PORT_7 else TargetStatus.OK)
    assert [(i.code, i.level, i.field, i.message) for i in issues] == [
        (IssueCode.TARGET_NOT_FOUND, 1, "target", "step 1: port 7 not found")
    ]


def test_each_reference_is_resolved_once() -> None:
    """DP-5: the resolver (a database lookup) is asked once per distinct reference."""
    asked: list[TargetRef] = []

    def resolve(ref: TargetRef) -> TargetStatus:
        asked.append(ref)
        return TargetStatus.OK

    dialplan = plan(ring(1, conditions={Condition.BUSY: 2}), ring(2), message(3))
    validate(dialplan, resolve)
    assert sorted(asked, key=str) == [MOH, PORT_7]


@pytest.mark.parametrize(
    ("steps", "cycles"),
    [
        pytest.param(
            [ring(1, conditions={Condition.FORWARD: 2}), ring(2, conditions={"forward": 1})],
            {1: "step 1 → step 2 → step 1"},
            id="two-steps",
        ),
        pytest.param(
            [
                ring(1, conditions={Condition.FORWARD: 4}),
                ring(2, conditions={Condition.FORWARD: 3}),
                ring(3, conditions={Condition.FORWARD: 4}),
                ring(4, conditions={Condition.FORWARD: 2}),
            ],
            {2: "step 2 → step 3 → step 4 → step 2"},
            id="chain-into-cycle",
        ),
        pytest.param(
            [
                ring(1, conditions={Condition.BUSY: 2, Condition.NO_ROUTE: 4}),
                ring(2, conditions={Condition.FORWARD: 3}),
                ring(3, conditions={Condition.FORWARD: 2}),
                ring(4, conditions={Condition.FORWARD: 5}),
                ring(5, conditions={Condition.FORWARD: 4}),
            ],
            {2: "step 2 → step 3 → step 2", 4: "step 4 → step 5 → step 4"},
            id="two-cycles",
        ),
    ],
)
def test_forward_cycles_are_rejected(steps: list[Step], cycles: dict[int, str]) -> None:
    """DP-5: a chain of Forward conditions that loops is rejected with the cycle's steps
    (DP-4: Forward skips the action, so the call would spin until the loop guard)."""
    issues = [i for i in validate(plan(*steps), all_ok) if i.code == IssueCode.FORWARD_CYCLE]
    assert {i.level: i.message for i in issues} == {
        level: f"step {level}: forward conditions loop ({path}); forward skips the action, "
        "so the call would go round without ringing anything"
        for level, path in cycles.items()
    }
    assert all(i.field == "conditions.forward" for i in issues)


def test_forward_chain_without_cycle_is_fine() -> None:
    """DP-5: forwards may chain as long as they end in a step that runs its action."""
    dialplan = plan(
        hangup(1, conditions={Condition.FORWARD: 2}),
        hangup(2, conditions={Condition.FORWARD: 3}),
        ring(3, conditions={Condition.NO_ANSWER: 1}),
    )
    assert validate(dialplan, all_ok) == []


def test_forward_to_itself() -> None:
    """DP-5: a step whose Forward points to itself is the shortest forward cycle."""
    issues = validate(plan(hangup(1, conditions={Condition.FORWARD: 1})), all_ok)
    assert [(i.code, i.message) for i in issues] == [
        (
            IssueCode.FORWARD_TO_SELF,
            "step 1: condition 'forward' goes to step 1 itself; "
            "forward skips the action, so the call would loop",
        )
    ]


@pytest.mark.parametrize(
    ("timeout", "max_timeout", "ok"),
    [
        pytest.param(-1, MAX_TIMEOUT, False, id="negative"),
        pytest.param(0, MAX_TIMEOUT, True, id="zero-installation-max"),
        pytest.param(MAX_TIMEOUT, MAX_TIMEOUT, True, id="max"),
        pytest.param(MAX_TIMEOUT + 1, MAX_TIMEOUT, False, id="above-max"),
        pytest.param(200, 120, False, id="installation-max"),
    ],
)
def test_timeout_range(timeout: int, max_timeout: int, ok: bool) -> None:
    """DP-5 / DP-1: a step's timeout is 0 (installation maximum) up to the maximum, in seconds."""
    issues = validate(plan(ring(1, timeout=timeout)), all_ok, max_timeout=max_timeout)
    expected = [] if ok else [(IssueCode.TIMEOUT_OUT_OF_RANGE, 1, "timeout")]
    assert found(issues) == expected
    assert ok or str(timeout) in issues[0].message


NEW_YEAR = dt.date(2026, 1, 1)
MORNING = TimeRange(start=dt.time(9), end=dt.time(12))


@pytest.mark.parametrize(
    ("schedule", "code", "field"),
    [
        pytest.param(
            Schedule(days=frozenset({0, 7})),
            IssueCode.SCHEDULE_DAY_INVALID,
            "schedule.days",
            id="day-7",
        ),
        pytest.param(
            Schedule(
                exceptions=(
                    DatedException(date=NEW_YEAR, open=False),
                    DatedException(date=NEW_YEAR, open=True),
                )
            ),
            IssueCode.SCHEDULE_EXCEPTION_DUPLICATE,
            "schedule.exceptions",
            id="duplicate-date",
        ),
        pytest.param(
            Schedule(exceptions=(DatedException(date=NEW_YEAR, open=False, ranges=(MORNING,)),)),
            IssueCode.SCHEDULE_EXCEPTION_RANGES,
            "schedule.exceptions",
            id="closed-with-ranges",
        ),
    ],
)
def test_schedule_errors(schedule: Schedule, code: IssueCode, field: str) -> None:
    """DP-5 / DP-1: a schedule's days are week days and each date has one exception."""
    assert errors(plan(ring(1, schedule=schedule))) == [(code, 1, field)]


@pytest.mark.parametrize(
    ("schedule", "warned"),
    [
        pytest.param(Schedule(days=frozenset()), True, id="no-days"),
        pytest.param(
            Schedule(days=frozenset(), exceptions=(DatedException(date=NEW_YEAR, open=True),)),
            False,
            id="only-an-open-exception",
        ),
    ],
)
def test_schedule_never_open_is_a_warning(schedule: Schedule, warned: bool) -> None:
    """DP-5 / DP-4: a schedule that never matches makes the step always give No route."""
    issues = validate(plan(ring(1, schedule=schedule)), all_ok)
    assert not has_errors(issues)
    assert found(issues) == ([(IssueCode.SCHEDULE_NEVER_OPEN, 1, "schedule")] if warned else [])


@pytest.mark.parametrize(
    ("dialplan", "unreachable"),
    [
        pytest.param(plan(ring(1), message(2)), [2], id="no-arrow"),
        pytest.param(
            plan(ring(1), message(2, conditions={Condition.AFTER_ANSWER: 3}), hangup(3)),
            [2, 3],
            id="island",
        ),
        pytest.param(
            plan(classify(1, not_found_step=3), message(2), hangup(3)),
            [2],
            id="via-classifier-param",
        ),
        pytest.param(
            plan(ring(1, conditions={Condition.AFTER_ANSWER: 1}), ring(2, conditions={"busy": 1})),
            [2],
            id="arrow-only-into-step-1",
        ),
    ],
)
def test_unreachable_steps_are_a_warning(dialplan: Dialplan, unreachable: list[int]) -> None:
    """DP-5: unreachable steps (no path from step 1, DP-1) are a warning, not an error."""
    issues = validate(dialplan, all_ok)
    assert not has_errors(issues)
    assert found(issues) == [(IssueCode.UNREACHABLE, level, "level") for level in unreachable]


def test_forward_makes_other_exits_dead() -> None:
    """DP-5 / DP-4: with Forward set the action and other conditions never run: they are
    reported, and steps reached only through them are unreachable."""
    dialplan = plan(
        ring(1, conditions={Condition.FORWARD: 2, Condition.BUSY: 3}),
        hangup(2),
        hangup(3),
    )
    issues = validate(dialplan, all_ok)
    assert found(issues) == [
        (IssueCode.FORWARD_SHADOWS, 1, "conditions.forward"),
        (IssueCode.UNREACHABLE, 3, "level"),
    ]
    assert issues[0].message == (
        "step 1: condition 'forward' is set, so condition 'busy' and the action's port 7 "
        "will never be used"
    )


def test_forward_shadows_classifier_exits() -> None:
    """DP-5 / DP-4: a classifier step with Forward set never uses its found/not-found exits."""
    step = Step(
        level=1,
        action=Action.CLASSIFIER,
        conditions={Condition.FORWARD: 2, Condition.NO_ROUTE: 2},
        params={CLASSIFIER_FOUND_STEP: 2, CLASSIFIER_NOT_FOUND_STEP: 2},
        target=VIP,
    )
    issues = validate(plan(step, hangup(2)), all_ok)
    assert [i.message for i in issues] == [
        "step 1: condition 'forward' is set, so condition 'no_route', parameter 'found_step', "
        "parameter 'not_found_step' and the action's classifier 1 will never be used"
    ]


def test_issues_are_ordered_errors_first_then_by_step() -> None:
    """DP-5: errors (which block saving) come first, each group by step."""
    dialplan = plan(
        ring(1),
        message(2),
        ring(3, timeout=-5, conditions={Condition.BUSY: 9}),
        Step(level=4, action=Action.VOICEMAIL),
    )
    assert [(i.severity, i.level) for i in validate(dialplan, all_ok)] == [
        ("error", 3),
        ("error", 3),
        ("error", 4),
        ("warning", 2),
        ("warning", 3),
        ("warning", 4),
    ]


def test_has_errors() -> None:
    """DP-5: only errors reject a save; warnings do not."""
    warning = Issue(severity=Severity.WARNING, level=2, field="level", code="x", message="m")
    error = Issue(severity=Severity.ERROR, level=2, field="level", code="x", message="m")
    assert not has_errors([warning])
    assert has_errors([warning, error])


def test_references_answer_where_is_this_used() -> None:
    """DP-1: targets are typed references, so "where is this port used?" has an answer."""
    dialplan = plan(
        classify(1, found_step=2, not_found_step=3),
        ring(2),
        message(3, conditions={Condition.AFTER_ANSWER: 4}),
        Step(
            level=4,
            action=Action.GOTO_NUMBER,
            target=TargetRef(kind=TargetKind.INTERNAL_NUMBER, id=5),
        ),
        hangup(5),
    )
    assert references(dialplan) == {
        VIP,
        PORT_7,
        MOH,
        TargetRef(kind=TargetKind.INTERNAL_NUMBER, id=5),
    }


def test_every_action_declares_its_target_kind() -> None:
    """DP-2: each action has a typed target, or none (fax receiver, hang up)."""
    assert set(ACTION_TARGET) == set(Action)
    assert [a for a, kind in ACTION_TARGET.items() if kind is None] == [
        Action.FAX_RECEIVER,
        Action.HANGUP,
    ]
    assert ACTION_TARGET[Action.PLAY_MESSAGE] is TargetKind.MEDIA_FILE
    assert ACTION_TARGET[Action.GOTO_NUMBER] is TargetKind.INTERNAL_NUMBER


def test_transitions_list_conditions_then_classifier_exits() -> None:
    """DP-3 / DP-2: arrows are the conditions in DP-3 order, then the classifier's exits."""
    step = Step(
        level=1,
        action=Action.CLASSIFIER,
        target=VIP,
        conditions={Condition.NO_ROUTE: 4, Condition.FORWARD: 2},
        params={CLASSIFIER_NOT_FOUND_STEP: 3, CLASSIFIER_FOUND_STEP: 5, "note": "x"},
    )
    dialplan = plan(step)
    assert list(dialplan.transitions(step)) == [
        ("forward", 2),
        ("no_route", 4),
        ("found_step", 5),
        ("not_found_step", 3),
    ]
    assert next(iter(dialplan.transitions(1))) == Transition(label="forward", target=2)
    assert list(step.live_transitions()) == [("forward", 2)]


def test_model_is_immutable_and_numbers_steps_max_plus_one() -> None:
    """DP-1: steps are values; a new step gets max + 1, never a reused number."""
    step = ring(1, conditions={Condition.BUSY: 2})
    with pytest.raises(TypeError):
        step.conditions[Condition.BUSY] = 3  # type: ignore[index]
    dialplan = plan(step, ring(5))
    assert dialplan.next_level == 6
    assert plan().next_level == 1
    assert dialplan.entry is step
    assert list(dialplan.steps) == [1, 5]
    assert hash(step) == hash(ring(1, conditions={Condition.BUSY: 2}))
    assert Schedule.ALWAYS.is_always
    assert not Schedule(days=frozenset({0})).is_always
    with pytest.raises(ValueError, match="two steps have level 1"):
        plan(ring(1), hangup(1))


_levels = st.integers(min_value=-1, max_value=6)


@st.composite
def dialplans(draw: st.DrawFn) -> Dialplan:
    levels = draw(st.sets(st.integers(min_value=0, max_value=6), max_size=6))
    steps = []
    for level in sorted(levels):
        action = draw(st.sampled_from(Action))
        kind = draw(st.sampled_from([None, *TargetKind]))
        target = None if kind is None else TargetRef(kind=kind, id=draw(st.integers(1, 3)))
        conditions = draw(st.dictionaries(st.sampled_from(Condition), _levels, max_size=3))
        params = draw(
            st.dictionaries(
                st.sampled_from([CLASSIFIER_FOUND_STEP, CLASSIFIER_NOT_FOUND_STEP]),
                _levels | st.just("x"),
                max_size=2,
            )
        )
        steps.append(
            Step(
                level=level,
                action=action,
                target=target,
                timeout=draw(st.integers(-2, MAX_TIMEOUT + 2)),
                conditions=conditions,
                params=params,
            )
        )
    return plan(*steps)


def _forward_cycle_members(dialplan: Dialplan) -> set[int]:
    members = set()
    for start in dialplan.steps:
        seen = [start]
        node = dialplan.steps[start].forward
        while node is not None and node in dialplan.steps and node not in seen:
            seen.append(node)
            node = dialplan.steps[node].forward
        if node == start and len(seen) > 1:
            members.add(start)
    return members


@given(dialplan=dialplans(), foreign=st.sets(st.integers(1, 3)))
def test_any_dialplan_gets_named_issues(dialplan: Dialplan, foreign: set[int]) -> None:
    """DP-5: validation never crashes, names the step in every step issue, and finds exactly
    the steps that sit on forward cycles."""

    def resolve(ref: TargetRef) -> TargetStatus:
        return TargetStatus.FOREIGN if ref.id in foreign else TargetStatus.OK

    issues = validate(dialplan, resolve)
    for issue in issues:
        assert issue.level is None or issue.message.startswith(f"step {issue.level}: ")
        assert "foreign" not in issue.message
        assert "client" not in issue.message
    reported = set()
    for issue in issues:
        if issue.code == IssueCode.FORWARD_CYCLE:
            loop = issue.message.split("(")[1].split(")")[0]
            reported |= {int(part.removeprefix("step ")) for part in loop.split(" → ")}
    assert reported == _forward_cycle_members(dialplan)
    assert has_errors(issues) == any(i.severity == "error" for i in issues)
