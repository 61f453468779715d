"""URIs, name-addr and Via values (RFC 3261 §19.1, §20.10, §20.42; RFC 3966; RFC 5118;
RFC 3581)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.uri import (
    AbsoluteURI,
    NameAddr,
    SipURI,
    TelURI,
    Via,
    parse_name_addr,
    parse_params,
    parse_uri,
    parse_via,
    quote_string,
    unquote_string,
)

# --- SIP URIs ---------------------------------------------------------------------------------


def test_full_sip_uri() -> None:
    uri = parse_uri("sip:alice:secret@atlanta.com:5061;transport=tcp;lr;maddr=239.1.1.1?subject=hi")
    assert uri == SipURI(
        host="atlanta.com",
        user="alice",
        password="secret",
        port=5061,
        params=(("transport", "tcp"), ("lr", None), ("maddr", "239.1.1.1")),
        headers=(("subject", "hi"),),
    )
    assert isinstance(uri, SipURI)
    assert (uri.transport, uri.lr, uri.maddr, uri.host_port) == (
        "tcp",
        True,
        "239.1.1.1",
        "atlanta.com:5061",
    )


def test_host_only_and_sips() -> None:
    uri = parse_uri("SIPS:example.com")
    assert isinstance(uri, SipURI)
    assert (uri.scheme, uri.secure, uri.user, uri.port) == ("sips", True, None, None)
    assert str(uri) == "sips:example.com"


def test_telephone_subscriber_user_with_user_phone() -> None:
    uri = parse_uri("sip:+1-212-555-1212:1234@gateway.com;user=phone")
    assert isinstance(uri, SipURI)
    assert (uri.user, uri.password, uri.user_param) == ("+1-212-555-1212", "1234", "phone")


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:alice@[::ffff:192.0.2.2]:5060", "[::ffff:192.0.2.2]", 5060),
        ("sip:192.0.2.4:5060", "192.0.2.4", 5060),
    ],
)
def test_ipv6_and_ipv4_hosts(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    assert (uri.host, uri.port) == (host, port)
    assert str(uri) == text


def test_escapes_are_decoded_and_re_encoded() -> None:
    uri = parse_uri("sip:%61lice%20smith@example.com;n%61me=v%61lue%25%34%31?X=%3Ca%3E")
    assert isinstance(uri, SipURI)
    assert uri.user == "alice smith"
    assert uri.params == (("name", "value%41"),)
    assert uri.headers == (("X", "<a>"),)
    # Canonical form escapes only what must be escaped (RFC 3261 §19.1.2).
    assert str(uri) == "sip:alice%20smith@example.com;name=value%2541?X=%3Ca%3E"
    assert parse_uri(str(uri)) == uri


def test_unicode_user_round_trips_through_utf8_escapes() -> None:
    uri = SipURI("example.com", user="Пётр\x00")
    assert str(uri) == "sip:%D0%9F%D1%91%D1%82%D1%80%00@example.com"
    assert parse_uri(str(uri)) == uri


@pytest.mark.parametrize(
    "text",
    [
        "sip:",  # no host
        "sip:alice@",  # no host
        "sip:@example.com",  # empty user
        "sip:alice@example.com:99999",  # port out of range
        "sip:alice@example.com:50x",  # bad port
        "sip:2001:db8::10",  # RFC 5118 §4.2: IPv6 without brackets
        "sip:[2001:db8::10",  # unclosed bracket
        "sip:[example.com]",  # not an IPv6 reference
        "sip:[::1]x",  # junk after the host
        "sip:%61@host]b",  # junk after the host (general path)
        "sip:host:5060:1",
        "sip:alice smith@example.com",  # space
        "sip:al%ZZice@example.com",  # bad escape
        "sip:alice@exa mple.com",
        "sip:alice@example.com;",  # empty parameter
        "sip:alice@example.com;a=",  # empty parameter value
        "sip:alice@example.com?noequals",  # URI header without "="
        "sip:a<b@example.com",  # "<" is not allowed in the user part
        "<sip:alice@example.com>",  # RFC 4475 §3.1.2.7
        "alice@example.com",  # no scheme
        "1sip:alice",  # a scheme starts with a letter
        "http:<foo>",  # opaque part with "<"
    ],
)
def test_invalid_uris(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_uri_param_helpers() -> None:
    uri = SipURI("example.com", params=(("Transport", "TCP"),))
    assert uri.param("transport") == "TCP"
    assert uri.with_param("lr").params == (("Transport", "TCP"), ("lr", None))
    assert uri.with_param("transport", "udp").params == (("transport", "udp"),)
    assert uri.without_param("TRANSPORT").params == ()


def test_sip_uri_misuse_raises_value_error() -> None:
    with pytest.raises(ValueError, match="port"):
        SipURI("example.com", port=70000)
    with pytest.raises(ValueError, match="scheme"):
        SipURI("example.com", scheme="tel")
    with pytest.raises(ValueError, match="host"):
        SipURI("")


# --- tel and other URIs ---------------------------------------------------------------------


def test_tel_uris() -> None:
    uri = parse_uri("tel:+1-201-555-0123;ext=42")
    assert uri == TelURI("+1-201-555-0123", (("ext", "42"),))
    assert isinstance(uri, TelURI)
    assert (uri.is_global, uri.digits, uri.scheme) == (True, "+12015550123", "tel")
    local = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(local, TelURI)
    assert (local.is_global, local.phone_context) == (False, "example.com")
    assert str(local) == "tel:7042;phone-context=example.com"


@pytest.mark.parametrize("text", ["tel:", "tel:+", "tel:+1 555", "tel:abc-xyz", "tel:+12;"])
def test_invalid_tel_uris(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_other_schemes_are_kept_opaque() -> None:
    assert parse_uri("isbn:2983792873") == AbsoluteURI("isbn", "2983792873")
    uri = parse_uri("HTTP://www.example.com/a?b=c")
    assert uri == AbsoluteURI("http", "//www.example.com/a?b=c")
    assert str(uri) == "http://www.example.com/a?b=c"


# --- name-addr / addr-spec ------------------------------------------------------------------


def test_quoted_display_name_with_escapes() -> None:
    value = parse_name_addr('"Mr. \\"J\\" \\\\ User" <sip:j@example.com>;tag=abc;expires=60;q=0.5')
    assert value.display_name == 'Mr. "J" \\ User'
    assert (value.tag, value.expires, value.q) == ("abc", 60, 0.5)
    assert str(value) == '"Mr. \\"J\\" \\\\ User" <sip:j@example.com>;tag=abc;expires=60;q=0.5'
    assert parse_name_addr(str(value)) == value


def test_token_display_name_and_no_space_before_angle() -> None:
    value = parse_name_addr("caller<sip:caller@example.com>;tag=323")  # RFC 4475 §3.1.1.6
    assert value.display_name == "caller"
    value = parse_name_addr("A. G. Bell <sip:a.g.bell@example.com>")
    assert value.display_name == "A. G. Bell"


def test_addr_spec_parameters_belong_to_the_header() -> None:
    # RFC 3261 §20.10: without <>, ";..." after the URI are header parameters.
    value = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam;tag=1")
    assert isinstance(value.uri, SipURI)
    assert value.uri.params == ()
    assert value.params == (("unknownparam", None), ("tag", "1"))
    bracketed = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert isinstance(bracketed.uri, SipURI)
    assert bracketed.uri.has_param("unknownparam")
    assert bracketed.params == ()


def test_whitespace_around_parameters() -> None:
    value = parse_name_addr("sip:u@example.com ;   tag    = 1918181833n")  # RFC 4475 wsinv
    assert value.tag == "1918181833n"
    value = parse_name_addr("<sip:u@example.com> ; newparam = newvalue ; secondparam ; q = 0.33")
    assert value.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))


def test_quoted_parameter_values_are_kept_quoted() -> None:
    value = parse_name_addr('<sip:u@example.com>;+sip.instance="<urn:uuid:1;a,b>";reg-id=1')
    assert value.param("+sip.instance") == '"<urn:uuid:1;a,b>"'
    assert unquote_string(value.param("+sip.instance") or "") == "<urn:uuid:1;a,b>"


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 §3.1.2.6
        '"Watson, Thomas" < sip:t.watson@example.org >',  # RFC 4475 §3.1.2.14
        "Bell, Alexander <sip:a.g.bell@example.com>",  # RFC 4475 §3.1.2.15
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # RFC 4475 §3.1.2.13
        "<sip:a@example.com",  # no ">"
        '"A" sip:a@example.com',  # quoted display name without <>
        "<sip:a@example.com>;;",  # empty parameter (RFC 4475 §3.1.2.1)
        "<sip:a@example.com>;tag=",  # dangling "="
        "<sip:a@example.com> junk",
        '<sip:a@example.com>;x="unterminated',
    ],
)
def test_invalid_name_addrs(text: str) -> None:
    with pytest.raises(ParseError):
        parse_name_addr(text)


def test_contact_parameter_ranges() -> None:
    with pytest.raises(ParseError):
        _ = parse_name_addr("<sip:a@b>;expires=4294967296").expires  # > 2**32-1
    with pytest.raises(ParseError):
        _ = parse_name_addr("<sip:a@b>;q=1.5").q
    assert parse_name_addr("<sip:a@b>;q=1.000").q == 1.0


def test_with_tag_and_rendering() -> None:
    value = NameAddr(parse_uri("sip:bob@example.com"), "Bob")
    tagged = value.with_tag("x1")
    assert str(tagged) == '"Bob" <sip:bob@example.com>;tag=x1'
    assert tagged.without_param("tag") == value
    assert str(NameAddr(parse_uri("tel:+123"))) == "<tel:+123>"


def test_quote_string_escapes_and_refuses_line_breaks() -> None:
    assert quote_string('a"b\\c\x07') == '"a\\"b\\\\c\\\x07"'
    assert unquote_string(quote_string('a"b\\c\x07')) == 'a"b\\c\x07'
    with pytest.raises(ValueError, match="CR or LF"):
        quote_string("a\r\nb")


def test_parse_params_from_position() -> None:
    assert parse_params(";a=1;b", 0) == (("a", "1"), ("b", None))
    assert parse_params("xyz;a=1", 3) == (("a", "1"),)
    assert parse_params("xyz", 3) == ()


# --- Via ------------------------------------------------------------------------------------


def test_via_with_rport_request_and_response_forms() -> None:
    # RFC 3581 §3: the client adds rport without a value; §4: the server fills it in.
    request = parse_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds8;rport")
    assert (request.transport, request.host, request.port) == ("UDP", "192.0.2.1", 5060)
    assert (request.branch, request.has_rport, request.rport) == ("z9hG4bKnashds8", True, None)
    answered = request.with_param("received", "198.51.100.9").with_param("rport", "34567")
    assert (answered.received, answered.rport) == ("198.51.100.9", 34567)
    assert str(answered) == (
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds8;rport=34567;received=198.51.100.9"
    )
    assert parse_via(str(answered)) == answered


def test_via_without_rport() -> None:
    via = parse_via("SIP/2.0/TLS pc33.atlanta.com;branch=z9hG4bK776asdhds;ttl=16;maddr=239.1.1.1")
    assert (via.has_rport, via.rport, via.ttl, via.maddr, via.port) == (
        False,
        None,
        16,
        "239.1.1.1",
        None,
    )
    assert via.sent_by == ("pc33.atlanta.com", None)


def test_via_with_spaces_and_ipv6() -> None:
    via = parse_via("SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw")  # RFC 4475 §3.1.1.1
    assert (via.protocol, via.version, via.transport, via.host) == (
        "SIP",
        "2.0",
        "UDP",
        "192.0.2.2",
    )
    via = parse_via("SIP/2.0/TCP [2001:db8::9:255]:5061;branch=z9hG4bK451jj;received=192.0.2.200")
    assert (via.host, via.port, via.received) == ("[2001:db8::9:255]", 5061, "192.0.2.200")
    assert parse_via("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255").received == (
        "2001:db8::9:255"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",  # no sent-by
        "SIP/2.0 192.0.2.1",  # no transport
        "SIP/2.0/UDP 192.0.2.15;;",  # RFC 4475 §3.1.2.1
        "SIP/2.0/UDP host;branch",  # branch needs a value
        'SIP/2.0/UDP host;branch="z9hG4bK1"',  # via-branch is a token
        "SIP/2.0/UDP host;rport=abc",
        "SIP/2.0/UDP host;rport=70000",
        "SIP/2.0/UDP host;ttl=256",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host:port",
        "SIP/2.0/UDP ho st",
    ],
)
def test_invalid_vias(text: str) -> None:
    with pytest.raises(ParseError):
        parse_via(text)


def test_via_rendering_and_param_removal() -> None:
    via = Via("TCP", "[::1]", 5060, (("branch", "z9hG4bK1"), ("alias", None)))
    assert str(via) == "SIP/2.0/TCP [::1]:5060;branch=z9hG4bK1;alias"
    assert via.without_param("alias").params == (("branch", "z9hG4bK1"),)


# --- properties ---------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_hosts = st.one_of(
    st.lists(_label, min_size=1, max_size=3).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
_params = st.lists(
    st.tuples(st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True), st.none() | _text), max_size=3
)


@settings(max_examples=150, deadline=None)
@given(
    user=st.none() | _text,
    password=st.none() | _text,
    host=_hosts,
    port=st.none() | st.integers(0, 65535),
    params=_params,
    headers=st.lists(st.tuples(_text, st.text(max_size=6)), max_size=2),
)
def test_any_sip_uri_renders_and_parses_back(
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: list[tuple[str, str | None]],
    headers: list[tuple[str, str]],
) -> None:
    uri = SipURI(
        host,
        user,
        password if user is not None else None,
        port,
        tuple(params),
        tuple(headers),
    )
    assert parse_uri(str(uri)) == uri


@settings(max_examples=100, deadline=None)
@given(
    display=st.none()
    | st.text(
        st.characters(exclude_characters="\r\n", codec="utf-8", exclude_categories=["Cs"]),
        max_size=10,
    ),
    tag=st.from_regex(r"[A-Za-z0-9.!%*_+`'~-]{1,12}", fullmatch=True),
)
def test_any_name_addr_renders_and_parses_back(display: str | None, tag: str) -> None:
    value = NameAddr(parse_uri("sip:alice@example.com;lr"), display, (("tag", tag),))
    assert parse_name_addr(str(value)) == value
