"""The system administrator's objects: staff users, operators, tariffs, rights (ADM-1, ADM-3,
ADM-6, TRK-1)."""

from __future__ import annotations

from sqlalchemy import select

from cloudpbx.db.models import Operator
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.rights import ADDITIONAL_SETS, PRESETS, Level, Right

API = "/api/v1"
SECRET = "a-long-enough-password"


def _field(response):
    return response.status_code, response.json().get("field")


# --- staff users ----------------------------------------------------------------------------


def test_sysadmin_manages_staff_users(world, sysadmin):
    """ADM-1: the system administrator creates provider staff, who can log in."""
    manager = sysadmin.ok(
        "post",
        f"{API}/staff-users",
        201,
        json={"login": "manager", "password": SECRET, "full_name": "Менеджер"},
    )
    assert manager["level"] == "clients_admin"
    assert manager["client_id"] is None
    assert manager["rights"] == sorted(r.value for r in PRESETS[Level.CLIENTS_ADMIN])
    assert "password" not in manager
    login = world.http.post(f"{API}/auth/login", json={"login": "manager", "password": SECRET})
    world.http.cookies.clear()
    assert login.status_code == 200

    url = f"{API}/staff-users/{manager['id']}"
    extra = [*manager["rights"], Right.TELEMARKETING.value]
    changed = sysadmin.ok("patch", url, json={"rights": extra, "full_name": "М."})
    assert Right.TELEMARKETING.value in changed["rights"]
    listing = sysadmin.ok("get", f"{API}/staff-users?sort=login")
    assert {u["login"] for u in listing["items"]} >= {"manager"}
    assert all(u["client_id"] is None for u in listing["items"])
    sysadmin.ok("delete", url, 204)
    assert sysadmin.get(url).status_code == 404


def test_staff_users_are_only_provider_accounts(world, sysadmin):
    """ADM-1, ADM-4: /staff-users never shows or changes a company's users."""
    cid = world.client("Acme")
    company_user = world.user(Level.CLIENT_ADMIN, cid)
    url = f"{API}/staff-users/{company_user}"
    assert sysadmin.get(url).status_code == 404
    assert sysadmin.patch(url, json={"full_name": "x"}).status_code == 404
    assert sysadmin.delete(url).status_code == 404
    listing = sysadmin.ok("get", f"{API}/staff-users")
    assert company_user not in [u["id"] for u in listing["items"]]


def test_staff_user_validation(world, sysadmin):
    """ADM-3: staff hold no company rights, have staff levels, unique logins."""
    body = {"login": "staff1", "password": SECRET}
    for bad in (Right.USERS_ADD.value, Right.OWN_VIEW_CDR.value, "bogus"):
        response = sysadmin.post(f"{API}/staff-users", json={**body, "rights": [bad]})
        assert _field(response) == (422, "rights"), bad
    response = sysadmin.post(f"{API}/staff-users", json={**body, "level": "client_admin"})
    assert response.status_code == 422
    sysadmin.ok("post", f"{API}/staff-users", 201, json=body)
    assert _field(sysadmin.post(f"{API}/staff-users", json=body)) == (409, "login")
    me = f"{API}/staff-users/{sysadmin.user_id}"
    assert _field(sysadmin.patch(me, json={"level": "clients_admin"})) == (422, "level")
    assert sysadmin.delete(me).status_code == 422


def test_only_the_system_administrator_manages_staff(world):
    """ADM-1: clients administrators and companies cannot touch staff accounts."""
    cid = world.client("Acme")
    for caller in (world.caller(Level.CLIENTS_ADMIN), world.caller(Level.CLIENT_ADMIN, cid)):
        assert caller.get(f"{API}/staff-users").status_code == 403
        body = {"login": "sneaky", "password": SECRET, "level": "system_admin"}
        assert caller.post(f"{API}/staff-users", json=body).status_code == 403
        assert caller.get(f"{API}/operators").status_code == 403


# --- operators ------------------------------------------------------------------------------

OPERATOR = {
    "name": "Carrier",
    "host": "sip.carrier.example",
    "transport": "udp",
    "allowed_addresses": ["192.0.2.10", "198.51.100.0/24", "2001:db8::/32"],
    "did_source": "to",
    "rewrite_rules": [
        {"direction": "inbound", "field": "called", "match": r"^8(\d{10})$", "replace": r"+7\1"},
        {"direction": "outbound", "field": "caller", "match": r"^\+(\d+)$", "replace": r"\1"},
    ],
}


