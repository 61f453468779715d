"""Header fields: the lossless Headers list and typed values (RFC 3261 §7.3, §20)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.headers import (
    LIST_HEADERS,
    CSeq,
    Headers,
    canonical_name,
    header_key,
    parse_call_id,
    parse_contact_list,
    parse_cseq,
    parse_date,
    parse_name_addr_list,
    parse_number,
    parse_via_list,
    split_list,
)
from cloudpbx.sip.uri import STAR, NameAddr, SipURI, Via, parse_name_addr

# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key", "canonical"),
    [
        ("v", "via", "Via"),
        ("VIA", "via", "Via"),
        ("i", "call-id", "Call-ID"),
        ("call-id", "call-id", "Call-ID"),
        ("m", "contact", "Contact"),
        ("l", "content-length", "Content-Length"),
        ("c", "content-type", "Content-Type"),
        ("e", "content-encoding", "Content-Encoding"),
        ("f", "from", "From"),
        ("t", "to", "To"),
        ("s", "subject", "Subject"),
        ("k", "supported", "Supported"),
        ("o", "event", "Event"),
        ("u", "allow-events", "Allow-Events"),
        ("r", "refer-to", "Refer-To"),
        ("b", "referred-by", "Referred-By"),
        ("x", "session-expires", "Session-Expires"),
        ("y", "identity", "Identity"),
        ("cseq", "cseq", "CSeq"),
        ("www-authenticate", "www-authenticate", "WWW-Authenticate"),
        ("x-custom-thing", "x-custom-thing", "X-Custom-Thing"),
    ],
)
def test_compact_forms_and_canonical_names(name: str, key: str, canonical: str) -> None:
    assert header_key(name) == key
    assert canonical_name(name) == canonical


# --- comma lists --------------------------------------------------------------------------------


def test_split_list_respects_quotes_and_angle_brackets() -> None:
    value = '"Doe, John" <sip:j@x;a=1,2>;q=0.5 , <sip:k@y> ,sip:z@w'
    assert split_list(value) == ['"Doe, John" <sip:j@x;a=1,2>;q=0.5', "<sip:k@y>", "sip:z@w"]
    assert split_list('"a\\",b", c') == ['"a\\",b"', "c"]
    assert split_list("a,,b,") == ["a", "", "b", ""]  # empties kept for typed parsers
    assert split_list(" single ") == ["single"]


def test_values_splits_only_list_headers() -> None:
    headers = Headers(
        [
            ("Allow", "INVITE, ACK"),
            ("Allow", "BYE"),
            ("WWW-Authenticate", 'Digest realm="a, b", nonce="x", qop="auth,auth-int"'),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("X-Unknown", "a, b"),
        ]
    )
    assert headers.values("allow") == ["INVITE", "ACK", "BYE"]
    assert len(headers.values("WWW-Authenticate")) == 1
    assert headers.values("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert headers.values("x-unknown") == ["a, b"]  # unknown headers are never split
    assert {"authorization", "proxy-authenticate", "date", "retry-after"}.isdisjoint(LIST_HEADERS)


# --- the Headers list -----------------------------------------------------------------------------


def test_lookup_is_case_insensitive_and_ordered() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a"), ("v", "SIP/2.0/UDP b"), ("X-A", "1")])
    assert headers.get("VIA") == "SIP/2.0/UDP a"
    assert headers.get_all("via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert headers.count("Via") == 2
    assert "v" in headers
    assert "Route" not in headers
    assert headers.get("route") is None
    assert headers.get("route", "dflt") == "dflt"
    assert list(headers) == [("Via", "SIP/2.0/UDP a"), ("v", "SIP/2.0/UDP b"), ("X-A", "1")]
    assert len(headers) == 3


def test_mutations_keep_order_and_invalidate_caches() -> None:
    headers = Headers([("Via", "SIP/2.0/UDP a"), ("To", "<sip:b@x>"), ("Via", "SIP/2.0/UDP c")])
    assert not headers.modified
    headers.prepend("Via", "SIP/2.0/UDP new")
    assert headers.get_all("via")[0] == "SIP/2.0/UDP new"
    assert headers.items()[0] == ("Via", "SIP/2.0/UDP new")
    assert headers.modified
    headers.set("To", "<sip:c@x>")
    assert headers.items()[2] == ("To", "<sip:c@x>")
    headers.add("Route", "<sip:p1;lr>, <sip:p2;lr>")
    assert headers.pop_first("route") == "<sip:p1;lr>"
    assert headers.get_all("Route") == ["<sip:p2;lr>"]
    assert headers.pop_first("route") == "<sip:p2;lr>"
    assert "route" not in headers
    assert headers.pop_first("route") is None
    headers.replace_first("Via", "SIP/2.0/UDP new;received=1.2.3.4")
    assert headers.get_all("via") == [
        "SIP/2.0/UDP new;received=1.2.3.4",
        "SIP/2.0/UDP a",
        "SIP/2.0/UDP c",
    ]
    assert headers.remove("v") == 3
    assert headers.remove("v") == 0
    headers.prepend("Max-Forwards", 70)
    assert headers.items()[0] == ("Max-Forwards", "70")


def test_typed_values_are_rendered_with_str() -> None:
    headers = Headers()
    headers.add("CSeq", CSeq(2, "BYE"))
    headers.add("Via", Via("UDP", "h", 5060, (("branch", "z9hG4bK1"),)))
    headers.add("To", NameAddr(SipURI("x", "b")).with_tag("t"))
    assert headers.render() == [
        "CSeq: 2 BYE",
        "Via: SIP/2.0/UDP h:5060;branch=z9hG4bK1",
        "To: <sip:b@x>;tag=t",
    ]


def test_cached_parse_is_invalidated_by_changes() -> None:
    headers = Headers([("CSeq", "1 INVITE")])
    calls = []

    def parse(h: Headers) -> CSeq:
        calls.append(1)
        return parse_cseq(h.get("cseq") or "")

    assert headers.cached("CSeq", parse) == CSeq(1, "INVITE")
    assert headers.cached("cseq", parse) == CSeq(1, "INVITE")
    assert len(calls) == 1
    headers.set("CSeq", "2 INVITE")
    assert headers.cached("cseq", parse) == CSeq(2, "INVITE")
    assert len(calls) == 2


def test_misuse_raises_value_error() -> None:
    headers = Headers()
    with pytest.raises(ValueError, match="CR or LF"):
        headers.add("X-Evil", "a\r\nVia: injected")
    with pytest.raises(ValueError, match="header name"):
        headers.add("Bad Name", "x")
    with pytest.raises(ValueError, match="header name"):
        headers.set("", "x")


def test_render_forces_a_correct_content_length() -> None:
    headers = Headers([("l", "3"), ("Content-Length", "9"), ("X", "y")])
    assert headers.render(body_length=5) == ["Content-Length: 5", "Session-Expires: y"]
    assert Headers([("X-A", "1")]).render(body_length=0) == ["X-A: 1", "Content-Length: 0"]


def test_copy_is_independent() -> None:
    headers = Headers([("To", "<sip:b@x>")])
    copy = headers.copy()
    copy.add("X-A", "1")
    assert "x-a" not in headers
    assert "x-a" in copy


# --- typed values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 INVITE", CSeq(1, "INVITE")),
        ("0009   ACK", CSeq(9, "ACK")),
        ("4294967295 BYE", CSeq(4294967295, "BYE")),
    ],
)
def test_cseq(text: str, expected: CSeq) -> None:
    assert parse_cseq(text) == expected
    assert str(expected) == f"{expected.number} {expected.method}"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "INVITE",
        "1",
        "-1 INVITE",
        "4294967296 INVITE",
        "36893488147419103232 REGISTER",
        "1 INVITE x",
        "1 IN VITE",
    ],
)
def test_invalid_cseq(text: str) -> None:
    with pytest.raises(ParseError):
        parse_cseq(text)


def test_call_id() -> None:
    assert parse_call_id(" a84b4c76e66710@pc33.atlanta.com ") == "a84b4c76e66710@pc33.atlanta.com"
    for bad in ("", "a b", "a@b@c", "a,b", "a;b"):
        with pytest.raises(ParseError):
            parse_call_id(bad)


def test_numbers() -> None:
    assert parse_number("0068", 255) == 68
    for bad in ("", "-1", "256", "1.0", "٣", "1" * 11, "0x10"):
        with pytest.raises(ParseError):
            parse_number(bad, 255)


def test_date() -> None:
    assert parse_date("Sat, 13 Nov 2010 23:29:00 GMT") == datetime(2010, 11, 13, 23, 29, tzinfo=UTC)
    for bad in (
        "Fri, 01 Jan 2010 16:00:00 EST",  # RFC 4475 §3.1.2.12
        "Fri, 31 Feb 2010 16:00:00 GMT",
        "2010-01-01T00:00:00Z",
    ):
        with pytest.raises(ParseError):
            parse_date(bad)


def test_contact_star_and_lists() -> None:
    assert parse_contact_list(["*"]) is STAR
    assert str(STAR) == "*"
    with pytest.raises(ParseError, match="only"):
        parse_contact_list(["*", "<sip:a@b>"])
    contacts = parse_contact_list(["<sip:a@b>;expires=60", "sip:c@d"])
    assert contacts == [parse_name_addr("<sip:a@b>;expires=60"), parse_name_addr("sip:c@d")]
    with pytest.raises(ParseError, match="empty"):
        parse_contact_list(["<sip:a@b>", ""])


def test_routes_require_angle_brackets() -> None:
    routes = parse_name_addr_list(['"proxy; one" <sip:p1;lr>', "<sip:p2;lr>"], angle_brackets=True)
    assert [r.uri for r in routes] == [
        SipURI("p1", params=(("lr", None),)),
        SipURI("p2", params=(("lr", None),)),
    ]
    with pytest.raises(ParseError, match="<"):
        parse_name_addr_list(["sip:p1;lr"], angle_brackets=True)


def test_via_list_rejects_empty_elements() -> None:
    assert len(parse_via_list(["SIP/2.0/UDP a", "SIP/2.0/TCP b"])) == 2
    with pytest.raises(ParseError):
        parse_via_list(["SIP/2.0/UDP a", ""])
