"""The dialplan interpreter (PRODUCT.md §3, DP-4 — the table there is the specification).

Pure: no I/O, no database, no clock of its own. The caller (the B2BUA, or the simulator of
DP-6) passes every instant as an aware datetime; schedules are checked on the client's wall
clock through `cloudpbx.dialplan.schedule`.

How the engine drives a call
----------------------------
``run = CallRun(dialplan, time_zone="Europe/Moscow", ring_max_s=120, number="100")`` holds the
`Dialplan` object the call started with, so a later save never disturbs it (DP-4 "versions").
Every method returns a `Decision`:

- `RunAction` — perform ``decision.step``'s action with the effective ``timeout_s`` and tell
  the run how it ended:

  * ``run.report(outcome, now, answered=..., detail=...)`` with an `Outcome` (the DP-3
    condition the action produced). ``answered=True`` once the caller's leg got its 200 OK
    (message, voicemail, fax and menu answer the caller; a ring action answers when the callee
    does); answering is remembered, so a later exit without a target is a BYE, not a 4xx.
    `ring_failure_outcome` turns the final responses of the forked branches into Busy or No
    route as the DP-4 "ring port" row says.
  * ``run.classified(found, now)`` for the call classifier (its exits are the step's
    ``found_step`` / ``not_found_step`` parameters).
  * ``run.goto(dialplan, now, number=...)`` for "go to internal number" and for a voice-menu
    key: the call continues at step 1 of that number's dialplan under the same loop guard.
    A number without a dialplan is ``run.report(Outcome.NO_ROUTE, ...)``.
- `EndCall` — end the call: ``sip_status`` is the final response for an unanswered caller
  (486, 480, 603 for the hang-up action, 404 from `unknown_number`), or ``None`` when the
  caller was answered and the call ends with a BYE. ``outcome`` is an `Ending`: one of the four
  conditions, or ``hangup``, ``loop`` (50 transitions), ``no_entry`` (no step 1),
  ``unknown_number``.

``run.trace`` is the list of `Move` records (from level, to level, condition, reason, time,
number) and ``run.steps`` the levels entered in order — the DP-7 trace the call record keeps.

Voice menus (IVR-1, DP-4 "voice menu" row) are a separate small state machine, `MenuRun`,
the engine feeds with digits and timer expiries. It ends with `MenuDial` (the engine then
calls ``run.goto`` with that number's dialplan) or `MenuFailed` (``run.report(NO_ANSWER,
answered=True)``). Keeping it apart keeps `CallRun` about steps only, and lets the menu's
announcement / digit timers live in the engine where the media is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

from cloudpbx.dialplan.model import (
    CLASSIFIER_FOUND_STEP,
    CLASSIFIER_NOT_FOUND_STEP,
    ENTRY_LEVEL,
    Action,
    Condition,
    Dialplan,
    Step,
)
from cloudpbx.dialplan.schedule import matches, to_local

DEFAULT_RING_MAX_S: Final = 120
"""DP-4 "timeout meaning": a timeout of 0 means the installation maximum, 120 s by default."""

MAX_TRANSITIONS: Final = 50
"""DP-4 "loop guard": at most 50 step transitions per call."""

NO_PROVISIONAL_S: Final = 2.0
"""DP-4 "ring port": a branch with no 1xx within 2 s counts as No route."""

BUSY_STATUSES: Final = frozenset({486, 600, 603})
"""DP-4 "ring port": a failed branch that said one of these makes the step Busy."""

HANGUP_STATUS: Final = 603
"""The hang-up action rejects an unanswered caller with 603 Decline (RFC 3261 §21.6.2)."""

MENU_DIGIT_TIMEOUT_S: Final = 3.0
"""DP-4 "voice menu": inter-digit timeout."""

MENU_MAX_REPLAYS: Final = 3
"""DP-4 "voice menu": invalid or no input replays the menu up to 3 times, then No answer."""

MENU_MAX_DIGITS: Final = 32
"""More digits than any internal number has: the input is invalid (bounds the buffer)."""


class Outcome(StrEnum):
    """DP-3: the conditions an action can end with (values equal `Condition` values)."""

    AFTER_ANSWER = "after_answer"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    NO_ROUTE = "no_route"

    @property
    def condition(self) -> Condition:
        return Condition(self.value)


class Ending(StrEnum):
    """Why a call ended: an exit without a target, or one of the interpreter's own ends."""

    AFTER_ANSWER = "after_answer"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    NO_ROUTE = "no_route"
    HANGUP = "hangup"  # the hang-up action
    LOOP = "loop"  # DP-4 "loop guard"
    NO_ENTRY = "no_entry"  # the dialplan has no step 1
    UNKNOWN_NUMBER = "unknown_number"  # the dialled number does not exist (the engine's lookup)


