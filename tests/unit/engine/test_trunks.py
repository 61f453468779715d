"""Trunks (TRK-1, §3a): where the DID is read, rewrite rules, E.164, trunk matching,
registration timing, loading operators and finding a DID's client. Pure or on SQLite."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.config import Settings
from cloudpbx.db.models import Client, ExternalNumber, Operator, RewriteRule
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.engine.snapshot import SnapshotStore
from cloudpbx.engine.trunks import (
    RewriteRuleInfo,
    TrunkInfo,
    TrunkRegistration,
    TrunkService,
    caller_from,
    did_from,
    granted_expires,
    load_trunks,
    refresh_delay,
    rewrite,
    to_e164,
)
from cloudpbx.numbers import NumberingPlan
from cloudpbx.security import SecretBox
from cloudpbx.sip.message import Request, Response

BOX = SecretBox("unit-trunks-secret-key-0123456789")


def invite(uri: str = "sip:84951234567@pbx.example", *headers: tuple[str, str]) -> Request:
    base = [
        ("Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKx"),
        ("From", "<sip:89161234567@carrier.example>;tag=a"),
        ("To", "<sip:+74951112233@pbx.example>"),
        ("Call-ID", "c1"),
        ("CSeq", "1 INVITE"),
    ]
    return Request("INVITE", uri, [*base, *headers])


def trunk(**fields: Any) -> TrunkInfo:
    values: dict[str, Any] = {
        "id": 1,
        "name": "carrier",
        "host": "198.51.100.7",
        "port": 5060,
        "transport": "udp",
        "register": False,
        "username": None,
        "secret": None,
        "allowed": (),
        "addresses": ("198.51.100.7",),
        "did_source": "request_uri",
        "max_channels": None,
        "is_active": True,
        "rules": (),
    }
    values.update(fields)
    return TrunkInfo(**values)


# --- where the DID is read (§3a) ---------------------------------------------------------------


def test_did_from_request_uri_to_and_tel() -> None:
    """§3a: the DID from the Request-URI (default) or the To header; tel: URIs too."""
    request = invite()
    assert did_from(request, "request_uri") == "84951234567"
    assert did_from(request, "to") == "+74951112233"
    assert did_from(invite("tel:+7-495-123-45-67"), "request_uri") == "+7-495-123-45-67"


def test_did_from_the_top_most_diversion() -> None:
    """§3a, RFC 5806: Diversion's top-most entry (the last diversion, to us) is the DID;
    without a Diversion there is none."""
    request = invite(
        "sip:trunkgroup@pbx.example",
        ("Diversion", "<sip:+74957654321@carrier.example>;reason=unconditional, <sip:1@x>"),
        ("Diversion", "<sip:+70000000000@carrier.example>;reason=user-busy"),
    )
    assert did_from(request, "diversion") == "+74957654321"
    assert did_from(invite(), "diversion") is None


def test_caller_prefers_p_asserted_identity() -> None:
    """TRK-1: a carrier is trusted: P-Asserted-Identity (RFC 3325) over From."""
    assert caller_from(invite()) == "89161234567"
    asserted = invite("sip:1@x", ("P-Asserted-Identity", "<sip:+79160000001@carrier>"))
    assert caller_from(asserted) == "+79160000001"


# --- rewrite rules and E.164 -----------------------------------------------------------------


def test_rewrite_applies_matching_rules_in_order() -> None:
    """§3a: rules of one direction and field apply in order, each to the previous result;
    other directions and fields are left alone; no match leaves the number as it is."""
    rules = (
        RewriteRuleInfo("inbound", "called", r"^00", "+"),
        RewriteRuleInfo("inbound", "called", r"^8(\d{10})$", r"+7\1"),
        RewriteRuleInfo("inbound", "caller", r".*", "x"),
        RewriteRuleInfo("outbound", "called", r"^\+7", "8"),
        RewriteRuleInfo("inbound", "called", r"^\+7495", "+7499"),
    )
    assert rewrite(rules, "inbound", "called", "84951234567") == "+74991234567"
    assert rewrite(rules, "inbound", "called", "0044123") == "+44123"
    assert rewrite(rules, "outbound", "called", "+79161234567") == "89161234567"
    assert rewrite(rules, "outbound", "caller", "+79161234567") == "+79161234567"


def test_to_e164() -> None:
    """§3a: national shapes become E.164; what is not a number is None (→ 404)."""
    plan = NumberingPlan()
    assert to_e164("84951234567", plan) == "+74951234567"
    assert to_e164("+7 (495) 123-45-67", plan) == "+74951234567"
    assert to_e164("trunkgroup", plan) is None


# --- matching a carrier's INVITE -------------------------------------------------------------


def test_trunk_allows_its_networks_and_its_own_host_port() -> None:
    """TRK-1 IP authentication: an allowed IP or network (any port), or the trunk's host at
    its port; another port of the host is not the carrier."""
    t = trunk(allowed=(ipaddress.ip_network("203.0.113.0/24"),))
    assert t.allows(("203.0.113.9", 40000))
    assert t.allows(("198.51.100.7", 5060))
    assert not t.allows(("198.51.100.7", 5070))
    assert not t.allows(("192.0.2.1", 5060))
    assert not t.allows(("not-an-ip", 5060))


def test_match_skips_authenticated_and_finds_registration_token() -> None:
    """TRK-1: an INVITE with Proxy-Authorization is a port's (never a trunk's); an INVITE to
    the contact we registered with is the registering trunk's, from any address."""
    service = TrunkService(None, None, BOX, None, reload_s=None)  # type: ignore[arg-type]
    reg_trunk = trunk(id=2, register=True, username="u", secret="p", addresses=("192.0.2.50",))
    ip_trunk = trunk(allowed=(ipaddress.ip_network("127.0.0.1/32"),))
    service.trunks = {1: ip_trunk, 2: reg_trunk}
    registration = TrunkRegistration(service, reg_trunk, expires=300, retry_s=30)
    service.registrations[2] = registration
    assert service.match(invite(), ("127.0.0.1", 5062)) is ip_trunk
    authed = invite("sip:1@x", ("Proxy-Authorization", 'Digest username="a"'))
    assert service.match(authed, ("127.0.0.1", 5062)) is None
    to_token = invite(f"sip:{registration.token}@pbx.example")
    assert service.match(to_token, ("192.0.2.99", 5060)) is reg_trunk
    assert service.match(invite(), ("192.0.2.99", 5060)) is None


