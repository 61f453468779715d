"""The registrar core (PRT-1, RFC 3261 §10.3): digest, bindings, expiry, order, NAT flows.

Sans-I/O: requests are built here, ``now`` is a number the tests move, randomness is seeded.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import pytest

from cloudpbx.engine.location import MemoryLocationStore
from cloudpbx.engine.registrar import (
    BindingChange,
    ChangeReason,
    PortCredentials,
    Registrar,
)
from cloudpbx.sip.auth import Challenge, DigestClient
from cloudpbx.sip.headers import Headers
from cloudpbx.sip.message import Request, Response, parse_message
from cloudpbx.transport.base import Flow, TransportKind

REALM = "cloudpbx"
KEY = b"k" * 32
T0 = 1_700_000_000.0
LOCAL = ("127.0.0.1", 5060)


@dataclass(frozen=True)
class Port:
    id: int
    client_id: int
    login: str
    secret: str
    algorithm: str = "MD5"
    is_active: bool = True


@dataclass
class Directory:
    ports: dict[str, Port] = field(default_factory=dict)

    def add(self, port: Port) -> Port:
        self.ports[port.login] = port
        return port

    def port_by_login(self, login: str) -> PortCredentials | None:
        return self.ports.get(login)


def seeded(seed: int = 7):
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


_conn_ids = itertools.count(100)


def udp(port: int = 40000) -> Flow:
    return Flow(kind=TransportKind.UDP, local=LOCAL, remote=("127.0.0.1", port), connection_id=1)


def tcp(port: int = 41000) -> Flow:
    return Flow(
        kind=TransportKind.TCP,
        local=LOCAL,
        remote=("127.0.0.1", port),
        connection_id=next(_conn_ids),
    )


class Phone:
    """A REGISTER client: builds requests, answers challenges with DigestClient."""

    def __init__(self, login: str, password: str, *, call_id: str | None = None) -> None:
        self.login = login
        self.digest = DigestClient(login, password)
        self.call_id = call_id or f"call-{login}"
        self.cseq = 0
        self._branches = itertools.count(1)
        self._rand = seeded(3)

    def request(
        self,
        contacts: list[str] | None = None,
        *,
        expires: int | None = None,
        authorization: str | None = None,
        to_user: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        uri: str = "sip:127.0.0.1",
    ) -> Request:
        self.cseq += 1
        user = to_user or self.login
        headers = [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK{next(self._branches)}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{user}@127.0.0.1>;tag=ph"),
            ("To", f"<sip:{user}@127.0.0.1>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("User-Agent", "TestPhone/1.0"),
        ]
        headers += [("Contact", c) for c in contacts or []]
        if expires is not None:
            headers.append(("Expires", str(expires)))
        if authorization is not None:
            headers.append(("Authorization", authorization))
        headers += extra or []
        # Through bytes, as the endpoint would hand it over.
        message = parse_message(bytes(Request("REGISTER", uri, Headers(headers))))
        assert isinstance(message, Request)
        return message

    def authorize(self, challenge: Response, uri: str = "sip:127.0.0.1") -> str:
        values = challenge.headers.get_all("www-authenticate")
        return self.digest.authorize("REGISTER", uri, values, cnonce_source=self._rand)

    def register(
        self,
        registrar: Registrar,
        contacts: list[str] | None,
        *,
        flow: Flow | None = None,
        now: float = T0,
        **kwargs,
    ) -> Response:
        """REGISTER -> 401 -> REGISTER with credentials -> the final answer."""
        flow = flow or udp()
        first = registrar.handle_register(self.request(contacts, **kwargs), flow, now)
        if first.status != 401:
            return first
        auth = self.authorize(first)
        return registrar.handle_register(
            self.request(contacts, authorization=auth, **kwargs), flow, now
        )


@pytest.fixture
def ports() -> Directory:
    directory = Directory()
    directory.add(Port(1, 10, "alice", "alice-pw"))
    directory.add(Port(2, 10, "bob", "bob-pw", algorithm="SHA-256"))
    directory.add(Port(3, 20, "carol", "carol-pw", is_active=False))
    return directory


@pytest.fixture
def changes() -> list[BindingChange]:
    return []


@pytest.fixture
def registrar(ports: Directory, changes: list[BindingChange]) -> Registrar:
    reg = Registrar(
        ports,
        MemoryLocationStore(),
        realm=REALM,
        nonce_key=KEY,
        min_expires=60,
        max_expires=3600,
        max_contacts=3,
        rand=seeded(),
        clock=lambda: T0,
    )
    reg.listeners.append(changes.append)
    return reg


def contact_header(response: Response) -> list[str]:
    return response.headers.values("contact")


# --- digest ---------------------------------------------------------------------------------


def test_unauthenticated_register_is_challenged(registrar: Registrar) -> None:
    """PRT-1: a REGISTER without credentials gets 401 with an MD5 Digest challenge."""
    response = registrar.handle_register(
        Phone("alice", "x").request(["<sip:a@1.2.3.4>"]), udp(), T0
    )
    assert response.status == 401
    assert response.to.tag
    (value,) = response.headers.get_all("www-authenticate")
    challenge = Challenge.parse(value)
    assert challenge.realm == REALM
    assert challenge.algorithm.value == "MD5"
    assert challenge.qop == ("auth",)
    assert len(registrar.store) == 0


def test_right_password_registers_the_port(registrar: Registrar) -> None:
    """PRT-1: the digest username is the port login; the 200 lists the binding."""
    phone = Phone("alice", "alice-pw")
    flow = udp(40001)
    response = phone.register(registrar, ["<sip:alice@127.0.0.1:40001>"], flow=flow)
    assert response.status == 200
    assert contact_header(response) == ["<sip:alice@127.0.0.1:40001>;expires=3600"]
    assert response.headers.get("date", "").endswith("GMT")
    (binding,) = registrar.contacts(1, T0)
    assert binding.flow == flow
    assert binding.source == ("127.0.0.1", 40001)
    assert binding.user_agent == "TestPhone/1.0"
    assert (binding.port_id, binding.client_id) == (1, 10)
    assert registrar.is_available(1, T0)


def test_wrong_password_unknown_login_and_disabled_port_look_the_same(
    registrar: Registrar,
) -> None:
    """PRT-1: 403 for a wrong password, an unknown login and a disabled port alike."""
    answers = []
    for login, password in (("alice", "nope"), ("nobody", "nope"), ("carol", "carol-pw")):
        response = Phone(login, password).register(registrar, ["<sip:x@127.0.0.1:5>"])
        answers.append((response.status, response.reason, sorted(n for n, _ in response.headers)))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 403
    assert len(registrar.store) == 0


def test_unknown_login_gets_the_same_challenge_as_a_known_md5_port(
    registrar: Registrar,
) -> None:
    """PRT-1: the challenge does not tell whether a login exists."""
    known = registrar.handle_register(Phone("alice", "").request(["<sip:a@h>"]), udp(), T0)
    unknown = registrar.handle_register(Phone("zed", "").request(["<sip:a@h>"]), udp(), T0)
    parsed = [Challenge.parse(r.headers.get("www-authenticate", "")) for r in (known, unknown)]
    assert [(c.algorithm, c.qop, c.stale) for c in parsed] == [
        (parsed[0].algorithm, parsed[0].qop, False)
    ] * 2


def test_sha256_port_is_challenged_with_sha256(registrar: Registrar) -> None:
    """PRT-1 / RFC 8760: a port set to SHA-256 gets a SHA-256 challenge and registers."""
    phone = Phone("bob", "bob-pw")
    first = registrar.handle_register(phone.request(["<sip:bob@h:1>"]), udp(), T0)
    assert Challenge.parse(first.headers.get("www-authenticate", "")).algorithm.value == "SHA-256"
    assert phone.register(registrar, ["<sip:bob@h:1>"]).status == 200


def test_expired_nonce_with_right_password_is_rechallenged_stale(registrar: Registrar) -> None:
    """RFC 7616 §3.3: an old nonce and the right password -> 401 stale=true, not 403."""
    phone = Phone("alice", "alice-pw")
    first = registrar.handle_register(phone.request(["<sip:a@h:1>"]), udp(), T0)
    late = T0 + 3600
    auth = phone.authorize(first)
    again = registrar.handle_register(
        phone.request(["<sip:a@h:1>"], authorization=auth), udp(), late
    )
    assert again.status == 401
    assert Challenge.parse(again.headers.get("www-authenticate", "")).stale


def test_login_identifies_the_port_whatever_the_domain_and_to_user(registrar: Registrar) -> None:
    """Issue 5 §1: the server's IP as domain, any To user: the login decides the port."""
    phone = Phone("alice", "alice-pw")
    response = phone.register(registrar, ["<sip:100@127.0.0.1:7>"], to_user="100")
    assert response.status == 200
    assert [b.uri for b in registrar.contacts(1, T0)] == ["sip:100@127.0.0.1:7"]


