"""Voicemail with a real phone and a real SMTP server (VM-1, PRODUCT.md DP-4 "voicemail"):
the caller hears the greeting and the beep, what it says is saved (a ``recordings`` row of
kind ``voicemail``) and e-mailed with the caller's number and the time as a WAV attachment
(aiosmtpd on 127.0.0.1 receives it); the step's timeout caps the message; a caller who hangs
up at once leaves nothing and no mail is sent."""

from __future__ import annotations

import asyncio
import email
import email.policy
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from cloudpbx.db.models import VoicemailBox

from ..media.signal import chirp_pcm, correlate_windows, read_wav, write_wav
from ..sip.conftest import HOST, LoopThread, Phone, phones  # noqa: F401 - the phone fixture
from .pbx_harness import Pbx, Seeder, read_channel, start_pbx, step, tone_ratio, write_tone

MAILBOX = "boss@example.test"


class _Inbox:
    """aiosmtpd handler: every message received, parsed, on a thread-safe queue."""

    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[list[str], EmailMessage]] = queue.Queue()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.put((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@dataclass
class MailServer:
    inbox: _Inbox
    port: int
    thread: LoopThread
    server: asyncio.Server


def start_mail_server() -> MailServer:
    inbox = _Inbox()
    thread = LoopThread()

    async def serve() -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: SMTP(inbox, hostname="mail.test"), HOST, 0)

    server = thread.run(serve())
    return MailServer(inbox, server.sockets[0].getsockname()[1], thread, server)


def build(s: Seeder) -> None:
    """alice (caller ID 100); box "sales" (e-mail boss@example.test, a 0.4 s 500 Hz
    greeting, max 10 s); 700 → the box (timeout 0: the box's maximum), 701 → the box with a
    2 s step timeout."""
    alice = s.port("alice")
    greeting = s.media("greeting", write_tone(s.media_dir / "greeting.wav", 0.4, 500.0))
    s.number("100", [step(1, "ring_port", 20, port_id=alice)])
    box = VoicemailBox(
        client_id=s.seed.client_id,
        name="sales",
        email=MAILBOX,
        language="en",
        greeting_id=greeting,
        max_message_s=10,
    )
    s.session.add(box)
    s.session.flush()
    s.number("700", [step(1, "voicemail", 0, voicemail_box_id=box.id)])
    s.number("701", [step(1, "voicemail", 2, voicemail_box_id=box.id)])
    s.caller_id("alice", "100")


@pytest.fixture(scope="module")
def mail() -> Iterator[MailServer]:
    running = start_mail_server()
    yield running
    running.server.close()
    running.thread.close()


@pytest.fixture(scope="module")
def engine_pbx(tmp_path_factory: pytest.TempPathFactory, mail: MailServer) -> Iterator[Pbx]:
    running = start_pbx(
        tmp_path_factory.mktemp("pbx"),
        build,
        smtp_host=HOST,
        smtp_port=mail.port,
        smtp_from="pbx@example.test",
    )
    yield running
    running.stop()
    running.thread.close()


@pytest.fixture
def pbx(engine_pbx: Pbx, mail: MailServer) -> Pbx:
    engine_pbx.reset()
    while not mail.inbox.messages.empty():
        mail.inbox.messages.get_nowait()
    return engine_pbx


def _attachment(message: EmailMessage) -> tuple[str, bytes]:
    [part] = list(message.iter_attachments())
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return part.get_filename() or "", payload


def test_message_is_saved_and_mailed(
    pbx: Pbx,
    mail: MailServer,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """VM-1: greeting (500 Hz) and beep (1 kHz) heard; a 2 s chirp said after the beep is in
    the saved recording and in the e-mailed WAV (they correlate); the mail names the caller
    and the time; the call record has the voicemail recording row."""
    alice = phones()
    assert pbx.register(alice, "alice")["code"] == 200
    alice.send(cmd="call", uri=pbx.uri("700"))
    alice.expect("call_state", state="CONFIRMED")
    heard = tmp_path / "heard.wav"
    alice.send(cmd="record", file=str(heard))
    time.sleep(1.0)  # greeting 0.4 s + beep 0.5 s
    alice.send(cmd="stop_record")
    alice.expect("recorded")
    said = chirp_pcm(2.0)
    alice.send(cmd="play", file=str(write_wav(tmp_path / "said.wav", said)))
    alice.expect("played", timeout=10)
    time.sleep(0.3)
    alice.send(cmd="hangup")
    alice.expect("call_state", state="DISCONNECTED")
    tones = read_channel(heard)
    assert tone_ratio(tones, 500.0, 2000.0) > 100
    assert tone_ratio(tones, 1000.0, 2000.0) > 100
    rcpt, message = mail.inbox.messages.get(timeout=10)
    assert rcpt == [MAILBOX]
    assert "100" in message["Subject"]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "From: 100" in text
    assert "MSK" in text  # the client's time zone (Europe/Moscow)
    name, wav = _attachment(message)
    assert name.startswith("voicemail-100-")
    attached = read_wav(_write(tmp_path / "attached.wav", wav))
    _assert_contains(said, attached)
    pbx.wait_idle()
    [row] = pbx.recordings()
    assert row.kind == "voicemail"
    saved = Path(pbx.settings.recordings_dir or "") / row.storage_path
    assert saved.read_bytes() == wav
    assert 1800 <= row.duration_ms <= 3500
    [(call, _legs, events)] = pbx.records()
    assert call.outcome == "answered"
    assert {"voicemail", "recording", "voicemail_mail"} <= {e.kind for e in events}


def test_step_timeout_caps_the_message(
    pbx: Pbx,
    mail: MailServer,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """DP-4 "voicemail: maximum message length" = the step's timeout (2 s on 701): the caller
    talks on, the PBX ends the message at 2 s and hangs up (After answer with no next step)."""
    alice = phones()
    assert pbx.register(alice, "alice")["code"] == 200
    alice.send(cmd="call", uri=pbx.uri("701"))
    alice.expect("call_state", state="CONFIRMED")
    alice.send(cmd="play", file=str(write_wav(tmp_path / "long.wav", chirp_pcm(6.0))))
    alice.expect("call_state", state="DISCONNECTED", timeout=8)
    pbx.wait_idle()
    [row] = pbx.recordings()
    assert 1800 <= row.duration_ms <= 2000
    _rcpt, message = mail.inbox.messages.get(timeout=10)
    assert _attachment(message)[1].startswith(b"RIFF")
    [(_call, _legs, events)] = pbx.records()
    assert any(e.kind == "voicemail_end" and "max_length" in str(e.detail) for e in events)


def test_hang_up_at_once_leaves_nothing(
    pbx: Pbx,
    mail: MailServer,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """VM-1: a caller who hangs up during the greeting leaves no recording and no mail."""
    alice = phones()
    assert pbx.register(alice, "alice")["code"] == 200
    alice.send(cmd="call", uri=pbx.uri("700"))
    alice.expect("call_state", state="CONFIRMED")
    alice.send(cmd="hangup")
    alice.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    assert pbx.recordings() == []
    time.sleep(0.3)
    assert mail.inbox.messages.empty()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _assert_contains(original: bytes, recording: bytes) -> None:
    """The chirp is in the recording: most of its 100 ms pieces correlate (the first may
    fall on the beep if the phone started talking early)."""
    pieces = correlate_windows(original, recording, window=800)
    assert len(pieces) >= 15, pieces
    good = sorted(m.peak for _, m in pieces if m.peak > 0.9)
    assert len(good) >= 0.75 * len(pieces), pieces
    assert good[len(good) // 2] > 0.98, pieces
