"""DP-6: "what happens if caller X calls number N at time T, with these ports registered or
busy and these answers?" — answered by driving the engine's own `CallRun` with assumptions.

Pure, like the interpreter: the caller passes the start time, the assumptions and a
`Directory` that answers the few questions a call asks on its way (another number's dialplan,
a voice menu, whether the caller is in a classifier, how long a media file plays). The
simulated clock starts at ``at`` and advances by each action's assumed duration, so a later
step's schedule is checked at the time the call would really reach it.

What each action does under an `Assumption` (its target's, or the default one):

- ring port / forwarding number / queue: ``registered=False`` (a port with no registration;
  a queue with no agent logged in) → No route at once; ``answer``: ``answer`` after
  ``after_s`` (if that is before the timeout; otherwise No answer at the timeout), then the
  called side hangs up after ``talk_s`` → After answer; ``no_answer`` → No answer at the
  timeout; ``busy`` → Busy after ``after_s``; ``fail`` → No route after ``after_s``;
- play message: answered, lasts ``after_s`` or the media file's length → After answer;
- voicemail: answered, the caller speaks ``after_s`` (at most the timeout) → After answer;
- fax receiver: answered, ``after_s`` (default 60 s) → After answer;
- call classifier: ``found`` if given, else the directory is asked about the caller;
- go to internal number: that number's current dialplan continues the call;
- voice menu: the announcement plays (``after_s``, else its media length, else 5 s), then the
  caller types ``digits[i]`` on the i-th play (one digit a second; a trailing ``#`` ends the
  input, otherwise the inter-digit timeout does); an exhausted list means no input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol

from cloudpbx.dialplan.interpreter import (
    DEFAULT_RING_MAX_S,
    MAX_TRANSITIONS,
    CallRun,
    Decision,
    EndCall,
    Ending,
    Menu,
    MenuCollect,
    MenuCommand,
    MenuDial,
    MenuFailed,
    MenuPlay,
    MenuRun,
    Move,
    Outcome,
    RunAction,
)
from cloudpbx.dialplan.model import Action, Dialplan, TargetKind, TargetRef

DEFAULT_FAX_S: Final = 60.0
DEFAULT_ANNOUNCEMENT_S: Final = 5.0
DIGIT_GAP_S: Final = 1.0
"""A simulated caller presses one key a second."""


class Answer(StrEnum):
    """What a rung target does (DP-6 assumptions)."""

    ANSWER = "answer"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAIL = "fail"


@dataclass(frozen=True, slots=True, kw_only=True)
class Assumption:
    """The assumed state and behaviour of one target (see the module docstring)."""

    registered: bool = True
    answer: Answer = Answer.NO_ANSWER
    after_s: float | None = None
    talk_s: float = 30.0
    digits: tuple[str, ...] = ()
    found: bool | None = None


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """An internal number and the dialplan it has now (None: the number has none)."""

    number: str
    dialplan: Dialplan | None


class Directory(Protocol):
    """What a simulated call looks up; the API answers from the database of the client."""

    def number_by_ref(self, ref: TargetRef) -> NumberPlan | None: ...
    def number_by_digits(self, number: str) -> NumberPlan | None: ...
    def menu(self, menu_id: int) -> Menu | None: ...
    def announcement_s(self, menu_id: int) -> float | None: ...
    def media_s(self, media_id: int) -> float | None: ...
    def in_classifier(self, classifier_id: int, caller: str) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticDirectory:
    """A `Directory` from plain mappings (tests, files)."""

    numbers: Mapping[str, Dialplan | None] = field(default_factory=dict)
    number_ids: Mapping[int, str] = field(default_factory=dict)
    menus: Mapping[int, Menu] = field(default_factory=dict)
    media: Mapping[int, float] = field(default_factory=dict)
    classifiers: Mapping[int, frozenset[str]] = field(default_factory=dict)

    def number_by_ref(self, ref: TargetRef) -> NumberPlan | None:
        number = self.number_ids.get(ref.id)
        return None if number is None else self.number_by_digits(number)

    def number_by_digits(self, number: str) -> NumberPlan | None:
        if number not in self.numbers:
            return None
        return NumberPlan(number, self.numbers[number])

    def menu(self, menu_id: int) -> Menu | None:
        return self.menus.get(menu_id)

    def announcement_s(self, menu_id: int) -> float | None:
        return None

    def media_s(self, media_id: int) -> float | None:
        return self.media.get(media_id)

    def in_classifier(self, classifier_id: int, caller: str) -> bool:
        return caller in self.classifiers.get(classifier_id, frozenset())


@dataclass(frozen=True, slots=True)
class Simulation:
    """The path of a simulated call: moves with reasons, the end, the simulated duration."""

    moves: list[Move]
    steps: list[int]
    outcome: Ending
    sip_status: int | None
    answered: bool
    seconds: float
    transitions: int


@dataclass(frozen=True, slots=True)
class _Effect:
    """What an action did: how long it took and how the run is told about it."""

    seconds: float
    outcome: Outcome | None = None
    answered: bool = False
    found: bool | None = None
    goto: NumberPlan | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Simulator:
    """Runs one simulated call (DP-6); build it, then call `run`."""

    directory: Directory
    time_zone: str
    caller: str = ""
    assumptions: Mapping[TargetRef, Assumption] = field(default_factory=dict)
    default: Assumption = Assumption()
    menu_digits: tuple[str, ...] = ()
    ring_max_s: int = DEFAULT_RING_MAX_S
    max_transitions: int = MAX_TRANSITIONS

    def run(self, dialplan: Dialplan, at: dt.datetime, *, number: str | None = None) -> Simulation:
        call = CallRun(
            dialplan,
            time_zone=self.time_zone,
            ring_max_s=self.ring_max_s,
            max_transitions=self.max_transitions,
            number=number,
        )
        clock = at
        decision: Decision = call.start(clock)
        while isinstance(decision, RunAction):
            effect = self._act(decision)
            clock += dt.timedelta(seconds=effect.seconds)
            decision = _tell(call, effect, clock)
        return _result(call, decision, (clock - at).total_seconds())

    def _assumed(self, step_target: TargetRef | None) -> Assumption:
        if step_target is None:
            return self.default
        return self.assumptions.get(step_target, self.default)

    def _act(self, decision: RunAction) -> _Effect:
        step = decision.step
        assumed = self._assumed(step.target)
        if step.action in _RINGING:
            return _ring(step.target, assumed, decision.timeout_s or self.ring_max_s)
        if step.action is Action.PLAY_MESSAGE:
            return self._message(step.target, assumed)
        if step.action is Action.VOICEMAIL:
            timeout = decision.timeout_s or self.ring_max_s
            spoken = timeout if assumed.after_s is None else min(assumed.after_s, timeout)
            return _finished(spoken, f"the caller spoke {spoken:g} s into the voicemail box")
        if step.action is Action.FAX_RECEIVER:
            length = DEFAULT_FAX_S if assumed.after_s is None else assumed.after_s
            return _finished(length, f"a fax was received in {length:g} s")
        if step.action is Action.CLASSIFIER:
            return self._classify(step.target, assumed)
        if step.action is Action.GOTO_NUMBER:
            return self._goto(step.target)
        if step.action is Action.VOICE_MENU:
            return self._menu(step.target, assumed)
        raise AssertionError(f"the interpreter never runs {step.action}")  # hang-up ends

    def _message(self, target: TargetRef | None, assumed: Assumption) -> _Effect:
        length = assumed.after_s
        if length is None and target is not None:
            length = self.directory.media_s(target.id)
        if length is None:
            return _finished(0.0, "the message was played (its length is unknown)")
        return _finished(length, f"the message played for {length:g} s")

    def _classify(self, target: TargetRef | None, assumed: Assumption) -> _Effect:
        found = assumed.found
        if found is None:
            found = target is not None and self.directory.in_classifier(target.id, self.caller)
        return _Effect(0.0, found=found, detail=f"caller {self.caller or '(none)'}")

    def _goto(self, target: TargetRef | None) -> _Effect:
        found = None if target is None else self.directory.number_by_ref(target)
        return _jump(found, str(target))

    def _menu(self, target: TargetRef | None, assumed: Assumption) -> _Effect:
        menu = None if target is None else self.directory.menu(target.id)
        if target is None or menu is None:
            return _Effect(0.0, Outcome.NO_ROUTE, detail=f"{target} not found")
        length = assumed.after_s
        if length is None:
            length = self.directory.announcement_s(target.id)
        digits = assumed.digits or self.menu_digits
        seconds, ended = _drive_menu(menu, digits, length or DEFAULT_ANNOUNCEMENT_S)
        if isinstance(ended, MenuFailed):
            detail = f"no valid input after {ended.attempts} plays of the menu"
            return _Effect(seconds, Outcome.NO_ANSWER, answered=True, detail=detail)
        jumped = _jump(self.directory.number_by_digits(ended.number), f"number {ended.number}")
        detail = f"the caller keyed {ended.digits}; {jumped.detail}"
        return _Effect(seconds, jumped.outcome, True, goto=jumped.goto, detail=detail)


_RINGING: Final = frozenset({Action.RING_PORT, Action.RING_FORWARDING, Action.RING_QUEUE})


def _ring(target: TargetRef | None, assumed: Assumption, timeout: int) -> _Effect:
    """DP-4 "ring port" / "queue" rows under the assumption."""
    what = str(target)
    if not assumed.registered:
        unreachable = "has no agent available" if _is_queue(target) else "is not registered"
        return _Effect(0.0, Outcome.NO_ROUTE, detail=f"{what} {unreachable}")
    after = assumed.after_s or 0.0
    if assumed.answer is Answer.ANSWER and after < timeout:
        detail = f"{what} answered after {after:g} s; it hung up after {assumed.talk_s:g} s"
        return _Effect(after + assumed.talk_s, Outcome.AFTER_ANSWER, True, detail=detail)
    if assumed.answer in (Answer.ANSWER, Answer.NO_ANSWER):
        return _Effect(float(timeout), Outcome.NO_ANSWER, detail=f"{what} rang {timeout} s")
    if assumed.answer is Answer.BUSY:
        busy = "is full" if _is_queue(target) else "is busy"
        return _Effect(after, Outcome.BUSY, detail=f"{what} {busy}")
    return _Effect(after, Outcome.NO_ROUTE, detail=f"{what} failed")


def _is_queue(target: TargetRef | None) -> bool:
    return target is not None and target.kind is TargetKind.QUEUE


def _finished(seconds: float, detail: str) -> _Effect:
    return _Effect(seconds, Outcome.AFTER_ANSWER, answered=True, detail=detail)


def _jump(found: NumberPlan | None, what: str) -> _Effect:
    if found is None:
        return _Effect(0.0, Outcome.NO_ROUTE, detail=f"{what} does not exist")
    if found.dialplan is None:
        return _Effect(0.0, Outcome.NO_ROUTE, detail=f"number {found.number} has no dialplan")
    return _Effect(0.0, goto=found, detail=f"number {found.number}")


def _drive_menu(
    menu: Menu, digits: Sequence[str], announcement_s: float
) -> tuple[float, MenuDial | MenuFailed]:
    """Feed a `MenuRun` the typed ``digits`` (one string per play); return the time it took."""
    run = MenuRun(menu)
    seconds = 0.0
    command: MenuCommand = run.start()
    while True:
        if isinstance(command, MenuDial | MenuFailed):
            return seconds, command
        assert isinstance(command, MenuPlay)
        seconds += announcement_s
        typed = digits[command.attempt - 1] if command.attempt <= len(digits) else ""
        command = run.played()
        for digit in typed:
            if not isinstance(command, MenuCollect):
                break
            seconds += DIGIT_GAP_S
            command = run.digit(digit)
        if isinstance(command, MenuCollect):
            seconds += command.timeout_s
            command = run.timeout()


def _tell(call: CallRun, effect: _Effect, now: dt.datetime) -> Decision:
    target = effect.goto
    if target is not None and target.dialplan is not None:
        return call.goto(
            target.dialplan,
            now,
            number=target.number,
            answered=effect.answered,
            detail=effect.detail,
        )
    if effect.found is not None:
        return call.classified(effect.found, now, detail=effect.detail)
    assert effect.outcome is not None
    return call.report(effect.outcome, now, answered=effect.answered, detail=effect.detail)


def _result(call: CallRun, end: EndCall, seconds: float) -> Simulation:
    return Simulation(
        moves=list(call.trace),
        steps=list(call.steps),
        outcome=end.outcome,
        sip_status=end.sip_status,
        answered=call.answered,
        seconds=seconds,
        transitions=call.transitions,
    )