UNANSWERED_STATUS: Final[Mapping[Ending, int]] = MappingProxyType(
    {
        Ending.AFTER_ANSWER: 480,  # only reachable with answered=False: nothing to hang up
        Ending.NO_ANSWER: 480,
        Ending.BUSY: 486,
        Ending.NO_ROUTE: 480,
        Ending.HANGUP: HANGUP_STATUS,
        Ending.LOOP: 480,
        Ending.NO_ENTRY: 480,
        Ending.UNKNOWN_NUMBER: 404,
    }
)
"""DP-4 "condition with no target": the final response an unanswered caller gets."""


@dataclass(frozen=True, slots=True)
class RunAction:
    """Perform ``step``'s action; ``timeout_s`` is the effective timeout (None: not timed)."""

    step: Step
    timeout_s: int | None
    number: str | None = None

    @property
    def level(self) -> int:
        return self.step.level

    @property
    def action(self) -> Action:
        return self.step.action


@dataclass(frozen=True, slots=True)
class EndCall:
    """End the call: ``sip_status`` for an unanswered caller, ``None`` = BYE (answered)."""

    outcome: Ending
    sip_status: int | None
    level: int | None = None


Decision = RunAction | EndCall


@dataclass(frozen=True, slots=True)
class Move:
    """One line of the DP-7 trace. ``to_level`` None is the end of the call; ``from_level``
    None the entry. ``condition`` is the exit taken (a DP-3 condition, a classifier exit,
    ``entry`` or ``goto_number``), ``number`` the number whose dialplan ``to_level`` is in."""

    from_level: int | None
    to_level: int | None
    condition: str
    reason: str
    at: dt.datetime
    number: str | None = None


def unknown_number(number: str) -> EndCall:
    """DP-4: 404 only when the dialled number does not exist (the engine looks it up)."""
    del number  # the status does not depend on it; the parameter documents the call site
    return EndCall(Ending.UNKNOWN_NUMBER, UNANSWERED_STATUS[Ending.UNKNOWN_NUMBER])


def ring_failure_outcome(
    final_statuses: Iterable[int | None], *, limit_reached: bool = False
) -> Outcome:
    """DP-4 "ring port": every branch failed — Busy if one said 486/600/603 or the target's
    concurrent limit is reached, else No route (404/408/480/503, ``None`` for a transport
    error or no 1xx within `NO_PROVISIONAL_S`)."""
    if limit_reached or any(status in BUSY_STATUSES for status in final_statuses):
        return Outcome.BUSY
    return Outcome.NO_ROUTE


def effective_timeout(step: Step, ring_max_s: int) -> int | None:
    """DP-4 "timeout meaning": ring time / queue wait / voicemail length, 0 = the maximum;
    ``None`` for actions whose timeout is ignored (a message plays to its end)."""
    if step.action in _TIMED_ACTIONS:
        return step.timeout if step.timeout > 0 else ring_max_s
    return None


_TIMED_ACTIONS: Final = frozenset(
    {Action.RING_PORT, Action.RING_FORWARDING, Action.RING_QUEUE, Action.VOICEMAIL}
)


