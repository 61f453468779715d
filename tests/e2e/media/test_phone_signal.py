"""Signal-level tests with real pjsua2 phones (issue 4): audio and DTMF checked as signals,
not as packets.

Phone to phone (no server): phone A calls phone B straight at its port; A plays a WAV (a
1 kHz tone, a spoken prompt made by espeak-ng), B records what it hears; the recording holds
the tone at 1 kHz and correlates with the prompt. DTMF sent by A as RFC 4733 events arrives
at B in order; sent in-band (telephone-event taken out of A's SDP) it is found in B's
recording by the Goertzel detector.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cloudpbx.media.ports import RtpPortAllocator
from cloudpbx.media.prompts import PromptError, generate_prompts
from cloudpbx.media.relay import LegMedia, RelayManager
from cloudpbx.media.stream import PlayResult
from cloudpbx.sip.sdp import PCMA, PCMU, TELEPHONE_EVENT, SessionDescription
from cloudpbx.sip_uas import MediaMode, TestUas

from ..sip.conftest import (  # noqa: F401 -- fixtures: loop_thread, phones, start_uas
    HOST,
    Phone,
    RunningUas,
    loop_thread,
    phones,
    start_uas,
)
from .signal import (
    active_span,
    assert_tone_at,
    chirp_pcm,
    correlate_windows,
    inband_digits,
    read_wav,
    tone_pcm,
    write_wav,
)

ALL_DIGITS = "1234567890*#ABCD"
# G.711 twice (encode at the sender, decode at the receiver) keeps speech at ~0.99.
MIN_CORRELATION = 0.9


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken prompt as the PBX makes it (espeak-ng + SoX, 8 kHz mono 16-bit)."""
    try:
        [made] = generate_prompts(
            tmp_path_factory.mktemp("prompts"), ["en"], names=["invalid_choice"]
        )
    except PromptError as exc:
        pytest.fail(f"espeak-ng/SoX needed for the prompts (make test installs them): {exc}")
    return made.path


def connect(caller: Phone, callee: Phone, *, rfc2833: bool = True) -> None:
    """``caller`` calls ``callee`` directly; returns once both have active audio."""
    callee.send(cmd="local")
    uri = callee.expect("local")["uri"]
    caller.send(cmd="call", uri=uri, rfc2833=rfc2833)
    for phone in (caller, callee):
        media = phone.expect("media", state="active")
        assert media["codec"] == "PCMU", media
        assert media["remote"].startswith(f"{HOST}:"), media


def play_and_record(
    player: Phone, recorder: Phone, wav: Path, record_to: Path, *, timeout: float = 10.0
) -> bytes:
    """``player`` plays ``wav`` into the call, ``recorder`` records it; the recording."""
    recorder.send(cmd="record", file=str(record_to))
    player.send(cmd="play", file=str(wav))
    player.expect("played", timeout=timeout)
    return stop_recording(recorder, record_to)


def stop_recording(recorder: Phone, record_to: Path, *, tail: float = 0.3) -> bytes:
    """Stop after ``tail`` more seconds (the jitter buffer still holds the end)."""
    time.sleep(tail)
    recorder.send(cmd="stop_record")
    recorder.expect("recorded", file=str(record_to))
    return read_wav(record_to)


