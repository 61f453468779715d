"""A pjsua2 test phone driven by line-based JSON on stdin/stdout (one phone per process:
pjsua2 allows one Endpoint per process).

Run by the tests as ``python pjsua_phone.py``. It prints ``{"event": "ready", "port": N}``
once its UDP transport (127.0.0.1, port 0) is up, then obeys commands, one JSON object per
line:

- ``{"cmd": "register", "registrar": "sip:127.0.0.1:5080", "user": "u", "password": "p"}``
  -> ``{"event": "reg", "code": 200, "active": true, "reason": "OK"}`` (every change)
- ``{"cmd": "local"}`` -> an unregistered account ``sip:phone@127.0.0.1`` that takes calls
  sent straight to this phone's port (phone-to-phone calls)
  -> ``{"event": "local", "uri": "sip:phone@127.0.0.1:N"}``
- ``{"cmd": "call", "uri": "sip:service@127.0.0.1:5080", "rfc2833": true}`` -> ``call_state``
  events; ``"rfc2833": false`` takes telephone-event out of this call's SDP offer, so the far
  end gets in-band DTMF only
- ``{"cmd": "set", "auto_answer": false}`` -> incoming calls ring (180) until ``answer``
- ``{"cmd": "answer", "code": 200}`` -> answers every ringing incoming call with ``code``
- ``{"cmd": "hangup"}`` -> hangs up every call
- ``{"cmd": "play", "file": "/x.wav", "loop": false}`` -> plays a WAV into the newest call
  with audio (pjsua2 AudioMediaPlayer); ``{"event": "played", "file": ...}`` at its end
- ``{"cmd": "stop_play"}`` -> stops every player
- ``{"cmd": "record", "file": "/y.wav"}`` -> records what the newest call with audio hears
  (AudioMediaRecorder: 8 kHz 16-bit mono WAV)
- ``{"cmd": "stop_record"}`` -> closes the recordings (WAV header written)
  -> ``{"event": "recorded", "file": ...}`` for each
- ``{"cmd": "dtmf", "digits": "123#", "method": "rfc2833" | "inband" | "info",
  "on_ms": 100, "off_ms": 100}`` -> RFC 4733 events or SIP INFO (``Call.sendDtmf``), or
  in-band tone pairs (a ToneGenerator playing into the call);
  ``{"event": "dtmf_sent", "method": ...}`` once handed over (in-band: once played)
- ``{"cmd": "xfer", "uri": "sip:201@127.0.0.1:5080"}`` -> a blind transfer (REFER, RFC 3515)
  of the newest active call (``Call.xfer``); each NOTIFY about it is reported as
  ``{"event": "xfer_status", "code": 100, "reason": "Trying", "final": false}``
- ``{"cmd": "quit"}`` -> ``{"event": "bye"}`` and exit

Incoming calls are reported as ``incoming`` and, by default, answered at once (180, then
200). Every call state change is reported: ``{"event": "call_state", "state": "CONFIRMED",
"code": 200}``; media as ``{"event": "media", "state": "active", "codec": "PCMU", ...}``;
received DTMF (RFC 4733 or INFO; pjsua does not detect in-band) as ``{"event": "dtmf",
"digit": "5", "method": "rfc2833"}``.

Media as ENGINEERING.md §7 asks: null audio device, PCMU/PCMA only, VAD and echo
cancellation off, 8 kHz clock. pjsua2 runs without SIP or media worker threads (RTP is read
by the same polling as SIP), so every callback runs on this thread, which polls it; the
conference bridge's clock thread runs players, recorders and tone generators.
"""

from __future__ import annotations

import gc
import json
import os
import re
import select
import sys
import time
from typing import Any

import pjsua2 as pj

# pjlib prints to fd 1 before a log writer can be installed: keep a private copy of stdout
# for the protocol and send everything else written to fd 1 to stderr.
_OUT = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)

