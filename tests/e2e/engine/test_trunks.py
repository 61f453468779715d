"""Trunks to carriers (TRK-1, FWD-1) with SIPp as the carrier and pjsua2 phones as the
client's extensions, the engine in-process on 127.0.0.1 (:mod:`.pbx_harness`).

Out: the port alice (caller ID +74951110000, an external number of the trunk "carrier")
dials 700, whose dialplan rings the forwarding number +79161234567; the trunk's outbound
rule sends it as 89161234567. SIPp (``sipp/carrier_*.xml``) answers 200, says 486, or
challenges with 407 and checks the Digest answer.

In: a second engine whose trunk "carrier-in" trusts 127.0.0.1 (IP authentication) and
rewrites ``^8(\\d{10})$`` to ``+7\\1``; SIPp calls 84951234567, the client's external
number, whose dialplan rings bob. A registering trunk is tested against a SIPp registrar.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloudpbx.db.models import (
    Dialplan,
    DialplanStep,
    DialplanVersion,
    ExternalNumber,
    ForwardingNumber,
    Operator,
    Port,
    RewriteRule,
)

from ..sip.conftest import (
    HOST,
    Phone,
    SippRun,
    finished,
    free_udp_port,
    phones,  # noqa: F401 - the pjsua2 phone fixture
    run_sipp,
    sipp_command,
    udp_port_in_use,
)
from .pbx_harness import Pbx, Seeder, start_pbx, step

SCENARIOS = Path(__file__).resolve().parent / "sipp"
MOBILE = "+79161234567"
CALLER_ID = "+74951110000"
DID = "+74951234567"


@dataclass
class Carrier:
    """A SIPp carrier running in the background on a port chosen in advance."""

    proc: subprocess.Popen[str]
    workdir: Path

    def wait(self, timeout: float = 20.0) -> SippRun:
        stdout, stderr = self.proc.communicate(timeout=timeout)
        return finished(self.proc.returncode, stdout, stderr, self.workdir)


def start_carrier(scenario: str, port: int, workdir: Path) -> Carrier:
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["-sf", str(SCENARIOS / scenario), "-m", "1", "-mp", str(free_udp_port()), "-trace_logs"]
    proc = subprocess.Popen(
        [*sipp_command(*args, port=port), "-timeout", "20"],
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
            pytest.fail(f"SIPp did not start on {port}: {out[-2000:]} {err[-2000:]}")
        time.sleep(0.02)
    return Carrier(proc, workdir)


def _external(s: Seeder, number: str, operator_id: int, steps: list[dict] | None) -> int:
    row = ExternalNumber(client_id=s.seed.client_id, number=number, operator_id=operator_id)
    s.session.add(row)
    s.session.flush()
    if steps is not None:
        plan = Dialplan(
            client_id=s.seed.client_id,
            external_number_id=row.id,
            name=f"plan {number}",
            current_version=1,
        )
        s.session.add(plan)
        s.session.flush()
        s.session.add(
            DialplanVersion(
                dialplan_id=plan.id,
                client_id=s.seed.client_id,
                number=1,
                steps=[DialplanStep(**spec) for spec in steps],
            )
        )
        s.session.flush()
    return row.id


def _operator(s: Seeder, **fields: object) -> int:
    rules = fields.pop("rules", [])
    op = Operator(**fields)
    op.rewrite_rules = [
        RewriteRule(position=i, direction=d, field=f, match=m, replace=r)
        for i, (d, f, m, r) in enumerate(rules)  # type: ignore[attr-defined]
    ]
    s.session.add(op)
    s.session.flush()
    s.seed.ports[f"operator:{op.name}"] = op.id
    return op.id


def build_outbound(carrier_port: int) -> Callable[[Seeder], None]:
    def build(s: Seeder) -> None:
        trunk = _operator(
            s,
            name="carrier",
            host=HOST,
            port=carrier_port,
            username="trunk-user",
            secret_enc=s.box.seal("trunk-pass"),
            rules=[("outbound", "called", r"^\+7(\d{10})$", r"8\1")],
        )
        alice = s.port("alice")
        external = _external(s, CALLER_ID, trunk, None)
        port = s.session.get(Port, alice)
        assert port is not None
        port.callerid_external_id = external
        fwd = ForwardingNumber(client_id=s.seed.client_id, number=MOBILE, name="mobile")
        s.session.add(fwd)
        s.session.flush()
        s.number("700", [step(1, "ring_forwarding", 10, forwarding_number_id=fwd.id)])

    return build


def build_inbound(s: Seeder) -> None:
    trunk = _operator(
        s,
        name="carrier-in",
        host="192.0.2.10",  # TEST-NET-1: never dialled here; calls come from 127.0.0.1
        allowed_addresses=[HOST],
        rules=[("inbound", "called", r"^8(\d{10})$", r"+7\1")],
    )
    bob = s.port("bob")
    s.port("alice")
    _external(s, DID, trunk, [step(1, "ring_port", 10, port_id=bob)])


@dataclass
class Outbound:
    pbx: Pbx
    carrier_port: int


@pytest.fixture(scope="module")
def outbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outbound]:
    carrier_port = free_udp_port()
    pbx = start_pbx(tmp_path_factory.mktemp("pbx-out"), build_outbound(carrier_port))
    yield Outbound(pbx, carrier_port)
    pbx.stop()
    pbx.thread.close()


@pytest.fixture(scope="module")
def inbound_pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    pbx = start_pbx(tmp_path_factory.mktemp("pbx-in"), build_inbound)
    yield pbx
    pbx.stop()
    pbx.thread.close()


@pytest.fixture
def out(outbound: Outbound) -> Outbound:
    outbound.pbx.reset()
    return outbound


@pytest.fixture
def inb(inbound_pbx: Pbx) -> Pbx:
    inbound_pbx.reset()
    return inbound_pbx


def _alice(pbx: Pbx, start_phone: Callable[[], Phone]) -> Phone:
    alice = start_phone()
    assert pbx.register(alice, "alice")["code"] == 200
    return alice


# --- out: forwarding numbers through the trunk ----------------------------------------------


def test_forwarding_number_answered_by_the_carrier(
    out: Outbound,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """FWD-1, TRK-1, DP-4 "ring forwarding number", CDR-1: the forwarding number is dialled
    through the trunk in the carrier's format with the port's external caller ID in From and
    P-Asserted-Identity (SIPp checks both); the carrier's 200 is bridged; the call and its out
    leg record the operator."""
    pbx = out.pbx
    carrier = start_carrier("carrier_answer.xml", out.carrier_port, tmp_path / "sipp")
    alice = _alice(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("700"))
    alice.expect("call_state", state="CONFIRMED")
    time.sleep(0.5)
    alice.send(cmd="hangup")
    run = carrier.wait()
    assert run.returncode == 0, run
    pbx.wait_idle()
    trunk = pbx.seed.ports["operator:carrier"]
    [(call, legs, events)] = pbx.records()
    assert (call.caller, call.called, call.outcome) == ("e2e-alice", "700", "answered")
    assert call.operator_id == trunk
    (leg,) = [leg for leg in legs if leg.direction == "out"]
    assert (leg.party, leg.operator_id, leg.outcome) == ("89161234567", trunk, "answered")
    assert leg.codec == "PCMA"
    assert any(e.kind == "trunk" for e in events)


def test_carrier_busy_is_busy(
    out: Outbound,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """DP-4: the carrier's 486 → Busy; no Busy step → 486 to the caller."""
    pbx = out.pbx
    carrier = start_carrier("carrier_busy.xml", out.carrier_port, tmp_path / "sipp")
    alice = _alice(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("700"))
    ended = alice.expect("call_state", state="DISCONNECTED")
    assert ended["code"] == 486, ended
    assert carrier.wait().returncode == 0
    pbx.wait_idle()
    [(call, legs, _events)] = pbx.records()
    assert call.outcome == "busy"
    assert [leg.outcome for leg in legs if leg.direction == "out"] == ["busy"]


