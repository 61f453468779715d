"""pjsua2 phones (PyPI ``pjsua2-python``, one per subprocess) against the test UAS.

(a) a phone registers with Digest: the right password gets 200 and a binding, a wrong one
    fails (403) and leaves none;
(b) a phone calls the UAS through a 407 challenge: the call is confirmed, the phone hangs
    up and its BYE gets 200;
(c) the UAS calls a registered phone through the flow of its REGISTER: the phone answers,
    the UAS ACKs, then hangs up.
"""

from __future__ import annotations

from collections.abc import Callable

from .conftest import HOST, USERS, Phone, RunningUas

ALICE, BOB = sorted(USERS)[:2]


def _register(phone: Phone, uas: RunningUas, login: str, password: str) -> dict[str, object]:
    phone.send(cmd="register", registrar=f"sip:{HOST}:{uas.port}", user=login, password=password)
    return phone.expect("reg")


def test_phone_registers_with_digest(uas: RunningUas, phones: Callable[[], Phone]) -> None:
    good, bad = phones(), phones()
    reg = _register(good, uas, ALICE, USERS[ALICE])
    assert (reg["code"], reg["active"]) == (200, True), reg
    bindings = uas.call(uas.uas.contacts, ALICE)
    assert len(bindings) == 1
    assert bindings[0].flow.remote == (HOST, good.port)

    reg = _register(bad, uas, BOB, "wrong-password")
    assert reg["code"] in (401, 403), reg
    assert reg["active"] is False
    assert uas.call(uas.uas.contacts, BOB) == []
    assert uas.counters()["auth failed"] >= 1


def test_phone_calls_the_uas(
    start_uas: Callable[..., RunningUas], phones: Callable[[], Phone]
) -> None:
    uas = start_uas(invite_auth=True)
    phone = phones()
    assert _register(phone, uas, ALICE, USERS[ALICE])["code"] == 200
    phone.send(cmd="call", uri=f"sip:service@{HOST}:{uas.port}")
    phone.expect("call_state", state="CONFIRMED")
    counters = uas.counters()
    assert counters["out 407"] == 1  # challenged, then accepted with Proxy-Authorization
    assert counters["answered"] == 1
    uas.wait_for(lambda u: u.counters["in ACK"] == 1)
    phone.send(cmd="hangup")
    ended = phone.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 200, ended
    uas.wait_for(lambda u: u.counters["hung up by peer"] == 1 and not u.dialogs)


def test_uas_calls_a_registered_phone(uas: RunningUas, phones: Callable[[], Phone]) -> None:
    phone = phones()
    assert _register(phone, uas, BOB, USERS[BOB])["code"] == 200
    call = uas.run(uas.uas.call(BOB))
    assert call.status == 200
    assert 180 in call.provisional
    phone.expect("incoming")
    phone.expect("call_state", state="CONFIRMED")  # our ACK arrived
    assert call.dialog is not None
    assert uas.run(uas.uas.hangup(call.dialog)) == 200
    phone.expect("call_state", state="DISCONNECTED")
