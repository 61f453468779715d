"""Blind transfer with real phones (§4.9 "transfer", RFC 3515 REFER): bob, bridged with alice,
REFERs her to 201; the PBX answers 202, NOTIFYs 100 then 200, hangs up bob and runs 201's
dialplan with alice as the caller (carol rings, answers, alice and carol hear each other).
An unknown number gets a final NOTIFY 404 and alice and bob stay together; a port with the
transfer service off gets 403."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cloudpbx.engine.transfer import RefusalError, refer_target
from cloudpbx.sip.message import Request, parse_message

from ..sip.conftest import Phone, phones  # noqa: F401 - the pjsua2 phone fixture
from .pbx_harness import Pbx, Seeder, read_channel, step, tone_ratio, write_tone

ALICE_HZ, BOB_HZ, CAROL_HZ = 600.0, 800.0, 1100.0


def build(s: Seeder) -> None:
    """alice (100) calls bob (200) or dave (202, transfer off); carol is 201."""
    alice = s.port("alice")
    bob = s.port("bob")
    carol = s.port("carol")
    dave = s.port("dave", services={"transfer": False})
    s.number("100", [step(1, "ring_port", 20, port_id=alice)])
    s.number("200", [step(1, "ring_port", 20, port_id=bob)])
    s.number("201", [step(1, "ring_port", 20, port_id=carol)])
    s.number("202", [step(1, "ring_port", 20, port_id=dave)])
    s.caller_id("alice", "100")


BUILD = build


def _registered(pbx: Pbx, start: Callable[[], Phone], name: str) -> Phone:
    phone = start()
    phone.send(cmd="set", auto_answer=True)
    assert pbx.register(phone, name)["code"] == 200
    return phone


def _hears(phone: Phone, tmp_path: Path, name: str, hz: float) -> float:
    """How clearly ``phone`` hears a tone of ``hz`` now (ratio against 440 Hz)."""
    heard = tmp_path / f"{name}.wav"
    phone.send(cmd="record", file=str(heard))
    time.sleep(0.5)
    phone.send(cmd="stop_record")
    phone.expect("recorded")
    return tone_ratio(read_channel(heard), hz)


def _play(phone: Phone, tmp_path: Path, name: str, hz: float) -> None:
    tone = write_tone(tmp_path / f"{name}-tone.wav", 2.0, hz)
    phone.send(cmd="play", file=str(tone), loop=True)


def _xfer_statuses(phone: Phone) -> list[tuple[int, str]]:
    """What pjsua reported about its REFER up to the final status: the 202 shows as
    ``100 Accepted``, then each NOTIFY's sipfrag."""
    seen = []
    while True:
        status = phone.expect("xfer_status")
        seen.append((status["code"], status["reason"]))
        if status["final"]:
            return seen


def _alice_with(pbx: Pbx, alice: Phone, callee: Phone, number: str) -> None:
    alice.send(cmd="call", uri=pbx.uri(number))
    callee.expect("call_state", state="CONFIRMED")
    alice.expect("call_state", state="CONFIRMED")