def test_unusable_trunks_say_why() -> None:
    """TRK-1 "trunk down": inactive, TLS (not implemented), unregistered, full."""
    service = TrunkService(None, None, BOX, None, reload_s=None)  # type: ignore[arg-type]
    assert service.usable(trunk()) is None
    assert service.usable(trunk(is_active=False)) == "inactive"
    assert service.usable(trunk(transport="tls")) == "not implemented: transport tls"
    assert service.usable(trunk(register=True)) == "not registered"
    assert service.usable(trunk(addresses=())) == "host does not resolve"


# --- registration timing ---------------------------------------------------------------------


def test_refresh_delay_is_before_expiry() -> None:
    """TRK-1: refresh half-way through short registrations, a minute early for long ones."""
    assert refresh_delay(2) == 1.0
    assert refresh_delay(120) == 60.0
    assert refresh_delay(3600) == 3540.0
    assert refresh_delay(0.4) == 0.5


def test_granted_expires_reads_our_contact_then_expires() -> None:
    """RFC 3261 §10.2.4: our contact's expires parameter, else Expires, else what we asked."""
    ok = Response(200, "OK")
    ok.headers.add("Contact", "<sip:other@10.0.0.1>;expires=10, <sip:tok@10.0.0.2>;expires=90")
    assert granted_expires(ok, "tok", 300) == 90
    plain = Response(200, "OK")
    plain.headers.add("Expires", "120")
    assert granted_expires(plain, "tok", 300) == 120
    assert granted_expires(Response(200, "OK"), "tok", 300) == 300


# --- configuration from the database -------------------------------------------------------------


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def test_load_trunks_decrypts_and_keeps_rule_order(sessions: sessionmaker[Session]) -> None:
    """TRK-1: operators load with their secret decrypted, networks parsed, rules in order."""
    with sessions() as s:
        op = Operator(
            name="carrier",
            host="carrier.invalid",
            register=True,
            username="u",
            secret_enc=BOX.seal("s3cr3t-pw"),
            allowed_addresses=["198.51.100.0/24"],
            did_source="diversion",
            max_channels=30,
        )
        op.rewrite_rules = [
            RewriteRule(position=1, direction="inbound", field="called", match="b", replace="c"),
            RewriteRule(position=0, direction="inbound", field="called", match="a", replace="b"),
        ]
        s.add(op)
        s.commit()
    with sessions() as s:
        trunks = load_trunks(s, BOX, resolve=lambda host: ("192.0.2.1",))
    (t,) = trunks.values()
    assert (t.secret, t.username, t.did_source, t.max_channels) == (
        "s3cr3t-pw",
        "u",
        "diversion",
        30,
    )
    assert t.allowed == (ipaddress.ip_network("198.51.100.0/24"),)
    assert t.target == ("192.0.2.1", 5060)
    assert rewrite(t.rules, "inbound", "called", "a") == "c"
    assert "s3cr3t-pw" not in repr(t)


def test_number_by_did_finds_the_client(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """TRK-1: the external number picks the client; it carries its operator; a deleted
    number is gone from the index."""
    with sessions() as s:
        op = Operator(name="carrier", host="192.0.2.1")
        client = Client(name="A")
        s.add_all([op, client])
        s.flush()
        number = ExternalNumber(client_id=client.id, number="+74951234567", operator_id=op.id)
        s.add(number)
        s.commit()
        ids = (client.id, op.id, number.id)
    settings = Settings(database_url="sqlite://", secret_key="x", data_dir=tmp_path)
    store = SnapshotStore(sessions, BOX, settings)

    async def scenario() -> None:
        await store.load_all()
        found = store.number_by_did("+74951234567")
        assert found is not None
        snapshot, info = found
        assert (snapshot.client_id, info.operator_id, info.kind) == (ids[0], ids[1], "external")
        assert store.number_by_did("+74950000000") is None
        with sessions() as s:
            s.delete(s.get(ExternalNumber, ids[2]))
            s.commit()
        await store.refresh(ids[0])
        assert store.number_by_did("+74951234567") is None
        await store.close()

    asyncio.run(scenario())
