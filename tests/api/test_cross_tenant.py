"""ADM-4 tenancy, table-driven over the whole OpenAPI document (issue 2 §5).

Every operation whose path names a client, or an object, is called by the administrator of
client B with client A's ids. Each must answer 404: another client's objects do not exist for
B. The table of request bodies must cover every operation that needs one, so a new route
cannot slip past this test with a 422.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from cloudpbx.engine.active_calls import ActiveCall, CallRegistry
from cloudpbx.engine.control import LocalEngineControl
from cloudpbx.rights import Level, Right

from .conftest import Caller, World
from .seed import furnished_client, system_objects

WAV = (
    b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00@\x1f\x00\x00\x80>\x00\x00"
    b"\x02\x00\x10\x00data\x00\x00\x00\x00"
)
STEPS = [{"level": 1, "action": "hangup", "target": None, "timeout": 0, "conditions": {}}]

# Valid bodies by (method, path): validation must pass so that the tenant check is reached.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("put", "/api/v1/clients/{client_id}/dialplans/{item_id}/steps"): {
        "json": {"steps": STEPS, "layout": {}, "comment": "x", "base_version": 1}
    },
    ("post", "/api/v1/clients/{client_id}/dialplans"): {
        "json": {"internal_number_id": 1, "steps": STEPS}
    },
    ("post", "/api/v1/clients/{client_id}/dialplans/validate"): {"json": {"steps": STEPS}},
    ("get", "/api/v1/clients/{client_id}/usages"): {"params": {"kind": "port", "id": 1}},
    ("post", "/api/v1/clients/{client_id}/dialplans/{item_id}/rollback"): {"json": {"version": 1}},
    ("post", "/api/v1/clients/{client_id}/media-files/{item_id}/audio"): {
        "files": {"file": ("a.wav", WAV, "audio/wav")}
    },
    ("post", "/api/v1/clients/{client_id}/classifiers/{item_id}/contacts/import"): {
        "content": "name,clip\nИван,+79160000001\n".encode(),
        "headers": {"Content-Type": "text/csv"},
    },
    ("post", "/api/v1/clients/{client_id}/webhooks"): {
        "json": {"url": "https://crm.example.com/", "secret": "s" * 16}
    },
    ("post", "/api/v1/clients/{client_id}/billing-account/payments"): {
        "json": {"amount": "10.00", "comment": "x"}
    },
}


def _operations(app: Any) -> list[tuple[str, str, dict[str, Any]]]:
    spec = app.openapi()
    return [
        (method, path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _object_param(path: str) -> tuple[str, str] | None:
    """The first object id in a path, with the collection segment that precedes it."""
    match = re.search(r"/([a-z\-]+)/\{(?!client_id)([a-z_]+)\}", path)
    return (match.group(1), match.group(2)) if match else None


def _fill(path: str, client_id: int, ids: dict[str, int]) -> str:
    obj = _object_param(path)
    if obj is not None:
        segment, name = obj
        key = "client" if segment == "clients" else segment
        assert key in ids, f"seed.furnished_client has no object for /{segment}/: add one"
        path = path.replace("{" + name + "}", str(ids[key]), 1)
    path = path.replace("{client_id}", str(client_id))
    return re.sub(r"\{[a-z_]+\}", "1", path)


def _request(caller: Caller, method: str, path: str, url: str, op: dict[str, Any]) -> Any:
    kwargs = dict(BODIES.get((method, path), {}))
    if "requestBody" in op and not kwargs:
        kwargs = {"json": {}}
    headers = {**caller.headers, **kwargs.pop("headers", {})}
    return caller.http.request(method.upper(), url, headers=headers, **kwargs)


@pytest.fixture
def tenants(world: World) -> tuple[dict[str, int], dict[str, int], Caller]:
    a = furnished_client(world.engine, "alpha", "1")
    b = furnished_client(world.engine, "beta", "2")
    system_objects(world.engine)
    _active_call(world, a)
    admin_b = world.caller(Level.CLIENT_ADMIN, b["client"], extra=(Right.TELEMARKETING.value,))
    return a, b, admin_b


def _active_call(world: World, a: dict[str, Any]) -> None:
    """AC-1: a live call of A in a real registry, so that hang-up's tenant check is tried."""
    registry = CallRegistry()
    call = ActiveCall(
        uuid="a-call",
        client_id=a["client"],
        caller="+7",
        called="100",
        internal_number="100",
        start_ms=0,
    )
    registry.add(call)

    async def hangup(uuid: str) -> bool:
        return registry.remove(uuid) is not None

    world.http.app.state.cloudpbx.engine = LocalEngineControl(
        registry, hangup=hangup, port_status=lambda _client: {}
    )
    a["active-calls"] = call.uuid


def test_every_client_route_hides_other_clients(world: World, tenants: Any) -> None:
    """ADM-4: B's administrator gets 404 for every route under client A."""
    a, _b, admin_b = tenants
    checked, wrong = 0, []
    for method, path, op in _operations(world.http.app):
        if "{client_id}" not in path and not path.startswith("/api/v1/clients/{"):
            continue
        url = _fill(path, a["client"], a)
        response = _request(admin_b, method, path, url, op)
        if response.status_code != 404:
            wrong.append(f"{method.upper()} {path}: {response.status_code} {response.text[:200]}")
        checked += 1
    assert not wrong, "422 means: add a valid body to BODIES\n" + "\n".join(wrong)
    assert checked > 40


def test_other_clients_objects_are_404_in_own_client(world: World, tenants: Any) -> None:
    """ADM-4: A's object ids under B's own client path are 404 for B, for every {id} route."""
    a, b, admin_b = tenants
    checked, wrong = 0, []
    for method, path, op in _operations(world.http.app):
        if "{client_id}" not in path or _object_param(path) is None:
            continue
        url = _fill(path, b["client"], a)
        response = _request(admin_b, method, path, url, op)
        if response.status_code != 404:
            wrong.append(f"{method.upper()} {path}: {response.status_code} {response.text[:200]}")
        checked += 1
    assert not wrong, "422 means: add a valid body to BODIES\n" + "\n".join(wrong)
    assert checked > 30


OPEN_TO_ALL = ("/api/v1/auth", "/api/v1/health", "/api/v1/rights")


def test_installation_objects_are_closed_to_client_admins(world: World, tenants: Any) -> None:
    """ADM-1: operators, tariffs, staff users and the whole audit log are the provider's."""
    _a, _b, admin_b = tenants
    for method, path, op in _operations(world.http.app):
        if path.startswith(("/api/v1/clients", *OPEN_TO_ALL)):
            continue
        url = re.sub(r"\{[a-z_]+\}", "1", path)
        response = _request(admin_b, method, path, url, op)
        assert response.status_code in (403, 404), f"{method.upper()} {url}: {response.status_code}"
