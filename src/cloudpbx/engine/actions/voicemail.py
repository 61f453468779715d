"""The voicemail step (VM-1, PRODUCT.md DP-4 "voicemail" rows).

1. The caller is answered (200 OK, billing starts) unless it already was.
2. The box's greeting plays (its media file), or the standard prompt ``voicemail_greeting`` in
   the box's language (``cloudpbx prompts``), or nothing when neither exists; then the beep
   (the tone plan's 1 kHz, 0.5 s).
3. The caller is recorded (:class:`~cloudpbx.media.recorder_sink.VoicemailSink` on the
   caller's audio, :class:`~.listen.CallerInput`) until ``silence_s`` of silence follows the
   message, the maximum length is reached (DP-4: the step's timeout; 0 = the box's own
   maximum), or the caller hangs up.
4. The message is saved as ``<recordings_dir>/<client>/voicemail/<call uuid>-vm<n>.wav``
   (trailing silence cut), a ``recordings`` row of kind ``voicemail`` lands in the call record,
   and, when the box has an e-mail address and a mail server is configured, the message is
   e-mailed in the background with the caller's number and the time in the client's time
   zone (the WAV attached unless the box says otherwise). A message in which nothing was
   said (the caller hung up at once, or kept silent) is neither kept nor mailed.
5. The step ends with After answer (the caller is still there: silence or maximum length).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from pathlib import Path
from typing import Any, BinaryIO

from cloudpbx.dialplan.interpreter import Outcome, RunAction
from cloudpbx.engine.actions import CallActions
from cloudpbx.engine.call import Call, epoch_ms
from cloudpbx.media.player import FileSource, ToneSource
from cloudpbx.media.recorder import CallRecorder, VoicemailMonitor
from cloudpbx.media.recorder_sink import VoicemailSink
from cloudpbx.media.tones import tone_plan
from cloudpbx.services.mail import voicemail_message

__all__ = ["VoicemailMessage", "run_voicemail"]

log = logging.getLogger(__name__)

GREETING_PROMPT = "voicemail_greeting"


async def run_voicemail(
    actions: CallActions, b2bua: Any, call: Call, snapshot: Any, decision: RunAction
) -> Outcome:
    target = decision.step.target
    box = snapshot.voicemail_boxes.get(target.id) if target is not None else None
    if box is None or actions.recordings_dir is None:
        why = "does not exist" if box is None else "has nowhere to record (no recordings_dir)"
        b2bua._event(call, "no_route", decision.level, f"voicemail box {target} {why}")
        return Outcome.NO_ROUTE
    b2bua.answer_caller(call)  # DP-4: voicemail answers the caller
    b2bua._event(call, "voicemail", decision.level, box.name)
    greeting = _greeting(actions, snapshot, box)
    if greeting is not None:
        await b2bua._play_on(call, "a", FileSource(greeting))
    await b2bua._play_on(call, "a", ToneSource(tone_plan(actions.tone_country)["beep"]))
    max_s = decision.step.timeout if decision.step.timeout > 0 else box.max_message_s
    message = VoicemailMessage(actions, b2bua, call, snapshot, box, max_s=max_s)
    try:
        reason = await message.sink.wait()
        b2bua._event(call, "voicemail_end", decision.level, reason.value)
    finally:
        message.finish()  # also when the caller hung up (this task is cancelled then)
    return Outcome.AFTER_ANSWER


def _greeting(actions: CallActions, snapshot: Any, box: Any) -> Path | None:
    if box.greeting_id is not None:
        path = snapshot.media_path(box.greeting_id)
        if path is not None and Path(path).is_file():
            return Path(path)
    return actions.prompt(box.language, GREETING_PROMPT)


class VoicemailMessage:
    """One message being recorded: the file, the caller's audio, the end (save, CDR, mail)."""

    def __init__(
        self,
        actions: CallActions,
        b2bua: Any,
        call: Call,
        snapshot: Any,
        box: Any,
        *,
        max_s: float,
    ) -> None:
        self.actions = actions
        self.b2bua = b2bua
        self.call = call
        self.snapshot = snapshot
        self.box = box
        assert actions.recordings_dir is not None
        call.recordings += 1
        folder = Path(actions.recordings_dir) / str(call.client_id) / "voicemail"
        self.path = folder / f"{call.uuid}-vm{call.recordings}.wav"
        folder.mkdir(parents=True, exist_ok=True)
        self.start_ms = epoch_ms()
        self.listener = actions.listen(call, inband=False)
        self._file: BinaryIO = self.path.open("wb")
        clock = self._clock
        recorder = CallRecorder(
            self._file, start=clock(), layout="a", max_seconds=max_s, sync_every=5.0
        )
        monitor = VoicemailMonitor(max_seconds=max_s, silence_seconds=actions.silence_s)
        self.sink = VoicemailSink(recorder, monitor, clock=clock)
        self.listener.add_sink(self.sink)
        self.done = False

    def _clock(self) -> float:
        return self.listener.frame_time

    def finish(self) -> None:
        """Close the file; keep and mail it unless nothing was said (idempotent)."""
        if self.done:
            return
        self.done = True
        self.actions.stop_listening(self.call)
        samples = self.sink.finish()
        self._file.close()
        if self.sink.monitor.empty or samples == 0:
            self.path.unlink(missing_ok=True)
            self.b2bua._event(self.call, "voicemail_empty", None, self.box.name)
            return
        duration_ms = samples * 1000 // 8000
        self._record(duration_ms)
        self._mail(duration_ms)

    def _record(self, duration_ms: int) -> None:
        try:
            self.actions.cdr.recording(
                self.call.uuid,
                path=self.path,
                start_ms=self.start_ms,
                duration_ms=duration_ms,
                size_bytes=self.path.stat().st_size,
                kind="voicemail",
            )
        except Exception:
            log.exception("call %s: voicemail recording row failed", self.call.uuid)
        self.b2bua._event(self.call, "recording", None, f"voicemail {self.path.name}")

    def _mail(self, duration_ms: int) -> None:
        mailer, box = self.actions.mailer, self.box
        if not box.email:
            return
        if mailer is None:
            log.info("voicemail for box %s not mailed: smtp_host is not set", box.id)
            return
        received = dt.datetime.fromtimestamp(self.start_ms / 1000, self.snapshot.tz)
        build = functools.partial(
            voicemail_message,
            to=box.email,
            sender=mailer.config.sender,
            box_name=box.name,
            caller=self.call.caller,
            received_at=received,
            duration_ms=duration_ms,
            wav=self.path if box.attach_audio else None,
            language=box.language,
        )
        mailer.submit(build, f"voicemail {self.path.name} to {box.email}")
        self.b2bua._event(self.call, "voicemail_mail", None, box.email)
