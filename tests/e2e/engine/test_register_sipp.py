"""The registrar against real phones over loopback (PRT-1, issue 5 §9: register right and
wrong password).

A :class:`~cloudpbx.engine.registrar_service.RegistrarServer` (UDP + TCP on 127.0.0.1, a free
port) runs on a loop thread with an in-test port directory: the SIPp users of
``bench/sipp/users.csv`` and one pjsua2 phone. SIPp runs ``bench/sipp/register_digest.xml``
(REGISTER -> 401 -> REGISTER with Digest -> 200) over UDP and TCP; the pjsua2 phone registers,
is qualified with OPTIONS, and unregisters when it quits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudpbx.engine.location import MemoryLocationStore
from cloudpbx.engine.registrar import PortCredentials, Registrar
from cloudpbx.engine.registrar_service import RegistrarServer
from cloudpbx.transport.base import TransportKind

from ..sip.conftest import (
    HOST,
    USERS,
    USERS_CSV,
    LoopThread,
    Phone,
    loop_thread,  # noqa: F401 -- fixtures used by name
    phones,  # noqa: F401
    run_sipp,
)

SCENARIO = Path(__file__).resolve().parents[3] / "bench" / "sipp" / "register_digest.xml"
PHONE_LOGIN = "phone-alice"
PHONE_PASSWORD = "alice-secret"


@dataclass(frozen=True)
class PortEntry:
    id: int
    client_id: int
    login: str
    secret: str
    algorithm: str = "MD5"
    is_active: bool = True


class Directory:
    def __init__(self) -> None:
        logins = sorted(USERS)
        self.by_login = {
            login: PortEntry(i + 1, 1, login, USERS[login]) for i, login in enumerate(logins)
        }
        self.by_login[PHONE_LOGIN] = PortEntry(9000, 2, PHONE_LOGIN, PHONE_PASSWORD)

    def port_by_login(self, login: str) -> PortCredentials | None:
        return self.by_login.get(login)


@dataclass
class Running:
    server: RegistrarServer
    thread: LoopThread
    port: int
    directory: Directory

    @property
    def target(self) -> str:
        return f"{HOST}:{self.port}"

    def contacts(self, login: str) -> list:
        port_id = self.directory.by_login[login].id
        return self.thread.call(self.server.registrar.contacts, port_id)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout} s")
            time.sleep(0.05)


@pytest.fixture
def start_registrar(
    loop_thread: LoopThread,  # noqa: F811
) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(**options: float) -> Running:
        directory = Directory()
        registrar = Registrar(
            directory, MemoryLocationStore(), realm="cloudpbx", nonce_key=b"e2e-key-" * 4
        )
        server = RegistrarServer(registrar, **options)
        addr = loop_thread.run(server.start(HOST, 0, tcp=True))
        running = Running(server, loop_thread, addr[1], directory)
        started.append(running)
        return running

    yield start
    for running in started:
        assert running.server.endpoint.stats.handler_errors == 0
        loop_thread.run(running.server.close())


def test_sipp_registers_with_digest(
    start_registrar: Callable[..., Running], tmp_path: Path
) -> None:
    """PRT-1: SIPp users register with the right passwords over UDP: 401, then 200."""
    reg = start_registrar()
    run = run_sipp(
        ["-sf", str(SCENARIO), "-inf", str(USERS_CSV), reg.target, "-m", "20", "-r", "40"],
        tmp_path,
    )
    assert run.returncode == 0, run
    assert (run.successful, run.failed) == (20, 0), run
    for login in sorted(USERS)[:20]:
        (binding,) = reg.contacts(login)
        assert binding.uri.startswith(f"sip:{login}@{HOST}:")
        assert binding.transport is TransportKind.UDP
        assert binding.user_agent == "SIPp"
        assert binding.expires_at - time.time() > 3500
    assert all(not reg.contacts(login) for login in sorted(USERS)[20:])


def test_sipp_wrong_password_gets_403(
    start_registrar: Callable[..., Running], tmp_path: Path
) -> None:
    """PRT-1: a wrong password is refused (403 after the challenge) and binds nothing."""
    reg = start_registrar()
    wrong = tmp_path / "wrong.csv"
    logins = sorted(USERS)[:10]
    lines = ["SEQUENTIAL"] + [
        f"{login};nope;[authentication username={login} password=nope]" for login in logins
    ]
    wrong.write_text("\n".join(lines) + "\n")
    run = run_sipp(
        [
            "-sf",
            str(SCENARIO),
            "-inf",
            str(wrong),
            reg.target,
            "-m",
            "10",
            "-r",
            "40",
            "-trace_error_codes",
        ],
        tmp_path / "sipp",
    )
    assert run.returncode == 1, run
    assert (run.successful, run.failed) == (0, 10), run
    codes = run.files("*_error_codes.csv")
    assert codes, run
    seen = [
        code
        for line in codes[0].read_text().splitlines()
        for code in line.split(";")[2].split(",")
        if code
    ]
    assert seen == ["403"] * 10, seen
    assert all(not reg.contacts(login) for login in logins)


def test_sipp_over_tcp_bindings_die_with_the_connection(
    start_registrar: Callable[..., Running], tmp_path: Path
) -> None:
    """PRT-1 / RFC 5626 §5.2: TCP bindings use the connection and go when it closes."""
    reg = start_registrar()
    run = run_sipp(
        [
            "-sf",
            str(SCENARIO),
            "-inf",
            str(USERS_CSV),
            reg.target,
            "-t",
            "t1",
            "-m",
            "5",
            "-r",
            "20",
        ],
        tmp_path,
    )
    assert run.returncode == 0, run
    assert run.successful == 5, run
    # SIPp has exited: its connection closed, and with it every binding made over it.
    login = sorted(USERS)[0]
    reg.wait_for(lambda: not reg.contacts(login))


def test_pjsua2_phone_registers_is_qualified_and_unregisters(
    start_registrar: Callable[..., Running],
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """PRT-1: a pjsua2 phone registers, answers qualify OPTIONS, and unregisters on quit."""
    reg = start_registrar(qualify_interval=0.5, qualify_timeout=0.3, tick_interval=0.1)
    phone = phones()
    phone.send(
        cmd="register",
        registrar=f"sip:{HOST}:{reg.port}",
        user=PHONE_LOGIN,
        password=PHONE_PASSWORD,
    )
    assert phone.expect("reg", code=200)["active"] is True
    (binding,) = reg.contacts(PHONE_LOGIN)
    assert binding.source == (HOST, phone.port)
    assert binding.user_agent == "cloudpbx-pjsua2-test"
    qualifier = reg.server.service.qualifier
    assert qualifier is not None
    reg.wait_for(lambda: reg.thread.call(lambda: qualifier.sent) >= 2)
    port_id = reg.directory.by_login[PHONE_LOGIN].id
    assert reg.thread.call(reg.server.registrar.is_available, port_id)
    phone.close()  # quit: pjsua unregisters its account (Expires: 0)
    reg.wait_for(lambda: not reg.contacts(PHONE_LOGIN))


def test_pjsua2_wrong_password_and_a_vanished_phone(
    start_registrar: Callable[..., Running],
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """PRT-1: a wrong password gets 403; a phone that stops answering becomes unavailable."""
    reg = start_registrar(qualify_interval=0.5, qualify_timeout=0.3, tick_interval=0.1)
    bad = phones()
    bad.send(cmd="register", registrar=f"sip:{HOST}:{reg.port}", user=PHONE_LOGIN, password="wrong")
    assert bad.expect("reg", code=403)["active"] is False
    assert reg.contacts(PHONE_LOGIN) == []

    good = phones()
    good.send(
        cmd="register",
        registrar=f"sip:{HOST}:{reg.port}",
        user=PHONE_LOGIN,
        password=PHONE_PASSWORD,
    )
    good.expect("reg", code=200)
    port_id = reg.directory.by_login[PHONE_LOGIN].id
    good.proc.kill()  # gone without unregistering: only qualify can tell
    good.proc.wait(5)
    reg.wait_for(lambda: not reg.thread.call(reg.server.registrar.is_available, port_id))
    status = reg.thread.call(reg.server.registrar.status, port_id)
    assert status.registered
    assert not status.available
