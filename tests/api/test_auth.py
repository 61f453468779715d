"""Login, sessions, CSRF, tokens and throttling (ADM-7)."""

from __future__ import annotations

from cloudpbx.rights import Level

from .conftest import PASSWORD


def _login_name(world, user_id):
    from cloudpbx.db.models import User
    from cloudpbx.db.session import make_sessionmaker

    with make_sessionmaker(world.engine)() as session:
        return session.get(User, user_id).login


def test_login_sets_secure_cookie_and_returns_token(world):
    """ADM-7: a session cookie (HttpOnly, SameSite=Strict) and a bearer token."""
    uid = world.user(Level.SYSTEM_ADMIN)
    response = world.http.post(
        "/api/v1/auth/login", json={"login": _login_name(world, uid), "password": PASSWORD}
    )
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    body = response.json()
    me = world.http.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['token']}"}
    ).json()
    assert me["level"] == "system_admin"
    assert "system.manage" in me["rights"]


def test_wrong_password_and_unknown_login_look_the_same(world):
    """ADM-7: no login enumeration."""
    uid = world.user(Level.SYSTEM_ADMIN)
    wrong = world.http.post(
        "/api/v1/auth/login", json={"login": _login_name(world, uid), "password": "nope-nope"}
    )
    unknown = world.http.post("/api/v1/auth/login", json={"login": "ghost", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_failed_logins_are_throttled(world):
    """ADM-7: after 5 failures the login is refused with 429 and Retry-After."""
    uid = world.user(Level.SYSTEM_ADMIN)
    login = _login_name(world, uid)
    for _ in range(5):
        world.http.post("/api/v1/auth/login", json={"login": login, "password": "bad"})
    response = world.http.post("/api/v1/auth/login", json={"login": login, "password": PASSWORD})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


def test_cookie_requests_need_csrf_header(world):
    """ADM-7: a cookie session changes nothing without the X-CSRF-Token header."""
    cid = world.client("Acme")
    uid = world.user(Level.CLIENT_ADMIN, cid)
    login = world.http.post(
        "/api/v1/auth/login", json={"login": _login_name(world, uid), "password": PASSWORD}
    ).json()
    url = f"/api/v1/clients/{cid}/pickup-groups"
    assert world.http.get(url).status_code == 200  # cookie only: reading is fine
    refused = world.http.post(url, json={"number": "1"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    accepted = world.http.post(
        url, json={"number": "1"}, headers={"X-CSRF-Token": login["csrf_token"]}
    )
    assert accepted.status_code == 201


def test_logout_ends_the_session(world):
    caller = world.caller(Level.SYSTEM_ADMIN)
    assert caller.post("/api/v1/auth/logout").status_code == 204
    assert caller.get("/api/v1/auth/me").status_code == 401


def test_no_credentials_is_401(app_client):
    response = app_client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_api_token_lifecycle(world):
    """§6: API tokens for CRMs carry their owner's rights and can be revoked."""
    caller = world.caller(Level.SYSTEM_ADMIN)
    created = caller.ok("post", "/api/v1/auth/tokens", 201, json={"name": "crm"})
    assert created["token"].startswith("cpx_")
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert world.http.get("/api/v1/auth/me", headers=headers).status_code == 200
    listed = caller.ok("get", "/api/v1/auth/tokens")
    assert [t["name"] for t in listed] == ["crm"]
    assert "token" not in listed[0]
    caller.ok("delete", f"/api/v1/auth/tokens/{created['id']}", 204)
    assert world.http.get("/api/v1/auth/me", headers=headers).status_code == 401


def test_disabled_user_cannot_log_in(world):
    from cloudpbx.db.models import User
    from cloudpbx.db.session import make_sessionmaker

    uid = world.user(Level.SYSTEM_ADMIN)
    with make_sessionmaker(world.engine)() as session:
        user = session.get(User, uid)
        user.is_active = False
        login = user.login
        session.commit()
    response = world.http.post("/api/v1/auth/login", json={"login": login, "password": PASSWORD})
    assert response.status_code == 401


def test_validation_error_names_the_field(world):
    """Issue 2 §6: bad input is a 422 naming the field."""
    cid = world.client("Acme")
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    response = admin.post(f"/api/v1/clients/{cid}/ports", json={"name": "x", "sip_login": "a b"})
    assert response.status_code == 422
    assert response.json()["field"] == "sip_login"
    response = admin.post(f"/api/v1/clients/{cid}/internal-numbers", json={"number": "112"})
    assert response.status_code == 422
    assert response.json()["field"] == "number"
    assert "emergency" in response.json()["message"]


def test_me_returns_the_session_csrf_token_only_to_the_cookie_session(world):
    """ADM-7: /auth/me gives a cookie session back the CSRF token its login issued (so the UI
    keeps no copy of it), never a new one, never to bearer callers, and never cacheable."""
    uid = world.user(Level.CLIENT_ADMIN, world.client("Acme"))
    login = world.http.post(
        "/api/v1/auth/login", json={"login": _login_name(world, uid), "password": PASSWORD}
    ).json()
    by_cookie = world.http.get("/api/v1/auth/me")
    assert by_cookie.json()["csrf_token"] == login["csrf_token"]
    assert by_cookie.headers["cache-control"] == "no-store"
    assert world.http.get("/api/v1/auth/me").json()["csrf_token"] == login["csrf_token"]
    bearer = {"Authorization": f"Bearer {login['token']}"}
    assert world.http.get("/api/v1/auth/me", headers=bearer).json()["csrf_token"] is None
    world.http.cookies.clear()
    assert world.http.get("/api/v1/auth/me", headers=bearer).json()["csrf_token"] is None
