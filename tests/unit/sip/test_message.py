"""SIP messages: parsing, typed accessors, serialization, responses (RFC 3261 §7, §8.2.6)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cloudpbx.sip
from cloudpbx.sip import (
    STAR,
    CSeq,
    HeaderError,
    Headers,
    ParseError,
    Request,
    Response,
    SipURI,
    Via,
    bad_request_response,
    make_response,
    parse_message,
)

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n"
    b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Timestamp: 54\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"X-Custom:   kept   as is  \r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

RINGING = (
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\r\n"
    b"To: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
    b"From: <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _request(data: bytes = INVITE) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


# --- parsing and accessors ----------------------------------------------------------------------


def test_request_fields() -> None:
    invite = _request()
    assert invite.method == "INVITE"
    assert invite.uri == SipURI("biloxi.example.com", "bob")
    assert invite.raw_uri == "sip:bob@biloxi.example.com"
    (via,) = invite.via
    assert (via.transport, via.host, via.branch, via.has_rport) == (
        "UDP",
        "pc33.atlanta.example.com",
        "z9hG4bK776asdhds",
        True,
    )
    assert (invite.from_.display_name, invite.from_.tag) == ("Alice", "1928301774")
    assert (invite.to.display_name, invite.to.tag) == ("Bob", None)
    assert invite.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert invite.cseq == CSeq(314159, "INVITE")
    assert invite.max_forwards == 70
    assert invite.content_length == len(SDP)
    assert invite.body == SDP
    assert invite.content_type == "application/sdp"
    assert [c.uri for c in invite.contact] == [SipURI("pc33.atlanta.example.com", "alice")]  # type: ignore[union-attr]
    assert invite.route == []
    assert invite.expires is None
    assert invite.date is None
    assert invite.headers.get("x-custom") == "kept   as is"
    assert repr(invite) == "<Request INVITE sip:bob@biloxi.example.com>"


def test_response_fields() -> None:
    ringing = parse_message(RINGING)
    assert isinstance(ringing, Response)
    assert (ringing.status, ringing.reason) == (180, "Ringing")
    assert ringing.via[0].received == "192.0.2.1"
    assert ringing.to.tag == "a6c85cf"
    assert [str(r.uri) for r in ringing.record_route] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]
    assert ringing.body == b""
    assert repr(ringing) == "<Response 180 Ringing>"


def test_compact_forms_and_folding() -> None:
    data = (
        b"OPTIONS sip:x@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/TCP a.example.com;branch=z9hG4bK1,\r\n"
        b"   SIP/2.0/TCP b.example.com;branch=z9hG4bK2\r\n"
        b"f: <sip:a@example.com>;tag=1\r\nt: <sip:x@example.com>\r\n"
        b"i: c1\r\nCSeq: 1 OPTIONS\r\nm: *\r\nl: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert [v.host for v in message.via] == ["a.example.com", "b.example.com"]
    assert message.call_id == "c1"
    assert message.contact is STAR
    assert message.headers.get("Via") == (
        "SIP/2.0/TCP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com;branch=z9hG4bK2"
    )
    assert bytes(message) == data


def test_multiple_header_lines_of_a_list_header() -> None:
    data = INVITE.replace(
        b"Max-Forwards", b"Via: SIP/2.0/TCP p1.example.com;branch=z9hG4bK2\r\nMax-Forwards"
    )
    assert [v.host for v in parse_message(data).via] == [
        "pc33.atlanta.example.com",
        "p1.example.com",
    ]


def test_lazy_accessors_raise_header_error_naming_the_header() -> None:
    data = INVITE.replace(b"Contact: <sip:alice@pc33.atlanta.example.com>", b"Contact: <sip:a b>")
    with pytest.raises(HeaderError) as caught:
        parse_message(data)
    assert caught.value.header == "Contact"
    assert caught.value.status == 400
    lazy = parse_message(data, validate=False)
    assert lazy.call_id.startswith("a84b")  # the rest is still readable
    with pytest.raises(HeaderError, match="Contact"):
        _ = lazy.contact
    assert bytes(lazy) == data


def test_header_error_fields() -> None:
    error = HeaderError("CSeq", "sequence number too large")
    assert (error.header, error.status, error.reason) == ("CSeq", 400, "sequence number too large")
    assert error.message == "invalid CSeq header: sequence number too large"
    assert error.reason_phrase == "Bad Request (invalid CSeq header: sequence number too large)"
    assert isinstance(error, ParseError)
    long = ParseError("x" * 500, status=513)
    assert len(long.reason_phrase) <= 120
    assert long.reason_phrase.startswith("Message Too Large")
    assert "\r" not in ParseError("a\r\nb").reason_phrase


@pytest.mark.parametrize(
    ("data", "fragment", "status"),
    [
        (b"", "empty line", 400),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n", "empty line", 400),
        (INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n"), "bare CR or LF", 400),
        (INVITE.replace(b"X-Custom:", b"X-Custom\r"), "bare CR or LF", 400),
        (INVITE.replace(b"X-Custom:", b"X-Custom"), "malformed header line", 400),
        (INVITE.replace(b"X-Custom:", b"X Custom:"), "malformed header line", 400),
        (INVITE.replace(b"Timestamp: 54", b"Via"), "malformed header line", 400),
        (INVITE.replace(b"X-Custom:", b": "), "malformed header line", 400),
        (b"INVITE sip:a@b SIP/2.0\r\n folded\r\n\r\n", "continuation line", 400),
        (INVITE.replace(b"INVITE sip", b"INV(TE sip", 1), "invalid method", 400),
        (INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), "unsupported version", 505),
        (INVITE.replace(b"SIP/2.0\r\n", b"HTTP/1.1\r\n", 1), "SIP-Version", 400),
        (b"SIP/2.0 99 Too Small\r\n\r\n", "Status-Code", 400),
        (b"SIP/2.0 700 Too Big\r\n\r\n", "Status-Code", 400),
        (b"SIP/2.0 2000 OK\r\n\r\n", "Status-Code", 400),
        (b"SIP/2.0 200 O\x01K\r\n\r\n", "Reason-Phrase", 400),
        (INVITE.replace(b"Content-Length: 8", b"Content-Length: 9"), "body octets", 400),
        (INVITE.replace(b"\r\nContent-Type", b"\r\nl: 3\r\nContent-Type"), "more than once", 400),
        (INVITE.replace(b"Call-ID", b"X-Call-ID"), "missing Call-ID", 400),
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), "does not match", 400),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), "Max-Forwards", 400),
        (INVITE.replace(b"sip:bob@biloxi", b"sip:bob@biloxi.example.com?X=1"), "Request-URI", 400),
    ],
)
def test_parse_errors(data: bytes, fragment: str, status: int) -> None:
    with pytest.raises(ParseError) as caught:
        parse_message(data)
    assert fragment in caught.value.message
    assert caught.value.status == status


def test_extra_datagram_octets_are_ignored() -> None:
    message = parse_message(INVITE + b"garbage")
    assert message.body == SDP
    assert bytes(message) == INVITE


def test_no_content_length_means_the_rest_of_the_datagram() -> None:
    data = INVITE.replace(b"Content-Length: " + str(len(SDP)).encode() + b"\r\n", b"")
    message = parse_message(data)
    assert message.body == SDP
    assert message.content_length is None
    assert bytes(message) == data


# --- serialization ------------------------------------------------------------------------------


def test_unchanged_message_round_trips_byte_exact() -> None:
    message = parse_message(INVITE)
    assert bytes(message) == INVITE
    _ = (message.via, message.to, message.contact)  # reading does not change anything
    assert bytes(message) == INVITE


def test_changed_header_is_re_rendered_and_the_rest_kept() -> None:
    message = parse_message(INVITE)
    top = message.via[0]
    message.headers.replace_first("Via", top.with_param("received", "192.0.2.9"))
    message.headers.prepend("Via", Via("UDP", "proxy.example.com", None, (("branch", "z9hG4bKp"),)))
    out = bytes(message)
    assert out.startswith(
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport;"
        b"received=192.0.2.9\r\n"
        b"Max-Forwards: 70\r\n"
    )
    assert b"X-Custom:   kept   as is  \r\n" in out  # untouched lines keep their bytes
    assert [v.host for v in parse_message(out).via] == [
        "proxy.example.com",
        "pc33.atlanta.example.com",
    ]


def test_start_line_and_body_changes() -> None:
    message = _request()
    message.uri = "sip:bob@192.0.2.4:5060"
    message.body = b"v=0\r\n"
    out = bytes(message)
    assert out.startswith(b"INVITE sip:bob@192.0.2.4:5060 SIP/2.0\r\n")
    assert b"\r\nContent-Length: 5\r\n" in out
    assert out.endswith(b"\r\n\r\nv=0\r\n")
    message.set_body(b"")
    assert b"Content-Type" not in bytes(message)
    assert parse_message(bytes(message)).body == b""


def test_building_messages_from_scratch() -> None:
    request = Request(
        "OPTIONS",
        SipURI("example.com", "carol"),
        [
            ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
            ("From", "<sip:a@example.com>;tag=1"),
            ("To", "<sip:carol@example.com>"),
            ("Call-ID", "x1"),
            ("CSeq", CSeq(1, "OPTIONS")),
            ("Max-Forwards", 70),
        ],
    )
    data = bytes(request)
    assert data.startswith(b"OPTIONS sip:carol@example.com SIP/2.0\r\nVia: ")
    assert data.endswith(b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    assert bytes(parse_message(data)) == data
    response = Response(486, headers=Headers([("Call-ID", "x1")]), body=b"hi")
    assert bytes(response) == b"SIP/2.0 486 Busy Here\r\nCall-ID: x1\r\nContent-Length: 2\r\n\r\nhi"


def test_model_misuse_raises_value_error() -> None:
    with pytest.raises(ValueError, match="method"):
        Request("IN VITE", "sip:a@b")
    with pytest.raises(ParseError):
        Request("INVITE", "not a uri")
    with pytest.raises(ValueError, match="status"):
        Response(1000)
    with pytest.raises(ValueError, match="reason"):
        Response(200, "OK\r\nVia: x")


def test_copy_is_independent() -> None:
    original = _request()
    copy = original.copy()
    copy.headers.set("Max-Forwards", "69")
    copy.method = "OPTIONS"
    assert bytes(original) == INVITE
    assert copy.max_forwards == 69
    assert bytes(copy).startswith(b"OPTIONS ")
    response = parse_message(RINGING)
    assert isinstance(response, Response)
    assert bytes(response.copy()) == RINGING


# --- responses ----------------------------------------------------------------------------------


def test_make_response_copies_the_dialog_headers() -> None:
    invite = _request()
    response = make_response(invite, 486, to_tag="b2b")
    assert (response.status, response.reason) == (486, "Busy Here")
    data = bytes(response)
    assert data == (
        b"SIP/2.0 486 Busy Here\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b'To: "Bob" <sip:bob@biloxi.example.com>;tag=b2b\r\n'
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    parsed = parse_message(data)
    assert parsed.to.tag == "b2b"
    assert parsed.cseq == invite.cseq


def test_make_response_trying_and_existing_tag() -> None:
    trying = make_response(_request(), 100)
    assert trying.reason == "Trying"
    assert trying.headers.get("Timestamp") == "54"
    assert trying.to.tag is None
    in_dialog = _request(
        INVITE.replace(b'"Bob" <sip:bob@biloxi.example.com>', b"<sip:b@x>;tag=old")
    )
    assert make_response(in_dialog, 200, "Fine", to_tag="new").to.tag == "old"
    assert make_response(in_dialog, 200, "Fine").reason == "Fine"
    with pytest.raises(ValueError, match="tag"):
        make_response(_request(), 200, to_tag="bad tag")


def test_make_response_keeps_every_via_in_order() -> None:
    data = INVITE.replace(
        b"Max-Forwards", b"Via: SIP/2.0/TCP p1.example.com;branch=z9hG4bK2\r\nMax-Forwards"
    )
    response = make_response(_request(data), 200, to_tag="x")
    assert [v.host for v in response.via] == ["pc33.atlanta.example.com", "p1.example.com"]


def test_bad_request_response_names_the_problem() -> None:
    data = INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 99999999999 INVITE")
    answer = bad_request_response(data, to_tag="t1")
    assert answer is not None
    response = parse_message(answer, validate=False)  # the bad CSeq is echoed as received
    assert isinstance(response, Response)
    assert response.status == 400
    assert response.reason.startswith("Bad Request (invalid CSeq header")
    assert response.headers.get("CSeq") == "99999999999 INVITE"
    assert response.to.tag == "t1"
    assert response.via[0].branch == "z9hG4bK776asdhds"


def test_bad_request_response_505_for_a_bad_version() -> None:
    answer = bad_request_response(INVITE.replace(b"SIP/2.0\r\n", b"SIP/2.1\r\n", 1))
    assert answer is not None
    assert answer.startswith(b"SIP/2.0 505 Version Not Supported")


@pytest.mark.parametrize(
    "data",
    [
        INVITE,  # valid: nothing to answer
        RINGING.replace(b"CSeq: 314159 INVITE", b"CSeq: x"),  # responses are never answered
        INVITE.replace(b"Call-ID", b"X-Call-ID").replace(b"X-Custom", b"X"),  # no Call-ID
        b"\r\n\r\n",  # a keep-alive
        b"\x00\xff garbage",
        INVITE.replace(b"X-Custom:   kept   as is  ", b"Via: a\x00b").replace(
            b"SIP/2.0\r\n", b"SIP/2.0 \r\n", 1
        ),
    ],
)
def test_bad_request_response_drops_what_cannot_be_answered(data: bytes) -> None:
    assert bad_request_response(data) is None


def test_bad_request_response_for_an_ack_is_none() -> None:
    data = INVITE.replace(b"INVITE sip", b"ACK sip", 1).replace(b"314159 INVITE", b"314159 ACK")
    data = data.replace(b"Max-Forwards: 70", b"Max-Forwards: 999")
    with pytest.raises(ParseError):
        parse_message(data)
    assert bad_request_response(data) is None


def test_sip_package_stays_sans_io() -> None:
    """ENGINEERING.md §3: no asyncio, socket, time or random imports anywhere in sip/."""
    forbidden = {"asyncio", "socket", "time", "random"}
    for path in Path(cloudpbx.sip.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & forbidden, f"{path.name} imports {names & forbidden}"
