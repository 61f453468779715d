"""Configuration changes reach the engine's snapshots (ENGINEERING.md §1).

Every audited change calls ``AppState.config_changed(client_id)`` once it is committed; the
engine's :class:`~cloudpbx.engine.snapshot.SnapshotStore` listens there and rebuilds.
"""

from __future__ import annotations

import io
import wave
from typing import Any

import pytest

from cloudpbx.engine.snapshot import SnapshotStore
from cloudpbx.rights import Level

from .conftest import Caller, World
from .seed import furnished_client

STEPS = [{"level": 1, "action": "hangup", "target": None, "timeout": 0, "conditions": {}}]


def _wav() -> bytes:
    """0.1 s of 8 kHz mono 16-bit silence: the stored format, accepted as is."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    return out.getvalue()


@pytest.fixture
def changed(world: World) -> list[int]:
    seen: list[int] = []
    world.http.app.state.cloudpbx.config_listeners.append(seen.append)
    return seen


@pytest.fixture
def alpha(world: World) -> tuple[dict[str, int], Caller]:
    a = furnished_client(world.engine, "alpha", "1")
    return a, world.caller(Level.CLIENT_ADMIN, a["client"])


def test_a_committed_change_notifies_once(alpha: Any, changed: list[int]) -> None:
    """An update through the generic CRUD tells the engine which client changed."""
    a, admin = alpha
    admin.ok("patch", f"/api/v1/clients/{a['client']}/ports/{a['ports']}", json={"name": "L2"})
    assert changed == [a["client"]]


def test_refused_changes_and_reads_notify_nothing(alpha: Any, changed: list[int]) -> None:
    """A change that fails (409) is rolled back and tells nobody; reading a secret is no
    change."""
    a, admin = alpha
    base = f"/api/v1/clients/{a['client']}"
    response = admin.post(f"{base}/ports", json={"name": "dup", "sip_login": "alpha-1"})
    assert response.status_code == 409
    admin.ok("get", f"{base}/ports/{a['ports']}/secret")
    assert changed == []


def test_dialplan_saves_and_media_uploads_notify(alpha: Any, changed: list[int]) -> None:
    """DP-4: a saved dialplan version and MED-1: an uploaded sound both reach the engine."""
    a, admin = alpha
    base = f"/api/v1/clients/{a['client']}"
    body = {"steps": STEPS, "base_version": 1, "comment": "hang up"}
    response = admin.http.put(
        f"{base}/dialplans/{a['dialplans']}/steps", json=body, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert changed == [a["client"]]
    files = {"file": ("hold.wav", _wav(), "audio/wav")}
    admin.ok("post", f"{base}/media-files/{a['media-files']}/audio", files=files)
    assert changed == [a["client"], a["client"]]


def test_a_new_client_is_announced_with_its_id(world: World, changed: list[int]) -> None:
    """A client created by the provider gets its (empty) snapshot too."""
    staff = world.caller(Level.SYSTEM_ADMIN)
    created = staff.ok("post", "/api/v1/clients", 201, json={"name": "Новый"})
    assert created["id"] in changed


def test_snapshot_store_follows_api_changes(world: World, alpha: Any) -> None:
    """End to end: the store on the app's event loop serves the new configuration after a
    PATCH and a dialplan save, with no restart."""
    a, admin = alpha
    state = world.http.app.state.cloudpbx
    store = SnapshotStore(state.sessions, state.secret_box, state.settings)
    portal = world.http.portal
    assert portal is not None
    portal.call(store.load_all)
    state.config_listeners.append(store.invalidate)
    try:
        base = f"/api/v1/clients/{a['client']}"
        admin.ok("patch", f"{base}/ports/{a['ports']}", json={"name": "Ресепшн"})
        body = {"steps": STEPS, "base_version": 1, "comment": "hang up"}
        admin.http.put(f"{base}/dialplans/{a['dialplans']}/steps", json=body, headers=admin.headers)
        portal.call(store.wait_idle)
        snap = store.client(a["client"])
        assert snap is not None
        assert snap.ports[a["ports"]].name == "Ресепшн"
        number = snap.numbers["100"]
        assert number.dialplan is not None
        assert number.dialplan.version == 2
    finally:
        portal.call(store.close)


def test_operator_changes_reach_the_trunks(world: World, sysadmin: Caller) -> None:
    """TRK-1: operators belong to no client; a committed change of one tells the
    installation-wide listeners (the engine reloads its trunks), not the client ones."""
    state = world.http.app.state.cloudpbx
    installation: list[str] = []
    clients: list[int] = []
    state.installation_listeners.append(lambda: installation.append("changed"))
    state.config_listeners.append(clients.append)
    body = {"name": "Carrier", "host": "sip.carrier.example", "transport": "udp"}
    op = sysadmin.ok("post", "/api/v1/operators", 201, json=body)
    sysadmin.ok("patch", f"/api/v1/operators/{op['id']}", json={"name": "Carrier 2"})
    assert installation == ["changed", "changed"]
    assert clients == []