_KEEP: list[Any] = []  # pjsua2 objects must outlive their callbacks
_DTMF_METHODS = {
    pj.PJSUA_DTMF_METHOD_RFC2833: "rfc2833",
    pj.PJSUA_DTMF_METHOD_SIP_INFO: "info",
}
_DTMF_CODES = {name: code for code, name in _DTMF_METHODS.items()}


def emit(**fields: Any) -> None:
    _OUT.write(json.dumps(fields) + "\n")


class StderrLog(pj.LogWriter):  # type: ignore[misc]
    def write(self, entry: Any) -> None:
        sys.stderr.write(entry.msg)


def without_telephone_event(sdp: str) -> str:
    """``sdp`` with the RFC 4733 payload types removed from every m= line (RFC 4566 §5.14)
    and their rtpmap/fmtp attributes dropped: the peer then negotiates no telephone-event."""
    pts = set(re.findall(r"^a=rtpmap:(\d+) telephone-event/", sdp, re.MULTILINE))
    if not pts:
        return sdp
    lines = []
    for line in sdp.splitlines():
        attr = re.match(r"a=(?:rtpmap|fmtp):(\d+)[ /]", line)
        if attr and attr.group(1) in pts:
            continue
        if line.startswith("m="):
            head = line.split(" ")
            line = " ".join(head[:3] + [pt for pt in head[3:] if pt not in pts])
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


class Call(pj.Call):  # type: ignore[misc]
    def __init__(self, account: Any, call_id: int = pj.PJSUA_INVALID_ID, rfc2833: bool = True):
        super().__init__(account, call_id)
        self.rfc2833 = rfc2833
        self.audio: Any = None  # the call's AudioMedia while its audio is active

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.audio = None
        emit(
            event="call_state",
            state=info.stateText,
            code=info.lastStatusCode,
            reason=info.lastReason,
            call_id=info.callIdString,
        )

    def onCallSdpCreated(self, prm: Any) -> None:
        if not self.rfc2833:
            prm.sdp.wholeSdp = without_telephone_event(prm.sdp.wholeSdp)

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self.audio = self.getAudioMedia(media.index)
                stream = self.getStreamInfo(media.index)
                emit(
                    event="media",
                    state="active",
                    codec=stream.codecName,
                    remote=stream.remoteRtpAddress,
                    telephone_event=stream.audTxEventPt,
                    call_id=info.callIdString,
                )
                return
        self.audio = None
        emit(event="media", state="none", call_id=info.callIdString)

    def onDtmfDigit(self, prm: Any) -> None:
        method = _DTMF_METHODS.get(prm.method, str(prm.method))
        emit(event="dtmf", digit=prm.digit, method=method, call_id=self.getInfo().callIdString)

    def onCallTransferStatus(self, prm: Any) -> None:
        emit(event="xfer_status", code=prm.statusCode, reason=prm.reason, final=prm.finalNotify)


class Account(pj.Account):  # type: ignore[misc]
    def __init__(self, phone: Phone, registered: bool = False) -> None:
        super().__init__()
        self.phone = phone
        self.registered = registered

    def onRegState(self, prm: Any) -> None:
        info = self.getInfo()
        emit(event="reg", code=prm.code, reason=prm.reason, active=info.regIsActive)

    def onIncomingCall(self, prm: Any) -> None:
        call = Call(self, prm.callId, rfc2833=self.phone.rfc2833)
        _KEEP.append(call)
        self.phone.calls.append(call)
        emit(event="incoming", call_id=call.getInfo().callIdString)
        ringing = pj.CallOpParam()
        ringing.statusCode = 180
        call.answer(ringing)
        if self.phone.auto_answer:
            answer(call, 200)
        else:
            self.phone.ringing.append(call)


def answer(call: Call, code: int) -> None:
    prm = pj.CallOpParam()
    prm.statusCode = code
    call.answer(prm)


