"""The pure dialplan model (PRODUCT.md §3, DP-1…DP-4).

A dialplan belongs to one number and is a set of numbered steps. Everything here is an
immutable value: the API layer builds it from the database, the validator (DP-5) checks it and
the interpreter runs it. Nothing in this package does I/O or reads a clock.

The model is deliberately permissive about *values* (a negative timeout, a step level of 0, a
transition to a missing step can all be represented) so that `cloudpbx.dialplan.validate` can
report every mistake with a message naming the step, instead of the first one raising.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import ClassVar, Final, NamedTuple

ParamValue = int | str | bool
"""The value of an action parameter or a supplementary-service option."""

ENTRY_LEVEL: Final = 1
"""DP-1 / DP-4 "entry": a call enters at step 1, and step 1 cannot be deleted."""

ALL_DAYS: Final = frozenset(range(7))
"""Days of the week as `datetime.date.weekday()` numbers: 0 = Monday … 6 = Sunday."""

MIDNIGHT: Final = dt.time(0)


class Action(StrEnum):
    """DP-2: what a step does (the seed's "Действие")."""

    RING_PORT = "ring_port"
    RING_QUEUE = "ring_queue"
    RING_FORWARDING = "ring_forwarding"  # "Заданный номер"
    VOICE_MENU = "voice_menu"
    PLAY_MESSAGE = "play_message"  # "Звуковое сообщение"
    VOICEMAIL = "voicemail"
    FAX_RECEIVER = "fax_receiver"  # "Service/FAXRECEIVER"
    CLASSIFIER = "classifier"  # "Классификатор вызовов"
    GOTO_NUMBER = "goto_number"  # another internal number; its dialplan continues the call
    HANGUP = "hangup"


class TargetKind(StrEnum):
    """DP-1: the kinds of objects a step can reference (never free text)."""

    PORT = "port"
    QUEUE = "queue"
    FORWARDING_NUMBER = "forwarding_number"
    VOICE_MENU = "voice_menu"
    MEDIA_FILE = "media_file"
    VOICEMAIL_BOX = "voicemail_box"
    CLASSIFIER = "classifier"
    INTERNAL_NUMBER = "internal_number"

    @property
    def label(self) -> str:
        """Human name for messages: ``forwarding_number`` → ``forwarding number``."""
        return self.value.replace("_", " ")


ACTION_TARGET: Final[Mapping[Action, TargetKind | None]] = MappingProxyType(
    {
        Action.RING_PORT: TargetKind.PORT,
        Action.RING_QUEUE: TargetKind.QUEUE,
        Action.RING_FORWARDING: TargetKind.FORWARDING_NUMBER,
        Action.VOICE_MENU: TargetKind.VOICE_MENU,
        Action.PLAY_MESSAGE: TargetKind.MEDIA_FILE,
        Action.VOICEMAIL: TargetKind.VOICEMAIL_BOX,
        Action.FAX_RECEIVER: None,
        Action.CLASSIFIER: TargetKind.CLASSIFIER,
        Action.GOTO_NUMBER: TargetKind.INTERNAL_NUMBER,
        Action.HANGUP: None,
    }
)
"""The kind of target each action requires; ``None`` means the action takes no target."""

CLASSIFIER_FOUND_STEP: Final = "found_step"
CLASSIFIER_NOT_FOUND_STEP: Final = "not_found_step"

STEP_PARAMS: Final[Mapping[Action, tuple[str, ...]]] = MappingProxyType(
    {Action.CLASSIFIER: (CLASSIFIER_FOUND_STEP, CLASSIFIER_NOT_FOUND_STEP)}
)
"""Action parameters whose value is a step level, i.e. transitions besides the conditions.

DP-2: the seed puts the classifier's "found → step" and "not found → step" in the action
itself, so they are parameters, but they are drawn and validated like conditions.
"""


class Condition(StrEnum):
    """DP-3: the transitions of a step (the seed's "Условия"), in the order the UI lists them."""

    FORWARD = "forward"  # "Переадресация": taken at once, skipping action and schedule
    AFTER_ANSWER = "after_answer"  # "После ответа"
    NO_ANSWER = "no_answer"  # "Нет ответа"
    BUSY = "busy"  # "По занято"
    NO_ROUTE = "no_route"  # "Нет маршрута"


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetRef:
    """DP-1: a typed reference to one of the client's objects (port 7, queue 3, …)."""

    kind: TargetKind
    id: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", TargetKind(self.kind))

    def __str__(self) -> str:
        return f"{self.kind.label} {self.id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeRange:
    """A half-open wall-clock range [start, end) in the client's time zone (DP-4 "schedules").

    ``end <= start`` means the range runs past midnight and belongs to the day it starts on;
    ``end == 00:00`` therefore means "until midnight", and ``start == end`` means 24 hours from
    ``start`` (00:00–00:00 is the whole day).
    """

    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("TimeRange takes wall-clock times without tzinfo")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def __str__(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


WHOLE_DAY: Final = TimeRange(start=MIDNIGHT, end=MIDNIGHT)


@dataclass(frozen=True, slots=True, kw_only=True)
class DatedException:
    """A dated override of the week days (DP-1, DP-4 "schedules").

    A holiday is ``open=False`` (and has no ranges); a transferred working day is ``open=True``
    with its ranges, or the whole day when ``ranges`` is empty.
    """

    date: dt.date
    open: bool
    ranges: tuple[TimeRange, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "ranges", tuple(self.ranges))


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """DP-1: when a step is open: days of week + time ranges, plus dated exceptions.

    ``days`` are ``weekday()`` numbers (0 = Monday); empty ``ranges`` means the whole day.
    The default is "any day, any time" (`Schedule.ALWAYS`).
    """

    ALWAYS: ClassVar[Schedule]

    days: frozenset[int] = ALL_DAYS
    ranges: tuple[TimeRange, ...] = ()
    exceptions: tuple[DatedException, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", frozenset(self.days))
        object.__setattr__(self, "ranges", tuple(self.ranges))
        object.__setattr__(self, "exceptions", tuple(self.exceptions))

    @property
    def is_always(self) -> bool:
        """True for the default schedule "any day, any time" with no exceptions."""
        return self.days == ALL_DAYS and not self.ranges and not self.exceptions


Schedule.ALWAYS = Schedule()


def _frozen(mapping: Mapping[str, ParamValue]) -> Mapping[str, ParamValue]:
    return MappingProxyType(dict(mapping))


class Transition(NamedTuple):
    """One arrow of the graph: a condition or a step parameter (``label``) → a step level."""

    label: str
    target: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """DP-1: one step (layer, "слой") of a dialplan.

    ``timeout`` is in seconds, 0 meaning the installation maximum (DP-4 "timeout meaning").
    ``conditions`` map a DP-3 condition to the level of the step to go to. ``params`` are the
    action's parameters (the classifier's `CLASSIFIER_FOUND_STEP` / `CLASSIFIER_NOT_FOUND_STEP`
    levels among them), ``options`` the supplementary-service options (§4.9).
    """

    level: int
    action: Action
    target: TargetRef | None = None
    timeout: int = 0
    schedule: Schedule = Schedule.ALWAYS
    conditions: Mapping[Condition, int] = field(default_factory=dict, hash=False)
    params: Mapping[str, ParamValue] = field(default_factory=dict, hash=False)
    options: Mapping[str, ParamValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", Action(self.action))
        # Keys are normalised to Condition (a plain "busy" works too) and ordered as DP-3 lists
        # them, so that transitions, messages and the drawn graph are deterministic.
        conditions = {Condition(key): level for key, level in self.conditions.items()}
        ordered = {c: conditions[c] for c in Condition if c in conditions}
        object.__setattr__(self, "conditions", MappingProxyType(ordered))
        object.__setattr__(self, "params", _frozen(self.params))
        object.__setattr__(self, "options", _frozen(self.options))

    @property
    def forward(self) -> int | None:
        """The Forward target: when set the step is left at once (DP-4 "on entering a step")."""
        return self.conditions.get(Condition.FORWARD)

    def transitions(self) -> Iterator[Transition]:
        """All arrows out of this step: conditions (DP-3 order), then step parameters.

        A step parameter that is not a step level (not an int) is skipped here; the validator
        reports it.
        """
        for condition, level in self.conditions.items():
            yield Transition(condition.value, level)
        for name in STEP_PARAMS.get(self.action, ()):
            value = self.params.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                yield Transition(name, value)

    def live_transitions(self) -> Iterator[Transition]:
        """The arrows a call can actually take: only Forward when it is set (DP-4)."""
        forward = self.forward
        if forward is not None:
            yield Transition(Condition.FORWARD.value, forward)
        else:
            yield from self.transitions()


@dataclass(frozen=True, slots=True, kw_only=True)
class Dialplan:
    """DP-1: the steps of one number's dialplan, keyed by level, at one saved ``version``.

    A call runs on the version it started with (DP-4 "versions").
    """

    steps: Mapping[int, Step] = field(hash=False)
    version: int

    def __post_init__(self) -> None:
        ordered = {level: self.steps[level] for level in sorted(self.steps)}
        object.__setattr__(self, "steps", MappingProxyType(ordered))

    @classmethod
    def from_steps(cls, steps: Iterable[Step], *, version: int) -> Dialplan:
        """Key ``steps`` by their level; two steps with the same level are a ValueError."""
        by_level: dict[int, Step] = {}
        for step in steps:
            if step.level in by_level:
                raise ValueError(f"two steps have level {step.level}")
            by_level[step.level] = step
        return cls(steps=by_level, version=version)

    @property
    def entry(self) -> Step | None:
        """Step 1, where every call enters (DP-4 "entry"), if it exists."""
        return self.steps.get(ENTRY_LEVEL)

    @property
    def next_level(self) -> int:
        """The level a new step gets: max + 1, never reusing a number (DP-1)."""
        return max(self.steps, default=0) + 1

    def transitions(self, step: Step | int) -> Iterator[Transition]:
        """The arrows out of ``step`` (a Step or its level): ``(label, target_level)`` pairs."""
        if isinstance(step, int):
            step = self.steps[step]
        return step.transitions()
