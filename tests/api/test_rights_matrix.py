"""ADM-1/ADM-2/ADM-3: what each level may do, as a table (issue 2 §5).

Rows are resources, columns the four levels: system administrator (SA), clients administrator
(CA), client administrator of client A (AD), client user of A with one internal number (US).
"""

from __future__ import annotations

from typing import Any

import pytest

from cloudpbx.rights import Level, Right

from .conftest import Caller, World
from .seed import furnished_client, system_objects

LEVELS = ("SA", "CA", "AD", "US")

# GET on a collection under /clients/{A}/ — status per level (US lists are filtered).
CLIENT_LISTS: dict[str, tuple[int, int, int, int]] = {
    "internal-numbers": (200, 200, 200, 200),
    "external-numbers": (200, 200, 200, 200),
    "dialplans": (200, 200, 200, 200),
    "calls": (200, 200, 200, 200),
    "ports": (200, 200, 200, 403),
    "pickup-groups": (200, 200, 200, 403),
    "forwarding-numbers": (200, 200, 200, 403),
    "queues": (200, 200, 200, 403),
    "voice-menus": (200, 200, 200, 403),
    "media-packs": (200, 200, 200, 403),
    "media-files": (200, 200, 200, 403),
    "classifiers": (200, 200, 200, 403),
    "contacts": (200, 200, 200, 403),
    "voicemail-boxes": (200, 200, 200, 403),
    "campaigns": (200, 200, 200, 403),
    "users": (200, 200, 200, 403),
    "audit": (200, 200, 200, 403),
    "billing-account": (200, 200, 200, 403),
}

# GET on installation-wide collections.
SYSTEM_LISTS: dict[str, tuple[int, int, int, int]] = {
    "/api/v1/clients": (200, 200, 200, 200),
    "/api/v1/operators": (200, 403, 403, 403),
    "/api/v1/tariffs": (200, 200, 403, 403),
    "/api/v1/tariff-rates": (200, 200, 403, 403),
    "/api/v1/staff-users": (200, 403, 403, 403),
    "/api/v1/audit": (200, 200, 403, 403),
    "/api/v1/rights": (200, 200, 200, 200),
}


def _create_bodies(n: int) -> dict[str, tuple[str, dict[str, Any], tuple[int, int, int, int]]]:
    """POST bodies (unique per caller n) and the expected status per level."""
    return {
        "port": ("ports", {"name": f"p{n}", "sip_login": f"login-{n}"}, (201, 201, 201, 403)),
        "internal": ("internal-numbers", {"number": f"5{n}0"}, (201, 201, 201, 403)),
        "did": ("external-numbers", {"number": f"+7495777000{n}"}, (201, 201, 403, 403)),
        "campaign": ("campaigns", {"name": f"c{n}"}, (201, 403, 403, 403)),
    }


@pytest.fixture
def setup(world: World) -> tuple[dict[str, int], dict[str, Caller]]:
    a = furnished_client(world.engine, "alpha", "1")
    system_objects(world.engine)
    callers = {
        "SA": world.caller(Level.SYSTEM_ADMIN),
        "CA": world.caller(Level.CLIENTS_ADMIN),
        "AD": world.caller(Level.CLIENT_ADMIN, a["client"]),
        "US": world.login(a["users"]),
    }
    return a, callers


def test_client_lists_by_level(setup: Any) -> None:
    """ADM-1: each level reads exactly the client sections its rights allow."""
    a, callers = setup
    for resource, expected in CLIENT_LISTS.items():
        for level, status in zip(LEVELS, expected, strict=True):
            response = callers[level].get(f"/api/v1/clients/{a['client']}/{resource}")
            assert response.status_code == status, f"{level} GET {resource}: {response.text}"


def test_installation_lists_by_level(setup: Any) -> None:
    """ADM-1: installation objects are the provider's."""
    _a, callers = setup
    for url, expected in SYSTEM_LISTS.items():
        for level, status in zip(LEVELS, expected, strict=True):
            response = callers[level].get(url)
            assert response.status_code == status, f"{level} GET {url}: {response.text}"


def test_creation_by_level(setup: Any) -> None:
    """ADM-1/ADM-2: who may create ports, numbers, DIDs (provider) and campaigns (TM-1)."""
    a, callers = setup
    for n, level in enumerate(LEVELS):
        for name, (resource, body, expected) in _create_bodies(n).items():
            response = callers[level].post(f"/api/v1/clients/{a['client']}/{resource}", json=body)
            status = expected[n]
            assert response.status_code == status, f"{level} create {name}: {response.text}"


def test_client_user_sees_only_own_numbers(setup: Any) -> None:
    """ADM-1: a client user's lists hold the objects of their numbers only."""
    a, callers = setup
    user = callers["US"]
    numbers = user.ok("get", f"/api/v1/clients/{a['client']}/internal-numbers")
    assert [n["id"] for n in numbers["items"]] == [a["internal-numbers"]]
    assert user.ok("get", f"/api/v1/clients/{a['client']}/external-numbers")["total"] == 0
    plans = user.ok("get", f"/api/v1/clients/{a['client']}/dialplans")
    assert [p["id"] for p in plans["items"]] == [a["dialplans"]]
    calls = user.ok("get", f"/api/v1/clients/{a['client']}/calls")
    assert [c["id"] for c in calls["items"]] == [a["calls"]]
    assert user.ok("get", "/api/v1/clients")["total"] == 1


def test_telemarketing_set_allows_campaigns(world: World, setup: Any) -> None:
    """ADM-2: the Telemarketing set lets a client administrator create campaigns (TM-1)."""
    a, _callers = setup
    admin = world.caller(Level.CLIENT_ADMIN, a["client"], extra=(Right.TELEMARKETING.value,))
    admin.ok("post", f"/api/v1/clients/{a['client']}/campaigns", 201, json={"name": "Осень"})


def test_rights_are_data(world: World, setup: Any) -> None:
    """ADM-3: a free combination — a client user given users.view_settings reads ports."""
    a, _callers = setup
    user = world.caller(Level.CLIENT_USER, a["client"], extra=(Right.USERS_VIEW_SETTINGS.value,))
    user.ok("get", f"/api/v1/clients/{a['client']}/ports")
    assert (
        user.post(
            f"/api/v1/clients/{a['client']}/ports", json={"name": "x", "sip_login": "zz"}
        ).status_code
        == 403
    )