@dataclass(frozen=True, slots=True)
class _Hop:
    """A transition the run is about to take (checked against the loop guard first)."""

    target: int
    condition: str
    reason: str


class CallRun:
    """One call's walk through dialplan steps (DP-4). See the module docstring for the API."""

    def __init__(
        self,
        dialplan: Dialplan,
        *,
        time_zone: str,
        ring_max_s: int = DEFAULT_RING_MAX_S,
        max_transitions: int = MAX_TRANSITIONS,
        number: str | None = None,
    ) -> None:
        if ring_max_s <= 0 or max_transitions < 0:
            raise ValueError("ring_max_s must be positive and max_transitions not negative")
        ZoneInfo(time_zone)  # an unknown zone fails here, not in the middle of a call
        self.dialplan = dialplan
        self.number = number
        self.time_zone = time_zone
        self.ring_max_s = ring_max_s
        self.max_transitions = max_transitions
        self.answered = False
        self.transitions = 0
        self.trace: list[Move] = []
        self.steps: list[int] = []
        self.result: EndCall | None = None
        self._pending: Step | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def level(self) -> int | None:
        """The step the call is in (the last one entered)."""
        return self.steps[-1] if self.steps else None

    # --- the engine's calls ---------------------------------------------------------------

    def start(self, now: dt.datetime) -> Decision:
        """DP-4 "entry": the call enters at step 1 (no step 1 → 480)."""
        if self.trace:
            raise RuntimeError("the call has already started")
        self._move(None, ENTRY_LEVEL, "entry", "the call enters at step 1", now)
        return self._enter(ENTRY_LEVEL, now)

    def report(
        self, outcome: Outcome, now: dt.datetime, *, answered: bool = False, detail: str = ""
    ) -> Decision:
        """The action of the pending step ended with ``outcome``: take that condition."""
        step = self._take_pending()
        self.answered = self.answered or answered
        return self._exit(step, outcome.condition, Ending(outcome.value), now, detail)

    def classified(self, found: bool, now: dt.datetime, *, detail: str = "") -> Decision:
        """DP-2 call classifier: leave through ``found_step`` or ``not_found_step``; an empty
        exit is a condition with no target (No route: 480, or BYE once answered)."""
        step = self._take_pending()
        if step.action is not Action.CLASSIFIER:
            raise RuntimeError(f"step {step.level} is not a classifier")
        name = CLASSIFIER_FOUND_STEP if found else CLASSIFIER_NOT_FOUND_STEP
        what = "is in the classifier" if found else "is not in the classifier"
        reason = _join(f"step {step.level}: the caller {what}", detail)
        target = step.params.get(name)
        if isinstance(target, int) and not isinstance(target, bool):
            return self._hop(_Hop(target, name, f"{reason} → step {target}"), now)
        return self._end(Ending.NO_ROUTE, step.level, name, f"{reason}; the exit is empty", now)

    def goto(
        self,
        dialplan: Dialplan,
        now: dt.datetime,
        *,
        number: str | None = None,
        answered: bool = False,
        detail: str = "",
    ) -> Decision:
        """DP-2 "go to internal number" (and a menu key): continue at step 1 of ``dialplan``,
        the one that number has now; the transition counts against the same loop guard.
        ``answered`` is True when a voice menu answered the caller before the jump."""
        step = self._take_pending()
        self.answered = self.answered or answered
        what = f"number {number}" if number is not None else "another number"
        reason = _join(f"step {step.level}: go to {what}", detail) + " → its step 1"
        if self.transitions >= self.max_transitions:
            return self._loop(step.level, now)
        self.transitions += 1
        self.dialplan = dialplan
        self.number = number
        self._move(step.level, ENTRY_LEVEL, "goto_number", reason, now)
        return self._enter(ENTRY_LEVEL, now)

    # --- stepping ---------------------------------------------------------------------------

    def _take_pending(self) -> Step:
        if self.result is not None:
            raise RuntimeError("the call has ended")
        if self._pending is None:
            raise RuntimeError("no action is running: call start() first")
        step, self._pending = self._pending, None
        return step

    def _enter(self, level: int, now: dt.datetime) -> Decision:
        """DP-4 "on entering a step", following Forward hops without recursion."""
        while True:
            arrived = self._arrive(level, now)
            if not isinstance(arrived, _Hop):
                return arrived
            if self.transitions >= self.max_transitions:
                return self._loop(level, now)
            self.transitions += 1
            self._move(level, arrived.target, arrived.condition, arrived.reason, now)
            level = arrived.target

    def _arrive(self, level: int, now: dt.datetime) -> Decision | _Hop:
        step = self.dialplan.steps.get(level)
        if step is None:
            ending = Ending.NO_ENTRY if level == ENTRY_LEVEL else Ending.NO_ROUTE
            return self._end(ending, level, ending.value, f"step {level} does not exist", now)
        self.steps.append(level)
        if step.forward is not None:
            reason = f"step {level}: forward is set → step {step.forward} (action skipped)"
            return _Hop(step.forward, Condition.FORWARD.value, reason)
        local = to_local(now, self.time_zone)
        if not matches(step.schedule, local):
            detail = f"the schedule is closed at {local:%a %Y-%m-%d %H:%M} ({self.time_zone})"
            return self._leave(step, Condition.NO_ROUTE, Ending.NO_ROUTE, now, detail)
        if step.action is Action.HANGUP:
            return self._end(Ending.HANGUP, level, "hangup", f"step {level}: hang up", now)
        self._pending = step
        return RunAction(step, effective_timeout(step, self.ring_max_s), self.number)

    def _exit(
        self, step: Step, condition: Condition, ending: Ending, now: dt.datetime, detail: str
    ) -> Decision:
        left = self._leave(step, condition, ending, now, detail)
        return self._hop(left, now) if isinstance(left, _Hop) else left

    def _leave(
        self, step: Step, condition: Condition, ending: Ending, now: dt.datetime, detail: str
    ) -> EndCall | _Hop:
        """Leave ``step`` through ``condition``; without a target the call ends (DP-4)."""
        self._pending = None
        reason = _join(f"step {step.level}: {condition.value.replace('_', ' ')}", detail)
        target = step.conditions.get(condition)
        if target is None:
            return self._end(ending, step.level, condition.value, f"{reason}; no next step", now)
        return _Hop(target, condition.value, f"{reason} → step {target}")

    def _hop(self, hop: _Hop, now: dt.datetime) -> Decision:
        source = self.level
        if self.transitions >= self.max_transitions:
            return self._loop(source, now)
        self.transitions += 1
        self._move(source, hop.target, hop.condition, hop.reason, now)
        return self._enter(hop.target, now)

    def _loop(self, level: int | None, now: dt.datetime) -> EndCall:
        reason = f"more than {self.max_transitions} step transitions: the call is looping"
        return self._end(Ending.LOOP, level, "loop", reason, now)

    def _end(
        self, ending: Ending, level: int | None, condition: str, reason: str, now: dt.datetime
    ) -> EndCall:
        status = None if self.answered else UNANSWERED_STATUS[ending]
        shown = "BYE (the caller was answered)" if status is None else f"SIP {status}"
        self._move(level, None, condition, f"{reason} → the call ends: {shown}", now)
        self._pending = None
        self.result = EndCall(ending, status, level)
        return self.result

    def _move(
        self,
        source: int | None,
        target: int | None,
        condition: str,
        reason: str,
        now: dt.datetime,
    ) -> None:
        self.trace.append(Move(source, target, condition, reason, now, self.number))