# --- bindings: RFC 3261 §10.3 steps 6-8 -------------------------------------------------------


def test_several_contacts_per_port(registrar: Registrar) -> None:
    """PRT-1: a port may have several contacts; the 200 lists all of them."""
    desk = Phone("alice", "alice-pw", call_id="desk")
    soft = Phone("alice", "alice-pw", call_id="soft")
    assert desk.register(registrar, ["<sip:alice@127.0.0.1:1>"], flow=udp(1)).status == 200
    response = soft.register(registrar, ["<sip:alice@127.0.0.1:2>"], flow=udp(2), now=T0 + 10)
    assert response.status == 200
    assert sorted(contact_header(response)) == [
        "<sip:alice@127.0.0.1:1>;expires=3590",
        "<sip:alice@127.0.0.1:2>;expires=3600",
    ]
    assert [b.source[1] for b in registrar.contacts(1, T0 + 10)] == [2, 1]  # newest first


def test_contact_expires_parameter_beats_the_expires_header(registrar: Registrar) -> None:
    """RFC 3261 §10.3 step 7: the contact's expires, else Expires, else the default."""
    phone = Phone("alice", "alice-pw")
    response = phone.register(registrar, ["<sip:a@h:1>;expires=120", "<sip:a@h:2>"], expires=300)
    assert sorted(contact_header(response)) == [
        "<sip:a@h:1>;expires=120",
        "<sip:a@h:2>;expires=300",
    ]


