"""DP-5: dialplan validation on save.

`validate` returns every issue at once, each naming the step (``"step 3: …"``) and the field, so
the editor can mark them all. Errors block saving; warnings (unreachable steps, dead
transitions) are shown but do not. Targets are checked through a resolver supplied by the
caller — the API layer, which looks a reference up in the database *for the dialplan's client*
— so this module stays pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cloudpbx.dialplan.model import (
    ACTION_TARGET,
    ALL_DAYS,
    ENTRY_LEVEL,
    STEP_PARAMS,
    Condition,
    Dialplan,
    Schedule,
    Step,
    TargetRef,
)

MAX_TIMEOUT: Final = 3600
"""Largest step timeout in seconds (an hour: the longest sane ring, queue wait or message)."""


class TargetStatus(StrEnum):
    """What the resolver found for a reference, scoped to the dialplan's client."""

    OK = "ok"
    MISSING = "missing"
    FOREIGN = "foreign"  # exists, but belongs to another client (ADM-4)


class Severity(StrEnum):
    ERROR = "error"  # blocks saving
    WARNING = "warning"  # shown, saving goes ahead


class IssueCode(StrEnum):
    """Machine codes of `Issue.code` (stable: the API and the UI key on them)."""

    NO_ENTRY = "no_entry"
    LEVEL_INVALID = "level_invalid"
    LEVEL_MISMATCH = "level_mismatch"
    TRANSITION_MISSING_STEP = "transition_missing_step"
    TRANSITION_INVALID = "transition_invalid"
    FORWARD_TO_SELF = "forward_to_self"
    FORWARD_CYCLE = "forward_cycle"
    TARGET_REQUIRED = "target_required"
    TARGET_UNEXPECTED = "target_unexpected"
    TARGET_WRONG_KIND = "target_wrong_kind"
    TARGET_NOT_FOUND = "target_not_found"
    TIMEOUT_OUT_OF_RANGE = "timeout_out_of_range"
    SCHEDULE_DAY_INVALID = "schedule_day_invalid"
    SCHEDULE_EXCEPTION_DUPLICATE = "schedule_exception_duplicate"
    SCHEDULE_EXCEPTION_RANGES = "schedule_exception_ranges"
    SCHEDULE_NEVER_OPEN = "schedule_never_open"
    FORWARD_SHADOWS = "forward_shadows"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """One finding. ``level`` is the step's level (None for the dialplan as a whole) and
    ``field`` the path inside the step (``"conditions.no_answer"``, ``"target"``, …)."""

    severity: Severity
    level: int | None
    field: str
    code: str
    message: str


Resolver = Callable[[TargetRef], TargetStatus]


def validate(
    dialplan: Dialplan, resolve: Resolver, *, max_timeout: int = MAX_TIMEOUT
) -> list[Issue]:
    """Check ``dialplan`` against DP-5 (and DP-1); errors first, then warnings, by step."""
    lookup = _memoized(resolve)
    issues: list[Issue] = []
    if ENTRY_LEVEL not in dialplan.steps:
        message = "step 1 is missing: every call enters at step 1"
        issues.append(_error(None, "steps", IssueCode.NO_ENTRY, message))
    for level, step in dialplan.steps.items():
        issues.extend(_check_step(dialplan, level, step, lookup, max_timeout))
    issues.extend(_check_forward_cycles(dialplan))
    issues.extend(_check_reachability(dialplan))
    return sorted(issues, key=_order)


def has_errors(issues: Iterable[Issue]) -> bool:
    """True when any issue is an error, i.e. the dialplan must not be saved."""
    return any(issue.severity is Severity.ERROR for issue in issues)


def references(dialplan: Dialplan) -> set[TargetRef]:
    """Every object the dialplan refers to (DP-1: "where is this port used?")."""
    return {step.target for step in dialplan.steps.values() if step.target is not None}


