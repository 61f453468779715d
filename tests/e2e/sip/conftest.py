"""Real SIP peers against the test UAS over loopback (ENGINEERING.md §7).

- :class:`TestUas` (``cloudpbx.sip_uas``) runs on its own event loop (uvloop when available)
  in a background thread; the tests drive it with :meth:`RunningUas.run` / ``call``.
- SIPp (Debian ``sip-tester``, ``/usr/bin/sipp``) runs as a subprocess in a temporary
  directory, where its statistics (``-trace_stat``) are read back.
- pjsua2 phones run one per subprocess (``pjsua_phone.py``, line-based JSON on stdin/stdout):
  pjsua2 allows one Endpoint per process.

Ports are picked free at runtime. A missing tool fails the test (``make test`` installs them).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cloudpbx.sip import Response, parse_message
from cloudpbx.sip_uas import TestUas, UasConfig
from cloudpbx.transport.endpoint import event_loop_factory

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[3]
SIPP_DIR = REPO / "bench" / "sipp"
USERS_CSV = SIPP_DIR / "users.csv"
PHONE_SCRIPT = Path(__file__).with_name("pjsua_phone.py")
HOST = "127.0.0.1"


def load_users(path: Path = USERS_CSV) -> dict[str, str]:
    """login -> password from a SIPp injection file (``SEQUENTIAL`` then ``login;password;...``)."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return {line.split(";")[0]: line.split(";")[1] for line in lines if line}


USERS = load_users()


def free_udp_port() -> int:
    """A UDP port free right now on 127.0.0.1 (for peers that need to be told one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def udp_port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


# --- the UAS on a loop thread -------------------------------------------------------------


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        factory = event_loop_factory()
        self.loop = factory() if factory is not None else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        async def wrapper() -> T:
            return fn(*args)

        return self.run(wrapper())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class RunningUas:
    uas: TestUas
    addr: tuple[str, int]
    thread: LoopThread

    @property
    def port(self) -> int:
        return self.addr[1]

    @property
    def target(self) -> str:
        """``host:port`` for SIPp's command line."""
        return f"{self.addr[0]}:{self.addr[1]}"

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return self.thread.run(coro, timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        return self.thread.call(fn, *args)

    def counters(self) -> Counter[str]:
        return self.call(lambda: Counter(self.uas.counters))

    def wait_for(self, predicate: Callable[[TestUas], bool], timeout: float = 5.0) -> None:
        """Poll ``predicate(uas)`` in the loop thread until true (events settle async)."""
        deadline = time.monotonic() + timeout
        while not self.call(predicate, self.uas):
            if time.monotonic() > deadline:
                raise AssertionError(f"UAS condition not met in {timeout} s: {self.counters()}")
            time.sleep(0.02)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def start_uas(loop_thread: LoopThread) -> Iterator[Callable[..., RunningUas]]:
    """``start_uas(**UasConfig fields)``: a TestUas on a free UDP port (TCP on the same)."""
    started: list[RunningUas] = []

    def start(*, tcp: bool = False, **config: Any) -> RunningUas:
        config.setdefault("users", dict(USERS))
        uas = TestUas(UasConfig(**config))
        addr = loop_thread.run(uas.start(HOST, 0, tcp=tcp))
        running = RunningUas(uas, addr, loop_thread)
        started.append(running)
        return running

    yield start
    for running in started:
        assert running.uas.endpoint.stats.handler_errors == 0
        running.run(running.uas.close())


@pytest.fixture
def uas(start_uas: Callable[..., RunningUas]) -> RunningUas:
    return start_uas()


# --- SIPp -----------------------------------------------------------------------------------


def sipp_path() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.fail("SIPp is not installed: apt-get install sip-tester (make test installs it)")
    return path


@dataclass
class SippRun:
    """One finished SIPp run: exit code (0 = every call succeeded, 1 = some failed, 99 = no
    call processed), the last line of its ``-trace_stat`` file and its output."""

    returncode: int
    stats: dict[str, str]
    stdout: str
    stderr: str
    workdir: Path

    def count(self, name: str) -> int:
        """A cumulative counter, e.g. ``count("SuccessfulCall")``."""
        return int(self.stats[f"{name}(C)"])

    @property
    def successful(self) -> int:
        return self.count("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self.count("FailedCall")

    def files(self, pattern: str) -> list[Path]:
        return sorted(self.workdir.glob(pattern))

    def __str__(self) -> str:
        return f"sipp rc={self.returncode}\n{self.stdout[-3000:]}\n{self.stderr[-2000:]}"


def read_stat_file(path: Path) -> dict[str, str]:
    """SIPp's ``-trace_stat`` CSV: a header line, then one line per dump; the last one is
    the final state. Fields are separated by ``;``."""
    lines = [line for line in path.read_text(encoding="latin-1").splitlines() if line]
    if len(lines) < 2:
        return {}
    return dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))


