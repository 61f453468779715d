"""services/mail.py (VM-1 e-mail): the voicemail message, the SMTP session with a real server
on 127.0.0.1 (aiosmtpd), retries of transient failures and no retry of permanent ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import SMTP

from cloudpbx.config import Settings
from cloudpbx.services.mail import Mailer, MailError, SmtpConfig, voicemail_message

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)


def _message(tmp_path: Path, *, wav: bool = True, language: str = "en") -> EmailMessage:
    path = tmp_path / "m.wav"
    path.write_bytes(WAV)
    return voicemail_message(
        to="boss@example.test",
        sender="pbx@example.test",
        box_name="sales",
        caller="+74951234567",
        received_at=dt.datetime(2025, 3, 4, 15, 6, 7, tzinfo=ZoneInfo("Europe/Moscow")),
        duration_ms=12_400,
        wav=path if wav else None,
        language=language,
    )


def test_voicemail_message_names_caller_time_and_attaches_wav(tmp_path: Path) -> None:
    """VM-1: the caller's number and the time in the client's time zone; the WAV attached."""
    message = _message(tmp_path)
    assert message["To"] == "boss@example.test"
    assert message["Subject"] == "Voicemail from +74951234567"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "From: +74951234567" in text
    assert "2025-03-04 15:06:07 MSK (UTC+0300)" in text
    assert "Length: 12 s" in text
    [part] = list(message.iter_attachments())
    assert part.get_content_type() == "audio/wav"
    assert part.get_filename() == "voicemail-+74951234567-20250304-150607.wav"
    assert part.get_payload(decode=True) == WAV


def test_voicemail_message_without_audio_and_in_russian(tmp_path: Path) -> None:
    """VM-1 box option "attach audio" off: no attachment, the text says where the audio is."""
    message = _message(tmp_path, wav=False, language="ru")
    assert message["Subject"] == "Голосовое сообщение от +74951234567"
    assert list(message.iter_attachments()) == []
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    assert "детализации" in body.get_content()


def test_smtp_config_from_settings(tmp_path: Path) -> None:
    """No ``smtp_host``: mail is off; otherwise every setting is taken."""
    assert SmtpConfig.from_settings(Settings(data_dir=tmp_path, secret_key="k" * 32)) is None
    config = SmtpConfig.from_settings(
        Settings(
            data_dir=tmp_path,
            secret_key="k" * 32,
            smtp_host="mail.example.test",
            smtp_port=587,
            smtp_from="pbx@example.test",
            smtp_starttls=True,
            smtp_user="pbx",
            smtp_password="pw",
        )
    )
    assert config == SmtpConfig(
        host="mail.example.test",
        port=587,
        sender="pbx@example.test",
        starttls=True,
        user="pbx",
        password="pw",
    )
    assert "pw" not in repr(config)


class _Inbox:
    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


def test_mailer_sends_through_a_real_smtp_server(tmp_path: Path) -> None:
    """The message goes over SMTP (smtplib in the mailer's threads, the server on the loop)."""
    asyncio.run(_send_through_server(tmp_path))


async def _send_through_server(tmp_path: Path) -> None:
    inbox = _Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox, hostname="t"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    mailer = Mailer(SmtpConfig(host="127.0.0.1", port=port, sender="pbx@example.test"))
    try:
        assert await mailer.submit(lambda: _message(tmp_path), "test")
    finally:
        await mailer.close()
        server.close()
    [(rcpt, message)] = inbox.received
    assert rcpt == ["boss@example.test"]
    assert message["Subject"] == "Voicemail from +74951234567"
    assert mailer.sent == 1


def test_transient_failures_are_retried_permanent_ones_not() -> None:
    """RFC 5321 §4.2.1: 4yz / a lost connection is tried again (with back-off), 5yz is not."""
    asyncio.run(_retries())


async def _retries() -> None:
    calls: list[str] = []

    def flaky(_config: SmtpConfig, message: EmailMessage) -> None:
        calls.append(message["Subject"])
        if len(calls) < 3:
            raise smtplib.SMTPServerDisconnected("gone")

    mailer = Mailer(SmtpConfig(host="x"), backoff_s=(0.0, 0.0, 0.0), transport=flaky)
    await mailer.send(lambda: _subject("a"))
    assert calls == ["a", "a", "a"]

    def refused(_config: SmtpConfig, _message: EmailMessage) -> None:
        calls.append("refused")
        raise smtplib.SMTPDataError(554, b"no")

    calls.clear()
    mailer = Mailer(SmtpConfig(host="x"), backoff_s=(0.0, 0.0), transport=refused)
    with pytest.raises(MailError):
        await mailer.send(lambda: _subject("b"))
    assert calls == ["refused"]
    assert not await mailer.submit(lambda: _subject("c"))
    assert mailer.failed == 1
    await mailer.close()


def test_gives_up_after_the_last_attempt() -> None:
    """Transient failures on every attempt: MailError after 1 + len(backoff_s) tries."""
    asyncio.run(_gives_up())


async def _gives_up() -> None:
    def down(_config: SmtpConfig, _message: EmailMessage) -> None:
        raise ConnectionRefusedError("refused")

    mailer = Mailer(SmtpConfig(host="x"), backoff_s=(0.0,), transport=down)
    with pytest.raises(MailError, match="attempt 2"):
        await mailer.send(lambda: _subject("d"))
    await mailer.close()


def _subject(text: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = text
    message["To"] = "a@example.test"
    message.set_content("x")
    return message
