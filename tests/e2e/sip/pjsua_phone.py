"""A pjsua2 test phone driven by line-based JSON on stdin/stdout (one phone per process:
pjsua2 allows one Endpoint per process).

Run by the tests as ``python pjsua_phone.py``. It prints ``{"event": "ready", "port": N}``
once its UDP transport (127.0.0.1, port 0) is up, then obeys commands, one JSON object per
line:

- ``{"cmd": "register", "registrar": "sip:127.0.0.1:5080", "user": "u", "password": "p"}``
  -> ``{"event": "reg", "code": 200, "active": true, "reason": "OK"}`` (every change)
- ``{"cmd": "call", "uri": "sip:service@127.0.0.1:5080"}`` -> ``call_state`` events
- ``{"cmd": "hangup"}`` -> hangs up every call
- ``{"cmd": "quit"}`` -> ``{"event": "bye"}`` and exit

Incoming calls are answered at once (180, then 200) and reported as ``incoming``. Every call
state change is reported: ``{"event": "call_state", "state": "CONFIRMED", "code": 200}``.

Media as ENGINEERING.md §7 asks: null audio device, PCMU/PCMA only, VAD and echo
cancellation off, 8 kHz clock. pjsua2 runs without worker threads; this loop polls it.
"""

from __future__ import annotations

import gc
import json
import os
import select
import sys
from typing import Any

import pjsua2 as pj

# pjlib prints to fd 1 before a log writer can be installed: keep a private copy of stdout
# for the protocol and send everything else written to fd 1 to stderr.
_OUT = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)

_KEEP: list[Any] = []  # pjsua2 objects must outlive their callbacks


def emit(**fields: Any) -> None:
    _OUT.write(json.dumps(fields) + "\n")


class StderrLog(pj.LogWriter):  # type: ignore[misc]
    def write(self, entry: Any) -> None:
        sys.stderr.write(entry.msg)


class Call(pj.Call):  # type: ignore[misc]
    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        emit(
            event="call_state",
            state=info.stateText,
            code=info.lastStatusCode,
            reason=info.lastReason,
            call_id=info.callIdString,
        )


class Account(pj.Account):  # type: ignore[misc]
    def onRegState(self, prm: Any) -> None:
        info = self.getInfo()
        emit(event="reg", code=prm.code, reason=prm.reason, active=info.regIsActive)

    def onIncomingCall(self, prm: Any) -> None:
        call = Call(self, prm.callId)
        _KEEP.append(call)
        emit(event="incoming", call_id=call.getInfo().callIdString)
        ringing = pj.CallOpParam()
        ringing.statusCode = 180
        call.answer(ringing)
        ok = pj.CallOpParam()
        ok.statusCode = 200
        call.answer(ok)


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
        return cfg

    def _codecs(self) -> None:
        for codec in self.ep.codecEnum2():
            name = codec.codecId
            keep = name.startswith(("PCMU/", "PCMA/"))
            self.ep.codecSetPriority(name, 255 if name.startswith("PCMU/") else 254 if keep else 0)

    def register(self, registrar: str, user: str, password: str) -> None:
        host = registrar.split(":", 1)[1]
        cfg = pj.AccountConfig()
        cfg.idUri = f"sip:{user}@{host}"
        cfg.regConfig.registrarUri = registrar
        cfg.regConfig.retryIntervalSec = 0  # a failed registration stays failed
        cfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        self.account = Account()
        self.account.create(cfg)

    def call(self, uri: str) -> None:
        if self.account is None:  # an unregistered local account
            cfg = pj.AccountConfig()
            cfg.idUri = "sip:phone@127.0.0.1"
            self.account = Account()
            self.account.create(cfg)
        call = Call(self.account)
        self.calls.append(call)
        call.makeCall(uri, pj.CallOpParam(True))

    def hangup(self) -> None:
        self.ep.hangupAllCalls()

    def poll(self, ms: int) -> None:
        self.ep.libHandleEvents(ms)

    def close(self) -> None:
        self.ep.hangupAllCalls()
        for _ in range(10):
            self.poll(10)
        if self.account is not None:
            self.account.shutdown()
        # pjsua2 objects must be gone before the library (their destructors call into it).
        self.calls.clear()
        _KEEP.clear()
        self.account = None
        gc.collect()
        self.ep.libDestroy()


def handle(phone: Phone, command: dict[str, Any]) -> bool:
    """Run one command; False means quit."""
    match command.get("cmd"):
        case "register":
            phone.register(command["registrar"], command["user"], command["password"])
        case "call":
            phone.call(command["uri"])
        case "hangup":
            phone.hangup()
        case "quit":
            return False
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
    return True


if __name__ == "__main__":
    main()