def test_too_brief_interval_is_423_with_min_expires_and_changes_nothing(
    registrar: Registrar,
) -> None:
    """RFC 3261 §10.3 step 7: below min_expires the request fails as a whole."""
    phone = Phone("alice", "alice-pw")
    response = phone.register(registrar, ["<sip:a@h:1>", "<sip:a@h:2>;expires=30"])
    assert response.status == 423
    assert response.headers.get("min-expires") == "60"
    assert registrar.contacts(1, T0) == []


def test_long_interval_is_clamped_to_max_expires(registrar: Registrar) -> None:
    """PRT-1: the registrar never grants more than max_expires."""
    response = Phone("alice", "alice-pw").register(registrar, ["<sip:a@h:1>"], expires=86400)
    assert contact_header(response) == ["<sip:a@h:1>;expires=3600"]


def test_expires_zero_removes_one_contact(registrar: Registrar) -> None:
    """RFC 3261 §10.2.2: expires=0 removes that binding only."""
    phone = Phone("alice", "alice-pw")
    phone.register(registrar, ["<sip:a@h:1>", "<sip:a@h:2>"])
    response = phone.register(registrar, ["<sip:a@h:1>;expires=0"], now=T0 + 1)
    assert contact_header(response) == ["<sip:a@h:2>;expires=3599"]


def test_star_with_expires_zero_removes_everything(
    registrar: Registrar, changes: list[BindingChange]
) -> None:
    """RFC 3261 §10.2.2: Contact: * with Expires: 0 unregisters every contact."""
    Phone("alice", "alice-pw", call_id="one").register(registrar, ["<sip:a@h:1>"])
    phone = Phone("alice", "alice-pw", call_id="two")
    phone.register(registrar, ["<sip:a@h:2>"])
    response = phone.register(registrar, ["*"], expires=0)
    assert response.status == 200
    assert contact_header(response) == []
    assert registrar.contacts(1, T0) == []
    assert [c.reason for c in changes[-2:]] == [ChangeReason.UNREGISTERED] * 2