def sipp_command(*args: str, port: int | None = None) -> list[str]:
    """A SIPp command line with our common options: own local port, statistics file."""
    local = ["-i", HOST, "-p", str(port or free_udp_port())]
    return [sipp_path(), *args, *local, "-nostdin", "-trace_stat", "-stf", "stat.csv"]


def run_sipp(
    args: list[str], workdir: Path, *, port: int | None = None, timeout: float = 30.0
) -> SippRun:
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        sipp_command(*args, port=port),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return finished(proc.returncode, proc.stdout, proc.stderr, workdir)


def finished(returncode: int, stdout: str, stderr: str, workdir: Path) -> SippRun:
    stat = workdir / "stat.csv"
    stats = read_stat_file(stat) if stat.exists() else {}
    return SippRun(returncode, stats, stdout, stderr, workdir)


@dataclass
class SippServer:
    """A SIPp running in the background (e.g. ``-sn uas``) on ``port``."""

    proc: subprocess.Popen[str]
    port: int
    workdir: Path

    def wait(self, timeout: float = 20.0) -> SippRun:
        stdout, stderr = self.proc.communicate(timeout=timeout)
        return finished(self.proc.returncode, stdout, stderr, self.workdir)


def start_sipp(args: list[str], workdir: Path) -> SippServer:
    """Start SIPp in the background and wait until its UDP port is bound."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_udp_port()
    proc = subprocess.Popen(
        sipp_command(*args, port=port),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 5
    while not udp_port_in_use(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"SIPp did not start on port {port}: {out[-2000:]} {err[-2000:]}")
        time.sleep(0.02)
    return SippServer(proc, port, workdir)


# --- a raw UDP peer for hand-written messages ------------------------------------------------


class RawPeer:
    """A UDP socket that sends hand-written SIP messages and collects what comes back."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = int(self.sock.getsockname()[1])
        self.received: list[bytes] = []

    def send(self, data: bytes | str, dest: tuple[str, int]) -> None:
        if isinstance(data, str):
            data = data.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        self.sock.sendto(data, dest)

    def receive(self, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        self.received.append(data)
        return data

    def response(
        self, call_id: str, status: int | None = None, *, method: str | None = None, timeout=3.0
    ) -> Response:
        """The next response of ``call_id`` (with ``status`` / CSeq ``method`` if given)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            data = self.receive(left)
            if data is None:
                break
            msg = parse_message(data)
            if not isinstance(msg, Response) or msg.call_id != call_id:
                continue
            if status is not None and msg.status != status:
                continue
            if method is not None and msg.cseq.method != method:
                continue
            return msg
        raise AssertionError(f"no {status or ''} response for {call_id} in {timeout} s")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_peer() -> Iterator[RawPeer]:
    peer = RawPeer()
    yield peer
    peer.close()


# --- pjsua2 phones ------------------------------------------------------------------------


@dataclass
class Phone:
    """A ``pjsua_phone.py`` subprocess: ``send(cmd=..., ...)`` and ``expect(event, ...)``."""

    proc: subprocess.Popen[str]
    events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def expect(self, event: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """The next event named ``event`` whose fields include ``fields``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                got = self.events.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(got)
            if got.get("event") == event and all(got.get(k) == v for k, v in fields.items()):
                return got
        raise AssertionError(f"phone: no {event} {fields} in {timeout} s; saw {self.seen}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send(cmd="quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


def _read_events(proc: subprocess.Popen[str], events: queue.Queue[dict[str, Any]]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            events.put(json.loads(line))


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[Callable[[], Phone]]:
    """``phones()`` starts a pjsua2 phone subprocess (stopped at teardown); its pjsua log
    goes to ``tmp_path/phone-N.log``."""
    if importlib.util.find_spec("pjsua2") is None:
        pytest.fail("pjsua2 is not installed: pip install pjsua2-python (make test installs it)")
    started: list[Phone] = []

    def start() -> Phone:
        log = (tmp_path / f"phone-{len(started)}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, str(PHONE_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
        phone = Phone(proc)
        started.append(phone)
        threading.Thread(target=_read_events, args=(proc, phone.events), daemon=True).start()
        phone.port = phone.expect("ready", timeout=15)["port"]
        return phone

    yield start
    for phone in started:
        phone.close()
