"""Digest authentication (cloudpbx.sip.auth): RFC vectors, server outcomes, client, fuzz."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cloudpbx.sip import auth
from cloudpbx.sip.auth import (
    Algorithm,
    Authorization,
    AuthOutcome,
    AuthParseError,
    Challenge,
    Credentials,
    DigestClient,
    DigestServer,
    InMemoryNonceCounts,
    NcVerdict,
    Qop,
    compute_response,
    ha1,
)

REALM = "pbx.example.com"
KEY = b"0123456789abcdef0123456789abcdef"
URI = "sip:pbx.example.com"


def seeded(seed: int = 1) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def users(name: str = "alice", password: str = "s3cret") -> Callable[[str], Credentials | None]:
    return lambda username: Credentials(password=password) if username == name else None


def make_server(**kwargs: object) -> DigestServer:
    return DigestServer(REALM, KEY, rand=seeded(), **kwargs)  # type: ignore[arg-type]


def nonce_of(challenge_value: str) -> str:
    return Challenge.parse(challenge_value).nonce


def credentials(
    nonce: str,
    *,
    nc: int = 1,
    username: str = "alice",
    password: str = "s3cret",
    method: str = "REGISTER",
    algorithm: Algorithm = Algorithm.MD5,
    realm: str = REALM,
) -> str:
    """An Authorization value built by hand, for a chosen nonce-count."""
    response = compute_response(
        algorithm=algorithm,
        ha1=ha1(username, realm, password, algorithm),
        nonce=nonce,
        method=method,
        uri=URI,
        qop=Qop.AUTH,
        nc=nc,
        cnonce="c0ffee",
    )
    return Authorization(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=URI,
        response=response,
        algorithm=algorithm,
        qop=Qop.AUTH,
        nc=nc,
        cnonce="c0ffee",
    ).render()


# --- RFC test vectors -------------------------------------------------------------------------

RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
# RFC 2617 §3.5, as printed (folded over several lines).
RFC2617_AUTHORIZATION = """Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41\""""


def test_rfc2617_example_response() -> None:
    parsed = Authorization.parse(RFC2617_AUTHORIZATION)
    assert parsed.username == "Mufasa"
    assert parsed.nc == 1
    assert parsed.qop is Qop.AUTH
    expected = compute_response(
        algorithm=Algorithm.MD5,
        ha1=ha1("Mufasa", "testrealm@host.com", "Circle Of Life"),
        nonce=parsed.nonce,
        method="GET",
        uri=parsed.uri,
        qop=parsed.qop,
        nc=parsed.nc,
        cnonce=parsed.cnonce,
    )
    assert expected == parsed.response == "6629fae49393a05397450978507c4ef1"


def test_rfc2617_example_from_the_client() -> None:
    client = DigestClient("Mufasa", "Circle Of Life")
    value = client.authorize(
        "GET",
        "/dir/index.html",
        RFC2617_CHALLENGE,
        cnonce_source=lambda _n: bytes.fromhex("0a4f113b"),
    )
    parsed = Authorization.parse(value)
    assert parsed.response == "6629fae49393a05397450978507c4ef1"
    assert parsed.opaque == "5ccc069c403ebaf9f0171e9517f40e41"  # echoed (RFC 2617 §3.2.2)
    assert (parsed.nc, parsed.cnonce, parsed.qop) == (1, "0a4f113b", Qop.AUTH)


RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def rfc7616_challenge(algorithm: str) -> str:
    # RFC 7616 §3.9.1, folded as printed.
    return f"""Digest
       realm="http-auth@example.org",
       qop="auth, auth-int",
       algorithm={algorithm},
       nonce="{RFC7616_NONCE}",
       opaque="{RFC7616_OPAQUE}\""""


def rfc7616_authorization(algorithm: str, response: str) -> str:
    return f"""Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm={algorithm},
       nonce="{RFC7616_NONCE}",
       nc=00000001,
       cnonce="{RFC7616_CNONCE}",
       qop=auth,
       response="{response}",
       opaque="{RFC7616_OPAQUE}\""""


