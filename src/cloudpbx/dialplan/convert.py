"""Conversions between stored / JSON dialplan steps and the pure model (DP-1).

Three shapes of one step meet here:

- the **database row** (`cloudpbx.db.models.DialplanStep`): one foreign-key column per target
  kind (``port_id``, ``queue_id``, …) so that "where is this port used?" is a join, and JSON
  columns for the schedule, conditions, parameters and options;
- the **API / JSON form**: ``{level, action, target: {kind, id} | null, timeout, schedule,
  conditions: {condition: level}, params, options}``;
- the pure, immutable `cloudpbx.dialplan.model.Step` the validator (DP-5) and the interpreter
  (DP-4) work on.

A schedule's JSON form is ``{"days": [0..6], "ranges": [["09:00", "18:00"]], "exceptions":
[{"date": "2026-01-01", "open": false, "ranges": []}]}``; the database stores ``{}`` for the
default "any day, any time". Pure: no I/O, no clock, no ORM import (rows are read through the
`StepRow` protocol).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final, Protocol

from cloudpbx.dialplan.model import (
    ALL_DAYS,
    Action,
    Condition,
    DatedException,
    Dialplan,
    ParamValue,
    Schedule,
    Step,
    TargetKind,
    TargetRef,
    TimeRange,
)
from cloudpbx.dialplan.validate import Issue, Severity

KIND_COLUMN: Final[Mapping[TargetKind, str]] = MappingProxyType(
    {
        TargetKind.PORT: "port_id",
        TargetKind.QUEUE: "queue_id",
        TargetKind.FORWARDING_NUMBER: "forwarding_number_id",
        TargetKind.VOICE_MENU: "voice_menu_id",
        TargetKind.MEDIA_FILE: "media_file_id",
        TargetKind.VOICEMAIL_BOX: "voicemail_box_id",
        TargetKind.CLASSIFIER: "classifier_id",
        TargetKind.INTERNAL_NUMBER: "goto_number_id",
    }
)
"""DP-1: the `DialplanStep` column that holds a target of each kind."""

COLUMN_KIND: Final[Mapping[str, TargetKind]] = MappingProxyType(
    {column: kind for kind, column in KIND_COLUMN.items()}
)

LEVEL_DUPLICATE: Final = "level_duplicate"
"""Issue code for two steps sent with the same number (the model keys steps by level)."""

_TIME_FORMAT: Final = "%H:%M"


class StepRow(Protocol):
    """What is read from a stored step (the ORM `DialplanStep` fits)."""

    @property
    def level(self) -> int: ...
    @property
    def action(self) -> str: ...
    @property
    def timeout_s(self) -> int: ...
    @property
    def schedule(self) -> Mapping[str, Any]: ...
    @property
    def conditions(self) -> Mapping[str, Any]: ...
    @property
    def params(self) -> Mapping[str, Any]: ...
    @property
    def options(self) -> Mapping[str, Any]: ...


# --- schedules --------------------------------------------------------------------------------


def schedule_to_json(schedule: Schedule, *, compact: bool = False) -> dict[str, Any]:
    """The JSON form of a schedule; with ``compact`` the default schedule is ``{}``."""
    if compact and schedule.is_always:
        return {}
    return {
        "days": sorted(schedule.days),
        "ranges": [_range_to_json(r) for r in schedule.ranges],
        "exceptions": [
            {
                "date": e.date.isoformat(),
                "open": e.open,
                "ranges": [_range_to_json(r) for r in e.ranges],
            }
            for e in schedule.exceptions
        ],
    }


def schedule_from_json(data: Mapping[str, Any]) -> Schedule:
    """Parse the JSON form; missing keys take the defaults (every day, whole day, no exceptions).

    Raises ValueError for a malformed time ("25:00") or date.
    """
    if not data:
        return Schedule.ALWAYS
    days = data.get("days")
    return Schedule(
        days=ALL_DAYS if days is None else frozenset(int(d) for d in days),
        ranges=tuple(_range_from_json(r) for r in data.get("ranges") or ()),
        exceptions=tuple(_exception_from_json(e) for e in data.get("exceptions") or ()),
    )


def _range_to_json(time_range: TimeRange) -> list[str]:
    return [time_range.start.strftime(_TIME_FORMAT), time_range.end.strftime(_TIME_FORMAT)]


def _range_from_json(value: Iterable[str]) -> TimeRange:
    start, end = value
    return TimeRange(start=_time(start), end=_time(end))


def _time(text: str) -> dt.time:
    return dt.datetime.strptime(text, _TIME_FORMAT).time()


def _exception_from_json(data: Mapping[str, Any]) -> DatedException:
    return DatedException(
        date=dt.date.fromisoformat(str(data["date"])),
        open=bool(data.get("open", False)),
        ranges=tuple(_range_from_json(r) for r in data.get("ranges") or ()),
    )


# --- steps: database row ↔ model ----------------------------------------------------------------


def step_from_row(row: StepRow) -> Step:
    """The pure step of a stored row; the target is the one non-empty target column."""
    return Step(
        level=row.level,
        action=Action(row.action),
        target=_target_of_row(row),
        timeout=row.timeout_s,
        schedule=schedule_from_json(row.schedule),
        conditions={Condition(k): int(v) for k, v in row.conditions.items()},
        params=_param_values(row.params),
        options=_param_values(row.options),
    )


def _target_of_row(row: StepRow) -> TargetRef | None:
    for kind, column in KIND_COLUMN.items():
        value = getattr(row, column, None)
        if value is not None:
            return TargetRef(kind=kind, id=int(value))
    return None


def step_to_columns(step: Step) -> dict[str, Any]:
    """Column values of a `DialplanStep` row for ``step`` (every target column present)."""
    columns: dict[str, Any] = dict.fromkeys(KIND_COLUMN.values())
    if step.target is not None:
        columns[KIND_COLUMN[step.target.kind]] = step.target.id
    columns.update(
        level=step.level,
        action=step.action.value,
        timeout_s=step.timeout,
        schedule=schedule_to_json(step.schedule, compact=True),
        conditions={c.value: level for c, level in step.conditions.items()},
        params=dict(step.params),
        options=dict(step.options),
    )
    return columns


def _param_values(data: Mapping[str, Any]) -> dict[str, ParamValue]:
    return {str(k): v for k, v in data.items() if isinstance(v, bool | int | str)}


# --- steps: API / JSON form ↔ model -------------------------------------------------------------


def step_to_json(step: Step) -> dict[str, Any]:
    """The API form of a step (the schedule always in full)."""
    target = step.target
    return {
        "level": step.level,
        "action": step.action.value,
        "target": None if target is None else {"kind": target.kind.value, "id": target.id},
        "timeout": step.timeout,
        "schedule": schedule_to_json(step.schedule),
        "conditions": {c.value: level for c, level in step.conditions.items()},
        "params": dict(step.params),
        "options": dict(step.options),
    }


def step_from_json(data: Mapping[str, Any]) -> Step:
    """Parse the API form (already shape-checked by the API schema).

    Raises ValueError (or KeyError for a missing ``level`` / ``action``) on malformed data.
    """
    target = data.get("target")
    return Step(
        level=int(data["level"]),
        action=Action(data["action"]),
        target=None if target is None else TargetRef(kind=target["kind"], id=int(target["id"])),
        timeout=int(data.get("timeout", 0)),
        schedule=schedule_from_json(data.get("schedule") or {}),
        conditions={Condition(k): int(v) for k, v in (data.get("conditions") or {}).items()},
        params=_param_values(data.get("params") or {}),
        options=_param_values(data.get("options") or {}),
    )


# --- whole dialplans and issues ---------------------------------------------------------------


def build_dialplan(steps: Iterable[Step], *, version: int) -> tuple[Dialplan, list[Issue]]:
    """Key ``steps`` by level; a second step with a level already used is an error issue.

    Unlike `Dialplan.from_steps` this does not raise, so the API reports a duplicate number
    with the other DP-5 findings (the first step of that number is kept).
    """
    by_level: dict[int, Step] = {}
    issues: list[Issue] = []
    for step in steps:
        if step.level in by_level:
            message = f"step {step.level}: two steps have number {step.level}; numbers are unique"
            issues.append(
                Issue(
                    severity=Severity.ERROR,
                    level=step.level,
                    field="level",
                    code=LEVEL_DUPLICATE,
                    message=message,
                )
            )
            continue
        by_level[step.level] = step
    return Dialplan(steps=by_level, version=version), issues


def issue_field(issue: Issue) -> str:
    """The request path an issue points at: ``steps.<level>.<field>``, or ``steps``."""
    if issue.level is None:
        return issue.field if issue.field.startswith("steps") else f"steps.{issue.field}"
    return f"steps.{issue.level}.{issue.field}"


def issue_to_json(issue: Issue) -> dict[str, Any]:
    """An issue for the API: severity, code, message, the step level and the field path."""
    return {
        "severity": issue.severity.value,
        "code": issue.code,
        "level": issue.level,
        "field": issue_field(issue),
        "message": issue.message,
    }