def test_star_needs_expires_zero(registrar: Registrar) -> None:
    """RFC 3261 §10.3 step 6: "*" with another Expires is a 400."""
    phone = Phone("alice", "alice-pw")
    phone.register(registrar, ["<sip:a@h:1>"])
    assert phone.register(registrar, ["*"], expires=60).status == 400
    assert phone.register(registrar, ["*"]).status == 400
    assert len(registrar.contacts(1, T0)) == 1


def test_register_without_contact_is_a_query(registrar: Registrar) -> None:
    """RFC 3261 §10.2.3: no Contact lists the bindings and changes nothing."""
    phone = Phone("alice", "alice-pw")
    phone.register(registrar, ["<sip:a@h:1>"])
    response = phone.register(registrar, None, now=T0 + 100)
    assert contact_header(response) == ["<sip:a@h:1>;expires=3500"]


def test_same_call_id_with_old_cseq_fails_and_changes_nothing(registrar: Registrar) -> None:
    """RFC 3261 §10.3 step 7: within a Call-ID only a higher CSeq updates a binding."""
    phone = Phone("alice", "alice-pw")
    phone.register(registrar, ["<sip:a@h:1>"], expires=600)
    replay = Phone("alice", "alice-pw")  # same Call-ID, its CSeq starts again at 1
    response = replay.register(registrar, ["<sip:a@h:1>;expires=0"])
    assert response.status == 500
    assert len(registrar.contacts(1, T0)) == 1
    # A higher CSeq from the first phone does update it.
    assert phone.register(registrar, ["<sip:a@h:1>"], expires=900).status == 200
    assert registrar.contacts(1, T0)[0].expires_at == T0 + 900


def test_another_call_id_may_update_whatever_its_cseq(registrar: Registrar) -> None:
    """RFC 3261 §10.3 step 7: a different Call-ID replaces the binding."""
    Phone("alice", "alice-pw", call_id="old").register(registrar, ["<sip:a@h:1>"])
    rebooted = Phone("alice", "alice-pw", call_id="new")
    assert rebooted.register(registrar, ["<sip:a@h:1>"], expires=120).status == 200
    (binding,) = registrar.contacts(1, T0)
    assert (binding.call_id, binding.expires_at) == ("new", T0 + 120)


def test_max_contacts_evicts_the_oldest(registrar: Registrar) -> None:
    """PRT-1: beyond max_contacts the contact closest to expiry is dropped."""
    for i in range(4):
        phone = Phone("alice", "alice-pw", call_id=f"c{i}")
        assert phone.register(registrar, [f"<sip:a@h:{i}>"], now=T0 + i).status == 200
    assert sorted(b.uri for b in registrar.contacts(1, T0 + 4)) == [
        "sip:a@h:1",
        "sip:a@h:2",
        "sip:a@h:3",
    ]
    many = Phone("alice", "alice-pw", call_id="many")
    too_many = [f"<sip:a@h:{i}>" for i in range(10, 14)]
    assert many.register(registrar, too_many).status == 403


@pytest.mark.parametrize(
    ("build", "status"),
    [
        (lambda p: p.request(["<sip:a@h>"], uri="tel:+15551234"), 416),
        (lambda p: p.request(["<sip:a@h>"], extra=[("Require", "gruu")]), 420),
    ],
)
def test_request_uri_and_require_are_checked_first(
    registrar: Registrar, build, status: int
) -> None:
    """RFC 3261 §10.3 steps 1-2."""
    assert registrar.handle_register(build(Phone("alice", "x")), udp(), T0).status == status


def test_malformed_expires_is_400(registrar: Registrar) -> None:
    """RFC 3261 §20.19: a bad Expires is the peer's fault: 400."""
    phone = Phone("alice", "alice-pw")
    assert phone.register(registrar, ["<sip:a@h>;expires=soon"]).status == 400


def test_non_sip_contact_is_refused(registrar: Registrar) -> None:
    """PRT-1: only sip:/sips: contacts can be reached."""
    assert Phone("alice", "alice-pw").register(registrar, ["<tel:+15551234>"]).status == 400


# --- the location service --------------------------------------------------------------------