def test_blind_transfer_connects_the_caller_to_the_referred_number(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """§4.9 transfer: 202, NOTIFY 100 then 200, bob's leg BYE'd; carol (201's ring step) rings
    and answers; alice and carol hear each other; the CDR has the event and both bridges."""
    alice, bob, carol = (_registered(pbx, phones, n) for n in ("alice", "bob", "carol"))
    _alice_with(pbx, alice, bob, "200")
    bob.send(cmd="xfer", uri=pbx.uri("201"))
    assert _xfer_statuses(bob) == [(100, "Accepted"), (100, "Trying"), (200, "OK")]
    bob.expect("call_state", state="DISCONNECTED")
    carol.expect("incoming")
    carol.expect("call_state", state="CONFIRMED")
    _play(alice, tmp_path, "alice", ALICE_HZ)
    _play(carol, tmp_path, "carol", CAROL_HZ)
    time.sleep(0.3)
    assert _hears(alice, tmp_path, "alice-hears", CAROL_HZ) > 100
    assert _hears(carol, tmp_path, "carol-hears", ALICE_HZ) > 100
    alice.send(cmd="hangup")
    carol.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    [(call, legs, events)] = pbx.records()
    assert call.outcome == "answered"
    outs = {leg.party: (leg.outcome, leg.hangup_cause) for leg in legs if leg.direction == "out"}
    assert outs["bob"] == ("answered", "transferred to 201")
    assert outs["carol"][0] == "answered"
    kinds = [e.kind for e in events]
    assert kinds.count("transfer") == 1
    assert kinds.count("goto_number") == 0  # a transfer, not a dialplan step
    assert kinds.count("step") == 2  # 200's ring step, then 201's (DP-7: the steps go on)
    moves = [e.detail["detail"] for e in events if e.kind == "move"]
    assert any("goto_number" in m and "transferred by bob" in m for m in moves)


def test_unknown_target_404_and_the_call_continues(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """§4.9 transfer to a number the client does not have: final NOTIFY 404 (RFC 3515
    §2.4.5), bob stays bridged with alice (she still hears him)."""
    alice, bob = (_registered(pbx, phones, n) for n in ("alice", "bob"))
    _alice_with(pbx, alice, bob, "200")
    bob.send(cmd="xfer", uri=pbx.uri("999"))
    assert _xfer_statuses(bob) == [(100, "Accepted"), (100, "Trying"), (404, "Not Found")]
    _play(bob, tmp_path, "bob", BOB_HZ)
    time.sleep(0.3)
    assert _hears(alice, tmp_path, "alice-hears-bob", BOB_HZ) > 100
    bob.send(cmd="hangup")
    alice.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()
    [(_call, legs, events)] = pbx.records()
    assert [e.kind for e in events].count("transfer_failed") == 1
    assert {leg.party for leg in legs if leg.direction == "out"} == {"bob"}


def test_transfer_service_off_is_refused_with_403(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """§4.9: a port whose ``transfer`` service is off gets 403 for its REFER."""
    alice, dave = (_registered(pbx, phones, n) for n in ("alice", "dave"))
    _alice_with(pbx, alice, dave, "202")
    dave.send(cmd="xfer", uri=pbx.uri("200"))
    assert _xfer_statuses(dave)[-1][0] == 403
    dave.send(cmd="hangup")
    alice.expect("call_state", state="DISCONNECTED")
    pbx.wait_idle()


def _refer(*refer_to: str) -> Request:
    lines = [
        "REFER sip:pbx@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-xfer",
        "From: <sip:bob@127.0.0.1>;tag=b",
        "To: <sip:alice@127.0.0.1>;tag=a",
        "Call-ID: xfer-1",
        "CSeq: 2 REFER",
        "Max-Forwards: 70",
        *(f"Refer-To: {value}" for value in refer_to),
        "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def test_refer_target_number_and_refusals() -> None:
    """§4.9 / RFC 3515 §2.4.1: the number is the Refer-To user (``%23`` is ``#``); no or two
    Refer-To → 400; attended transfer (``Replaces``, RFC 3891) → 501, not built."""
    assert refer_target(_refer("<sip:201@127.0.0.1:5060>")) == "201"
    assert refer_target(_refer("sip:888%23@pbx")) == "888#"
    for request, status in (
        (_refer(), 400),
        (_refer("<sip:201@pbx>", "<sip:202@pbx>"), 400),
        (_refer("<tel:+74951234567>"), 400),
        (_refer("<sip:201@pbx?Replaces=abc%3Bto-tag%3Dx%3Bfrom-tag%3Dy>"), 501),
    ):
        with pytest.raises(RefusalError) as refused:
            refer_target(request)
        assert refused.value.status == status
