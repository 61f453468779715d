"""ADM-5 spend limit with a pjsua2 phone and the engine in-process on 127.0.0.1: a rated
client (its billing account has a tariff) with nothing available (balance + credit limit ≤ 0)
gets 403 for a call out and an event ``spend_limit`` in the call record; the snapshot carries
the account (no database read on the INVITE path)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from cloudpbx.db.models import BillingAccount, Port, Tariff, TariffRate

from ..sip.conftest import (
    HOST,
    Phone,
    free_udp_port,
    phones,  # noqa: F401 - the pjsua2 phone fixture
)
from .pbx_harness import Pbx, Seeder, start_pbx
from .test_trunks import CALLER_ID, _external, _operator


def build(carrier_port: int) -> Callable[[Seeder], None]:
    def seed(s: Seeder) -> None:
        trunk = _operator(s, name="carrier", host=HOST, port=carrier_port)
        port = s.session.get(Port, s.port("alice"))
        assert port is not None
        port.callerid_external_id = _external(s, CALLER_ID, trunk, None)
        tariff = Tariff(name="Base", currency="RUB")
        s.session.add(tariff)
        s.session.flush()
        s.session.add(TariffRate(tariff_id=tariff.id, prefix="7", price_per_minute=Decimal(2)))
        s.session.add(
            BillingAccount(
                client_id=s.seed.client_id,
                number="BA-E2E",
                tariff_id=tariff.id,
                balance=Decimal("-3.50"),
                credit_limit=Decimal("3.50"),
            )
        )

    return seed


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    pbx = start_pbx(tmp_path_factory.mktemp("pbx-spend"), build(free_udp_port()))
    yield pbx
    pbx.stop()
    pbx.thread.close()


def test_call_out_is_refused_when_nothing_is_available(
    pbx: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """ADM-5: available = -3.50 + 3.50 = 0 → 403 for 89161234567, event ``spend_limit``."""
    pbx.reset()
    alice = phones()
    assert pbx.register(alice, "alice")["code"] == 200
    alice.send(cmd="call", uri=pbx.uri("89161234567"))
    ended = alice.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 403, ended
    pbx.wait_idle()
    [(call, _legs, events)] = pbx.records()
    assert (call.called, call.direction, call.outcome) == (
        "+79161234567",
        "long_distance",
        "no_route",
    )
    assert [e.kind for e in events] == ["spend_limit"]
    assert "available balance 0" in events[0].detail["detail"]