def test_operator_crud_with_rewrite_rules(world, sysadmin):
    """TRK-1, §3a: trunks with a write-only secret and ordered rewrite rules."""
    body = {**OPERATOR, "register": True, "username": "pbx", "secret": "s3cr3t"}
    op = sysadmin.ok("post", f"{API}/operators", 201, json=body)
    assert op["register"] is True
    assert op["has_secret"] is True
    assert "secret" not in op
    assert "secret_enc" not in op
    assert [r["match"] for r in op["rewrite_rules"]] == [r"^8(\d{10})$", r"^\+(\d+)$"]
    with make_sessionmaker(world.engine)() as db:
        row = db.scalar(select(Operator).where(Operator.id == op["id"]))
        assert row is not None
        assert row.secret_enc is not None
        assert b"s3cr3t" not in row.secret_enc

    url = f"{API}/operators/{op['id']}"
    rules = [{"direction": "outbound", "field": "called", "match": "^00", "replace": "+"}]
    changed = sysadmin.ok("patch", url, json={"rewrite_rules": rules, "max_channels": 30})
    assert [r["match"] for r in changed["rewrite_rules"]] == ["^00"]
    assert changed["allowed_addresses"] == OPERATOR["allowed_addresses"]
    kept = sysadmin.ok("patch", url, json={"description": "main"})
    assert kept["rewrite_rules"] == changed["rewrite_rules"]
    assert kept["has_secret"] is True
    assert sysadmin.ok("get", url)["max_channels"] == 30
    assert sysadmin.ok("get", f"{API}/operators?q=carrier")["total"] == 1


def test_operator_validation(world, sysadmin):
    """TRK-1: regexes compile at save, addresses parse, hosts carry no scheme."""
    rule = OPERATOR["rewrite_rules"][0]
    cases = [
        ({"rewrite_rules": [rule, {**rule, "match": "(unclosed"}]}, "rewrite_rules.1.match"),
        ({"rewrite_rules": [{**rule, "match": "1" * 201}]}, "rewrite_rules.0.match"),
        ({"rewrite_rules": [{**rule, "replace": r"\3"}]}, "rewrite_rules.0.replace"),
        ({"rewrite_rules": [{**rule, "field": "from"}]}, "rewrite_rules.0.field"),
        ({"allowed_addresses": ["10.0.0.1", "10.0.0.300"]}, "allowed_addresses.1"),
        ({"allowed_addresses": ["10.0.0.1/24"]}, "allowed_addresses.0"),
        ({"host": "sip://carrier.example"}, "host"),
        ({"host": "carrier example"}, "host"),
        ({"host": "carrier.example:5060"}, "host"),
        ({"host": "10.0.0.300"}, "host"),
        ({"transport": "sctp"}, "transport"),
        ({"register": True}, "username"),
        ({"register": True, "username": "pbx"}, "secret"),
        ({"tariff_id": 12345}, "tariff_id"),
    ]
    for change, field in cases:
        response = sysadmin.post(f"{API}/operators", json={**OPERATOR, **change})
        assert _field(response) == (422, field), change
    ipv6 = sysadmin.ok("post", f"{API}/operators", 201, json={**OPERATOR, "host": "[2001:DB8::1]"})
    assert ipv6["host"] == "2001:db8::1"
    again = sysadmin.post(f"{API}/operators", json={**OPERATOR, "host": "10.0.0.1"})
    assert _field(again) == (409, "name")


def test_operator_in_use_by_a_number_is_not_deleted(world, sysadmin):
    """TRK-1, NUM-1: a trunk carrying a client's DID is refused, or detached with cascade."""
    op = sysadmin.ok("post", f"{API}/operators", 201, json=OPERATOR)
    cid = world.client("Acme")
    number = sysadmin.ok(
        "post",
        f"{API}/clients/{cid}/external-numbers",
        201,
        json={"number": "+74951234567", "operator_id": op["id"]},
    )
    refused = sysadmin.delete(f"{API}/operators/{op['id']}")
    assert refused.status_code == 409
    assert refused.json()["details"][0]["entity"] == "external_numbers"
    sysadmin.ok("delete", f"{API}/operators/{op['id']}?cascade=true", 204)
    detached = sysadmin.ok("get", f"{API}/clients/{cid}/external-numbers/{number['id']}")
    assert detached["operator_id"] is None


# --- tariffs --------------------------------------------------------------------------------