RFC7616_VECTORS = [
    (Algorithm.MD5, "8ca523f5e9506fed4657c9700eebdbec"),
    (Algorithm.SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
]


@pytest.mark.parametrize(("algorithm", "response"), RFC7616_VECTORS)
def test_rfc7616_examples(algorithm: Algorithm, response: str) -> None:
    challenge = Challenge.parse(rfc7616_challenge(algorithm.value))
    assert challenge.algorithm is algorithm
    assert challenge.qop == ("auth", "auth-int")
    parsed = Authorization.parse(rfc7616_authorization(algorithm.value, response))
    expected = compute_response(
        algorithm=parsed.algorithm,
        ha1=ha1("Mufasa", challenge.realm, "Circle of Life", algorithm),
        nonce=parsed.nonce,
        method="GET",
        uri=parsed.uri,
        qop=parsed.qop,
        nc=parsed.nc,
        cnonce=parsed.cnonce,
    )
    assert expected == parsed.response == response


def test_client_prefers_sha256_when_both_are_offered() -> None:
    client = DigestClient("Mufasa", "Circle of Life")
    offered = [rfc7616_challenge("MD5"), rfc7616_challenge("SHA-256")]
    value = client.authorize("GET", "/dir/index.html", offered, cnonce_source=seeded())
    parsed = Authorization.parse(value)
    assert parsed.algorithm is Algorithm.SHA256
    assert parsed.opaque == RFC7616_OPAQUE


# --- header value syntax ----------------------------------------------------------------------


def test_parse_tolerates_whitespace_case_and_empty_elements() -> None:
    value = ' digest  Realm = "r" ,, NONCE=abc==,\tAlgorithm = md5-SESS , qop="AUTH", stale=TRUE'
    challenge = Challenge.parse(value)
    assert challenge.realm == "r"
    assert challenge.nonce == "abc=="
    assert challenge.algorithm is Algorithm.MD5_SESS
    assert challenge.qop == ("auth",)
    assert challenge.stale


def test_quoted_string_escapes_round_trip() -> None:
    challenge = Challenge.parse(r'Digest realm="a \"quoted\" \\ realm", nonce="n"')
    assert challenge.realm == 'a "quoted" \\ realm'
    assert Challenge.parse(challenge.render()) == challenge


def test_unknown_parameters_are_kept() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n", charset=UTF-8')
    assert challenge.extra == (("charset", "UTF-8"),)


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ('Basic realm="r"', "scheme"),
        ("Digest", "scheme"),
        ('Digestrealm="r"', "scheme"),
        ('Digest nonce="n"', "realm"),
        ('Digest realm="r"', "nonce"),
        ('Digest realm="r, nonce="n"', "realm"),
        ('Digest realm="unterminated', "realm"),
        ('Digest realm="r", realm="s", nonce="n"', "realm"),
        ('Digest realm "r", nonce="n"', "realm"),
        ('Digest realm="r" nonce="n"', "realm"),
        ('Digest realm=, nonce="n"', "realm"),
        ('Digest realm="r", nonce="n", algorithm=SHA-512-256', "algorithm"),
        ('Digest realm="a\x01b", nonce="n"', "realm"),
    ],
)
def test_bad_challenges_name_the_parameter(value: str, param: str) -> None:
    with pytest.raises(AuthParseError) as caught:
        Challenge.parse(value)
    assert caught.value.param == param


GOOD = 'username="u", realm="r", nonce="n", uri="sip:r", response="0a1b"'


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ('Digest realm="r", nonce="n", uri="sip:r", response="00"', "username"),
        ('Digest username="u", realm="r", nonce="n", uri="sip:r"', "response"),
        ('Digest username="u", realm="r", nonce="n", uri="sip:r", response="xyz"', "response"),
        (f"Digest {GOOD}, qop=auth, nc=00000001", "cnonce"),
        (f'Digest {GOOD}, qop=auth, cnonce="c"', "nc"),
        (f'Digest {GOOD}, qop=auth, cnonce="c", nc=1', "nc"),
        (f'Digest {GOOD}, qop=auth, cnonce="c", nc=00000000', "nc"),
        (f'Digest {GOOD}, qop=auth-conf, cnonce="c", nc=00000001', "qop"),
        (f"Digest {GOOD}, nc=00000001", "nc"),
        (f"Digest {GOOD}, algorithm=MD5-sess", "cnonce"),
        (f"Digest {GOOD}, userhash=true", "userhash"),
    ],
)
def test_bad_credentials_name_the_parameter(value: str, param: str) -> None:
    with pytest.raises(AuthParseError) as caught:
        Authorization.parse(value)
    assert caught.value.param == param