def _check_step(
    dialplan: Dialplan, level: int, step: Step, resolve: Resolver, max_timeout: int
) -> Iterator[Issue]:
    if level < ENTRY_LEVEL:
        message = f"step {level}: step numbers start at 1"
        yield _error(level, "level", IssueCode.LEVEL_INVALID, message)
    if step.level != level:
        message = f"step {level}: the step is stored as step {level} but says level {step.level}"
        yield _error(level, "level", IssueCode.LEVEL_MISMATCH, message)
    yield from _check_target(level, step, resolve)
    yield from _check_timeout(level, step, max_timeout)
    yield from _check_transitions(dialplan, level, step)
    yield from _check_schedule(level, step)
    yield from _check_forward_shadows(level, step)


def _check_target(level: int, step: Step, resolve: Resolver) -> Iterator[Issue]:
    expected = ACTION_TARGET[step.action]
    target = step.target
    action = f"action '{step.action}'"
    if expected is None:
        if target is not None:
            message = f"step {level}: {action} takes no target, but {target} is set"
            yield _error(level, "target", IssueCode.TARGET_UNEXPECTED, message)
    elif target is None:
        message = f"step {level}: {action} needs a {expected.label}"
        yield _error(level, "target", IssueCode.TARGET_REQUIRED, message)
    elif target.kind is not expected:
        message = f"step {level}: {action} needs a {expected.label}, not a {target.kind.label}"
        yield _error(level, "target", IssueCode.TARGET_WRONG_KIND, message)
    elif resolve(target) is not TargetStatus.OK:
        # Missing and foreign read the same, so ids cannot be probed across tenants (ADM-4).
        message = f"step {level}: {target} not found"
        yield _error(level, "target", IssueCode.TARGET_NOT_FOUND, message)


def _check_timeout(level: int, step: Step, max_timeout: int) -> Iterator[Issue]:
    if 0 <= step.timeout <= max_timeout:
        return
    message = (
        f"step {level}: timeout {step.timeout} s is out of range "
        f"(0 = installation maximum, up to {max_timeout} s)"
    )
    yield _error(level, "timeout", IssueCode.TIMEOUT_OUT_OF_RANGE, message)


def _check_transitions(dialplan: Dialplan, level: int, step: Step) -> Iterator[Issue]:
    for condition, target in step.conditions.items():
        field = f"conditions.{condition}"
        what = f"condition '{condition}'"
        if condition is Condition.FORWARD and target == level:
            message = (
                f"step {level}: {what} goes to step {level} itself; "
                "forward skips the action, so the call would loop"
            )
            yield _error(level, field, IssueCode.FORWARD_TO_SELF, message)
        elif target not in dialplan.steps:
            message = f"step {level}: {what} goes to step {target}, which does not exist"
            yield _error(level, field, IssueCode.TRANSITION_MISSING_STEP, message)
    yield from _check_step_params(dialplan, level, step)


def _check_step_params(dialplan: Dialplan, level: int, step: Step) -> Iterator[Issue]:
    for name in STEP_PARAMS.get(step.action, ()):
        if name not in step.params:
            continue  # optional: an absent exit behaves like a condition with no target
        value = step.params[name]
        field = f"params.{name}"
        what = f"parameter '{name}'"
        if isinstance(value, bool) or not isinstance(value, int):
            message = f"step {level}: {what} must be a step number, not {value!r}"
            yield _error(level, field, IssueCode.TRANSITION_INVALID, message)
        elif value not in dialplan.steps:
            message = f"step {level}: {what} goes to step {value}, which does not exist"
            yield _error(level, field, IssueCode.TRANSITION_MISSING_STEP, message)


def _check_schedule(level: int, step: Step) -> Iterator[Issue]:
    schedule = step.schedule
    for day in sorted(schedule.days - ALL_DAYS):
        message = (
            f"step {level}: schedule day {day} is not a day of the week (0 = Monday … 6 = Sunday)"
        )
        yield _error(level, "schedule.days", IssueCode.SCHEDULE_DAY_INVALID, message)
    seen: set[dt.date] = set()
    for exception in schedule.exceptions:
        date = exception.date
        if date in seen:
            message = f"step {level}: schedule has two exceptions for {date:%Y-%m-%d}"
            yield _error(
                level, "schedule.exceptions", IssueCode.SCHEDULE_EXCEPTION_DUPLICATE, message
            )
        seen.add(date)
        if not exception.open and exception.ranges:
            message = f"step {level}: schedule exception {date:%Y-%m-%d} is closed but has times"
            yield _error(level, "schedule.exceptions", IssueCode.SCHEDULE_EXCEPTION_RANGES, message)
    if _never_open(schedule) and step.forward is None:
        message = f"step {level}: the schedule is never open, so this step always gives No route"
        yield _warning(level, "schedule", IssueCode.SCHEDULE_NEVER_OPEN, message)


