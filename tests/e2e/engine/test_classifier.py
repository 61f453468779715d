"""The call classifier with real phones (CLS-1, DP-2 "call classifier"): the caller's number
(the port's external caller ID in E.164) in the classifier's contacts leaves by the found
step, otherwise by the not-found step; an empty exit is No route (480)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from cloudpbx.db.models import Classifier, Contact, ExternalNumber, Port
from cloudpbx.engine.actions.classifier import caller_numbers
from cloudpbx.engine.call import Call
from cloudpbx.numbers import NumberingPlan

from ..sip.conftest import Phone, phones  # noqa: F401 - the pjsua2 phone fixture
from .pbx_harness import Pbx, Seeder, step, write_tone

VIP = "+74951234567"


def build(s: Seeder) -> None:
    """alice's external caller ID is +74951234567, a contact of classifier "vip"; bob has
    none. 800: vip? found → 2 (message), not found → 3 (message); 801: found → 2, no
    not-found exit."""
    s.port("alice")
    s.port("bob")
    external = ExternalNumber(client_id=s.seed.client_id, number=VIP)
    vip = Classifier(client_id=s.seed.client_id, name="vip")
    s.session.add_all([external, vip])
    s.session.flush()
    s.session.add(Contact(client_id=s.seed.client_id, classifier_id=vip.id, clip=VIP))
    alice = s.session.get(Port, s.seed.ports["alice"])
    assert alice is not None
    alice.callerid_external_id = external.id
    message = s.media("short", write_tone(s.media_dir / "short.wav", 0.3, 1000.0))
    exits = {"found_step": 2, "not_found_step": 3}
    s.number(
        "800",
        [
            step(1, "classifier", 0, classifier_id=vip.id, params=exits),
            step(2, "play_message", 0, media_file_id=message),
            step(3, "play_message", 0, media_file_id=message),
        ],
    )
    s.number(
        "801",
        [
            step(1, "classifier", 0, classifier_id=vip.id, params={"found_step": 2}),
            step(2, "play_message", 0, media_file_id=message),
        ],
    )


BUILD = build


def _call(pbx: Pbx, phone: Phone, number: str) -> int:
    phone.send(cmd="call", uri=pbx.uri(number))
    code: int = phone.expect("call_state", state="DISCONNECTED", timeout=10)["code"]
    return code


def test_found_and_not_found_exits(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """CLS-1: alice (E.164 caller ID in the list) goes to step 2, bob to step 3; both hear
    the message (answered, then BYE)."""
    alice, bob = phones(), phones()
    assert pbx.register(alice, "alice")["code"] == 200
    assert pbx.register(bob, "bob")["code"] == 200
    assert _call(pbx, alice, "800") == 200
    assert _call(pbx, bob, "800") == 200
    pbx.wait_idle()
    (first, _l1, events), (second, _l2, _e2) = pbx.records()
    assert (first.outcome, first.steps) == ("answered", [1, 2])
    assert (second.outcome, second.steps) == ("answered", [1, 3])
    detail = next(str(e.detail["detail"]) for e in events if e.kind == "classifier")
    assert detail == f"vip: {VIP} found"


def test_empty_exit_is_no_route(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """DP-2/DP-4: the classifier's not-found exit is empty: the unanswered caller gets 480;
    the found exit of the same step works."""
    alice, bob = phones(), phones()
    assert pbx.register(alice, "alice")["code"] == 200
    assert pbx.register(bob, "bob")["code"] == 200
    assert _call(pbx, bob, "801") == 480
    assert _call(pbx, alice, "801") == 200
    pbx.wait_idle()
    (first, _l1, _e1), (second, _l2, _e2) = pbx.records()
    assert (first.outcome, first.steps) == ("no_route", [1])
    assert (second.outcome, second.steps) == ("answered", [1, 2])


def test_caller_numbers_forms() -> None:
    """CLS-1: the port's external caller ID and the caller in E.164 (the client's area code
    applies), internal numbers as they are (a 7-digit one is not made an external number)."""
    port = SimpleNamespace(callerid_external="+74951234567", callerid_number="1234567")
    snapshot = SimpleNamespace(ports={5: port}, area_code="495")
    call = Call(client_id=1, caller_port_id=5, caller="1234567", called="800")
    assert caller_numbers(call, snapshot, NumberingPlan()) == {"+74951234567", "1234567"}
    outside = Call(client_id=1, caller_port_id=9, caller="8 (916) 123-45-67", called="800")
    forms = caller_numbers(outside, snapshot, NumberingPlan())
    assert "+79161234567" in forms
