"""Stream framing (RFC 3261 §18.3, RFC 5626 §3.5.1 keep-alives)."""

from __future__ import annotations

import pytest

from cloudpbx.sip import ParseError, StreamFramer, bad_request_response, parse_message

BODY = b"v=0\r\ns=-\r\nt=0 0\r\n"  # 17 octets
INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:alice@example.com>;tag=1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: f1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 17\r\n\r\n" + BODY
)
BYE = (
    b"BYE sip:bob@example.com SIP/2.0\r\n"
    b"v: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK2\r\n"
    b"f: <sip:alice@example.com>;tag=1\r\nt: <sip:bob@example.com>;tag=2\r\n"
    b"i: f1\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n"
)


def _drain(framer: StreamFramer) -> list[bytes]:
    frames = []
    while (frame := framer.next_message()) is not None:
        frames.append(frame)
    return frames


def test_whole_messages_in_one_chunk() -> None:
    framer = StreamFramer()
    framer.feed(INVITE + BYE + INVITE)
    assert _drain(framer) == [INVITE, BYE, INVITE]
    assert framer.buffered == 0
    assert parse_message(_drain_one(INVITE)).body == BODY


def _drain_one(data: bytes) -> bytes:
    framer = StreamFramer()
    framer.feed(data)
    frame = framer.next_message()
    assert frame is not None
    return frame


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_any_split_gives_the_same_frames(size: int) -> None:
    stream = INVITE + BYE + b"\r\n\r\n" + INVITE
    framer = StreamFramer()
    frames = []
    for at in range(0, len(stream), size):
        framer.feed(stream[at : at + size])
        frames += _drain(framer)
    assert frames == [INVITE, BYE, INVITE]
    assert framer.buffered == 0


def test_partial_message_waits() -> None:
    framer = StreamFramer()
    framer.feed(INVITE[:-1])
    assert framer.next_message() is None
    assert framer.buffered == len(INVITE) - 1
    framer.feed(INVITE[-1:])
    assert framer.next_message() == INVITE


def test_double_crlf_ping_asks_for_a_pong() -> None:
    framer = StreamFramer()
    framer.feed(b"\r\n\r\n")  # RFC 5626 §4.4.1 ping
    assert framer.next_message() is None
    assert framer.take_pong_due() is True
    assert framer.take_pong_due() is False  # reported once
    assert framer.take_pongs() == 1  # a ping starts like a pong: servers ignore this count
    framer.feed(b"\r\n")  # a pong (what a pinging client receives)
    assert framer.take_pongs() == 1
    assert framer.take_pongs() == 0
    assert framer.take_pong_due() is False
    assert framer.buffered == 0


def test_ping_split_across_reads() -> None:
    framer = StreamFramer()
    framer.feed(b"\r")
    assert framer.buffered == 1
    framer.feed(b"\n\r")
    framer.feed(b"\n")
    assert framer.take_pong_due() is True
    framer.feed(b"\r\n\r\n" + BYE)
    assert framer.take_pong_due() is True
    assert _drain(framer) == [BYE]


def test_crlf_before_a_message_is_ignored() -> None:
    framer = StreamFramer()
    framer.feed(b"\r\n" + INVITE + b"\r\n" + BYE)  # RFC 3261 §7.5
    assert _drain(framer) == [INVITE, BYE]


@pytest.mark.parametrize(
    ("stream", "fragment", "status"),
    [
        (INVITE.replace(b"Content-Length: 17\r\n", b""), "missing Content-Length", 400),
        (INVITE.replace(b"Content-Length: 17", b"Content-Length: -17"), "decimal", 400),
        (INVITE.replace(b"Content-Length: 17", b"Content-Length: 1e3"), "decimal", 400),
        (INVITE.replace(b"Content-Length: 17", b"Content-Length: 17\r\nl: 17"), "once", 400),
        (INVITE.replace(b"Content-Length: 17", b"Content-Length: 99999999"), "exceeds", 513),
    ],
)
def test_framing_errors(stream: bytes, fragment: str, status: int) -> None:
    framer = StreamFramer()
    framer.feed(stream)
    with pytest.raises(ParseError) as caught:
        framer.next_message()
    assert fragment in caught.value.message
    assert caught.value.status == status
    assert framer.buffered == 0


def test_oversize_header_section_is_513_and_answerable() -> None:
    framer = StreamFramer(max_size=1024)
    head = INVITE.split(b"\r\n\r\n")[0] + b"\r\nX-Padding: " + b"a" * 2000
    framer.feed(head)
    with pytest.raises(ParseError) as caught:
        framer.next_message()
    assert caught.value.status == 513
    assert framer.failed_data is not None
    assert len(framer.failed_data) <= 1024
    answer = bad_request_response(framer.failed_data, caught.value)
    assert answer is not None
    assert answer.startswith(b"SIP/2.0 513 Message Too Large")


def test_frames_before_an_error_come_first_and_the_error_sticks() -> None:
    framer = StreamFramer()
    framer.feed(BYE + b"garbage without end\r\nContent-Length: x\r\n\r\n")
    assert framer.next_message() == BYE
    for _ in range(2):
        with pytest.raises(ParseError):
            framer.next_message()
    framer.feed(INVITE)  # ignored: the stream cannot be resynchronised
    assert framer.buffered == 0
    with pytest.raises(ParseError):
        framer.next_message()


def test_folded_and_compact_content_length() -> None:
    folded = INVITE.replace(b"Content-Length: 17", b"Content-Length:\r\n 17")
    assert _drain_one(folded) == folded
    assert _drain_one(BYE) == BYE  # "l: 0"


def test_max_size_must_be_sensible() -> None:
    with pytest.raises(ValueError, match="max_size"):
        StreamFramer(max_size=4)


def test_message_exactly_at_the_limit() -> None:
    framer = StreamFramer(max_size=len(INVITE))
    framer.feed(INVITE)
    assert framer.next_message() == INVITE
    framer = StreamFramer(max_size=len(INVITE) - 1)
    framer.feed(INVITE)
    with pytest.raises(ParseError, match="exceeds"):
        framer.next_message()