def wav_complete(path: str) -> bool:
    """The recorder closed the file: its RIFF header gives the file's real size. (pjsua
    removes conference ports on the bridge's clock thread, so the file is finished a few
    milliseconds after the recorder is destroyed.)"""
    with open(path, "rb") as f:
        head = f.read(12)
        size = f.seek(0, os.SEEK_END)
    return head[8:12] == b"WAVE" and int.from_bytes(head[4:8], "little") == size - 8


class Player(pj.AudioMediaPlayer):  # type: ignore[misc]
    """A WAV file played into a call; done once its position reaches the end (polled: no
    Python callback from the conference bridge's clock thread)."""

    def __init__(self, path: str, loop: bool) -> None:
        super().__init__()
        self.path = path
        self.createPlayer(path, 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        self.loop = loop
        self.samples = self.getInfo().sizeSamples
        self.last = 0

    def done(self) -> bool:
        # At its end a NO_LOOP player rewinds to 0 and goes silent.
        pos = self.getPos()
        ended = pos >= self.samples or pos < self.last
        self.last = max(self.last, pos)
        return not self.loop and ended


def _loopback_media(cfg: Any) -> Any:
    """RTP on 127.0.0.1 and named so in the SDP (tests use loopback only; pjsua would
    otherwise announce the host's default address)."""
    media = cfg.mediaConfig.transportConfig
    media.boundAddress = "127.0.0.1"
    media.publicAddress = "127.0.0.1"
    media.port = 0
    return cfg


class Phone:
    def __init__(self) -> None:
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        self.log = StderrLog()
        self.ep.libInit(self._config())
        transport = pj.TransportConfig()
        transport.port = 0
        transport.boundAddress = "127.0.0.1"
        tid = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.port = int(self.ep.transportGetInfo(tid).localName.rsplit(":", 1)[1])
        self.ep.audDevManager().setNullDev()
        self.ep.libStart()
        self._codecs()
        self.account: Account | None = None
        self.calls: list[Call] = []
        self.ringing: list[Call] = []
        self.auto_answer = True
        self.rfc2833 = True  # telephone-event in the SDP of incoming calls' answers
        self.players: list[tuple[Player, Any]] = []
        self.recorders: list[tuple[Any, Any, str]] = []
        self.closing: list[str] = []  # recordings whose WAV header is not written yet
        self.tones: list[tuple[Any, Any]] = []
        self.keys: list[tuple[float, Call, str, str, int]] = []  # (due, call, digit, method, ms)

    def _config(self) -> Any:
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "cloudpbx-pjsua2-test"
        cfg.logConfig.writer = self.log
        cfg.logConfig.level = int(os.environ.get("PJSUA_LOG_LEVEL", "3"))
        cfg.logConfig.consoleLevel = cfg.logConfig.level
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        # The (null) sound device clocks the conference bridge, which sends the RTP: pjsua
        # closes an idle one after 1 s, and the phone would then fall silent (no RTP, no
        # RFC 4733 events). Keep it open.
        cfg.medConfig.sndAutoCloseTime = -1
        # RTP is read by libHandleEvents on this thread: DTMF callbacks never come from a
        # thread Python does not know.
        cfg.medConfig.threadCnt = 0
        return cfg

    def _codecs(self) -> None:
        for codec in self.ep.codecEnum2():
            name = codec.codecId
            keep = name.startswith(("PCMU/", "PCMA/"))
            self.ep.codecSetPriority(name, 255 if name.startswith("PCMU/") else 254 if keep else 0)

    # --- accounts and calls --------------------------------------------------------------

    def register(self, registrar: str, user: str, password: str) -> None:
        host = registrar.split(":", 1)[1]
        cfg = pj.AccountConfig()
        cfg.idUri = f"sip:{user}@{host}"
        cfg.regConfig.registrarUri = registrar
        cfg.regConfig.retryIntervalSec = 0  # a failed registration stays failed
        cfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        self.account = Account(self, registered=True)
        self.account.create(_loopback_media(cfg))

    def local(self) -> Account:
        """The unregistered local account, made on first use."""
        if self.account is None:
            cfg = pj.AccountConfig()
            cfg.idUri = "sip:phone@127.0.0.1"
            self.account = Account(self)
            self.account.create(_loopback_media(cfg))
        return self.account

    def call(self, uri: str, rfc2833: bool = True) -> None:
        call = Call(self.local(), rfc2833=rfc2833)
        self.calls.append(call)
        call.makeCall(uri, pj.CallOpParam(True))

    def answer(self, code: int) -> None:
        ringing, self.ringing = self.ringing, []
        for call in ringing:
            answer(call, code)

    def hangup(self) -> None:
        self.ep.hangupAllCalls()

    def xfer(self, uri: str) -> None:
        self._newest_call().xfer(uri, pj.CallOpParam(True))

    def audio(self) -> Any:
        """The AudioMedia of the newest call with active audio."""
        for call in reversed(self.calls):
            if call.audio is not None:
                return call.audio
        raise LookupError("no call with active audio")

    # --- media: play, record, DTMF -------------------------------------------------------

    def play(self, path: str, loop: bool = False) -> None:
        target = self.audio()
        player = Player(path, loop)
        player.startTransmit(target)
        self.players.append((player, target))

    def stop_play(self) -> None:
        for player, target in self.players:
            player.stopTransmit(target)
        self.players.clear()

    def record(self, path: str) -> None:
        source = self.audio()
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(path)
        source.startTransmit(recorder)
        self.recorders.append((recorder, source, path))

    def stop_record(self) -> None:
        """Destroy the recorders; each is reported once its file is complete."""
        self.closing += [path for _, _, path in self.recorders]
        for recorder, source, _ in self.recorders:
            source.stopTransmit(recorder)
        # Destroyed once the last reference goes (at return): the conference bridge removes
        # the port, then closes the file.
        self.recorders.clear()

    def dtmf(self, digits: str, method: str, on_ms: int = 100, off_ms: int = 100) -> None:
        if method == "inband":
            self._inband(digits, on_ms, off_ms)
            return
        if method not in _DTMF_CODES:
            raise ValueError(f"unknown DTMF method {method!r}")
        # One digit at a time, on_ms + off_ms apart: pjmedia's stream sends only the first
        # 8 digits of a longer string (and a digit queue would hide the spacing).
        call = self._newest_call()
        now = time.monotonic()
        step = (on_ms + off_ms) / 1000
        self.keys += [
            (now + i * step, call, digit, method, on_ms) for i, digit in enumerate(digits)
        ]

    def _send_due_keys(self) -> None:
        now = time.monotonic()
        while self.keys and self.keys[0][0] <= now:
            _, call, digit, method, on_ms = self.keys.pop(0)
            prm = pj.CallSendDtmfParam()
            prm.digits = digit
            prm.duration = on_ms
            prm.method = _DTMF_CODES[method]
            call.sendDtmf(prm)
            if not self.keys:
                emit(event="dtmf_sent", method=method)

    def _newest_call(self) -> Call:
        for call in reversed(self.calls):
            if call.isActive():
                return call
        raise LookupError("no active call")

    def _inband(self, digits: str, on_ms: int, off_ms: int) -> None:
        target = self.audio()
        tones = pj.ToneGenerator()
        tones.createToneGenerator(8000, 1)
        sequence = pj.ToneDigitVector()
        for digit in digits:
            tone = pj.ToneDigit()
            tone.digit = digit.lower()  # pjmedia's default digit map is lower case
            tone.on_msec = on_ms
            tone.off_msec = off_ms
            tone.volume = 0  # the default level (about -10 dBm0 per tone)
            sequence.append(tone)
        tones.playDigits(sequence)
        tones.startTransmit(target)
        self.tones.append((tones, target))

    def tick(self) -> None:
        """Send the DTMF keys due; report players, tone generators and recordings that
        finished (polled from the main loop)."""
        self._send_due_keys()
        for player, target in [p for p in self.players if p[0].done()]:
            player.stopTransmit(target)
            self.players.remove((player, target))
            emit(event="played", file=player.path)
        for tones, target in [t for t in self.tones if not t[0].isBusy()]:
            tones.stopTransmit(target)
            self.tones.remove((tones, target))
            emit(event="dtmf_sent", method="inband")
        for path in [p for p in self.closing if wav_complete(p)]:
            self.closing.remove(path)
            emit(event="recorded", file=path)

    def poll(self, ms: int) -> None:
        self.ep.libHandleEvents(ms)

    def close(self) -> None:
        self.stop_play()
        self.stop_record()
        self.tones.clear()
        self.keys.clear()
        self.ep.hangupAllCalls()
        for _ in range(10):
            self.poll(10)
        registered = self.account is not None and self.account.registered
        if self.account is not None:
            self.account.shutdown()
        # pjsua2 objects must be gone before the library (their destructors call into it).
        self.calls.clear()
        self.ringing.clear()
        _KEEP.clear()
        self.account = None
        gc.collect()
        # Without a registration there is nothing to wait for on the network (pjsua would
        # otherwise spend a second on it).
        self.ep.libDestroy(0 if registered else pj.PJSUA_DESTROY_NO_NETWORK)


def handle(phone: Phone, command: dict[str, Any]) -> bool:
    """Run one command; False means quit."""
    match command.get("cmd"):
        case "register":
            phone.register(command["registrar"], command["user"], command["password"])
        case "local":
            phone.local()
            emit(event="local", uri=f"sip:phone@127.0.0.1:{phone.port}")
        case "call":
            phone.call(command["uri"], rfc2833=command.get("rfc2833", True))
        case "set":
            phone.auto_answer = command.get("auto_answer", phone.auto_answer)
            phone.rfc2833 = command.get("rfc2833", phone.rfc2833)
        case "answer":
            phone.answer(command.get("code", 200))
        case "hangup":
            phone.hangup()
        case "xfer":
            phone.xfer(command["uri"])
        case "quit":
            return False
        case _:
            return handle_media(phone, command)
    return True


def handle_media(phone: Phone, command: dict[str, Any]) -> bool:
    match command.get("cmd"):
        case "play":
            phone.play(command["file"], loop=command.get("loop", False))
        case "stop_play":
            phone.stop_play()
        case "record":
            phone.record(command["file"])
        case "stop_record":
            phone.stop_record()
        case "dtmf":
            phone.dtmf(
                command["digits"],
                command.get("method", "rfc2833"),
                on_ms=command.get("on_ms", 100),
                off_ms=command.get("off_ms", 100),
            )
        case other:
            emit(event="error", message=f"unknown command {other!r}")
    return True


def main() -> None:
    phone = Phone()
    emit(event="ready", port=phone.port)
    pending = b""
    running = True
    while running:
        phone.poll(10)
        phone.tick()
        readable, _, _ = select.select([0], [], [], 0)
        if not readable:
            continue
        data = os.read(0, 65536)  # raw reads: a buffered readline would hide queued lines
        if not data:
            break  # the test went away
        pending += data
        while running and b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            running = run_line(phone, line)
    phone.close()
    emit(event="bye")
    _OUT.flush()
    os._exit(0)  # skip interpreter teardown: SWIG objects may still reach into pjsua


def run_line(phone: Phone, line: bytes) -> bool:
    if not line.strip():
        return True
    try:
        return handle(phone, json.loads(line))
    except pj.Error as exc:
        emit(event="error", message=exc.info())
    except (LookupError, ValueError) as exc:
        emit(event="error", message=f"{type(exc).__name__}: {exc}")
    return True


if __name__ == "__main__":
    main()
