"""Dialplan actions in which the PBX itself talks with the caller: voice menus (IVR-1) and
voicemail (VM-1), and the call queue (Q-1, ``queue.py``) and call classifier (CLS-1,
``classifier.py``) steps. See docs/engine.md "Voice menus and voicemail" and "Queues,
classifiers and pickup".

The B2BUA hands these steps to :class:`CallActions` (``B2bua.actions``; the runtime makes it
with :meth:`CallActions.from_settings`):

* ``await actions.perform(b2bua, call, snapshot, decision)`` runs the step and returns the
  DP-3 :class:`~cloudpbx.dialplan.interpreter.Outcome` it ended with, or a :class:`MenuGoto`
  (a menu key chose a number: the B2BUA continues with ``run.goto`` on that number's
  dialplan), or a :class:`Classified` (a classifier step: the B2BUA continues with
  ``run.classified(found, ...)``). Cancelling it (the caller hung up) stops it cleanly; a
  voicemail message is still saved and mailed then.
* ``actions.info(call, request)`` — a SIP INFO in the caller's dialog: its DTMF key goes to the
  running menu (RFC 4733 and in-band keys come from the media, ``engine/actions/listen.py``).
* ``await actions.close()`` — on engine stop: waits (bounded) for e-mails still being sent.

What the actions use of the B2BUA (``engine/b2bua.py``): ``answer_caller(call)``,
``_play_on(call, "a", source)`` (a :class:`~cloudpbx.engine.call.LegPlayer` on the caller's
relay socket), ``_event(call, kind, level, detail)`` (the call record) and ``config``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudpbx.dialplan.interpreter import Outcome, RunAction
from cloudpbx.dialplan.model import Action, Dialplan
from cloudpbx.engine.actions.classifier import Classified, run_classifier
from cloudpbx.engine.actions.listen import CallerInput
from cloudpbx.engine.actions.queue import QueueRegistry, run_queue
from cloudpbx.engine.call import Call
from cloudpbx.media.prompts import prompt_path
from cloudpbx.numbers import NumberingPlan
from cloudpbx.services.mail import Mailer, SmtpConfig

__all__ = ["CallActions", "CallerInput", "Classified", "MenuGoto"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MenuGoto:
    """A voice-menu choice (IVR-1): continue the call at step 1 of ``number``'s dialplan."""

    number: str
    dialplan: Dialplan
    digits: str


class CallActions:
    """Runs voice-menu and voicemail steps (see the module docstring).

    ``cdr`` is the :class:`~cloudpbx.engine.cdr.CdrWriter` (voicemail recording rows);
    ``recordings_dir`` where messages are saved (``<dir>/<client>/voicemail/``);
    ``prompt_dirs`` where the standard prompts are looked for (``<dir>/<lang>/<name>.wav``,
    made by ``cloudpbx prompts``); ``mailer`` None: messages are not e-mailed.
    """

    ACTIONS = frozenset({Action.VOICE_MENU, Action.VOICEMAIL, Action.RING_QUEUE, Action.CLASSIFIER})

    def __init__(
        self,
        *,
        cdr: Any,
        recordings_dir: Path | None,
        prompt_dirs: Sequence[Path] = (),
        mailer: Mailer | None = None,
        tone_country: str = "ru",
        silence_s: float = 5.0,
        numbering: NumberingPlan | None = None,
    ) -> None:
        self.cdr = cdr
        self.recordings_dir = recordings_dir
        self.prompt_dirs = tuple(prompt_dirs)
        self.mailer = mailer
        self.tone_country = tone_country
        self.silence_s = silence_s  # VM-1: this much silence after speech ends a message
        self.inputs: dict[str, CallerInput] = {}  # call uuid -> what the caller keys now
        self.queues = QueueRegistry()  # queue states and this engine's waiting callers
        self.numbering = numbering or NumberingPlan()  # CLS-1: callers' numbers to E.164

    @classmethod
    def from_settings(cls, settings: Any, cdr: Any) -> CallActions:
        """Prompts in ``<data_dir>/prompts`` (where ``cloudpbx prompts`` writes them) or
        ``<media_dir>/prompts``; mail through ``smtp_*`` when ``smtp_host`` is set."""
        config = SmtpConfig.from_settings(settings)
        dirs = [Path(settings.data_dir) / "prompts"]
        if settings.media_dir is not None:
            dirs.append(Path(settings.media_dir) / "prompts")
        return cls(
            cdr=cdr,
            recordings_dir=settings.recordings_dir,
            prompt_dirs=dirs,
            mailer=Mailer(config) if config is not None else None,
            numbering=settings.numbering_plan,
        )

    def handles(self, action: Action) -> bool:
        return action in self.ACTIONS

    async def perform(
        self, b2bua: Any, call: Call, snapshot: Any, decision: RunAction
    ) -> Outcome | MenuGoto | Classified:
        from cloudpbx.engine.actions.menu import run_menu
        from cloudpbx.engine.actions.voicemail import run_voicemail

        if decision.step.action is Action.RING_QUEUE:
            return await run_queue(self.queues, b2bua, call, snapshot, decision)
        if decision.step.action is Action.CLASSIFIER:
            return run_classifier(self.numbering, b2bua, call, snapshot, decision)
        if decision.step.action is Action.VOICE_MENU:
            return await run_menu(self, b2bua, call, snapshot, decision)
        return await run_voicemail(self, b2bua, call, snapshot, decision)

    # --- the caller's keys ------------------------------------------------------------------

    def listen(self, call: Call, *, inband: bool | None = None) -> CallerInput:
        """Start taking the caller's audio and keys (one listener per call at a time)."""
        if call.relay is None:
            raise RuntimeError("the call has no media")
        self.stop_listening(call)
        listener = CallerInput(call.relay, call.caller_leg_checked.payload_types, inband=inband)
        self.inputs[call.uuid] = listener
        return listener

    def stop_listening(self, call: Call) -> None:
        listener = self.inputs.pop(call.uuid, None)
        if listener is not None:
            listener.close()

    def info(self, call: Call, request: Any) -> bool:
        """A SIP INFO from the caller (RFC 6086): True when its DTMF key was taken."""
        listener = self.inputs.get(call.uuid)
        if listener is None:
            return False
        content_type = request.headers.get("content-type", "")
        return listener.info(content_type, request.body or b"")

    # --- files ------------------------------------------------------------------------------

    def prompt(self, language: str, name: str) -> Path | None:
        """A standard prompt in ``language``, else in English or Russian; None if not made."""
        for lang in dict.fromkeys((language, "en", "ru")):
            for root in self.prompt_dirs:
                path = prompt_path(root, lang, name)
                if path.is_file():
                    return path
        return None

    async def close(self, timeout_s: float = 10.0) -> None:
        for listener in self.inputs.values():
            listener.close()
        self.inputs.clear()
        if self.mailer is not None:
            await self.mailer.close(timeout_s)