def test_authorization_renders_qop_and_nc_unquoted() -> None:
    value = credentials("abc", nc=0x1F)
    assert "qop=auth," in value
    assert value.endswith("nc=0000001f")
    assert Authorization.parse(value).nc == 0x1F


# --- server -----------------------------------------------------------------------------------


def test_register_round_trip_ok() -> None:
    server = make_server()
    client = DigestClient("alice", "s3cret")
    value = client.authorize("REGISTER", URI, server.challenge(10.0), cnonce_source=seeded(2))
    result = server.verify("REGISTER", value, 11.0, users())
    assert result.ok
    assert result.username == "alice"
    assert result.algorithm is Algorithm.MD5


def test_challenge_values_one_per_algorithm_in_the_given_order() -> None:
    server = make_server()
    assert len(server.challenge(0.0)) == 1  # MD5 only by default
    values = server.challenge(0.0, (Algorithm.SHA256, "MD5"), stale=True)
    parsed = [Challenge.parse(v) for v in values]
    assert [c.algorithm for c in parsed] == [Algorithm.SHA256, Algorithm.MD5]
    assert all(c.stale and c.realm == REALM and c.qop == ("auth",) for c in parsed)
    assert parsed[0].nonce == parsed[1].nonce


def test_sha256_and_sess_variants_verify() -> None:
    server = make_server()
    for algorithm in Algorithm:
        client = DigestClient("alice", "s3cret")
        values = server.challenge(0.0, (algorithm,))
        value = client.authorize("INVITE", URI, values, cnonce_source=seeded(3))
        result = server.verify("INVITE", value, 1.0, users())
        assert result.ok, algorithm
        assert result.algorithm is algorithm


def test_stored_ha1_per_algorithm() -> None:
    stored = Credentials(
        ha1_md5=ha1("alice", REALM, "s3cret", Algorithm.MD5).upper(),
        ha1_sha256=ha1("alice", REALM, "s3cret", Algorithm.SHA256),
    )
    server = make_server()
    nonce = nonce_of(server.challenge(0.0)[0])
    for algorithm in (Algorithm.MD5, Algorithm.SHA256, Algorithm.SHA256_SESS):
        value = credentials(nonce, algorithm=algorithm, nc=list(Algorithm).index(algorithm) + 1)
        assert server.verify("REGISTER", value, 1.0, lambda _u: stored).ok


def test_missing_stored_ha1_for_the_algorithm_is_bad_credentials() -> None:
    server = make_server()
    nonce = nonce_of(server.challenge(0.0)[0])
    md5_only = Credentials(ha1_md5=ha1("alice", REALM, "s3cret"))
    value = credentials(nonce, algorithm=Algorithm.SHA256)
    result = server.verify("REGISTER", value, 1.0, lambda _u: md5_only)
    assert result.outcome is AuthOutcome.BAD_CREDENTIALS


def test_wrong_password_and_wrong_method() -> None:
    server = make_server()
    nonce = nonce_of(server.challenge(0.0)[0])
    bad = server.verify("REGISTER", credentials(nonce, password="guess"), 1.0, users())
    assert bad.outcome is AuthOutcome.BAD_CREDENTIALS
    assert bad.username == "alice"
    assert not bad.rechallenge_stale
    other_method = server.verify("INVITE", credentials(nonce, nc=2), 1.0, users())
    assert other_method.outcome is AuthOutcome.BAD_CREDENTIALS


def test_unknown_user_is_indistinguishable_from_wrong_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = make_server()
    nonce = nonce_of(server.challenge(0.0)[0])
    hashes: list[int] = []
    real_h = auth._h

    def counting_h(algorithm: Algorithm, data: bytes) -> str:
        hashes[-1] += 1
        return real_h(algorithm, data)

    monkeypatch.setattr(auth, "_h", counting_h)
    outcomes = []
    for lookup in (users("ghost", "other"), users("nobody-else")):
        hashes.append(0)
        outcomes.append(
            server.verify("REGISTER", credentials(nonce, username="ghost"), 1.0, lookup)
        )
    wrong_password, unknown_user = outcomes
    assert wrong_password == unknown_user  # same outcome, username echo and reason
    assert wrong_password.outcome is AuthOutcome.BAD_CREDENTIALS
    assert hashes[0] == hashes[1]  # same digest work on both paths


