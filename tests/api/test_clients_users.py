"""Clients, billing accounts and company users (ADM-1, ADM-3, ADM-4, ADM-5, ADM-6, ADM-7)."""

from __future__ import annotations

from sqlalchemy import select

from cloudpbx.db.models import AuditEntry, AuthSession, BillingAccount, Client, MediaPack, User
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.rights import PRESETS, Level, Right

API = "/api/v1"
SECRET = "a-long-enough-password"


def _db(world):
    return make_sessionmaker(world.engine)()


def _login(world, login, password=SECRET):
    response = world.http.post(f"{API}/auth/login", json={"login": login, "password": password})
    world.http.cookies.clear()
    return response


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def _new_user(caller, cid, login, **kw):
    body = {"login": login, "password": SECRET, **kw}
    return caller.ok("post", f"{API}/clients/{cid}/users", 201, json=body)


# --- clients --------------------------------------------------------------------------------


def test_creating_a_client_creates_its_billing_account_and_default_pack(world, sysadmin):
    """ADM-6, MED-1: a new client comes with its billing account and default media pack."""
    client = sysadmin.ok(
        "post",
        f"{API}/clients",
        201,
        json={"name": "Рога и копыта", "timezone": "Asia/Yekaterinburg", "area_code": "343"},
    )
    cid = client["id"]
    assert client["timezone"] == "Asia/Yekaterinburg"
    assert client["limits"]["allowed_directions"] == [
        "local",
        "long_distance",
        "toll_free",
        "emergency",
    ]
    account = sysadmin.ok("get", f"{API}/clients/{cid}/billing-account")
    assert account["number"] == f"BA-{cid}"
    assert account["balance"] == "0.00"
    with _db(world) as db:
        packs = db.scalars(select(MediaPack).where(MediaPack.client_id == cid)).all()
        assert [(p.name, p.is_default) for p in packs] == [("По умолчанию", True)]
        assert db.scalar(select(BillingAccount.number).where(BillingAccount.client_id == cid))


def test_client_fields_are_validated(world, sysadmin):
    """ADM-1: bad time zones, area codes, languages and directions name their field."""
    cases = [
        ({"name": "x", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "x", "area_code": "12"}, "area_code"),
        ({"name": "x", "language": "de"}, "language"),
        ({"name": "x", "limits": {"allowed_directions": ["internal"]}}, "limits"),
        ({"name": "x", "limits": {"spend_limit": "-1"}}, "limits.spend_limit"),
    ]
    for body, field in cases:
        response = sysadmin.post(f"{API}/clients", json=body)
        assert response.status_code == 422, body
        assert response.json()["field"].startswith(field), response.json()
    sysadmin.ok("post", f"{API}/clients", 201, json={"name": "Dup"})
    dup = sysadmin.post(f"{API}/clients", json={"name": "Dup"})
    assert dup.status_code == 409
    assert dup.json()["field"] == "name"


def test_clients_admin_creates_clients_and_sets_limits(world):
    """ADM-1, ADM-5: provider staff set limits; internal calls always stay allowed."""
    manager = world.caller(Level.CLIENTS_ADMIN)
    cid = manager.ok("post", f"{API}/clients", 201, json={"name": "Acme"})["id"]
    limits = {
        "max_concurrent_calls": 10,
        "allowed_directions": ["international", "local", "local"],
        "spend_limit": "1500.5",
    }
    changed = manager.ok("patch", f"{API}/clients/{cid}", json={"limits": limits})
    assert changed["limits"] == {
        "max_concurrent_calls": 10,
        "max_call_duration_s": None,
        "allowed_directions": ["local", "international"],
        "spend_limit": "1500.50",
    }
    assert manager.ok("get", f"{API}/clients/{cid}")["limits"] == changed["limits"]
    partial = manager.ok(
        "patch", f"{API}/clients/{cid}", json={"limits": {"max_call_duration_s": 3600}}
    )
    assert partial["limits"]["max_concurrent_calls"] == 10
    assert partial["limits"]["max_call_duration_s"] == 3600
    with _db(world) as db:
        row = db.get(Client, cid)
        assert row is not None
        assert row.allowed_directions == ["internal", "local", "international"]


