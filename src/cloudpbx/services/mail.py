"""Outgoing e-mail (VM-1: voicemail messages) over SMTP, off the event loop.

``aiosmtplib`` is not a dependency: the standard library's :mod:`smtplib` runs in a small
thread pool of its own (2 threads), so a slow or unreachable mail server never blocks the
event loop nor the default executor the engine uses for other work.

* :class:`SmtpConfig` — the server (settings ``smtp_host``, ``smtp_port``, ``smtp_from``,
  ``smtp_starttls``, ``smtp_user``, ``smtp_password``; see docs/operations.md);
  :meth:`SmtpConfig.from_settings` is None when ``smtp_host`` is unset (mail is off).
* :class:`Mailer` — ``await mailer.send(build)`` builds the message (``build()``, in the worker
  thread: it may read an attachment from disk) and sends it, retrying transient failures
  (connection errors, 4xx replies) with back-off; a permanent refusal (5xx) is not retried.
  ``mailer.submit(build)`` does the same in the background (the caller does not wait: a
  voicemail's call ends at once); ``await mailer.close()`` waits for what is still going.
* :func:`voicemail_message` — the VM-1 message: the caller's number and the time in the
  client's time zone in the subject and text, the WAV attached when the box says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Final

__all__ = [
    "DEFAULT_BACKOFF_S",
    "MailError",
    "Mailer",
    "SmtpConfig",
    "send_sync",
    "voicemail_message",
]

log = logging.getLogger(__name__)

DEFAULT_BACKOFF_S: Final = (2.0, 10.0, 60.0)
"""Waits before the 2nd, 3rd and 4th attempt to send one message."""

MessageBuilder = Callable[[], EmailMessage]


class MailError(Exception):
    """The message could not be sent (after every attempt, or refused for good)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "cloudpbx@localhost"
    starttls: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any) -> SmtpConfig | None:
        """The installation's mail server, or None when ``smtp_host`` is not set."""
        host = getattr(settings, "smtp_host", None)
        if not host:
            return None
        return cls(
            host=host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            starttls=settings.smtp_starttls,
            user=settings.smtp_user or None,
            password=settings.smtp_password or None,
        )


def send_sync(config: SmtpConfig, message: EmailMessage) -> None:
    """One SMTP session (RFC 5321): STARTTLS (RFC 3207) and AUTH when configured."""
    if message["From"] is None:
        message["From"] = config.sender
    with smtplib.SMTP(config.host, config.port, timeout=config.timeout_s) as smtp:
        if config.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if config.user is not None:
            smtp.login(config.user, config.password or "")
        smtp.send_message(message)


def _permanent(exc: BaseException) -> bool:
    """RFC 5321 §4.2.1: a 5yz reply will fail again; 4yz and lost connections may not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    code = getattr(exc, "smtp_code", None)
    return isinstance(code, int) and code >= 500


class Mailer:
    """Sends messages through one :class:`SmtpConfig` (see the module docstring)."""

    def __init__(
        self,
        config: SmtpConfig,
        *,
        backoff_s: Sequence[float] = DEFAULT_BACKOFF_S,
        transport: Callable[[SmtpConfig, EmailMessage], None] = send_sync,
    ) -> None:
        self.config = config
        self.backoff_s = tuple(backoff_s)
        self._transport = transport
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="smtp")
        self._pending: set[asyncio.Task[bool]] = set()
        self.sent = 0
        self.failed = 0

    async def send(self, build: MessageBuilder) -> None:
        """Build and send one message; :class:`MailError` when it could not be sent."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            try:
                await loop.run_in_executor(self._executor, self._build_and_send, build)
            except (OSError, smtplib.SMTPException) as exc:
                if _permanent(exc) or attempt > len(self.backoff_s):
                    raise MailError(f"attempt {attempt}: {exc}") from exc
                wait = self.backoff_s[attempt - 1]
                log.warning("mail attempt %d failed (%s); retrying in %s s", attempt, exc, wait)
                await asyncio.sleep(wait)
                continue
            return

    def _build_and_send(self, build: MessageBuilder) -> None:
        self._transport(self.config, build())

    def submit(self, build: MessageBuilder, what: str = "message") -> asyncio.Task[bool]:
        """Send in the background; failures are logged (the task's result: sent or not)."""
        task = asyncio.get_running_loop().create_task(self._deliver(build, what))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _deliver(self, build: MessageBuilder, what: str) -> bool:
        try:
            await self.send(build)
        except MailError as exc:
            self.failed += 1
            log.error("could not mail %s: %s", what, exc)
            return False
        except Exception:
            self.failed += 1
            log.exception("could not mail %s", what)
            return False
        self.sent += 1
        return True

    async def close(self, timeout_s: float = 10.0) -> None:
        """Wait (bounded) for messages still being sent, then stop the worker threads."""
        if self._pending:
            _done, late = await asyncio.wait(list(self._pending), timeout=timeout_s)
            for task in late:
                task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


# --- VM-1 ---------------------------------------------------------------------------------

_TEXTS: Final = {
    "en": (
        "Voicemail from {caller}",
        "A new message in voicemail box \u201c{box}\u201d.\n\n"
        "From: {caller}\nReceived: {when}\nLength: {seconds} s\n",
        "The recording is attached.\n",
        "The recording is in the call detail.\n",
    ),
    "ru": (
        "Голосовое сообщение от {caller}",
        "Новое сообщение в ящике голосовой почты «{box}».\n\n"
        "От: {caller}\nПолучено: {when}\nДлительность: {seconds} с\n",
        "Запись во вложении.\n",
        "Запись доступна в детализации звонка.\n",
    ),
}


def voicemail_message(
    *,
    to: str,
    sender: str,
    box_name: str,
    caller: str,
    received_at: dt.datetime,
    duration_ms: int,
    wav: Path | None,
    language: str = "en",
) -> EmailMessage:
    """The e-mail for one voicemail message (VM-1). ``received_at`` is aware, in the client's
    time zone; ``wav`` (read here: call it off the event loop) is attached when given."""
    subject, text, attached, not_attached = _TEXTS.get(language, _TEXTS["en"])
    when = received_at.strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)")
    seconds = round(duration_ms / 1000)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject.format(caller=caller)
    message["Date"] = format_datetime(received_at)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    body = text.format(box=box_name, caller=caller, when=when, seconds=seconds)
    message.set_content(body + (attached if wav is not None else not_attached))
    if wav is not None:
        stamp = received_at.strftime("%Y%m%d-%H%M%S")
        name = f"voicemail-{_safe(caller)}-{stamp}.wav"
        message.add_attachment(wav.read_bytes(), "audio", "wav", filename=name)
    return message


def _safe(text: str) -> str:
    """A caller number fit for a file name (numbers are digits and ``+``; be safe anyway)."""
    return "".join(c if c.isalnum() or c in "+-_" else "_" for c in text)[:40] or "unknown"