def test_expired_bindings_vanish_and_sweep_reports_them(
    registrar: Registrar, changes: list[BindingChange]
) -> None:
    """PRT-1: an unrefreshed registration expires; the port becomes unavailable."""
    Phone("alice", "alice-pw").register(registrar, ["<sip:a@h:1>"], expires=60)
    assert registrar.is_available(1, T0 + 59)
    assert not registrar.is_available(1, T0 + 60)  # expired even before the sweep
    assert [b.uri for b in registrar.sweep(T0 + 60)] == ["sip:a@h:1"]
    assert changes[-1].reason is ChangeReason.EXPIRED
    assert len(registrar.store) == 0


def test_closed_connection_drops_its_bindings_only(registrar: Registrar) -> None:
    """PRT-1 / RFC 5626 §5.2: bindings made over a TCP connection die with it."""
    conn_a, conn_b = tcp(1), tcp(2)
    Phone("alice", "alice-pw", call_id="a").register(registrar, ["<sip:a@h:1>"], flow=conn_a)
    Phone("alice", "alice-pw", call_id="b").register(registrar, ["<sip:a@h:2>"], flow=conn_b)
    Phone("alice", "alice-pw", call_id="u").register(registrar, ["<sip:a@h:3>"], flow=udp(3))
    assert [b.uri for b in registrar.flow_closed(conn_a)] == ["sip:a@h:1"]
    assert sorted(b.uri for b in registrar.contacts(1, T0)) == ["sip:a@h:2", "sip:a@h:3"]
    assert registrar.flow_closed(udp(3)) == []  # UDP has no connection to lose


def test_reregistering_on_a_new_connection_moves_the_binding(registrar: Registrar) -> None:
    """PRT-1: the binding follows the latest REGISTER's flow; the old one closing is harmless."""
    old, new = tcp(1), tcp(2)
    phone = Phone("alice", "alice-pw")
    phone.register(registrar, ["<sip:a@h:1>"], flow=old)
    phone.register(registrar, ["<sip:a@h:1>"], flow=new, now=T0 + 5)
    assert registrar.flow_closed(old) == []
    assert registrar.contacts(1, T0 + 5)[0].flow == new


def test_availability_follows_qualify_and_a_new_register(registrar: Registrar) -> None:
    """PRT-1: a contact that stops answering is unavailable until it is heard again."""
    phone = Phone("alice", "alice-pw")
    phone.register(registrar, ["<sip:a@h:1>"])
    key = (1, "sip:a@h:1")
    registrar.set_available(key, False)
    assert not registrar.is_available(1, T0)
    assert registrar.status(1, T0).registered
    phone.register(registrar, ["<sip:a@h:1>"], now=T0 + 1)
    assert registrar.is_available(1, T0 + 1)


def test_status_for_the_api(registrar: Registrar) -> None:
    """PRT-1: each port's availability with its contacts, for EngineControl.port_status."""
    Phone("alice", "alice-pw").register(registrar, ["<sip:a@h:1>"], flow=tcp(41234), expires=600)
    status = registrar.status(1, T0 + 100)
    assert status.registered
    assert status.available
    (contact,) = status.contacts
    assert contact.uri == "sip:a@h:1"
    assert contact.source == "127.0.0.1:41234"
    assert contact.transport == "TCP"
    assert contact.expires_in == 500
    assert contact.user_agent == "TestPhone/1.0"
    assert registrar.status(2).registered is False  # uses the injected clock


def test_restore_skips_expired_and_reports_restored(
    registrar: Registrar, changes: list[BindingChange]
) -> None:
    """PRT-1: persisted UDP bindings come back at start unless expired."""
    Phone("alice", "alice-pw").register(registrar, ["<sip:a@h:1>"], expires=600)
    saved = list(registrar.store.all())
    fresh = Registrar(Directory(), MemoryLocationStore(), realm=REALM, nonce_key=KEY)
    assert fresh.restore(saved, T0 + 700) == 0
    seen: list[BindingChange] = []
    fresh.listeners.append(seen.append)
    assert fresh.restore(saved, T0 + 100) == 1
    assert [c.reason for c in seen] == [ChangeReason.RESTORED]


def test_drop_port_forgets_its_bindings(registrar: Registrar) -> None:
    """PRT-1: a deleted or disabled port's contacts are dropped at once."""
    Phone("alice", "alice-pw").register(registrar, ["<sip:a@h:1>", "<sip:a@h:2>"])
    assert len(registrar.drop_port(1)) == 2
    assert registrar.contacts(1, T0) == []