def test_carrier_challenge_is_answered_with_digest(
    out: Outbound,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """TRK-1, RFC 3261 §22.2: the carrier's 407 is answered with the trunk's credentials
    (SIPp verifies the Digest), the 200 is bridged, the carrier's BYE → After answer → BYE
    to the caller."""
    pbx = out.pbx
    carrier = start_carrier("carrier_auth.xml", out.carrier_port, tmp_path / "sipp")
    alice = _alice(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("700"))
    alice.expect("call_state", state="CONFIRMED")
    alice.expect("call_state", state="DISCONNECTED", timeout=10)
    run = carrier.wait()
    assert run.returncode == 0, run
    pbx.wait_idle()
    [(call, legs, _events)] = pbx.records()
    assert call.outcome == "answered"
    # Both out legs may start in the same millisecond: compare them as a set.
    outs = {(leg.outcome, leg.hangup_cause) for leg in legs if leg.direction == "out"}
    assert ("no_route", "INVITE failed: 407") in outs
    assert sorted(outcome for outcome, _cause in outs) == ["answered", "no_route"]
    ha1 = _md5("trunk-user:carrier.test:trunk-pass")
    ha2 = _md5(f"INVITE:sip:89161234567@{HOST}:{out.carrier_port}")
    expected = _md5(f"{ha1}:4e6f6e63652d31323334:{ha2}")  # RFC 2617 §3.2.2.1, no qop
    logged = "".join(p.read_text() for p in run.files("*_logs.log"))
    assert f"DIGEST-RESPONSE {expected}" in logged, logged


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_trunk_unreachable_is_no_route(
    out: Outbound,
    phones: Callable[[], Phone],  # noqa: F811
) -> None:
    """DP-4: nobody answers at the trunk's address (no 1xx within 2 s) → No route → 480."""
    pbx = out.pbx
    alice = _alice(pbx, phones)
    alice.send(cmd="call", uri=pbx.uri("700"))
    ended = alice.expect("call_state", state="DISCONNECTED", timeout=10)
    assert ended["code"] == 480, ended
    pbx.wait_idle()
    [(call, _legs, _events)] = pbx.records()
    assert call.outcome == "no_route"


def _uac(scenario: str, pbx: Pbx, did: str) -> list[str]:
    target = f"{HOST}:{pbx.port}"
    return ["-sf", str(SCENARIOS / scenario), target, "-s", did, "-m", "1", "-timeout", "15"]


# --- in: carriers' calls to DIDs --------------------------------------------------------------


def test_carrier_call_to_a_did_runs_its_dialplan(
    inb: Pbx,
    phones: Callable[[], Phone],  # noqa: F811
    tmp_path: Path,
) -> None:
    """TRK-1 in, §3a, CDR-1: an INVITE from the trunk's allowed address is not challenged;
    the DID 84951234567 is rewritten to +74951234567, the external number picks the client,
    its dialplan rings bob; the call is "incoming" with the operator recorded."""
    bob = phones()
    bob.send(cmd="set", auto_answer=True)
    assert inb.register(bob, "bob")["code"] == 200
    run = run_sipp(
        [*_uac("carrier_call.xml", inb, "84951234567"), "-mp", str(free_udp_port())],
        tmp_path / "sipp",
    )
    assert run.returncode == 0, run
    bob.expect("incoming")
    bob.expect("call_state", state="DISCONNECTED")
    inb.wait_idle()
    trunk = inb.seed.ports["operator:carrier-in"]
    [(call, legs, _events)] = inb.records()
    assert (call.caller, call.called, call.direction) == (MOBILE, DID, "incoming")
    assert (call.operator_id, call.outcome) == (trunk, "answered")
    (leg_in,) = [leg for leg in legs if leg.direction == "in"]
    assert leg_in.operator_id == trunk
    assert inb.call(lambda: inb.runtime.b2bua.counters.get("407", 0)) == 0


def test_carrier_call_to_an_unknown_did_gets_404(inb: Pbx, tmp_path: Path) -> None:
    """TRK-1 / DP-4: a DID that is no client's external number → 404, no call record."""
    run = run_sipp(
        _uac("carrier_unknown.xml", inb, "84950000000"),
        tmp_path / "sipp",
    )
    assert run.returncode == 0, run
    assert inb.records() == []
    assert inb.call(lambda: inb.runtime.b2bua.counters.get("trunk_404", 0)) >= 1


def test_trunk_registers_refreshes_and_unregisters(inb: Pbx, tmp_path: Path) -> None:
    """TRK-1: a registering trunk REGISTERs with Digest (SIPp checks it), refreshes before
    the 2 s it was granted run out, shows "registered" in ``trunk_status`` and unregisters
    (Expires: 0) when it is removed."""
    port = free_udp_port()
    carrier = start_carrier("carrier_register.xml", port, tmp_path / "sipp")
    with inb.sessions() as session:
        op = Operator(
            name="carrier-reg",
            host=HOST,
            port=port,
            register=True,
            username="reg-user",
            secret_enc=inb.runtime.secret_box.seal("reg-pass"),
        )
        session.add(op)
        session.commit()
        trunk_id = op.id
    runtime = inb.runtime
    inb.thread.run(runtime.trunks.reload())

    def state() -> tuple[str, float | None]:
        status = inb.call(runtime.trunk_status)[trunk_id]
        return status.state, status.expires_in_s

    inb.wait_until(lambda: state()[0] == "registered", timeout=5)
    inb.wait_until(lambda: (state()[1] or 0) > 10, timeout=5)  # the refresh got 60 s
    with inb.sessions() as session:
        row = session.get(Operator, trunk_id)
        session.delete(row)
        session.commit()
    inb.thread.run(runtime.trunks.reload())
    run = carrier.wait()
    assert run.returncode == 0, run
    assert trunk_id not in inb.call(runtime.trunk_status)
