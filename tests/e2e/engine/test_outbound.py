"""Outbound calls from phones (TRK-1, §3a, ADM-5, CDR-1) with SIPp as the carrier and a
pjsua2 phone as the client's extension, the engine in-process on 127.0.0.1.

The port alice (caller ID +74951110000, an external number of the trunk "carrier", no
rewrite rules) dials numbers the client does not have: 89161234567 reaches the carrier as
+79161234567; 112 goes out as dialled; an international number is refused (the client's
default directions exclude it). A second engine without trunks answers 112 with 503 and a
national number with 480.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudpbx.db.models import Port

from ..sip.conftest import (
    HOST,
    Phone,
    free_udp_port,
    phones,  # noqa: F401 - the pjsua2 phone fixture
)
from .pbx_harness import Pbx, Seeder, start_pbx
from .test_trunks import CALLER_ID, Outbound, _external, _operator, start_carrier


def build_with_trunk(carrier_port: int) -> Callable[[Seeder], None]:
    def build(s: Seeder) -> None:
        trunk = _operator(s, name="carrier", host=HOST, port=carrier_port)
        alice = s.port("alice")
        port = s.session.get(Port, alice)
        assert port is not None
        port.callerid_external_id = _external(s, CALLER_ID, trunk, None)

    return build


def build_without_trunk(s: Seeder) -> None:
    s.port("alice")


@pytest.fixture(scope="module")
def with_trunk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outbound]:
    carrier_port = free_udp_port()
    pbx = start_pbx(tmp_path_factory.mktemp("pbx-dial-out"), build_with_trunk(carrier_port))
    yield Outbound(pbx, carrier_port)
    pbx.stop()
    pbx.thread.close()


@pytest.fixture(scope="module")
def no_trunk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    pbx = start_pbx(tmp_path_factory.mktemp("pbx-no-trunk"), build_without_trunk)
    yield pbx
    pbx.stop()
    pbx.thread.close()


@pytest.fixture
def out(with_trunk: Outbound) -> Outbound:
    with_trunk.pbx.reset()
    return with_trunk


def _alice(pbx: Pbx, start_phone: Callable[[], Phone]) -> Phone:
    alice = start_phone()
    assert pbx.register(alice, "alice")["code"] == 200
    return alice


def test_phone_dials_a_mobile_number_through_the_trunk(
    out: Outbound,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """TRK-1, §3a, CDR-1: 89161234567 from a phone reaches the carrier as +79161234567 with the
    port's external caller ID in From and P-Asserted-Identity (SIPp checks them); answered
    and bridged; the call record is long distance (МГ) over the trunk's operator."""
    pbx = out.pbx
    carrier = start_carrier("carrier_outbound.xml", out.carrier_port, tmp_path / "sipp")
    alice = _alice(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("89161234567"))
    alice.expect("call_state", state="CONFIRMED")
    alice.send(cmd="hangup")
    run = carrier.wait()
    assert run.returncode == 0, run
    pbx.wait_idle()
    trunk = pbx.seed.ports["operator:carrier"]
    [(call, legs, events)] = pbx.records()
    assert (call.called, call.direction, call.outcome) == (
        "+79161234567",
        "long_distance",
        "answered",
    )
    assert call.operator_id == trunk
    (leg,) = [leg for leg in legs if leg.direction == "out"]
    assert (leg.party, leg.operator_id, leg.outcome) == ("+79161234567", trunk, "answered")
    assert any(e.kind == "trunk" for e in events)


def test_emergency_number_goes_out_as_dialled_and_busy_maps_to_486(
    out: Outbound,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """§3a: 112 is dialled out through the trunk as 112 (SIPp checks the Request-URI), the
    call is of direction emergency; DP-4: the carrier's 486 reaches the caller as 486."""
    pbx = out.pbx
    carrier = start_carrier("carrier_emergency_busy.xml", out.carrier_port, tmp_path / "sipp")
    alice = _alice(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("112"))
    ended = alice.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 486, ended
    assert carrier.wait().returncode == 0
    pbx.wait_idle()
    [(call, _legs, _events)] = pbx.records()
    assert (call.called, call.direction, call.outcome) == ("112", "emergency", "busy")


def test_international_call_is_forbidden_by_the_client_limit(
    out: Outbound,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """ADM-5: international is not among the client's default allowed directions: 403,
    and the refused attempt is in the call record with an event ``forbidden``."""
    pbx = out.pbx
    alice = _alice(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("81049301234567"))
    ended = alice.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 403, ended
    pbx.wait_idle()
    [(call, _legs, events)] = pbx.records()
    assert (call.called, call.direction, call.outcome) == (
        "+49301234567",
        "international",
        "no_route",
    )
    assert [e.kind for e in events] == ["forbidden"]


def test_without_a_trunk_emergency_is_503_and_other_calls_480(
    no_trunk: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """§3a: an emergency call with no usable trunk gets 503 and an ERROR log; DP-4: a
    national number with no trunk is No route → 480; garbage stays 404."""
    pbx = no_trunk
    pbx.reset()
    alice = _alice(pbx, phones)
    with caplog.at_level("ERROR", logger="cloudpbx.engine.outbound"):
        alice.send(cmd="call", uri=pbx.uri("112"))
        ended = alice.expect("call_state", state="DISCONNECTED")
        assert ended["code"] == 503, ended
        pbx.wait_idle()
    assert any("EMERGENCY" in r.getMessage() for r in caplog.records)
    alice.send(cmd="call", uri=pbx.uri("84951234567"))
    assert alice.expect("call_state", state="DISCONNECTED")["code"] == 480
    alice.send(cmd="call", uri=pbx.uri("555"))
    assert alice.expect("call_state", state="DISCONNECTED")["code"] == 404
    pbx.wait_idle()
    directions = [(c.called, c.direction, c.outcome) for c, _legs, _events in pbx.records()]
    assert directions == [
        ("112", "emergency", "no_route"),
        ("+74951234567", "local", "no_route"),
    ]