def _never_open(schedule: Schedule) -> bool:
    no_days = not (schedule.days & ALL_DAYS)
    return no_days and not any(exception.open for exception in schedule.exceptions)


def _check_forward_shadows(level: int, step: Step) -> Iterator[Issue]:
    """DP-4: Forward is taken on entry, so the step's other exits and its target are dead."""
    if step.forward is None:
        return
    unused = [f"condition '{c}'" for c in step.conditions if c is not Condition.FORWARD]
    exits = STEP_PARAMS.get(step.action, ())
    unused += [f"parameter '{name}'" for name in exits if name in step.params]
    if step.target is not None:
        unused.append(f"the action's {step.target}")
    if unused:
        listed = " and ".join([", ".join(unused[:-1]), unused[-1]] if len(unused) > 1 else unused)
        message = f"step {level}: condition 'forward' is set, so {listed} will never be used"
        yield _warning(level, "conditions.forward", IssueCode.FORWARD_SHADOWS, message)


def _check_forward_cycles(dialplan: Dialplan) -> Iterator[Issue]:
    """Forward skips the action, so a cycle of forwards would spin until the loop guard."""
    edges = {
        level: step.forward
        for level, step in dialplan.steps.items()
        if step.forward is not None and step.forward != level and step.forward in dialplan.steps
    }
    for cycle in _cycles(edges):
        path = " → ".join(f"step {level}" for level in [*cycle, cycle[0]])
        message = (
            f"step {cycle[0]}: forward conditions loop ({path}); "
            "forward skips the action, so the call would go round without ringing anything"
        )
        yield _error(cycle[0], "conditions.forward", IssueCode.FORWARD_CYCLE, message)


def _cycles(edges: Mapping[int, int]) -> Iterator[list[int]]:
    """Cycles of a graph with at most one edge per node, each rotated to its lowest node."""
    walk_of: dict[int, int] = {}
    for start in sorted(edges):
        path: list[int] = []
        node = start
        while node in edges and node not in walk_of:
            walk_of[node] = start
            path.append(node)
            node = edges[node]
        if walk_of.get(node) == start:
            cycle = path[path.index(node) :]
            lowest = cycle.index(min(cycle))
            yield cycle[lowest:] + cycle[:lowest]


def _check_reachability(dialplan: Dialplan) -> Iterator[Issue]:
    if ENTRY_LEVEL not in dialplan.steps:
        return  # already an error; every step would be "unreachable"
    reached = {ENTRY_LEVEL}
    pending = [ENTRY_LEVEL]
    while pending:
        step = dialplan.steps[pending.pop()]
        for transition in step.live_transitions():
            if transition.target in dialplan.steps and transition.target not in reached:
                reached.add(transition.target)
                pending.append(transition.target)
    for level in dialplan.steps:
        if level not in reached:
            message = f"step {level}: no transition leads here from step 1, so it is never used"
            yield _warning(level, "level", IssueCode.UNREACHABLE, message)


def _memoized(resolve: Resolver) -> Resolver:
    """Ask the resolver (a database lookup) once per distinct reference."""
    cache: dict[TargetRef, TargetStatus] = {}

    def lookup(ref: TargetRef) -> TargetStatus:
        if ref not in cache:
            cache[ref] = resolve(ref)
        return cache[ref]

    return lookup


def _order(issue: Issue) -> tuple[bool, int]:
    return (issue.severity is Severity.WARNING, issue.level if issue.level is not None else 0)


def _error(level: int | None, field: str, code: IssueCode, message: str) -> Issue:
    return Issue(severity=Severity.ERROR, level=level, field=field, code=code, message=message)


def _warning(level: int, field: str, code: IssueCode, message: str) -> Issue:
    return Issue(severity=Severity.WARNING, level=level, field=field, code=code, message=message)