def test_unknown_user_with_stale_nonce_is_still_just_bad_credentials() -> None:
    server = make_server()
    nonce = nonce_of(server.challenge(0.0)[0])
    result = server.verify("REGISTER", credentials(nonce, username="ghost"), 999.0, users())
    assert result.outcome is AuthOutcome.BAD_CREDENTIALS


def test_expired_nonce_with_right_password_is_stale() -> None:
    server = make_server(nonce_ttl=300.0)
    nonce = nonce_of(server.challenge(0.0)[0])
    assert server.verify("REGISTER", credentials(nonce), 300.0, users()).ok
    stale = server.verify("REGISTER", credentials(nonce, nc=2), 300.5, users())
    assert stale.outcome is AuthOutcome.STALE
    assert stale.rechallenge_stale
    wrong = server.verify("REGISTER", credentials(nonce, nc=3, password="x"), 300.5, users())
    assert wrong.outcome is AuthOutcome.BAD_CREDENTIALS


@pytest.mark.parametrize(
    "mangle",
    [
        lambda n: n[:-1] + ("0" if n[-1] != "0" else "1"),  # MAC tampered
        lambda n: "f" + n[1:],  # timestamp tampered
        lambda n: n.upper(),  # not the canonical spelling
        lambda n: n[:-2],  # truncated
        lambda n: "dcd98b7102dd2f0e8b11d0f600bfb0c093",  # someone else's
    ],
)
def test_forged_nonces_are_unknown(mangle: Callable[[str], str]) -> None:
    server = make_server()
    nonce = mangle(nonce_of(server.challenge(0.0)[0]))
    result = server.verify("REGISTER", credentials(nonce), 1.0, users())
    assert result.outcome is AuthOutcome.UNKNOWN_NONCE


def test_nonce_is_bound_to_key_and_realm() -> None:
    other_key = DigestServer(REALM, b"another key, 32 bytes long......", rand=seeded())
    other_realm = DigestServer("other.example.com", KEY, rand=seeded())
    server = make_server()
    for issuer in (other_key, other_realm):
        nonce = nonce_of(issuer.challenge(0.0)[0])
        result = server.verify("REGISTER", credentials(nonce), 1.0, users())
        assert result.outcome is AuthOutcome.UNKNOWN_NONCE


def test_nonce_from_the_future_is_unknown() -> None:
    server = make_server(clock_skew=30.0)
    nonce = nonce_of(server.challenge(1000.0)[0])
    assert server.verify("REGISTER", credentials(nonce), 960.0, users()).outcome is (
        AuthOutcome.UNKNOWN_NONCE
    )
    assert server.verify("REGISTER", credentials(nonce), 980.0, users()).ok


def test_any_node_with_the_key_verifies_another_nodes_nonce() -> None:
    node_a, node_b = make_server(), DigestServer(REALM, KEY, rand=seeded(99))
    nonce = nonce_of(node_a.challenge(0.0)[0])
    assert node_b.verify("REGISTER", credentials(nonce), 1.0, users()).ok


def test_policy_violations_are_malformed() -> None:
    server = make_server(accept=(Algorithm.SHA256,))
    nonce = nonce_of(server.challenge(0.0)[0])
    cases = [
        credentials(nonce, realm="other.example.com"),
        credentials(nonce, algorithm=Algorithm.MD5),
        f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="{URI}", response="00"',
        "Digest garbage",
        "",
    ]
    for value in cases:
        assert server.verify("REGISTER", value, 1.0, users()).outcome is AuthOutcome.MALFORMED


def test_rfc2069_responses_only_when_allowed() -> None:
    server = make_server(require_qop=False)
    nonce = nonce_of(server.challenge(0.0)[0])
    response = compute_response(
        algorithm=Algorithm.MD5,
        ha1=ha1("alice", REALM, "s3cret"),
        nonce=nonce,
        method="REGISTER",
        uri=URI,
    )
    value = Authorization(
        username="alice", realm=REALM, nonce=nonce, uri=URI, response=response
    ).render()
    assert server.verify("REGISTER", value, 1.0, users()).ok
    strict = make_server()
    assert strict.verify("REGISTER", value, 1.0, users()).outcome is AuthOutcome.MALFORMED