def _join(head: str, detail: str) -> str:
    return f"{head} ({detail})" if detail else head


# --- voice menus (IVR-1, DP-4 "voice menu") -------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Menu:
    """What a `MenuRun` needs of a voice menu: the key map (key → internal number),
    extension dialling and the client's internal numbers it may reach, the digit timeout."""

    keys: Mapping[str, str] = field(default_factory=dict, hash=False)
    extension_dialling: bool = False
    extensions: frozenset[str] = frozenset()
    digit_timeout_s: float = MENU_DIGIT_TIMEOUT_S
    max_replays: int = MENU_MAX_REPLAYS

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        object.__setattr__(self, "extensions", frozenset(self.extensions))


@dataclass(frozen=True, slots=True)
class MenuPlay:
    """Play the announcement (attempt 1 is the first play); digits may interrupt it."""

    attempt: int


@dataclass(frozen=True, slots=True)
class MenuCollect:
    """Wait up to ``timeout_s`` for the next digit, then call `MenuRun.timeout`."""

    timeout_s: float


@dataclass(frozen=True, slots=True)
class MenuDial:
    """The caller chose ``number``: continue with its dialplan (`CallRun.goto`)."""

    number: str
    digits: str


@dataclass(frozen=True, slots=True)
class MenuFailed:
    """Invalid or no input after every replay: the menu step ends with No answer."""

    attempts: int