def test_tariffs_and_rates_keep_exact_decimals(world, sysadmin):
    """ADM-6, CDR-1: prices are exact decimals and come back exactly as sent."""
    tariff = sysadmin.ok(
        "post",
        f"{API}/tariffs",
        201,
        json={"name": "Per second", "first_increment_s": 1, "increment_s": 1},
    )
    body = {"tariff_id": tariff["id"], "prefix": "7495", "price_per_minute": "0.0125"}
    rate = sysadmin.ok("post", f"{API}/tariff-rates", 201, json=body)
    assert (rate["price_per_minute"], rate["connection_fee"]) == ("0.0125", "0.00")
    url = f"{API}/tariff-rates/{rate['id']}"
    assert sysadmin.ok("get", url)["price_per_minute"] == "0.0125"
    changed = sysadmin.ok("patch", url, json={"price_per_minute": "1.5", "connection_fee": "0.3"})
    assert (changed["price_per_minute"], changed["connection_fee"]) == ("1.50", "0.30")
    assert sysadmin.ok("get", url)["price_per_minute"] == "1.50"
    other = sysadmin.ok("post", f"{API}/tariffs", 201, json={"name": "Other"})
    sysadmin.ok("post", f"{API}/tariff-rates", 201, json={**body, "tariff_id": other["id"]})
    listing = sysadmin.ok("get", f"{API}/tariff-rates?tariff_id={tariff['id']}")
    assert [r["id"] for r in listing["items"]] == [rate["id"]]


def test_tariff_validation(world, sysadmin):
    """ADM-6: currencies, increments, prefixes and prices name their field."""
    cases = [
        ({"name": "t", "currency": "rub"}, "currency"),
        ({"name": "t", "increment_s": 0}, "increment_s"),
        ({"name": "t", "first_increment_s": 3601}, "first_increment_s"),
    ]
    for body, field in cases:
        assert _field(sysadmin.post(f"{API}/tariffs", json=body)) == (422, field), body
    tariff = sysadmin.ok("post", f"{API}/tariffs", 201, json={"name": "T"})
    rate = {"tariff_id": tariff["id"], "prefix": "7", "price_per_minute": "1"}
    rate_cases = [
        ({"prefix": "+7"}, "prefix"),
        ({"prefix": "1" * 16}, "prefix"),
        ({"price_per_minute": "0.00001"}, "price_per_minute"),
        ({"price_per_minute": "-1"}, "price_per_minute"),
        ({"connection_fee": None}, "connection_fee"),
        ({"tariff_id": 999_999}, "tariff_id"),
    ]
    for change, field in rate_cases:
        response = sysadmin.post(f"{API}/tariff-rates", json={**rate, **change})
        assert _field(response) == (422, field), change
    sysadmin.ok("post", f"{API}/tariff-rates", 201, json=rate)
    assert _field(sysadmin.post(f"{API}/tariff-rates", json=rate)) == (409, "prefix")
    assert _field(sysadmin.post(f"{API}/tariffs", json={"name": "T"})) == (409, "name")


def test_tariff_rights_and_usage(world, sysadmin):
    """ADM-6: clients administrators read tariffs to assign them; only the system edits."""
    tariff = sysadmin.ok("post", f"{API}/tariffs", 201, json={"name": "Base"})
    cid = world.client("Acme")
    manager = world.caller(Level.CLIENTS_ADMIN)
    assert manager.ok("get", f"{API}/tariffs")["total"] == 1
    assert manager.post(f"{API}/tariffs", json={"name": "Mine"}).status_code == 403
    assert manager.patch(f"{API}/tariffs/{tariff['id']}", json={"name": "x"}).status_code == 403
    manager.ok("patch", f"{API}/clients/{cid}/billing-account", json={"tariff_id": tariff["id"]})
    company = world.caller(Level.CLIENT_ADMIN, cid)
    assert company.get(f"{API}/tariffs").status_code == 403
    assert sysadmin.delete(f"{API}/tariffs/{tariff['id']}").status_code == 409


# --- rights catalogue -----------------------------------------------------------------------


def test_rights_catalogue(world):
    """ADM-1, ADM-2, ADM-3: every logged-in user reads the catalogue and the presets."""
    cid = world.client("Acme")
    user = world.caller(Level.CLIENT_USER, cid)
    catalogue = user.ok("get", f"{API}/rights")
    names = [r["name"] for r in catalogue["rights"]]
    assert names == [r.value for r in Right]
    manage = catalogue["rights"][0]
    assert (manage["title_ru"], manage["title_en"]) == ("Управление системой", "System management")
    levels = {lv["level"]: lv for lv in catalogue["levels"]}
    assert levels["client_admin"]["title_ru"] == "Администратор клиента"
    assert levels["client_user"]["needs_client"] is True
    assert levels["system_admin"]["rights"] == sorted(r.value for r in PRESETS[Level.SYSTEM_ADMIN])
    assert set(catalogue["additional_sets"]) == {r.value for r in ADDITIONAL_SETS}
    assert world.http.get(f"{API}/rights").status_code == 401
