"""Property tests: whatever the bytes, the parser, the accessors, the error responder and the
framer either succeed or raise ParseError -- never anything else (ENGINEERING.md §3: a peer's
garbage must never become an exception that escapes the transport)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudpbx.sip import (
    ParseError,
    Request,
    Response,
    StreamFramer,
    bad_request_response,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from cloudpbx.sip.message import Message
from cloudpbx.sip.uri import Star

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS: list[bytes] = [
    (
        b"INVITE sip:bob@biloxi.example.com;transport=tcp SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
        b"Via: SIP/2.0/TCP [2001:db8::9:1];branch=z9hG4bK2;received=192.0.2.1\r\n"
        b"Max-Forwards: 70\r\n"
        b'To: "Bob \\"B\\"" <sip:bob@biloxi.example.com>\r\n'
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=60;q=0.5\r\n"
        b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
        b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 12\r\n\r\n"
        b"v=0\r\ns=-\r\nt="
    ),
    (
        b"SIP/2.0 200 OK\r\n"
        b"v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;rport=5060;received=192.0.2.9\r\n"
        b"t: <sip:bob@example.com>;tag=a6c85cf\r\n"
        b"f: <sip:alice@example.com>;tag=1\r\n"
        b"i: a84b4c76e66710\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"m: <sip:bob@192.0.2.4>\r\n"
        b"Record-Route: <sip:p1.example.com;lr>\r\n"
        b"l: 0\r\n\r\n"
    ),
    (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TLS client.example.com:5061;branch=z9hG4bK3\r\n"
        b"From: sip:u@example.com;tag=9\r\nTo: sip:u@example.com\r\n"
        b"Call-ID: r1\r\nCSeq: 7 REGISTER\r\nContact: *\r\nExpires: 0\r\n"
        b'Authorization: Digest username="u", realm="example.com", nonce="n"\r\n'
        b"Content-Length: 0\r\n\r\n"
    ),
    (
        b"OPTIONS tel:+1-201-555-0123;phone-context=example.com SIP/2.0\r\n"
        b"Via  :  SIP / 2.0 / UDP host.example.com ;\r\n  branch = z9hG4bK4\r\n"
        b"From: caller<sip:caller@example.com>;tag=323\r\n"
        b"To:\r\n <sip:%75ser@example.com;%6C%72>\r\n"
        b"Call-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ),
]

INSERTS = [b"\r", b"\n", b"\r\n", b"\r\n ", b"\x00", b":", b";", b",", b" ", b"\t", b'"']
INSERTS += [b"<", b">", b"%", b"%0", b"@", b"[", b"]", b"=", b"\xff", b"\xc3", b"9" * 12]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(INSERTS))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 40))]
    return bytes(data)


ACCESSORS: list[Callable[[Message], object]] = [
    lambda m: m.via,
    lambda m: m.from_,
    lambda m: m.to,
    lambda m: m.call_id,
    lambda m: m.cseq,
    lambda m: m.contact,
    lambda m: m.route,
    lambda m: m.record_route,
    lambda m: m.max_forwards,
    lambda m: m.content_length,
    lambda m: m.expires,
    lambda m: m.date,
    lambda m: m.content_type,
]


def _exercise(message: Message, frame: bytes) -> None:
    """Everything a later layer may do with a parsed message; only ParseError may escape."""
    assert frame.startswith(bytes(message))
    if isinstance(message, Request):
        _try(lambda: message.uri)
    for accessor in ACCESSORS:
        _try(lambda accessor=accessor: accessor(message))  # type: ignore[misc]
    _try(lambda: _round_trip_values(message))
    again = parse_message(bytes(message), validate=False)
    assert bytes(again) == bytes(message)
    message.headers.add("X-Fuzz", "1")
    edited = parse_message(bytes(message), validate=False)
    assert edited.headers.get("x-fuzz") == "1"
    assert edited.body == message.body


def _try(action: Callable[[], object]) -> None:
    with contextlib.suppress(ParseError):
        action()


def _round_trip_values(message: Message) -> None:
    """Typed values render to text that parses back to the same value."""
    for via in message.via:
        assert parse_via(str(via)) == via
    for value in (message.from_, message.to):
        assert parse_name_addr(str(value)) == value
    contacts = message.contact
    if not isinstance(contacts, Star):
        for contact in contacts:
            assert parse_name_addr(str(contact)) == contact
            _try(lambda contact=contact: (contact.expires, contact.q))  # type: ignore[misc]
    if isinstance(message, Request):
        assert parse_uri(str(message.uri)) == message.uri


def _check(data: bytes) -> None:
    try:
        message = parse_message(data)
    except ParseError as error:
        _check_rejected(data, error)
        return
    assert isinstance(message, Request | Response)
    _exercise(message, data)


def _check_rejected(data: bytes, error: ParseError) -> None:
    assert 400 <= error.status <= 599
    _check_answer(data, error)
    lazy = _lazy(data)
    if lazy is not None:
        _exercise(lazy, data)


def _lazy(data: bytes) -> Message | None:
    try:
        return parse_message(data, validate=False)
    except ParseError:
        return None


def _check_answer(data: bytes, error: ParseError) -> None:
    answer = bad_request_response(data, error, to_tag="fz")
    if answer is None:
        return
    response = parse_message(answer, validate=False)
    assert isinstance(response, Response)
    assert response.status == error.status
    assert response.headers.get("Content-Length") == "0"


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@FUZZ
@given(
    st.lists(
        st.sampled_from([b"INVITE sip:a@b SIP/2.0", b"SIP/2.0 200 OK", b"Via: ", b"To: ", b"\r\n"])
        | st.sampled_from(INSERTS)
        | st.binary(max_size=12),
        max_size=30,
    ).map(b"".join)
)
def test_sip_shaped_garbage(data: bytes) -> None:
    _check(data + b"\r\n\r\n")


@FUZZ
@given(mutated())
def test_mutated_valid_messages(data: bytes) -> None:
    _check(data)


def test_seeds_are_valid() -> None:
    for seed in SEEDS:
        message = parse_message(seed)
        _exercise(message, seed)


# --- framing ----------------------------------------------------------------------------------

FRAMED = [s for s in SEEDS if b"Content-Length" in s or b"\r\nl:" in s]


@FUZZ
@given(
    messages=st.lists(st.sampled_from(FRAMED), min_size=1, max_size=5),
    cuts=st.lists(st.integers(1, 97), min_size=1, max_size=20),
    pings=st.booleans(),
)
def test_framer_reassembles_any_chunking(
    messages: list[bytes], cuts: list[int], pings: bool
) -> None:
    separator = b"\r\n\r\n" if pings else b""
    stream = separator.join(messages)
    framer = StreamFramer()
    frames: list[bytes] = []
    at = 0
    for i in range(10_000):
        if at >= len(stream):
            break
        size = cuts[i % len(cuts)]
        framer.feed(stream[at : at + size])
        at += size
        while (frame := framer.next_message()) is not None:
            frames.append(frame)
    assert frames == messages
    assert framer.buffered == 0


@FUZZ
@given(chunks=st.lists(st.binary(max_size=300) | st.sampled_from(FRAMED), max_size=12))
def test_framer_never_raises_anything_but_parse_error_and_stays_bounded(
    chunks: list[bytes],
) -> None:
    framer = StreamFramer(max_size=512)
    failure: ParseError | None = None
    for chunk in chunks:
        framer.feed(chunk)
        assert framer.buffered <= 512  # after each feed: at most max_size pending
        try:
            while (frame := framer.next_message()) is not None:
                assert len(frame) <= 512
                _check(frame)
        except ParseError as error:
            failure = error
            break
    if failure is not None:
        assert failure.status in (400, 513)
        assert framer.buffered == 0