def test_client_admin_sees_only_its_client_and_cannot_change_limits(world):
    """ADM-4, ADM-5: a company reads its own client, never another, and sets no limits."""
    a, b = world.client("A"), world.client("B")
    admin = world.caller(Level.CLIENT_ADMIN, a)
    listing = admin.ok("get", f"{API}/clients")
    assert [c["id"] for c in listing["items"]] == [a]
    assert admin.ok("get", f"{API}/clients/{a}")["name"] == "A"
    assert admin.get(f"{API}/clients/{b}").status_code == 404
    body = {"limits": {"max_concurrent_calls": 1000}}
    assert admin.patch(f"{API}/clients/{a}", json=body).status_code == 403
    assert admin.post(f"{API}/clients", json={"name": "C"}).status_code == 403
    assert admin.delete(f"{API}/clients/{a}").status_code == 403
    user = world.caller(Level.CLIENT_USER, a)
    assert user.ok("get", f"{API}/clients/{a}")["id"] == a


def test_deleting_a_client_removes_everything_it_owns(world, sysadmin):
    """ADM-4: deleting a client cascades to its numbers, ports, users and account."""
    cid = sysadmin.ok("post", f"{API}/clients", 201, json={"name": "Gone"})["id"]
    group = sysadmin.ok("post", f"{API}/clients/{cid}/pickup-groups", 201, json={"number": "1"})
    number = sysadmin.ok(
        "post", f"{API}/clients/{cid}/internal-numbers", 201, json={"number": "100"}
    )
    sysadmin.ok(
        "post",
        f"{API}/clients/{cid}/ports",
        201,
        json={
            "name": "Линия 1",
            "sip_login": "gone-100",
            "pickup_group_id": group["id"],
            "callerid_internal_id": number["id"],
        },
    )
    _new_user(sysadmin, cid, "gone-user", internal_number_ids=[number["id"]])
    sysadmin.ok("delete", f"{API}/clients/{cid}", 204)
    assert sysadmin.get(f"{API}/clients/{cid}").status_code == 404
    with _db(world) as db:
        assert db.scalar(select(User).where(User.login == "gone-user")) is None
        assert db.scalar(select(BillingAccount).where(BillingAccount.client_id == cid)) is None


# --- billing account ------------------------------------------------------------------------


def test_billing_account_tariff_credit_and_payments(world, sysadmin):
    """ADM-6: the provider assigns a tariff and credit; balances move only by payments."""
    cid = sysadmin.ok("post", f"{API}/clients", 201, json={"name": "Payer"})["id"]
    url = f"{API}/clients/{cid}/billing-account"
    tariff = sysadmin.ok("post", f"{API}/tariffs", 201, json={"name": "Base"})
    usd = sysadmin.ok("post", f"{API}/tariffs", 201, json={"name": "Dollar", "currency": "USD"})
    account = sysadmin.ok("patch", url, json={"tariff_id": tariff["id"], "credit_limit": "100.5"})
    assert (account["tariff_id"], account["credit_limit"]) == (tariff["id"], "100.50")
    mismatch = sysadmin.patch(url, json={"tariff_id": usd["id"]})
    assert (mismatch.status_code, mismatch.json()["field"]) == (422, "tariff_id")
    assert sysadmin.patch(url, json={"balance": "1000"}).status_code == 422
    assert sysadmin.patch(url, json={"tariff_id": 999_999}).json()["field"] == "tariff_id"

    paid = sysadmin.ok("post", f"{url}/payments", 201, json={"amount": "1000.25"})
    assert (paid["balance_before"], paid["balance_after"]) == ("0.00", "1000.25")
    fixed = sysadmin.ok(
        "post", f"{url}/payments", 201, json={"amount": "-0.05", "comment": "correction"}
    )
    assert fixed["account"]["balance"] == "1000.20"
    assert fixed["account"]["available"] == "1100.70"
    for bad in ("0", "1.005", "abc"):
        response = sysadmin.post(f"{url}/payments", json={"amount": bad})
        assert (response.status_code, response.json()["field"]) == (422, "amount"), bad
    with _db(world) as db:
        entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "payment")).all()
        assert [e.after["amount"] for e in entries if e.after] == ["1000.25", "-0.05"]


