"""Active calls (AC-1) and port status (PRT-1) through the API, over a real CallRegistry.

The engine's in-process pieces are used as the engine uses them: a
:class:`~cloudpbx.engine.active_calls.CallRegistry` the test fills as the B2BUA would, behind a
:class:`~cloudpbx.engine.control.LocalEngineControl` whose hang-up removes the call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from sqlalchemy import delete

from cloudpbx.api.routes import calls as calls_routes
from cloudpbx.db.models import UserInternalNumber, UserRight
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.engine.active_calls import ActiveCall, ActiveLeg, CallRegistry, CallState
from cloudpbx.engine.control import ContactStatus, LocalEngineControl, PortStatus
from cloudpbx.rights import Level, Right

from .conftest import Caller, World
from .seed import furnished_client

START = 1_700_000_000_000


@dataclass
class Live:
    registry: CallRegistry
    a: dict[str, int]
    b: dict[str, int]
    hung_up: list[str]

    def call(self, uuid: str, client: dict[str, int], internal: str, caller: str = "+7") -> Any:
        call = ActiveCall(
            uuid=uuid,
            client_id=client["client"],
            caller=caller,
            called=internal,
            internal_number=internal,
            start_ms=START,
            legs=(ActiveLeg(leg_id=f"{uuid}-in", direction="in", party=caller),),
        )
        self.registry.add(call)
        return call


@pytest.fixture
def live(world: World) -> Live:
    a = furnished_client(world.engine, "alpha", "1")
    b = furnished_client(world.engine, "beta", "2")
    registry = CallRegistry()
    hung_up: list[str] = []

    async def hangup(uuid: str) -> bool:
        hung_up.append(uuid)
        return registry.remove(uuid) is not None

    def port_status(client_id: int) -> dict[int, PortStatus]:
        if client_id != a["client"]:
            return {}
        contact = ContactStatus(
            uri="sip:alpha-1@127.0.0.1:5070",
            transport="udp",
            source="127.0.0.1:5070",
            expires_at_ms=START + 3_600_000,
            user_agent="pjsua2",
            available=True,
        )
        return {a["ports"]: PortStatus(port_id=a["ports"], contacts=(contact,))}

    state = world.http.app.state.cloudpbx
    state.engine = LocalEngineControl(registry, hangup=hangup, port_status=port_status)
    return Live(registry, a, b, hung_up)


def _client_user(world: World, client_id: int, number_id: int, rights: set[Right]) -> Caller:
    """A client user of one internal number with exactly ``rights``."""
    user_id = world.user(Level.CLIENT_USER, client_id)
    with make_sessionmaker(world.engine)() as s:
        s.execute(delete(UserRight).where(UserRight.user_id == user_id))
        s.add_all(UserRight(user_id=user_id, right=r.value) for r in rights | {Right.HTTPS_LOGIN})
        s.add(UserInternalNumber(user_id=user_id, internal_number_id=number_id))
        s.commit()
    return world.login(user_id)


def _url(client: dict[str, int], tail: str = "") -> str:
    return f"/api/v1/clients/{client['client']}/active-calls{tail}"


def test_list_shows_the_clients_calls_only(world: World, live: Live) -> None:
    """AC-1 / ADM-4: a client's list holds its calls; another client's are invisible."""
    live.call("a-1", live.a, "100")
    live.call("b-1", live.b, "200")
    admin_a = world.caller(Level.CLIENT_ADMIN, live.a["client"])
    got = admin_a.ok("get", _url(live.a))
    assert (got["total"], got["engine_running"]) == (1, True)
    (call,) = got["items"]
    assert (call["uuid"], call["state"], call["internal_number"]) == ("a-1", "ringing", "100")
    assert call["start"] == "2023-11-14T22:13:20.000+00:00"
    assert call["legs"] == [
        {"leg_id": "a-1-in", "direction": "in", "party": "+7", "port_id": None, "state": "ringing"}
    ]
    assert admin_a.get(_url(live.b)).status_code == 404
    staff = world.caller(Level.CLIENTS_ADMIN)
    assert [c["uuid"] for c in staff.ok("get", _url(live.b))["items"]] == ["b-1"]


def test_client_user_sees_calls_of_their_numbers(world: World, live: Live) -> None:
    """AC-1 / ADM-1: a client user lists only the calls of their own numbers."""
    live.call("mine", live.a, "100")
    live.call("theirs", live.a, "555")
    live.call("from-me", live.a, "555", caller="100")
    user = world.login(live.a["users"])  # the seed's user of internal number 100
    got = user.ok("get", _url(live.a))
    assert [c["uuid"] for c in got["items"]] == ["from-me", "mine"]


def test_hangup_needs_the_manage_calls_right(world: World, live: Live) -> None:
    """AC-1: read-only without "manage calls" (403); with it the call is hung up (204)."""
    live.call("a-1", live.a, "100")
    viewer = _client_user(world, live.a["client"], live.a["internal-numbers"], {Right.OWN_VIEW_CDR})
    assert viewer.ok("get", _url(live.a))["total"] == 1
    response = viewer.post(_url(live.a, "/a-1/hangup"))
    assert response.status_code == 403, response.text
    manager = world.login(live.a["users"])  # own.manage_calls in the client-user preset
    assert manager.post(_url(live.a, "/a-1/hangup")).status_code == 204
    assert live.hung_up == ["a-1"]
    assert manager.ok("get", _url(live.a))["total"] == 0
    assert manager.post(_url(live.a, "/a-1/hangup")).status_code == 404


def test_hangup_of_a_call_out_of_reach_is_404(world: World, live: Live) -> None:
    """ADM-4 / ADM-1: another client's call, or another user's, does not exist for you."""
    live.call("b-1", live.b, "200")
    live.call("a-other", live.a, "555")
    admin_a = world.caller(Level.CLIENT_ADMIN, live.a["client"])
    assert admin_a.post(_url(live.a, "/b-1/hangup")).status_code == 404
    assert admin_a.post(_url(live.b, "/b-1/hangup")).status_code == 404
    user = world.login(live.a["users"])
    assert user.post(_url(live.a, "/a-other/hangup")).status_code == 404
    assert live.hung_up == []
    assert live.registry.count() == 2


def test_without_an_engine_lists_are_empty_and_hangup_is_503(world: World) -> None:
    """AC-1: an API without an engine says so instead of pretending there are no calls."""
    a = furnished_client(world.engine, "alpha", "1")
    admin = world.caller(Level.CLIENT_ADMIN, a["client"])
    got = admin.ok("get", _url(a))
    assert got == {"items": [], "total": 0, "engine_running": False}
    response = admin.post(_url(a, "/x/hangup"))
    assert (response.status_code, response.json()["code"]) == (503, "engine_not_running")
    status = admin.ok("get", f"/api/v1/clients/{a['client']}/ports/{a['ports']}/status")
    assert (status["registered"], status["engine_running"]) == (False, False)
    with admin.http.stream("GET", _url(a, "/stream"), headers=admin.headers) as stream:
        body = stream.read().decode()
    assert body.startswith("event: snapshot\n")
    assert '"engine_running": false' in body


def test_port_status_shows_registered_contacts(world: World, live: Live) -> None:
    """PRT-1: a port's availability and contacts; another client's port is 404."""
    admin_a = world.caller(Level.CLIENT_ADMIN, live.a["client"])
    url = f"/api/v1/clients/{live.a['client']}/ports/{live.a['ports']}/status"
    got = admin_a.ok("get", url)
    assert (got["registered"], got["available"], got["engine_running"]) == (True, True, True)
    (contact,) = got["contacts"]
    assert (contact["uri"], contact["transport"], contact["source"]) == (
        "sip:alpha-1@127.0.0.1:5070",
        "udp",
        "127.0.0.1:5070",
    )
    other = f"/api/v1/clients/{live.a['client']}/ports/{live.b['ports']}/status"
    assert admin_a.get(other).status_code == 404
    admin_b = world.caller(Level.CLIENT_ADMIN, live.b["client"])
    assert admin_b.get(url).status_code == 404
    b_url = f"/api/v1/clients/{live.b['client']}/ports/{live.b['ports']}/status"
    assert admin_b.ok("get", b_url)["registered"] is False


def _events(lines: Iterator[str], count: int) -> list[tuple[str, Any]]:
    """The next ``count`` SSE events (comments skipped) as (event, data)."""
    out: list[tuple[str, Any]] = []
    kind = None
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind is not None:
            out.append((kind, json.loads(line.removeprefix("data: "))))
            kind = None
            if len(out) == count:
                return out
    raise AssertionError(f"the stream ended after {out}")


def test_stream_pushes_call_events(
    world: World, live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AC-1 live push: snapshot, then started / answered / ended of the client's calls only,
    and keep-alive comments while nothing happens."""
    monkeypatch.setattr(calls_routes, "HEARTBEAT_S", 0.05)
    first = live.call("a-0", live.a, "100")
    admin = world.caller(Level.CLIENT_ADMIN, live.a["client"])
    with admin.http.stream("GET", _url(live.a, "/stream"), headers=admin.headers) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        ((kind, data),) = _events(lines, 1)
        assert kind == "snapshot"
        assert [c["uuid"] for c in data["calls"]] == ["a-0"]
        live.call("b-1", live.b, "200")  # another client's: never on this stream
        second = live.call("a-1", live.a, "101")
        live.registry.update(replace(second, state=CallState.ANSWERED, answer_ms=START + 5))
        live.registry.remove(first.uuid)
        got = _events(lines, 3)
        assert [(k, d["uuid"]) for k, d in got] == [
            ("started", "a-1"),
            ("answered", "a-1"),
            ("ended", "a-0"),
        ]
        assert got[1][1]["answer_ms"] == START + 5
        assert any(line.startswith(": keepalive") for line in _until_comment(lines))
    # The subscription ends with the stream: a gone browser costs the engine nothing.
    assert live.registry.subscriber_count(live.a["client"]) == 0


def _until_comment(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        yield line
        if line.startswith(":"):
            return


def test_stream_of_a_client_user_is_filtered(world: World, live: Live) -> None:
    """ADM-1: a client user's stream carries the calls of their numbers only."""
    user = world.login(live.a["users"])
    with user.http.stream("GET", _url(live.a, "/stream"), headers=user.headers) as stream:
        lines = stream.iter_lines()
        assert _events(lines, 1)[0][0] == "snapshot"
        live.call("theirs", live.a, "555")
        live.call("mine", live.a, "100")
        assert [(k, d["uuid"]) for k, d in _events(lines, 1)] == [("started", "mine")]


def test_stream_of_another_client_is_404(world: World, live: Live) -> None:
    """ADM-4: the stream checks the client before it starts."""
    admin_b = world.caller(Level.CLIENT_ADMIN, live.b["client"])
    assert admin_b.get(_url(live.a, "/stream")).status_code == 404