def test_auth_int_covers_the_body() -> None:
    server = make_server(qops=(Qop.AUTH_INT,))
    client = DigestClient("alice", "s3cret")
    body = b"v=0\r\n"
    value = client.authorize(
        "INVITE", URI, server.challenge(0.0), cnonce_source=seeded(), body=body
    )
    assert Authorization.parse(value).qop is Qop.AUTH_INT
    assert server.verify("INVITE", value, 1.0, users(), body=body).ok
    tampered = client.authorize(
        "INVITE", URI, server.challenge(0.0), cnonce_source=seeded(), body=body
    )
    result = server.verify("INVITE", tampered, 1.0, users(), body=b"v=1\r\n")
    assert result.outcome is AuthOutcome.BAD_CREDENTIALS


# --- replay protection ------------------------------------------------------------------------


def test_replayed_request_is_refused() -> None:
    server = make_server()
    value = DigestClient("alice", "s3cret").authorize(
        "REGISTER", URI, server.challenge(0.0), cnonce_source=seeded()
    )
    assert server.verify("REGISTER", value, 1.0, users()).ok
    replay = server.verify("REGISTER", value, 2.0, users())
    assert replay.outcome is AuthOutcome.REPLAY
    assert replay.rechallenge_stale  # the sender knew the password: let it retry silently


def test_parallel_requests_on_one_nonce_arrive_out_of_order() -> None:
    server = make_server()
    client = DigestClient("alice", "s3cret")
    challenge = server.challenge(0.0)
    sent = [
        client.authorize("SUBSCRIBE", URI, challenge, cnonce_source=seeded(i)) for i in range(3)
    ]
    assert [Authorization.parse(v).nc for v in sent] == [1, 2, 3]
    for value in (sent[2], sent[0], sent[1]):
        assert server.verify("SUBSCRIBE", value, 1.0, users()).ok
    assert server.verify("SUBSCRIBE", sent[1], 1.0, users()).outcome is AuthOutcome.REPLAY


def test_nc_window_is_64_wide() -> None:
    server = make_server()
    nonce = nonce_of(server.challenge(0.0)[0])

    def outcome(nc: int) -> AuthOutcome:
        return server.verify("REGISTER", credentials(nonce, nc=nc), 1.0, users()).outcome

    assert outcome(100) is AuthOutcome.OK
    assert outcome(36) is AuthOutcome.REPLAY  # 64 behind the highest: out of the window
    assert outcome(37) is AuthOutcome.OK  # 63 behind, never seen
    assert outcome(37) is AuthOutcome.REPLAY
    assert outcome(500) is AuthOutcome.OK  # a big jump clears the window
    assert outcome(100) is AuthOutcome.REPLAY
    assert outcome(499) is AuthOutcome.OK


def test_nc_state_is_per_nonce() -> None:
    server = make_server()
    first, second = (nonce_of(server.challenge(0.0)[0]) for _ in range(2))
    assert first != second
    assert server.verify("REGISTER", credentials(first), 1.0, users()).ok
    assert server.verify("REGISTER", credentials(second), 1.0, users()).ok


def test_nc_store_is_bounded_and_never_reopens_a_replay() -> None:
    counts = InMemoryNonceCounts(ttl=300.0, max_nonces=2)
    for issued_at, nonce in enumerate("abc", 1):
        assert counts.check(nonce=nonce, issued_at=issued_at, nc=1, now=10.0) is NcVerdict.FRESH
    assert len(counts) == 2
    # "a" was evicted: its history is lost, so it is forgotten rather than fresh.
    assert counts.check(nonce="a", issued_at=1, nc=1, now=10.0) is NcVerdict.FORGOTTEN
    assert counts.check(nonce="c", issued_at=3, nc=1, now=10.0) is NcVerdict.REPLAY
    assert counts.check(nonce="d", issued_at=4, nc=1, now=10.0) is NcVerdict.FRESH


def test_nc_store_drops_expired_nonces() -> None:
    counts = InMemoryNonceCounts(ttl=300.0)
    for i in range(100):
        counts.check(nonce=f"n{i}", issued_at=float(i), nc=1, now=float(i))
    counts.check(nonce="late", issued_at=1000.0, nc=1, now=1000.0)
    assert len(counts) == 1