def test_billing_account_rights_and_tenancy(world):
    """ADM-4, ADM-6: a company reads its account, changes nothing; other tenants get 404."""
    a, b = world.client("A"), world.client("B")
    admin_a = world.caller(Level.CLIENT_ADMIN, a)
    account = admin_a.ok("get", f"{API}/clients/{a}/billing-account")
    assert account["client_id"] == a
    assert admin_a.patch(f"{API}/clients/{a}/billing-account", json={}).status_code == 403
    pay = admin_a.post(f"{API}/clients/{a}/billing-account/payments", json={"amount": "5"})
    assert pay.status_code == 403
    assert admin_a.get(f"{API}/clients/{b}/billing-account").status_code == 404
    user_a = world.caller(Level.CLIENT_USER, a)
    assert user_a.get(f"{API}/clients/{a}/billing-account").status_code == 403


# --- users ----------------------------------------------------------------------------------


def test_client_admin_creates_a_user_who_can_log_in(world):
    """ADM-1, ADM-7: a client user with its numbers; the password is hashed, never shown."""
    cid = world.client("Acme")
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    number = admin.ok("post", f"{API}/clients/{cid}/internal-numbers", 201, json={"number": "201"})
    user = _new_user(
        admin,
        cid,
        "ivanov",
        full_name="Иван Иванов",
        email="ivanov@example.com",
        internal_number_ids=[number["id"]],
    )
    assert "password" not in user
    assert "password_hash" not in user
    assert user["rights"] == sorted(r.value for r in PRESETS[Level.CLIENT_USER])
    assert user["internal_number_ids"] == [number["id"]]
    response = _login(world, "ivanov")
    assert response.status_code == 200, response.text
    me = world.http.get(f"{API}/auth/me", headers=_bearer(response.json()["token"])).json()
    assert (me["client_id"], me["internal_number_ids"]) == (cid, [number["id"]])

    listing = admin.ok("get", f"{API}/clients/{cid}/users?q=Иван")
    assert [u["login"] for u in listing["items"]] == ["ivanov"]
    changed = admin.ok(
        "patch", f"{API}/clients/{cid}/users/{user['id']}", json={"full_name": "И. Иванов"}
    )
    assert changed["full_name"] == "И. Иванов"
    admin.ok("delete", f"{API}/clients/{cid}/users/{user['id']}", 204)
    assert _login(world, "ivanov").status_code == 401


def test_user_fields_are_validated(world):
    """ADM-1: unique logins, password length, levels and numbers name their field."""
    a, b = world.client("A"), world.client("B")
    admin = world.caller(Level.CLIENT_ADMIN, a)
    admin_b = world.caller(Level.CLIENT_ADMIN, b)
    foreign = admin_b.ok("post", f"{API}/clients/{b}/internal-numbers", 201, json={"number": "200"})
    _new_user(admin, a, "taken")
    cases = [
        ({"login": "taken"}, 409, "login"),
        ({"login": "x1", "password": "short"}, 422, "password"),
        ({"login": "x2", "level": "system_admin"}, 422, "level"),
        ({"login": "x3", "internal_number_ids": [foreign["id"]]}, 422, "internal_number_ids.0"),
        ({"login": "x4", "email": "not-an-email"}, 422, "email"),
    ]
    for extra, status, field in cases:
        body = {"password": SECRET, **extra}
        response = admin.post(f"{API}/clients/{a}/users", json=body)
        assert (response.status_code, response.json()["field"]) == (status, field), extra


def test_users_of_another_client_are_invisible(world):
    """ADM-4: a client admin cannot see, change, delete or create users of another client."""
    a, b = world.client("A"), world.client("B")
    admin_a = world.caller(Level.CLIENT_ADMIN, a)
    admin_b = world.caller(Level.CLIENT_ADMIN, b)
    user_b = _new_user(admin_b, b, "bob")
    url_b = f"{API}/clients/{b}/users/{user_b['id']}"
    assert admin_a.get(url_b).status_code == 404
    assert admin_a.patch(url_b, json={"full_name": "x"}).status_code == 404
    assert admin_a.delete(url_b).status_code == 404
    assert admin_a.get(f"{API}/clients/{a}/users/{user_b['id']}").status_code == 404
    assert admin_a.get(f"{API}/clients/{b}/users").status_code == 404
    body = {"login": "intruder", "password": SECRET}
    assert admin_a.post(f"{API}/clients/{b}/users", json=body).status_code == 404
    staff = admin_a.get(f"{API}/clients/{a}/users").json()["items"]
    assert {u["client_id"] for u in staff} == {a}
    user_a = world.caller(Level.CLIENT_USER, a)
    assert user_a.get(f"{API}/clients/{a}/users").status_code == 403


