"""Qualify (PRT-1): the pure schedule and the shell with a fake SIP client."""

from __future__ import annotations

import asyncio

import pytest

from cloudpbx.engine.location import MemoryLocationStore
from cloudpbx.engine.qualify import Qualifier, QualifySchedule, options_request
from cloudpbx.engine.registrar import Registrar
from cloudpbx.sip.message import Request, Response, make_response
from cloudpbx.transport.base import Flow

from .test_registrar import KEY, REALM, T0, Directory, Phone, Port, seeded, udp

KEY_A = (1, "sip:a@h")


# --- the pure schedule ------------------------------------------------------------------------


def test_probe_every_interval_after_an_answer() -> None:
    """PRT-1: OPTIONS every interval; an answer schedules the next one."""
    s = QualifySchedule(interval=30, timeout=5)
    s.track(KEY_A, 0)
    assert s.next_deadline() == 30
    assert s.due(29).probes == []
    due = s.due(30)
    assert due.probes == [(KEY_A, 1)]
    assert s.answered(KEY_A, 1, 30.2, 200) is True
    assert s.next_deadline() == 60
    assert s.due(59).probes == []
    assert s.due(60).probes == [(KEY_A, 2)]


def test_no_answer_within_the_timeout_is_a_failure() -> None:
    """PRT-1: a contact that stops answering becomes unavailable."""
    s = QualifySchedule(interval=30, timeout=5)
    s.track(KEY_A, 0)
    s.due(30)
    assert s.due(34).failed == []
    assert s.due(35).failed == [KEY_A]
    # The transaction's own timeout later changes nothing more.
    assert s.answered(KEY_A, 1, 62, None) is None
    # ... but a late answer proves the phone is back.
    assert s.answered(KEY_A, 1, 40, 200) is True
    assert s.due(60).probes == [(KEY_A, 2)]


@pytest.mark.parametrize(
    ("status", "alive"), [(200, True), (405, True), (408, False), (None, False)]
)
def test_what_an_answer_means(status: int | None, alive: bool) -> None:
    """PRT-1: any answer but 408 proves the phone is there; 408 or none does not."""
    s = QualifySchedule(interval=30, timeout=5)
    s.track(KEY_A, 0)
    s.due(30)
    assert s.answered(KEY_A, 1, 31, status) is alive


def test_results_of_superseded_probes_are_ignored() -> None:
    """PRT-1: probe 1's Timer F must not undo probe 2's answer."""
    s = QualifySchedule(interval=30, timeout=5)
    s.track(KEY_A, 0)
    s.due(30)
    s.due(35)  # probe 1 timed out
    s.due(65)  # probe 2 sent
    assert s.answered(KEY_A, 2, 65.1, 200) is True
    assert s.answered(KEY_A, 1, 66, None) is None


def test_untracked_keys_are_forgotten() -> None:
    s = QualifySchedule(interval=30, timeout=5)
    s.track(KEY_A, 0, delay=1)
    s.untrack(KEY_A)
    assert s.due(100).probes == []
    assert s.next_deadline() is None
    assert s.answered(KEY_A, 1, 100, 200) is None


# --- the shell ----------------------------------------------------------------------------------


class FakeClient:
    """A SipClient whose futures the test resolves."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sent: list[tuple[Request, Flow, asyncio.Future[Response | None]]] = []

    def via_for(self, flow: Flow) -> str:
        return f"SIP/2.0/UDP {flow.local[0]}:{flow.local[1]};rport;branch=z9hG4bKq{len(self.sent)}"

    def request(self, request: Request, flow: Flow) -> asyncio.Future[Response | None]:
        future: asyncio.Future[Response | None] = self.loop.create_future()
        self.sent.append((request, flow, future))
        return future


def test_qualifier_marks_contacts_unavailable_and_back() -> None:
    """PRT-1: OPTIONS through the binding's flow; no answer -> unavailable; answer -> back."""
    asyncio.run(_qualifier_scenario())


async def _qualifier_scenario() -> None:
    now = [T0]
    directory = Directory()
    directory.add(Port(1, 10, "alice", "alice-pw"))
    registrar = Registrar(
        directory,
        MemoryLocationStore(),
        realm=REALM,
        nonce_key=KEY,
        rand=seeded(),
        clock=lambda: now[0],
    )
    client = FakeClient(asyncio.get_running_loop())
    qualifier = Qualifier(registrar, client, interval=30, timeout=5)
    flow = udp(40123)
    Phone("alice", "alice-pw").register(registrar, ["<sip:a@127.0.0.1:40123>"], flow=flow)

    now[0] = T0 + 30
    qualifier.tick(now[0])
    ((request, sent_flow, future),) = client.sent
    assert request.method == "OPTIONS"
    assert str(request.uri) == "sip:a@127.0.0.1:40123"
    assert sent_flow == flow  # NAT: the flow the REGISTER came on
    now[0] = T0 + 35
    qualifier.tick(now[0])
    assert not registrar.is_available(1)
    future.set_result(make_response(request, 200, to_tag="x"))
    await asyncio.sleep(0)
    assert registrar.is_available(1)

    registrar.handle_register(Phone("alice", "x").request(["*"], expires=0), flow, now[0])
    registrar.drop_port(1)
    assert len(qualifier.schedule) == 0


def test_options_request_is_well_formed() -> None:
    """RFC 3261 §11.1: To = the contact, From names us, fresh Call-ID."""
    from cloudpbx.engine.location import Binding

    b = Binding(
        port_id=1,
        client_id=1,
        uri="sip:a@127.0.0.1:5062;transport=tcp",
        flow=udp(),
        expires_at=0,
        call_id="c",
        cseq=1,
    )
    req = options_request(b, "SIP/2.0/TCP 127.0.0.1:5060;rport;branch=z9hG4bKx", user_agent="t")
    req.validate()
    assert req.to.uri == req.uri
    assert str(req.from_.uri) == "sip:qualify@127.0.0.1"