def test_server_answers_stale_for_evicted_nonce_state() -> None:
    server = make_server(counts=InMemoryNonceCounts(ttl=300.0, max_nonces=1))
    first = nonce_of(server.challenge(0.0)[0])
    second = nonce_of(server.challenge(1.0)[0])
    assert server.verify("REGISTER", credentials(first), 2.0, users()).ok
    assert server.verify("REGISTER", credentials(second), 2.0, users()).ok
    replay = server.verify("REGISTER", credentials(first), 3.0, users())
    assert replay.outcome is AuthOutcome.STALE


# --- client -----------------------------------------------------------------------------------


def test_client_counts_per_nonce() -> None:
    client = DigestClient("alice", "s3cret")
    one = 'Digest realm="r", nonce="one", qop="auth"'
    two = 'Digest realm="r", nonce="two", qop="auth"'
    ncs = [
        Authorization.parse(client.authorize("REGISTER", URI, v, cnonce_source=seeded())).nc
        for v in (one, one, two, one)
    ]
    assert ncs == [1, 2, 1, 3]


def test_client_answers_rfc2069_challenges_without_qop() -> None:
    client = DigestClient("alice", "s3cret")
    value = client.authorize("REGISTER", URI, 'Digest realm="r", nonce="n"', cnonce_source=seeded())
    parsed = Authorization.parse(value)
    assert (parsed.qop, parsed.nc, parsed.cnonce) == (None, None, None)


def test_client_skips_unusable_challenges() -> None:
    client = DigestClient("alice", "s3cret")
    offered = [
        'Basic realm="r"',
        'Digest realm="r", nonce="a", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="b", qop="auth-conf"',
        'Digest realm="r", nonce="c", algorithm=MD5, qop="auth"',
    ]
    parsed = Authorization.parse(client.authorize("INVITE", URI, offered, cnonce_source=seeded()))
    assert parsed.nonce == "c"
    with pytest.raises(AuthParseError):
        client.authorize("INVITE", URI, offered[:3], cnonce_source=seeded())


def test_client_respects_its_preference() -> None:
    client = DigestClient("alice", "s3cret", preference=(Algorithm.MD5,))
    offered = [rfc7616_challenge("SHA-256"), rfc7616_challenge("MD5")]
    value = client.authorize("INVITE", URI, offered, cnonce_source=seeded())
    assert Authorization.parse(value).algorithm is Algorithm.MD5


# --- misuse -----------------------------------------------------------------------------------


def test_short_secret_key_is_our_misuse() -> None:
    with pytest.raises(ValueError, match="secret_key"):
        DigestServer(REALM, b"short", rand=seeded())


# --- fuzz -------------------------------------------------------------------------------------

PARAM_NAMES = ["realm", "nonce", "username", "uri", "response", "qop", "nc", "cnonce", "x"]
PIECES = st.one_of(
    st.sampled_from(PARAM_NAMES),
    st.sampled_from(['"', "\\", "=", ",", " ", "\r\n ", "auth", "00000001", "MD5", "SHA-256"]),
    st.text(max_size=8),
)
DIGESTISH = st.lists(PIECES, max_size=30).map(lambda parts: "Digest " + "".join(parts))


@given(st.one_of(st.text(), DIGESTISH))
@example('Digest realm="r", nonce="n", qop=",,,"')
@example("Digest a=\x00")
def test_any_text_parses_or_raises_auth_parse_error(value: str) -> None:
    for parse in (Challenge.parse, Authorization.parse):
        try:
            parsed = parse(value)
        except AuthParseError:
            continue
        assert type(parsed).parse(parsed.render()) == parsed


SERVER = make_server()


@given(st.one_of(st.text(), DIGESTISH))
def test_verify_never_raises(value: str) -> None:
    result = SERVER.verify("REGISTER", value, 1.0, users())
    assert result.outcome in {AuthOutcome.MALFORMED, AuthOutcome.UNKNOWN_NONCE}


@given(
    username=st.text(min_size=1, max_size=20).filter(lambda s: s.isprintable()),
    realm=st.text(max_size=20).filter(lambda s: s.isprintable()),
    nc=st.integers(min_value=1, max_value=0xFFFFFFFF),
)
def test_rendered_authorization_parses_back(username: str, realm: str, nc: int) -> None:
    value = Authorization(
        username=username,
        realm=realm,
        nonce="n",
        uri=URI,
        response="ab",
        qop=Qop.AUTH,
        nc=nc,
        cnonce="c",
    )
    assert Authorization.parse(value.render()) == value