def test_no_privilege_escalation(world):
    """ADM-3: a company admin grants only rights it holds; provider rights stay provider's."""
    cid = world.client("Acme")
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    url = f"{API}/clients/{cid}/users"
    tm = Right.TELEMARKETING.value
    body = {"login": "seller", "password": SECRET, "rights": [tm, Right.HTTPS_LOGIN.value]}
    refused = admin.post(url, json=body)
    assert (refused.status_code, refused.json()["field"]) == (403, "rights")
    for bad in (Right.SYSTEM_MANAGE.value, Right.CLIENTS_EDIT.value, "no.such.right"):
        response = admin.post(url, json={**body, "rights": [bad]})
        assert (response.status_code, response.json()["field"]) == (422, "rights"), bad

    manager = world.caller(Level.CLIENTS_ADMIN)
    seller = manager.ok("post", url, 201, json=body)
    assert seller["rights"] == sorted([tm, Right.HTTPS_LOGIN.value])
    # Keeping a right the target already has is not granting it.
    admin.ok("patch", f"{url}/{seller['id']}", json={"rights": [tm]})
    plain = _new_user(admin, cid, "plain")
    promote = admin.patch(f"{url}/{plain['id']}", json={"rights": [tm]})
    assert (promote.status_code, promote.json()["field"]) == (403, "rights")
    # A restricted company admin cannot take over a stronger account by its password.
    weak_rights = (Right.USERS_VIEW_SETTINGS.value, Right.USERS_EDIT.value)
    weak = world.caller(Level.CLIENT_USER, cid, extra=weak_rights)
    takeover = weak.patch(f"{url}/{seller['id']}", json={"password": "x" * 12})
    assert (takeover.status_code, takeover.json()["field"]) == (403, "password")
    escalate = weak.patch(f"{url}/{weak.user_id}", json={"level": "client_admin"})
    assert escalate.status_code == 422


def test_level_change_applies_the_preset(world):
    """ADM-3: levels are presets; a new level without explicit rights gets its preset."""
    cid = world.client("Acme")
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    user = _new_user(admin, cid, "rising")
    url = f"{API}/clients/{cid}/users/{user['id']}"
    promoted = admin.ok("patch", url, json={"level": "client_admin"})
    assert promoted["rights"] == sorted(r.value for r in PRESETS[Level.CLIENT_ADMIN])
    custom = admin.ok("patch", url, json={"rights": [Right.HTTPS_LOGIN.value]})
    assert custom["rights"] == [Right.HTTPS_LOGIN.value]
    assert custom["level"] == "client_admin"


def test_nobody_deletes_or_demotes_themselves(world):
    """ADM-1: an administrator cannot lock themselves out."""
    cid = world.client("Acme")
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    url = f"{API}/clients/{cid}/users/{admin.user_id}"
    cases = [
        ({"level": "client_user"}, "level"),
        ({"is_active": False}, "is_active"),
        ({"rights": [Right.HTTPS_LOGIN.value]}, "rights"),
    ]
    for body, field in cases:
        response = admin.patch(url, json=body)
        assert (response.status_code, response.json()["field"]) == (422, field), body
    assert admin.delete(url).status_code == 422
    assert admin.ok("patch", url, json={"full_name": "Me"})["full_name"] == "Me"


def test_password_change_ends_every_session(world):
    """ADM-7: a new password kills the sessions opened with the old one."""
    cid = world.client("Acme")
    admin = world.caller(Level.CLIENT_ADMIN, cid)
    user = _new_user(admin, cid, "petrov")
    tokens = [_login(world, "petrov").json()["token"] for _ in range(2)]
    me = f"{API}/auth/me"
    assert world.http.get(me, headers=_bearer(tokens[0])).status_code == 200
    new_password = "another-long-password"
    url = f"{API}/clients/{cid}/users/{user['id']}"
    admin.ok("patch", url, json={"password": new_password})
    for token in tokens:
        assert world.http.get(me, headers=_bearer(token)).status_code == 401
    with _db(world) as db:
        sessions = db.scalars(select(AuthSession).where(AuthSession.user_id == user["id"]))
        assert sessions.all() == []
    assert _login(world, "petrov").status_code == 401
    assert _login(world, "petrov", new_password).status_code == 200
    null = admin.patch(url, json={"password": None})
    assert (null.status_code, null.json()["field"]) == (422, "password")