def assert_heard(original: bytes, heard: bytes) -> None:
    """``original`` is in ``heard``: its non-quiet 100 ms pieces, each found on its own,
    correlate above MIN_CORRELATION at lags that drift by less than 300 ms in all (a phone's
    adaptive jitter buffer grows by whole frames when its loop is starved). A piece holding a
    frame the receiving phone's jitter buffer dropped or concealed correlates less; on a
    loaded machine (the suite runs in parallel) a few such slips happen, so up to 2 pieces in
    5 may miss, never the majority; the median must still be G.711-exact."""
    pieces = correlate_windows(original, heard, window=800)
    assert len(pieces) >= 8, "the original is too quiet to test with"
    good = sorted(m.peak for _, m in pieces if m.peak > MIN_CORRELATION)
    assert len(good) >= 0.6 * len(pieces), pieces
    assert good[len(good) // 2] > 0.99, pieces  # G.711 noise alone: ~0.999
    lags = [m.lag for _, m in pieces if m.peak > MIN_CORRELATION]
    assert max(lags) - min(lags) < 2400, pieces
    assert min(lags) >= 0, pieces  # heard after it was played


def hang_up(phone: Phone) -> None:
    phone.send(cmd="hangup")
    phone.expect("call_state", state="DISCONNECTED")


# --- phone to phone ---------------------------------------------------------------------------


def test_tone_and_prompt_played_by_one_phone_are_heard_by_the_other(
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
    spoken: Path,
) -> None:
    """Issue 4 (signal tests): a 1 kHz tone and a spoken prompt played by phone A are
    recorded by phone B: the tone at 1 kHz, the prompt correlating with the original."""
    tone = write_wav(tmp_path / "tone.wav", tone_pcm(1000, 1.0))
    a, b = phones(), phones()
    connect(a, b)
    heard = play_and_record(a, b, tone, tmp_path / "tone-heard.wav")
    start, stop = active_span(heard)
    assert 0.9 * 8000 <= stop - start <= 1.2 * 8000, (start, stop)
    assert_tone_at(heard[2 * (start + 800) : 2 * (start + 2400)], 1000)

    heard = play_and_record(a, b, spoken, tmp_path / "prompt-heard.wav")
    hang_up(a)
    assert_heard(read_wav(spoken), heard)


@pytest.mark.parametrize("method", ["rfc2833", "inband"])
def test_dtmf_sent_by_one_phone_arrives_at_the_other_in_order(
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
    method: str,
) -> None:
    """Issue 4 (signal tests, DTMF): all 16 digits sent by phone A arrive at phone B in
    order: as RFC 4733 events (B's pjsua reports them), or in-band with telephone-event
    out of the SDP (found in B's recording by the Goertzel detector, media/dtmf.py)."""
    a, b = phones(), phones()
    connect(a, b, rfc2833=method == "rfc2833")
    record_to = tmp_path / "dtmf-heard.wav"
    b.send(cmd="record", file=str(record_to))
    a.send(cmd="dtmf", digits=ALL_DIGITS, method=method, on_ms=80, off_ms=60)
    if method == "rfc2833":
        got = "".join(b.expect("dtmf", method="rfc2833")["digit"] for _ in ALL_DIGITS)
        assert got == ALL_DIGITS
        heard = stop_recording(b, record_to)
    else:
        a.expect("dtmf_sent", method=method)  # once the tone generator finished
        heard = stop_recording(b, record_to)
        assert inband_digits(heard) == ALL_DIGITS
        assert not [e for e in b.seen if e["event"] == "dtmf"]  # no RFC 4733 sent
    hang_up(a)


# --- through the test UAS's MediaStream ----------------------------------------------------


def call_uas(phone: Phone, uas: RunningUas, user: str, *, rfc2833: bool = True) -> str:
    """``phone`` calls ``user`` at the UAS; the Call-ID once the phone's audio is active."""
    phone.send(cmd="call", uri=f"sip:{user}@{HOST}:{uas.port}", rfc2833=rfc2833)
    media = phone.expect("media", state="active")
    assert media["remote"].startswith(f"{HOST}:"), media
    call_id: str = media["call_id"]
    uas.wait_for(lambda u: call_id in u.media and u.media[call_id].stream is not None)
    return call_id


def test_file_played_by_the_uas_is_heard_by_the_phone(
    start_uas: Callable[..., RunningUas],  # noqa: F811
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
    spoken: Path,
) -> None:
    """Issue 4 item 5 (player) with a real phone: a prompt played by MediaStream into a
    call is recorded by a pjsua2 phone and correlates with the original."""
    uas = start_uas(media_by_user={"prompt": MediaMode(play=spoken)})
    phone = phones()
    record_to = tmp_path / "heard.wav"
    phone.send(cmd="call", uri=f"sip:prompt@{HOST}:{uas.port}")
    phone.expect("media", state="active")
    phone.send(cmd="record", file=str(record_to))  # the play starts with the 200
    call_id = phone.expect("call_state", state="CONFIRMED")["call_id"]
    uas.wait_for(lambda u: _played(u, call_id), timeout=10)
    heard = stop_recording(phone, record_to)
    hang_up(phone)
    assert uas.call(_play_result, uas.uas, call_id).completed
    assert_heard(read_wav(spoken), heard)


def _play_result(uas: TestUas, call_id: str) -> PlayResult:
    played = uas.media[call_id].played
    assert played is not None
    return played.result()


def _played(uas: TestUas, call_id: str) -> bool:
    media = uas.media.get(call_id)
    return media is not None and media.played is not None and media.played.done()


@pytest.mark.parametrize("method", ["rfc2833", "inband", "info"])
def test_dtmf_from_a_phone_reaches_the_media_stream_in_order(
    start_uas: Callable[..., RunningUas],  # noqa: F811
    phones: Callable[[], Phone],  # noqa: F811
    method: str,
) -> None:
    """Issue 4 item 7 (DTMF) with a real phone: the 16 digits sent by pjsua2 as RFC 4733
    events, in-band tones (no telephone-event negotiated: MediaStream's Goertzel detector)
    or SIP INFO all arrive at MediaStream.digits in order."""
    uas = start_uas(media=MediaMode())
    phone = phones()
    call_id = call_uas(phone, uas, "dtmf", rfc2833=method != "inband")
    phone.send(cmd="dtmf", digits=ALL_DIGITS, method=method, on_ms=80, off_ms=60)
    phone.expect("dtmf_sent", method=method)
    uas.wait_for(lambda u: len(u.media[call_id].digits) >= len(ALL_DIGITS), timeout=5)
    hang_up(phone)
    assert "".join(uas.call(lambda: list(uas.uas.media[call_id].digits))) == ALL_DIGITS


def test_uas_records_and_echoes_what_the_phone_plays(
    start_uas: Callable[..., RunningUas],  # noqa: F811
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Issue 4 item 6 (recording) with a real phone: a chirp played by the phone is in the
    UAS's recording (a MediaStream sink), and a 1 kHz tone echoed back by the UAS is heard
    by the phone at 1 kHz."""
    recording = tmp_path / "uas.wav"
    uas = start_uas(media=MediaMode(record=recording, echo=True))
    chirp = chirp_pcm(2.0)
    chirp_wav = write_wav(tmp_path / "chirp.wav", chirp)
    tone = write_wav(tmp_path / "tone.wav", tone_pcm(1000, 1.0))
    phone = phones()
    call_uas(phone, uas, "echo")
    phone.send(cmd="play", file=str(chirp_wav))
    phone.expect("played")
    time.sleep(0.5)  # the chirp's echo is still on its way back
    heard = play_and_record(phone, phone, tone, tmp_path / "echo.wav")
    hang_up(phone)
    uas.wait_for(lambda u: all(m.ended for m in u.media.values()))
    assert_heard(chirp, read_wav(recording))
    start, stop = active_span(heard)
    assert stop - start >= 0.8 * 8000, (start, stop)
    middle = (start + stop) // 2
    assert_tone_at(heard[2 * (middle - 800) : 2 * (middle + 800)], 1000)


# --- relayed, PCMU on one side, PCMA on the other ------------------------------------------


def _agreed(sdp: bytes | None) -> dict[int, str]:
    """Payload type -> encoding of an SDP answer's audio stream."""
    assert sdp, "no SDP"
    audio = SessionDescription.parse(sdp).audio()
    assert audio is not None
    return {c.payload_type: c.name for c in audio.codecs}


def _answer_of(uas: TestUas, call_id: str) -> bytes | None:
    dialog = next((d for d in uas.dialogs.values() if d.call_id == call_id), None)
    return None if dialog is None or dialog.answer is None else bytes(dialog.answer)


def test_tone_through_a_relayed_call_is_found_at_1khz(
    start_uas: Callable[..., RunningUas],  # noqa: F811
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """Issue 4 item 2 (relay + transcoding) with real phones: phone A (PCMU) and phone B
    (PCMA) talk through a RelaySession; the UAS does the signalling of both legs (its SDP
    names the relay's ports). A 1 kHz tone played by A is recorded by B at 1 kHz."""
    uas = start_uas()
    base = 24000 + (os.getpid() % 300) * 20  # apart per xdist worker; taken ports are skipped
    manager = RelayManager(RtpPortAllocator(base, base + 19), host=HOST)
    session = uas.run(manager.open_session())
    a, b = phones(), phones()
    b.send(cmd="local")
    b_uri = b.expect("local")["uri"]
    b_leg = MediaMode(external_port=session.b.port, codecs=(PCMA, TELEPHONE_EVENT))
    call_b = uas.run(uas.uas.call_uri(b_uri, (HOST, b.port), media=b_leg))
    assert call_b.status == 200
    assert call_b.response is not None
    answer_b = SessionDescription.parse(call_b.response.body).audio()
    assert answer_b is not None
    assert answer_b.host is not None
    uas.call(
        session.set_media,
        "b",
        LegMedia(
            remote=(answer_b.host, answer_b.port), payload_types=_agreed(call_b.response.body)
        ),
    )
    a_leg = MediaMode(external_port=session.a.port, codecs=(PCMU, TELEPHONE_EVENT))
    uas.call(uas.uas.config.media_by_user.__setitem__, "relay", a_leg)
    a.send(cmd="call", uri=f"sip:relay@{HOST}:{uas.port}")
    a_media = a.expect("media", state="active")
    assert a_media["codec"] == "PCMU"
    assert b.expect("media", state="active")["codec"] == "PCMA"
    # A's address is learnt from its first packets (symmetric RTP, the relay's latch).
    a_pts = _agreed(uas.call(_answer_of, uas.uas, a_media["call_id"]))
    uas.call(session.set_media, "a", LegMedia(payload_types=a_pts))

    tone = write_wav(tmp_path / "tone.wav", tone_pcm(1000, 1.0))
    heard = play_and_record(a, b, tone, tmp_path / "relayed.wav")
    hang_up(a)
    hang_up(b)
    a_to_b, _ = uas.call(session.stats)
    uas.call(manager.close)
    assert a_to_b.packets_forwarded > 50, a_to_b
    start, stop = active_span(heard)
    assert 0.8 * 8000 <= stop - start <= 1.2 * 8000, (start, stop)
    assert_tone_at(heard[2 * (start + 800) : 2 * (start + 2400)], 1000)
