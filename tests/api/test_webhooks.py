"""CRM webhooks through the API (PRODUCT.md §6 "CRM телефония"): CRUD under tenancy (ADM-4),
a write-only secret, URL validation naming the field, and the test delivery."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from cloudpbx.db.models import AuditEntry
from cloudpbx.db.models.telephony import Webhook
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.rights import Level
from cloudpbx.security import SecretBox
from cloudpbx.services.webhooks import verify

from .conftest import Caller, World

API = "/api/v1"
SECRET = "crm-shared-secret-0001"


def _hooks(client_id: int) -> str:
    return f"{API}/clients/{client_id}/webhooks"


@pytest.fixture
def admin(world: World) -> Caller:
    return world.caller(Level.CLIENT_ADMIN, world.client("Рога и копыта"))


def _create(caller: Caller, **fields: Any) -> dict[str, Any]:
    body = {"url": "https://crm.example.com/pbx", "secret": SECRET, **fields}
    result: dict[str, Any] = caller.ok("post", _hooks(caller.client_id or 0), 201, json=body)
    return result


def test_crud_and_secret_is_write_only(world: World, admin: Caller) -> None:
    """§6 webhooks: create, list, change, delete; the secret is never in an answer or the
    audit log, and is stored encrypted (recoverable to sign)."""
    hook = _create(admin, events=["started", "ended"], description="amoCRM")
    assert hook["url"] == "https://crm.example.com/pbx"
    assert hook["events"] == ["started", "ended"]
    assert hook["is_active"] is True
    assert "secret" not in hook
    assert "secret_enc" not in hook
    url = f"{_hooks(admin.client_id or 0)}/{hook['id']}"
    assert admin.ok("get", url) == hook
    listing = admin.ok("get", _hooks(admin.client_id or 0))
    assert [h["id"] for h in listing["items"]] == [hook["id"]]
    changed = admin.ok("patch", url, json={"is_active": False, "secret": "another-secret-0002"})
    assert changed["is_active"] is False
    assert "secret" not in changed
    with make_sessionmaker(world.engine)() as s:
        row = s.get(Webhook, hook["id"])
        assert row is not None
        assert SecretBox("test-secret-key").open(row.secret_enc) == "another-secret-0002"
        audit = s.scalars(select(AuditEntry).where(AuditEntry.entity == "webhooks")).all()
        assert [a.action for a in audit] == ["create", "update"]
        assert all(SECRET not in str(a.before) + str(a.after) for a in audit)
        assert all("another-secret" not in str(a.after) for a in audit)
    admin.ok("delete", url, 204)
    admin.ok("get", url, 404)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "ftp://crm.example.com/x"}, "url"),
        ({"url": "https://user:pass@crm.example.com/x"}, "url"),
        ({"url": "https://127.0.0.1/x"}, "url"),
        ({"url": "http://[::1]:8080/x"}, "url"),
        ({"url": "https://169.254.169.254/latest"}, "url"),
        ({"secret": "short"}, "secret"),
        ({"events": ["rang"]}, "events.0"),
    ],
)
def test_bad_fields_are_422_naming_the_field(
    admin: Caller, fields: dict[str, Any], field: str
) -> None:
    """§6 webhooks: http/https only, no credentials, no internal literal addresses (SSRF)."""
    body = {"url": "https://crm.example.com/pbx", "secret": SECRET, **fields}
    response = admin.post(_hooks(admin.client_id or 0), json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_secret_is_required_and_not_nullable(admin: Caller) -> None:
    """§6 webhooks: the signature needs a secret; PATCH cannot remove it."""
    response = admin.post(_hooks(admin.client_id or 0), json={"url": "https://a.example.com/"})
    assert response.status_code == 422
    assert response.json()["field"] == "secret"
    hook = _create(admin)
    url = f"{_hooks(admin.client_id or 0)}/{hook['id']}"
    response = admin.patch(url, json={"secret": None})
    assert response.status_code == 422
    assert response.json()["field"] == "secret"


def test_other_clients_webhooks_are_404(world: World, admin: Caller) -> None:
    """ADM-4: another client's administrator neither sees nor changes the webhook."""
    hook = _create(admin)
    other = world.caller(Level.CLIENT_ADMIN, world.client("Другие"))
    assert other.ok("get", _hooks(other.client_id or 0))["items"] == []
    mine = f"{_hooks(admin.client_id or 0)}/{hook['id']}"
    theirs = f"{_hooks(other.client_id or 0)}/{hook['id']}"
    for url in (mine, theirs):
        assert other.get(url).status_code == 404
        assert other.patch(url, json={"is_active": False}).status_code == 404
        assert other.post(f"{url}/test").status_code == 404
        assert other.delete(url).status_code == 404


def test_config_change_is_announced(world: World, admin: Caller) -> None:
    """§6 webhooks: the engine hears of a webhook change (it reloads the client's list)."""
    seen: list[int] = []
    world.http.app.state.cloudpbx.config_listeners.append(seen.append)
    _create(admin)
    assert seen == [admin.client_id]


class _Crm(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture
def crm() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Crm", (_Crm,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_test_delivery(world: World, admin: Caller, crm: Any) -> None:
    """§6 webhooks: POST …/test sends one signed "test" event; internal URLs need the setting."""
    url, received = crm
    state = world.http.app.state.cloudpbx
    state.settings = state.settings.model_copy(update={"webhooks_allow_private": True})
    hook = _create(admin, url=url)
    test = f"{_hooks(admin.client_id or 0)}/{hook['id']}/test"
    assert admin.ok("post", test) == {"ok": True, "status": 204, "error": None}
    headers, body = received[0]
    assert headers["x-cloudpbx-event"] == "test"
    ts = headers["x-cloudpbx-timestamp"]
    assert verify(SECRET, ts, body, headers["x-cloudpbx-signature"], now=float(ts))
    state.settings = state.settings.model_copy(update={"webhooks_allow_private": False})
    result = admin.ok("post", test)
    assert result["ok"] is False
    assert "internal address" in result["error"]
    assert len(received) == 1