MenuCommand = MenuPlay | MenuCollect | MenuDial | MenuFailed


class MenuRun:
    """The digit collection of one visit to a voice menu (DP-4 "voice menu" row).

    ``start()`` → `MenuPlay`; the engine plays the announcement and calls ``played()`` when it
    ends, or ``digit(d)`` when a digit interrupts it; ``timeout()`` when a `MenuCollect` wait
    runs out. A key mapped to a number dials it at once, unless extension dialling is on and
    an extension starts with that digit; otherwise ``#`` or the inter-digit timeout ends the
    input, which is an extension (when allowed) or a single mapped key. Invalid or no input
    replays the announcement up to ``max_replays`` times, then `MenuFailed`.
    """

    def __init__(self, menu: Menu) -> None:
        self.menu = menu
        self.attempt = 0
        self.buffer = ""
        self.result: MenuDial | MenuFailed | None = None

    def start(self) -> MenuCommand:
        if self.attempt:
            raise RuntimeError("the menu has already started")
        return self._play()

    def played(self) -> MenuCommand:
        """The announcement ended with no digit: wait for the first one."""
        self._check_running()
        return MenuCollect(self.menu.digit_timeout_s)

    def digit(self, digit: str) -> MenuCommand:
        self._check_running()
        if digit == "#":
            return self._evaluate()
        self.buffer += digit
        if len(self.buffer) == 1 and self._dials_at_once(digit):
            return self._finish(MenuDial(self.menu.keys[digit], digit))
        if len(self.buffer) > MENU_MAX_DIGITS:
            return self._invalid()
        return MenuCollect(self.menu.digit_timeout_s)

    def timeout(self) -> MenuCommand:
        """The inter-digit timeout ran out: the input so far is complete."""
        self._check_running()
        return self._evaluate()

    def _dials_at_once(self, digit: str) -> bool:
        if digit not in self.menu.keys:
            return False
        if not self.menu.extension_dialling:
            return True
        return not any(number.startswith(digit) for number in self.menu.extensions)

    def _evaluate(self) -> MenuCommand:
        entered = self.buffer
        if self.menu.extension_dialling and entered in self.menu.extensions:
            return self._finish(MenuDial(entered, entered))
        if entered in self.menu.keys:
            return self._finish(MenuDial(self.menu.keys[entered], entered))
        return self._invalid()

    def _invalid(self) -> MenuCommand:
        if self.attempt > self.menu.max_replays:
            return self._finish(MenuFailed(self.attempt))
        return self._play()

    def _play(self) -> MenuPlay:
        self.attempt += 1
        self.buffer = ""
        return MenuPlay(self.attempt)

    def _finish(self, result: MenuDial | MenuFailed) -> MenuCommand:
        self.result = result
        return result

    def _check_running(self) -> None:
        if self.result is not None:
            raise RuntimeError("the menu has ended")
        if not self.attempt:
            raise RuntimeError("call start() first")
