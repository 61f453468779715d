"""The voice-menu step (IVR-1, PRODUCT.md DP-4 "voice menu" row).

The caller is answered (200 OK, billing starts) unless it already was; then
:class:`~cloudpbx.dialplan.interpreter.MenuRun` decides and this module does what it says:

* `MenuPlay` — play the menu's announcement (a media file of the client) to the caller from
  its relay socket; a key pressed meanwhile stops it and counts as input. A menu without an
  announcement with audio is the "ringback only" variant: the caller hears the ringback tone
  while the keys are collected.
* `MenuCollect` — wait for the next key up to the digit timeout (the menu's, 3 s by default).
* `MenuDial` — the call continues on that internal number's dialplan (:class:`MenuGoto`; a
  number without a dialplan is No route, as for "go to internal number").
* `MenuFailed` — invalid or no input after 3 replays: the step ends with No answer.

Keys come by RFC 4733, in-band or SIP INFO (:class:`~.listen.CallerInput`). With extension
dialling on, every internal number of the client may be dialled.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from cloudpbx.dialplan.interpreter import (
    Menu,
    MenuCollect,
    MenuCommand,
    MenuDial,
    MenuFailed,
    MenuPlay,
    MenuRun,
    Outcome,
    RunAction,
)
from cloudpbx.engine.actions import CallActions, MenuGoto
from cloudpbx.engine.actions.listen import CallerInput
from cloudpbx.engine.call import Call
from cloudpbx.media.player import FileSource, ToneSource
from cloudpbx.media.tones import tone_plan

__all__ = ["menu_of", "run_menu"]


def menu_of(info: Any, snapshot: Any) -> Menu:
    """The interpreter's view of a snapshot ``VoiceMenuInfo``: keys, extension dialling over
    the client's internal numbers, the digit timeout."""
    extensions = frozenset(n.number for n in snapshot.internal_numbers.values())
    return Menu(
        keys=dict(info.keys),
        extension_dialling=bool(info.extension_dialling),
        extensions=extensions if info.extension_dialling else frozenset(),
        digit_timeout_s=float(info.digit_timeout_s or 3),
    )


def _announcement(snapshot: Any, info: Any) -> Path | None:
    if info.announcement_id is None:
        return None
    path = snapshot.media_path(info.announcement_id)
    return path if path is not None and Path(path).is_file() else None


async def run_menu(
    actions: CallActions, b2bua: Any, call: Call, snapshot: Any, decision: RunAction
) -> Outcome | MenuGoto:
    target = decision.step.target
    info = snapshot.voice_menus.get(target.id) if target is not None else None
    if info is None:
        b2bua._event(call, "no_route", decision.level, f"voice menu {target} does not exist")
        return Outcome.NO_ROUTE
    b2bua.answer_caller(call)  # DP-4: a menu answers the caller
    announcement = _announcement(snapshot, info)
    shown = announcement.name if announcement is not None else "ringback only"
    b2bua._event(call, "menu", decision.level, f"{info.name}: {shown}")
    listener = actions.listen(call)
    session = _MenuSession(b2bua, call, listener, announcement, actions.tone_country)
    session.level = decision.level
    try:
        result = await session.run(MenuRun(menu_of(info, snapshot)))
    finally:
        session.stop_playing()
        actions.stop_listening(call)
    return _result(b2bua, call, snapshot, decision, result)


def _result(
    b2bua: Any, call: Call, snapshot: Any, decision: RunAction, result: MenuDial | MenuFailed
) -> Outcome | MenuGoto:
    if isinstance(result, MenuFailed):
        detail = f"no valid input after {result.attempts} plays"
        b2bua._event(call, "menu_failed", decision.level, detail)
        return Outcome.NO_ANSWER  # DP-4: invalid or no input after 3 replays
    number = snapshot.numbers.get(result.number)
    b2bua._event(call, "menu_choice", decision.level, f"{result.digits} -> {result.number}")
    if number is None or number.dialplan is None:
        why = "has no dialplan" if number is not None else "does not exist"
        b2bua._event(call, "no_route", decision.level, f"number {result.number} {why}")
        return Outcome.NO_ROUTE
    return MenuGoto(number.number, number.dialplan, result.digits)


class _MenuSession:
    """Plays and listens for one visit to a menu, obeying :class:`MenuRun`."""

    def __init__(
        self,
        b2bua: Any,
        call: Call,
        listener: CallerInput,
        announcement: Path | None,
        tone_country: str,
    ) -> None:
        self.b2bua = b2bua
        self.call = call
        self.listener = listener
        self.announcement = announcement
        self.tone_country = tone_country
        self.level: int | None = None

    async def run(self, menu: MenuRun) -> MenuDial | MenuFailed:
        command: MenuCommand = menu.start()
        while True:
            if isinstance(command, MenuPlay):
                if command.attempt > 1:  # DP-7: the call record shows every replay
                    self.b2bua._event(self.call, "menu_replay", self.level, str(command.attempt))
                command = await self._play(menu)
            elif isinstance(command, MenuCollect):
                command = await self._collect(menu, command.timeout_s)
            else:
                return command

    async def _play(self, menu: MenuRun) -> MenuCommand:
        if self.announcement is None:
            # "Ringback only": the tone runs on while the keys are collected.
            player = self.call.players.get("a")
            if player is None or not player.playing:
                tone = tone_plan(self.tone_country)["ringback"]
                self.b2bua._play_on(self.call, "a", ToneSource(tone))
            return menu.played()
        played = self.b2bua._play_on(self.call, "a", FileSource(self.announcement))
        digit = await _first_digit(self.listener, played)
        if digit is None:
            return menu.played()
        self.stop_playing()  # a key interrupts the announcement
        return menu.digit(digit)

    async def _collect(self, menu: MenuRun, timeout_s: float) -> MenuCommand:
        try:
            digit = await asyncio.wait_for(self.listener.digits.get(), timeout_s)
        except TimeoutError:
            return menu.timeout()
        return menu.digit(digit)

    def stop_playing(self) -> None:
        player = self.call.players.get("a")
        if player is not None:
            player.stop()


async def _first_digit(listener: CallerInput, played: asyncio.Future[bool]) -> str | None:
    """A key pressed before ``played`` completes, or None once it did."""
    getting: asyncio.Future[str] = asyncio.ensure_future(listener.digits.get())
    waiting: set[asyncio.Future[Any]] = {getting, played}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getting.done():
            getting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getting
    if getting.done() and not getting.cancelled():
        return getting.result()
    return None
