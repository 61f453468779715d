"""SDP (cloudpbx.sip.sdp): parsing real offers, offer/answer rules, hold, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cloudpbx.sip.sdp import (
    G722,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    Connection,
    Direction,
    NoCommonCodecError,
    Origin,
    SdpError,
    SessionDescription,
    make_answer,
    make_offer,
    versioned,
)

from .test_torture import load

OURS = (PCMU, PCMA, TELEPHONE_EVENT)


def sdp(*lines: str, eol: str = "\r\n") -> bytes:
    return (eol.join(lines) + eol).encode()


def answer(offer: bytes | SessionDescription, **kwargs: object) -> SessionDescription:
    parsed = offer if isinstance(offer, SessionDescription) else SessionDescription.parse(offer)
    options: dict[str, object] = {
        "local_addr": "203.0.113.5",
        "port": 30000,
        "supported": OURS,
        "session_id": 77,
        "version": 1,
    }
    options.update(kwargs)
    return make_answer(parsed, **options)  # type: ignore[arg-type]


def formats(description: SessionDescription, index: int = 0) -> list[str]:
    return list(description.media[index].media_line.formats)


# --- real-world offers ------------------------------------------------------------------------

PJSUA = sdp(
    "v=0",
    "o=- 3912345678 3912345678 IN IP4 192.168.1.10",
    "s=pjmedia",
    "b=AS:84",
    "t=0 0",
    "a=X-nat:0",
    "m=audio 4000 RTP/AVP 96 9 8 0 120 121",
    "c=IN IP4 192.168.1.10",
    "b=TIAS:64000",
    "a=rtcp:4001 IN IP4 192.168.1.10",
    "a=sendrecv",
    "a=rtpmap:96 speex/16000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:120 telephone-event/16000",
    "a=fmtp:120 0-16",
    "a=rtpmap:121 telephone-event/8000",
    "a=fmtp:121 0-16",
    "a=ssrc:1234567 cname:5a2b1c0d3e4f",
)

LINPHONE = sdp(
    "v=0",
    "o=alice 1234 567 IN IP4 192.168.0.2",
    "s=Talk",
    "c=IN IP4 192.168.0.2",
    "t=0 0",
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    "m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 useinbandfec=1",
    "a=rtpmap:97 speex/16000",
    "a=fmtp:97 vbr=on",
    "a=rtpmap:98 speex/8000",
    "a=fmtp:98 vbr=on",
    "a=fmtp:18 annexb=yes",
    "a=rtpmap:101 telephone-event/48000",
    "a=rtpmap:99 telephone-event/16000",
    "a=rtpmap:100 telephone-event/8000",
    "a=rtcp-fb:* trr-int 1000",
    "a=rtcp-fb:* ccm tmmbr",
)

ASTERISK = sdp(
    "v=0",
    "o=- 1739201 1739201 IN IP4 10.0.0.1",
    "s=Asterisk",
    "c=IN IP4 10.0.0.1",
    "t=0 0",
    "m=audio 10000 RTP/AVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:150",
    "a=sendrecv",
)


def torture_body(name: str) -> bytes:
    """The SDP body of a message from the shared SIP torture corpus (absent corpus: fail)."""
    return load(name).split(b"\r\n\r\n", 1)[1]


def test_pjsua_offer() -> None:
    offer = SessionDescription.parse(PJSUA)
    assert bytes(offer) == PJSUA
    assert offer.origin == Origin(
        session_id="3912345678", version=3912345678, addr_type="IP4", address="192.168.1.10"
    )
    assert offer.session_name == "pjmedia"
    audio = offer.audio()
    assert audio is not None
    assert (audio.host, audio.port, audio.direction) == ("192.168.1.10", 4000, Direction.SENDRECV)
    assert [c.name for c in audio.codecs] == [
        "speex",
        "G722",
        "PCMA",
        "PCMU",
        "telephone-event",
        "telephone-event",
    ]
    assert audio.telephone_event == Codec(
        name="telephone-event", clock_rate=16000, payload_type=120, fmtp="0-16"
    )
    # Our answer: G722 first as offered (when we support it), and the 8 kHz telephone-event.
    result = answer(offer, supported=(*OURS, G722))
    assert formats(result) == ["9", "8", "0", "121"]
    assert b"a=fmtp:121 0-16\r\n" in bytes(result)


def test_linphone_offer() -> None:
    offer = SessionDescription.parse(LINPHONE)
    assert bytes(offer) == LINPHONE
    audio = offer.audio()
    assert audio is not None
    opus = audio.codecs[0]
    assert (opus.name, opus.clock_rate, opus.channels, opus.fmtp) == (
        "opus",
        48000,
        2,
        "useinbandfec=1",
    )
    g729 = next(c for c in audio.codecs if c.payload_type == 18)
    assert (g729.name, g729.fmtp) == ("G729", "annexb=yes")  # static type, fmtp attached
    result = answer(offer)
    assert formats(result) == ["0", "8", "100"]
    # RFC 4733 §2.4.1: no fmtp means events 0-15, so that is all we can agree on.
    assert b"a=fmtp:100 0-15\r\n" in bytes(result)


def test_asterisk_offer() -> None:
    offer = SessionDescription.parse(ASTERISK)
    audio = offer.audio()
    assert audio is not None
    assert audio.ptime == 20
    assert offer.media[0].attribute("maxptime") == "150"
    result = answer(offer)
    assert str(result) == (
        "v=0\r\n"
        "o=- 77 1 IN IP4 203.0.113.5\r\n"
        "s=-\r\n"
        "c=IN IP4 203.0.113.5\r\n"
        "t=0 0\r\n"
        "m=audio 30000 RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def test_rfc5118_ipv6_in_sdp() -> None:
    body = torture_body("rfc5118/ipv6-in-sdp")
    offer = SessionDescription.parse(body)
    assert bytes(offer) == body
    assert offer.origin.addr_type == "IP6"
    assert offer.connection == Connection(addr_type="IP6", address="2001:db8::20")
    audio = offer.audio()
    assert audio is not None
    assert (audio.host, audio.port) == ("2001:db8::20", 6000)
    assert [(c.name, c.payload_type) for c in audio.codecs] == [("G726-32", 2)]
    assert [m.media_line.media for m in offer.media] == ["audio", "video"]
    with pytest.raises(NoCommonCodecError):
        answer(offer)
    g726 = Codec(name="G726-32", clock_rate=8000, payload_type=2)
    result = answer(offer, supported=(g726,), local_addr="2001:db8::10")
    assert result.connection == Connection(addr_type="IP6", address="2001:db8::10")
    assert formats(result, 0) == ["2"]
    assert str(result.media[1]) == "m=video 0 RTP/AVP 107\r\n"


def test_rfc5118_media_level_connections() -> None:
    offer = SessionDescription.parse(torture_body("rfc5118/mult-ip-in-sdp"))
    assert offer.connection is None
    assert offer.session_name == ""
    assert offer.media[0].connection == Connection(addr_type="IP4", address="192.0.2.1")
    assert offer.media[1].connection == Connection(addr_type="IP6", address="2001:db8::1")
    audio = offer.audio()
    assert audio is not None
    assert audio.host == "192.0.2.1"


def test_rfc4475_sdp01_broken_rtpmap_is_ignored_not_fatal() -> None:
    offer = SessionDescription.parse(torture_body("rfc4475/sdp01.dat"))
    assert offer.media[1].rtpmaps == {}  # "a=rtpmap:31 LPC" lacks a clock rate
    result = answer(offer)
    assert formats(result, 0) == ["0"]
    assert result.media[1].media_line.port == 0


# --- offer / answer rules (RFC 3264 §6) --------------------------------------------------------


def offer_with(
    *media_attrs: str,
    address: str = "192.0.2.10",
    session_attrs: tuple[str, ...] = (),
    m: str = "m=audio 5004 RTP/AVP 0 8 101",
) -> bytes:
    return sdp(
        "v=0",
        f"o=- 1 1 IN IP4 {address}",
        "s=-",
        f"c=IN IP4 {address}",
        "t=0 0",
        *session_attrs,
        m,
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        *media_attrs,
    )


HOLD = "0.0.0.0"


@pytest.mark.parametrize(
    ("media_attrs", "address", "session_attrs", "wish", "expected"),
    [
        ((), "192.0.2.10", (), Direction.SENDRECV, Direction.SENDRECV),
        (("a=sendrecv",), "192.0.2.10", (), Direction.SENDRECV, Direction.SENDRECV),
        (("a=sendonly",), "192.0.2.10", (), Direction.SENDRECV, Direction.RECVONLY),
        (("a=recvonly",), "192.0.2.10", (), Direction.SENDRECV, Direction.SENDONLY),
        (("a=inactive",), "192.0.2.10", (), Direction.SENDRECV, Direction.INACTIVE),
        # RFC 3264 §8.4: the old hold form, c=0.0.0.0, means "do not send to me".
        ((), HOLD, (), Direction.SENDRECV, Direction.RECVONLY),
        (("a=sendonly",), HOLD, (), Direction.SENDRECV, Direction.RECVONLY),
        (("a=recvonly",), HOLD, (), Direction.SENDRECV, Direction.INACTIVE),
        (("a=inactive",), HOLD, (), Direction.SENDRECV, Direction.INACTIVE),
        # Our own wish narrows the answer (we put the peer on hold).
        ((), "192.0.2.10", (), Direction.SENDONLY, Direction.SENDONLY),
        (("a=sendonly",), "192.0.2.10", (), Direction.SENDONLY, Direction.INACTIVE),
        ((), "192.0.2.10", (), Direction.INACTIVE, Direction.INACTIVE),
        # RFC 4566 §6: session-level default, media-level override.
        ((), "192.0.2.10", ("a=sendonly",), Direction.SENDRECV, Direction.RECVONLY),
        (("a=sendrecv",), "192.0.2.10", ("a=sendonly",), Direction.SENDRECV, Direction.SENDRECV),
    ],
)
def test_answer_direction(
    media_attrs: tuple[str, ...],
    address: str,
    session_attrs: tuple[str, ...],
    wish: Direction,
    expected: Direction,
) -> None:
    offer = offer_with(*media_attrs, address=address, session_attrs=session_attrs)
    result = answer(offer, direction=wish)
    assert result.media[0].direction is expected
    audio = result.audio()
    assert audio is not None
    assert audio.direction is expected


@pytest.mark.parametrize(
    ("media_attrs", "address", "held"),
    [
        ((), "192.0.2.10", False),
        (("a=recvonly",), "192.0.2.10", False),
        (("a=sendonly",), "192.0.2.10", True),
        (("a=inactive",), "192.0.2.10", True),
        ((), HOLD, True),
    ],
)
def test_hold_detection(media_attrs: tuple[str, ...], address: str, held: bool) -> None:
    audio = SessionDescription.parse(offer_with(*media_attrs, address=address)).audio()
    assert audio is not None
    assert audio.on_hold is held
    assert audio.unspecified_address is (address == HOLD)


def test_ipv6_unspecified_address_is_hold_too() -> None:
    assert Connection(addr_type="IP6", address="::").is_unspecified


@pytest.mark.parametrize(
    ("m", "extra", "supported", "expected"),
    [
        ("m=audio 5004 RTP/AVP 8 0 101", (), OURS, ["8", "0", "101"]),  # offerer's order
        ("m=audio 5004 RTP/AVP 0 8 101", (), (PCMA,), ["8"]),  # no telephone-event for us
        ("m=audio 5004 RTP/AVP 9 0", (), (*OURS, G722), ["9", "0"]),
        ("m=audio 5004 RTP/AVP 9 0", (), OURS, ["0"]),  # G722 only if we opt in
        ("m=audio 5004 RTP/AVP 3 0 13", (), OURS, ["0"]),  # GSM and CN are not ours
        ("m=audio 5004 RTP/AVP 96 101", ("a=rtpmap:96 pcmu/8000",), OURS, ["96", "101"]),
        (
            "m=audio 5004 RTP/AVP 0 110",
            ("a=rtpmap:110 telephone-event/8000",),
            OURS,
            ["0", "110"],
        ),
        ("m=audio 5004 RTP/AVP 0 100", ("a=rtpmap:100 telephone-event/16000",), OURS, ["0"]),
    ],
)
def test_codec_choice(
    m: str, extra: tuple[str, ...], supported: tuple[Codec, ...], expected: list[str]
) -> None:
    result = answer(offer_with(*extra, m=m), supported=supported)
    assert formats(result) == expected


def test_single_codec_answer_keeps_telephone_event() -> None:
    result = answer(offer_with(m="m=audio 5004 RTP/AVP 8 0 101"), single_codec=True)
    assert formats(result) == ["8", "101"]


def test_telephone_event_ranges_are_intersected() -> None:
    offer = sdp(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=audio 5004 RTP/AVP 0 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-11,13, 16,66",
    )
    assert b"a=fmtp:101 0-11,13,16\r\n" in bytes(answer(offer))


def test_telephone_event_alone_is_no_common_codec() -> None:
    with pytest.raises(NoCommonCodecError):
        answer(offer_with(m="m=audio 5004 RTP/AVP 18 101"))


def test_non_audio_and_unusable_streams_are_rejected_with_port_zero() -> None:
    offer = sdp(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=video 5006 RTP/AVP 31 34",
        "a=rtpmap:31 H261/90000",
        "m=audio 0 RTP/AVP 0",
        "m=audio 5008 RTP/SAVP 0",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        "m=audio 5010 RTP/AVP 8 0",
        "m=audio 5012 RTP/AVP 0",
        "m=application 5014 UDP/BFCP *",
    )
    result = answer(offer)
    ports = [section.media_line.port for section in result.media]
    assert ports == [0, 0, 0, 30000, 0, 0]  # same m-lines, same order (RFC 3264 §6)
    assert str(result.media[0]) == "m=video 0 RTP/AVP 31 34\r\n"
    assert str(result.media[2]) == "m=audio 0 RTP/SAVP 0\r\n"
    assert str(result.media[5]) == "m=application 0 UDP/BFCP *\r\n"
    assert formats(result, 3) == ["8", "0"]


def test_no_acceptable_stream_is_no_common_codec() -> None:
    only_srtp = offer_with(m="m=audio 5004 RTP/SAVP 0 101")
    with pytest.raises(NoCommonCodecError):
        answer(only_srtp)
    only_video = sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=video 1 RTP/AVP 31")
    with pytest.raises(NoCommonCodecError):
        answer(only_video)


# --- make_offer and o= versions (RFC 3264 §5, §8) ---------------------------------------------


def test_make_offer() -> None:
    offer = make_offer(
        local_addr="198.51.100.7", port=40000, codecs=OURS, session_id=1001, version=1
    )
    assert str(offer) == (
        "v=0\r\n"
        "o=- 1001 1 IN IP4 198.51.100.7\r\n"
        "s=-\r\n"
        "c=IN IP4 198.51.100.7\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )
    assert SessionDescription.parse(bytes(offer)) == offer


def test_make_offer_ipv6_and_hold() -> None:
    offer = make_offer(
        local_addr="2001:db8::7",
        port=40000,
        codecs=(PCMA,),
        session_id=5,
        version=2,
        direction=Direction.SENDONLY,
        ptime=None,
    )
    assert offer.connection == Connection(addr_type="IP6", address="2001:db8::7")
    audio = offer.audio()
    assert audio is not None
    assert audio.on_hold
    assert audio.ptime is None


def test_make_offer_rejects_our_misuse() -> None:
    with pytest.raises(ValueError, match="payload types"):
        make_offer(local_addr="192.0.2.1", port=1, codecs=(PCMU, PCMU), session_id=1, version=1)
    with pytest.raises(ValueError, match="payload types"):
        make_offer(local_addr="192.0.2.1", port=1, codecs=(), session_id=1, version=1)


def test_version_increments_only_on_change() -> None:
    first = make_offer(local_addr="192.0.2.1", port=4000, codecs=OURS, session_id=9, version=1)
    assert versioned(first, None) is first
    same = make_offer(local_addr="192.0.2.1", port=4000, codecs=OURS, session_id=123, version=7)
    assert versioned(same, first) is first  # unchanged: resend as it was
    held = make_offer(
        local_addr="192.0.2.1",
        port=4000,
        codecs=OURS,
        session_id=123,
        version=7,
        direction=Direction.SENDONLY,
    )
    second = versioned(held, first)
    assert (second.origin.session_id, second.origin.version) == ("9", 2)
    assert second.audio() is not None
    assert versioned(held, second) is second


# --- syntax: round trip and errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\n",  # LF only
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\ns=-\r\nt=0 0",  # mixed, no final line end
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=\r\n\r\n\r\n",  # trailing blank lines
        "v=0\r\no=- 1 1 IN IP4 h\r\nx=unknown\r\nz=2882844526 -1h\r\nk=prompt\r\n",
    ],
)
def test_round_trip_is_byte_exact(text: str) -> None:
    parsed = SessionDescription.parse(text)
    assert str(parsed) == text
    assert bytes(SessionDescription.parse(text.encode())) == text.encode()


def test_non_utf8_bytes_survive() -> None:
    data = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=Caf\xe9\r\n"
    assert bytes(SessionDescription.parse(data)) == data


def test_unknown_lines_keep_their_order_through_an_edit() -> None:
    offer = SessionDescription.parse(PJSUA)
    edited = offer.with_origin(Origin(session_id="1", version=2, addr_type="IP4", address="h"))
    before, after = bytes(offer).split(b"\r\n"), bytes(edited).split(b"\r\n")
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [1]
    assert after[1] == b"o=- 1 2 IN IP4 h"


@pytest.mark.parametrize(
    ("text", "line_no"),
    [
        ("o=- 1 1 IN IP4 h\r\nv=0\r\n", 1),
        ("v=1\r\no=- 1 1 IN IP4 h\r\n", 1),
        ("v=0\r\ns=-\r\n", 2),  # no o=
        ("v=0\r\no=- 1 1 IN IP4 h\r\no=- 1 1 IN IP4 h\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nv=0\r\n", 3),
        ("v=0\r\no=- x 1 IN IP4 h\r\n", 2),
        ("v=0\r\no=- 1 1 IN IP4\r\n", 2),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nt=0\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio x RTP/AVP 0\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 1 RTP/AVP 0\r\no=- 1 1 IN IP4 h\r\n", 4),
        ("v=0\r\no=- 1 1 IN IP4 h\r\n\r\ns=-\r\n", 3),  # blank line in the middle
        ("v=0\r\no=- 1 1 IN IP4 h\r\ngarbage\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\nS=x\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns =x\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=a\rb\r\n", 3),  # bare CR
        ("v=0\r\no=- 1 1 IN IP4 h\r\ns=a\x00b\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\na=\r\n", 3),
        ("v=0\r\no=- 1 1 IN IP4 h\r\na=:x\r\n", 3),
        ("v=0\r\no=- 1 " + "9" * 5000 + " IN IP4 h\r\n", 2),
    ],
)
def test_errors_name_the_line(text: str, line_no: int) -> None:
    with pytest.raises(SdpError) as caught:
        SessionDescription.parse(text)
    assert caught.value.line_no == line_no
    assert f"line {line_no}" in str(caught.value)


def test_empty_input_is_an_error() -> None:
    for text in ("", "\r\n", b"\r\n\r\n"):
        with pytest.raises(SdpError):
            SessionDescription.parse(text)


# --- fuzz -------------------------------------------------------------------------------------

LINE_STARTS = ["v=0", "o=- 1 1 IN IP4 h", "s=-", "c=IN IP4 0.0.0.0", "t=0 0", "a=sendonly"]
LINE_STARTS += ["m=audio 4000 RTP/AVP 0 101", "m=video 0 RTP/AVP 31", "a=rtpmap:101 ", "a=fmtp:"]
LINE_STARTS += ["a=rtpmap:0 PCMU/8000", "a=ptime:", "a=inactive", "m=audio 1 RTP/AVP 96"]
SDPISH = st.lists(
    st.one_of(
        st.sampled_from(LINE_STARTS),
        st.tuples(st.sampled_from(LINE_STARTS), st.text(max_size=12)).map("".join),
        st.text(max_size=20),
    ),
    max_size=16,
).flatmap(lambda lines: st.sampled_from(["\r\n", "\n"]).map(lambda eol: eol.join(lines)))


def exercise(parsed: SessionDescription) -> None:
    """Every view of a parsed description works, and answering it gives valid SDP."""
    parsed.origin  # noqa: B018
    for stream in parsed.audio_streams():
        stream.on_hold  # noqa: B018
        stream.telephone_event  # noqa: B018
    for section in parsed.media:
        section.rtpmaps  # noqa: B018
        section.fmtps  # noqa: B018
        section.ptime  # noqa: B018
        section.connection  # noqa: B018
    try:
        result = answer(parsed)
    except NoCommonCodecError:
        return
    assert SessionDescription.parse(bytes(result)) == result


@given(st.one_of(st.text(), SDPISH))
@example("v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 101\na=rtpmap:101 telephone-event/8000\n")
@example("v=0\no=- 1 1 IN IP4 h\nm=audio 1 RTP/AVP 0 101\na=fmtp:101 0-99999999999999\n")
def test_any_text_parses_or_raises_sdp_error(text: str) -> None:
    try:
        parsed = SessionDescription.parse(text)
    except SdpError:
        return
    assert str(parsed) == text
    exercise(parsed)


@given(st.binary())
def test_any_bytes_parse_or_raise_sdp_error(data: bytes) -> None:
    try:
        parsed = SessionDescription.parse(data)
    except SdpError:
        return
    assert bytes(parsed) == data
