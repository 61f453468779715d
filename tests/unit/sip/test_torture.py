"""RFC 4475 (SIP torture tests) and RFC 5118 (IPv6 torture tests) against the message layer.

The messages live in the shared data directory (``$CLOUDPBX_SHARED_DIR/data/sip-torture``,
default ``<repo>/../shared/data/sip-torture``). If they are missing these tests FAIL, unless
``CLOUDPBX_ALLOW_MISSING_SHARED=1`` (then they skip).

Table: every message, the RFC section, what the parser must do, and -- for those the parser
lets through on purpose -- which layer gives the answer the RFC asks for.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloudpbx.sip import (
    STAR,
    AbsoluteURI,
    ParseError,
    Request,
    Response,
    SipURI,
    bad_request_response,
    parse_message,
)
from cloudpbx.sip.message import Message
from cloudpbx.sip.uri import unquote_string

# --- locating the corpus --------------------------------------------------------------------


def _corpus_dir() -> Path:
    shared = os.environ.get("CLOUDPBX_SHARED_DIR")
    base = Path(shared) if shared else Path(__file__).resolve().parents[3] / ".." / "shared"
    return base / "data" / "sip-torture"


def _missing(reason: str) -> None:
    if os.environ.get("CLOUDPBX_ALLOW_MISSING_SHARED") == "1":
        pytest.skip(reason)
    pytest.fail(f"{reason} (set CLOUDPBX_ALLOW_MISSING_SHARED=1 to skip)")


def load(relative: str) -> bytes:
    path = _corpus_dir() / relative
    if not path.is_file():
        _missing(f"SIP torture message {path} is missing")
    return path.read_bytes()


def frame_end(data: bytes) -> int:
    """Where the message ends in a datagram: Content-Length after the head, or the end."""
    head_end = data.index(b"\r\n\r\n") + 4
    for line in data[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            return head_end + int(value.strip())
    return len(data)


# --- expectations ---------------------------------------------------------------------------

Check = Callable[[Message], None]


@dataclass(frozen=True)
class Valid:
    """Parses; ``check`` asserts the key fields. ``layer`` answers what the RFC asks, if any."""

    file: str
    section: str
    check: Check
    layer: str = "parser (accept)"


@dataclass(frozen=True)
class Invalid:
    """ParseError with ``status`` naming ``header``; ``answered``: a response can be built
    (False: drop silently -- a response, or the headers needed for one are missing)."""

    file: str
    section: str
    status: int
    header: str | None
    answered: bool


def _req(msg: Message) -> Request:
    assert isinstance(msg, Request)
    return msg


def _resp(msg: Message) -> Response:
    assert isinstance(msg, Response)
    return msg


def _sip(uri: object) -> SipURI:
    assert isinstance(uri, SipURI)
    return uri


def _contacts(msg: Message) -> list[SipURI]:
    contact = msg.contact
    assert contact is not STAR
    assert not isinstance(contact, type(STAR))
    return [_sip(c.uri) for c in contact]


# §3.1.1 valid messages ------------------------------------------------------------------------


def check_wsinv(m: Message) -> None:
    r = _req(m)
    assert r.method == "INVITE"
    assert _sip(r.uri).host == "chair-dnrc.example.com"
    assert _sip(r.uri).has_param("unknownparam")
    assert r.to.tag == "1918181833n"
    assert _sip(r.to.uri).user == "vivekg"
    assert r.from_.display_name == 'J Rosenberg \\"'  # "J Rosenberg \\\"" unescaped
    assert r.from_.tag == "98asjd8"
    assert r.max_forwards == 68  # "0068"
    assert r.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert (r.cseq.number, r.cseq.method) == (9, "INVITE")  # "0009\r\n  INVITE"
    assert [(v.transport, v.host, v.branch) for v in r.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert r.headers.get("Subject") == ""
    assert r.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert r.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (route,) = r.route
    assert _sip(route.uri).lr
    assert _sip(route.uri).param("unknownwith") == "value"
    (contact,) = r.contact  # type: ignore[misc]
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert contact.q == pytest.approx(0.33)
    assert r.content_length == 150
    assert len(r.body) == 150


def check_intmeth(m: Message) -> None:
    r = _req(m)
    assert r.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = _sip(r.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert r.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert r.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert r.from_.tag == "_token~1'+`*%!-."
    assert unquote_string(r.from_.param("fromParam''~+*_!.-%") or "") == "работающий"
    assert r.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert r.cseq.method == r.method
    assert r.cseq.number == 139122385
    assert r.max_forwards == 255
    assert r.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def check_esc01(m: Message) -> None:
    r = _req(m)
    assert (_sip(r.uri).user, _sip(r.uri).host) == ("sips:user@example.com", "example.net")
    assert _sip(r.to.uri).user == "user"  # %75se%72
    assert _sip(r.from_.uri).user == "I have spaces"
    (contact,) = _contacts(r)
    assert contact.user == "caller"
    assert contact.params == (("lr", None), ("name", "value%41"))  # one level of unescaping
    assert contact.lr


def check_escnull(m: Message) -> None:
    r = _req(m)
    assert _sip(r.to.uri).user == "null-\x00-null"
    assert [c.user for c in _contacts(r)] == ["\x00", "\x00\x00"]
    assert str(_contacts(r)[1]) == "sip:%00%00@host5.example.com"


def check_esc02(m: Message) -> None:
    r = _req(m)
    assert r.method == "RE%47IST%45R"  # not REGISTER: the UA core answers 501 / 405
    assert r.cseq.method == "RE%47IST%45R"
    assert r.to.display_name == "%Z%45"
    assert r.via[0].branch == "z9hG4bK209%fzsnel234"
    assert [c.host for c in _contacts(r)] == ["host1.example.com", "host3.example.com"]
    assert r.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"  # not a Contact


def check_lwsdisp(m: Message) -> None:
    assert m.from_.display_name == "caller"
    assert m.from_.tag == "323"


def check_longreq(m: Message) -> None:
    r = _req(m)
    assert r.to.display_name is not None
    assert r.to.display_name.endswith("extreme proportion")
    to_uri = _sip(r.to.uri)
    assert to_uri.port == 6000
    assert len(to_uri.params) == 3
    assert r.from_.tag is not None
    assert len(r.from_.tag) == 155
    assert len(r.from_.params) == 3
    vias = r.via
    assert len(vias) == 34
    assert [v.host for v in vias[:3]] == [f"sip{n}.example.com" for n in (33, 32, 31)]
    assert vias[-1].received == "192.0.2.5"
    assert vias[-1].branch is not None
    assert vias[-1].branch.endswith("branchvalue")
    assert len(r.body) == 150


def check_dblreq(m: Message) -> None:
    r = _req(m)
    assert r.method == "REGISTER"
    assert r.body == b""
    assert r.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"  # compact "I:"


def check_semiuri(m: Message) -> None:
    uri = _sip(_req(m).uri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u@example.net", "example.com", ())
    assert m.headers.values("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def check_transports(m: Message) -> None:
    assert [v.transport for v in m.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def check_mpart01(m: Message) -> None:
    r = _req(m)
    assert r.method == "MESSAGE"
    assert len(r.body) == 553
    assert r.content_type == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert r.via[0].has_rport
    assert r.via[0].rport is None
    assert r.date == datetime(2005, 10, 15, 4, 44, 56, tzinfo=UTC)
    assert (r.headers.get("Identity") or "").endswith("YUA=")
    assert b"\x00" in r.body  # binary part intact


def check_unreason(m: Message) -> None:
    r = _resp(m)
    assert r.status == 200
    assert r.reason.startswith("= 2**3 * 5**2 но сто девяносто девять")


def check_noreason(m: Message) -> None:
    r = _resp(m)
    assert (r.status, r.reason) == (100, "")


# §3.2 / §3.3 / §3.4 and RFC 5118 valid messages ------------------------------------------------


def check_badbranch(m: Message) -> None:
    assert m.via[0].branch == "z9hG4bK"


def check_unkscm(m: Message) -> None:
    uri = _req(m).uri
    assert isinstance(uri, AbsoluteURI)
    assert (uri.scheme, uri.opaque) == ("nobodyknowsthisscheme", "totallyopaquecontent")


def check_novelsc(m: Message) -> None:
    uri = _req(m).uri
    assert isinstance(uri, AbsoluteURI)
    assert uri.scheme == "soap.beep"


def check_unksm2(m: Message) -> None:
    assert str(m.to.uri) == "isbn:2983792873"
    assert str(m.from_.uri) == "http://www.example.com"
    assert m.from_.tag == "3234233"
    assert [str(c.uri) for c in m.contact] == ["name:John_Smith"]  # type: ignore[union-attr]


def check_bext01(m: Message) -> None:
    assert m.headers.values("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert len(m.headers.values("Proxy-Require")) == 2


def check_invut(m: Message) -> None:
    assert m.content_type == "application/unknownformat"
    assert m.body.startswith(b"<audio>")


def check_regaut01(m: Message) -> None:
    assert m.headers.values("Authorization") == ["NoOneKnowsThisScheme opaque-data=here"]


def check_bcast(m: Message) -> None:
    assert _resp(m).status == 200
    assert [v.host for v in m.via] == ["192.0.2.198", "255.255.255.255"]


def check_zeromf(m: Message) -> None:
    assert m.max_forwards == 0


def check_cparam01(m: Message) -> None:
    (contact,) = m.contact  # type: ignore[misc]
    assert contact.has_param("unknownparam")  # a contact-param: addr-spec form
    assert _sip(contact.uri).params == ()


def check_cparam02(m: Message) -> None:
    (contact,) = m.contact  # type: ignore[misc]
    assert contact.params == ()
    assert _sip(contact.uri).has_param("unknownparam")  # a uri-parameter: inside <>


def check_regescrt(m: Message) -> None:
    (contact,) = _contacts(m)
    assert contact.headers == (("Route", "<sip:sip.example.com>"),)
    assert str(contact) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def check_sdp01(m: Message) -> None:
    assert m.headers.get("Accept") == "text/nobodyKnowsThis"
    assert m.content_type == "application/sdp"


def check_inv2543(m: Message) -> None:
    r = _req(m)
    assert r.via[0].branch is None  # RFC 2543 transaction matching
    assert r.from_.tag is None
    assert r.max_forwards is None
    assert r.content_length is None
    assert r.body.startswith(b"v=0")
    assert r.body.endswith(b"RTP/AVP 0\r\n")
    assert _sip(r.record_route[0].uri).maddr == "ss1.example.com"


def check_ipv6_good(m: Message) -> None:
    uri = _sip(_req(m).uri)
    assert (uri.host, uri.port) == ("[2001:db8::10]", None)
    assert m.via[0].host == "[2001:db8::9:1]"
    assert _contacts(m)[0].host == "[2001:db8::1]"


def check_port_ambiguous(m: Message) -> None:
    uri = _sip(_req(m).uri)
    assert (uri.host, uri.port) == ("[2001:db8::10:5070]", None)  # RFC 5118 §4.4


def check_port_unambiguous(m: Message) -> None:
    uri = _sip(_req(m).uri)
    assert (uri.host, uri.port) == ("[2001:db8::10]", 5070)


def check_ipv4_mapped(m: Message) -> None:
    via = m.via
    assert (via[0].host, via[0].port) == ("[::ffff:192.0.2.10]", 19823)
    assert via[1].host == "[::ffff:192.0.2.2]"
    assert _contacts(m)[0].host == "[::ffff:192.0.2.2]"
    assert len(m.body) == 236  # Content-Length wins over a longer datagram (RFC 3261 §18.3)


def check_three_colons(m: Message) -> None:
    # RFC 5118 §4.10: the 3-colon form follows RFC 3261's ABNF bug; "an implementation
    # must tolerate both". We keep the host as written (no re-serialization as 2 colons).
    assert _sip(_req(m).uri).host == "[2001:db8:::192.0.2.1]"
    assert _sip(m.to.uri).host == "[2001:db8:::192.0.2.1]"


def check_two_colons(m: Message) -> None:
    assert _sip(_req(m).uri).host == "[2001:db8::192.0.2.1]"


def check_ipv6_in_sdp(m: Message) -> None:
    assert _sip(_req(m).uri).host == "[2001:db8::10]"
    assert b"c=IN IP6 2001:db8::20" in m.body


def check_mult_ip_in_header(m: Message) -> None:
    assert [(v.transport, v.host, v.port) for v in m.via] == [
        ("UDP", "[2001:db8::9:1]", 6050),
        ("UDP", "192.0.2.1", None),
        ("TCP", "[2001:db8::9:255]", None),
    ]
    assert m.via[2].received == "192.0.2.200"


def check_mult_ip_in_sdp(m: Message) -> None:
    assert b"c=IN IP6 2001:db8::1" in m.body


def check_received_no_delim(m: Message) -> None:
    assert m.via[0].received == "2001:db8::9:255"  # RFC 3261 ABNF form (RFC 5118 §4.5)


def check_received_with_delim(m: Message) -> None:
    assert m.via[0].received == "[2001:db8::9:255]"  # bracketed form (RFC 5118 §4.5)


UA = "UA core / proxy"
VALID: list[Valid] = [
    # RFC 4475 §3.1.1: valid messages the parser must accept.
    Valid("rfc4475/wsinv.dat", "4475 §3.1.1.1", check_wsinv),
    Valid("rfc4475/intmeth.dat", "4475 §3.1.1.2", check_intmeth, f"{UA}: 501/405 unknown method"),
    Valid("rfc4475/esc01.dat", "4475 §3.1.1.3", check_esc01),
    Valid("rfc4475/escnull.dat", "4475 §3.1.1.4", check_escnull),
    Valid("rfc4475/esc02.dat", "4475 §3.1.1.5", check_esc02, f"{UA}: 501 unknown method"),
    Valid("rfc4475/lwsdisp.dat", "4475 §3.1.1.6", check_lwsdisp),
    Valid("rfc4475/longreq.dat", "4475 §3.1.1.7", check_longreq),
    Valid("rfc4475/dblreq.dat", "4475 §3.1.1.8", check_dblreq, "parser: trailing octets dropped"),
    Valid("rfc4475/semiuri.dat", "4475 §3.1.1.9", check_semiuri),
    Valid("rfc4475/transports.dat", "4475 §3.1.1.10", check_transports),
    Valid("rfc4475/mpart01.dat", "4475 §3.1.1.11", check_mpart01),
    Valid("rfc4475/unreason.dat", "4475 §3.1.1.12", check_unreason),
    Valid("rfc4475/noreason.dat", "4475 §3.1.1.13", check_noreason),
    # RFC 4475 §3.2 transaction layer: 400 (stateless) or RFC 2543 matching, its choice.
    Valid("rfc4475/badbranch.dat", "4475 §3.2.1", check_badbranch, "transaction layer"),
    # RFC 4475 §3.3 application layer: well-formed; the layer named answers.
    Valid("rfc4475/unkscm.dat", "4475 §3.3.2", check_unkscm, f"{UA}: 416"),
    Valid("rfc4475/novelsc.dat", "4475 §3.3.3", check_novelsc, f"{UA}: 416 (or 404)"),
    Valid("rfc4475/unksm2.dat", "4475 §3.3.4", check_unksm2, "registrar: 400 (AOR not SIP)"),
    Valid("rfc4475/bext01.dat", "4475 §3.3.5", check_bext01, f"{UA}: 420 Bad Extension"),
    Valid("rfc4475/invut.dat", "4475 §3.3.6", check_invut, "UA core: 415 with Accept"),
    Valid("rfc4475/regaut01.dat", "4475 §3.3.7", check_regaut01, "auth/registrar: 401 or ignore"),
    Valid("rfc4475/bcast.dat", "4475 §3.3.10", check_bcast, "UA/proxy: drop, never forward"),
    Valid("rfc4475/zeromf.dat", "4475 §3.3.11", check_zeromf, "proxy: 483 (UA: process)"),
    Valid("rfc4475/cparam01.dat", "4475 §3.3.12", check_cparam01, "registrar: 200"),
    Valid("rfc4475/cparam02.dat", "4475 §3.3.13", check_cparam02, "registrar: 200"),
    Valid("rfc4475/regescrt.dat", "4475 §3.3.14", check_regescrt, "registrar: 200, keep header"),
    Valid("rfc4475/sdp01.dat", "4475 §3.3.15", check_sdp01, "UA core: 406 (or 400)"),
    # RFC 4475 §3.4 backward compatibility.
    Valid("rfc4475/inv2543.dat", "4475 §3.4.1", check_inv2543, "transaction: RFC 2543 rules"),
    # RFC 5118 valid messages.
    Valid("rfc5118/ipv6-good", "5118 §4.1", check_ipv6_good),
    Valid("rfc5118/port-ambiguous", "5118 §4.3", check_port_ambiguous),
    Valid("rfc5118/port-unambiguous", "5118 §4.4", check_port_unambiguous),
    Valid("rfc5118/via-received-param-with-delim", "5118 §4.5", check_received_with_delim),
    Valid("rfc5118/via-received-param-no-delim", "5118 §4.5", check_received_no_delim),
    Valid("rfc5118/ipv6-in-sdp", "5118 §4.6", check_ipv6_in_sdp),
    Valid("rfc5118/mult-ip-in-header", "5118 §4.7", check_mult_ip_in_header),
    Valid("rfc5118/mult-ip-in-sdp", "5118 §4.8", check_mult_ip_in_sdp),
    Valid("rfc5118/ipv4-mapped-ipv6", "5118 §4.9", check_ipv4_mapped),
    Valid("rfc5118/ipv6-correct-abnf-2-colons", "5118 §4.10", check_two_colons),
    Valid("rfc5118/ipv6-bug-abnf-3-colons", "5118 §4.10", check_three_colons, "tolerated"),
]

INVALID: list[Invalid] = [
    # RFC 4475 §3.1.2: 400 when a response is possible, else drop.
    Invalid("rfc4475/badinv01.dat", "4475 §3.1.2.1", 400, "Via", True),  # ";;,;,," separators
    Invalid("rfc4475/clerr.dat", "4475 §3.1.2.2", 400, "Content-Length", True),
    Invalid("rfc4475/ncl.dat", "4475 §3.1.2.3", 400, "Content-Length", True),
    Invalid("rfc4475/scalar02.dat", "4475 §3.1.2.4", 400, "CSeq", True),
    Invalid("rfc4475/scalarlg.dat", "4475 §3.1.2.5", 400, "CSeq", False),  # response: drop
    Invalid("rfc4475/quotbal.dat", "4475 §3.1.2.6", 400, "To", True),
    Invalid("rfc4475/ltgtruri.dat", "4475 §3.1.2.7", 400, None, True),  # <> around R-URI
    Invalid("rfc4475/lwsruri.dat", "4475 §3.1.2.8", 400, None, True),
    Invalid("rfc4475/lwsstart.dat", "4475 §3.1.2.9", 400, None, True),
    Invalid("rfc4475/trws.dat", "4475 §3.1.2.10", 400, None, True),
    Invalid("rfc4475/escruri.dat", "4475 §3.1.2.11", 400, None, True),  # headers in R-URI
    Invalid("rfc4475/baddate.dat", "4475 §3.1.2.12", 400, "Date", True),  # EST, not GMT
    Invalid("rfc4475/regbadct.dat", "4475 §3.1.2.13", 400, "Contact", True),
    Invalid("rfc4475/badaspec.dat", "4475 §3.1.2.14", 400, "To", True),
    Invalid("rfc4475/baddn.dat", "4475 §3.1.2.15", 400, "From", True),
    Invalid("rfc4475/badvers.dat", "4475 §3.1.2.16", 505, None, True),
    Invalid("rfc4475/mismatch01.dat", "4475 §3.1.2.17", 400, "CSeq", True),
    # §3.1.2.18: the RFC prefers 501 (future-proof), 400 "is also acceptable"; the parser
    # cannot know which methods exist, so it answers 400.
    Invalid("rfc4475/mismatch02.dat", "4475 §3.1.2.18", 400, "CSeq", True),
    Invalid("rfc4475/bigcode.dat", "4475 §3.1.2.19", 400, None, False),  # response: drop
    # RFC 4475 §3.3 cases whose answer is a parse-level one.
    Invalid("rfc4475/insuf.dat", "4475 §3.3.1", 400, "From", False),  # "must be discarded"
    Invalid("rfc4475/multi01.dat", "4475 §3.3.8", 400, "From", True),  # 400 per the RFC
    Invalid("rfc4475/mcl01.dat", "4475 §3.3.9", 400, "Content-Length", True),  # UDP: 400
    # RFC 5118 §4.2: IPv6 reference without brackets in the Request-URI.
    Invalid("rfc5118/ipv6-bad", "5118 §4.2", 400, None, True),
]


# --- the tests --------------------------------------------------------------------------------


def _ids(cases: list[Valid] | list[Invalid]) -> list[str]:
    return [Path(c.file).stem for c in cases]


@pytest.mark.parametrize("case", VALID, ids=_ids(VALID))
def test_valid_message_parses(case: Valid) -> None:
    data = load(case.file)
    message = parse_message(data)
    case.check(message)
    # Unchanged messages round-trip byte for byte (up to Content-Length on a datagram).
    assert bytes(message) == data[: frame_end(data)]
    assert bytes(parse_message(bytes(message))) == bytes(message)


@pytest.mark.parametrize("case", INVALID, ids=_ids(INVALID))
def test_invalid_message_is_rejected(case: Invalid) -> None:
    data = load(case.file)
    with pytest.raises(ParseError) as caught:
        parse_message(data)
    error = caught.value
    assert (error.status, error.header) == (case.status, case.header), error.message
    answer = bad_request_response(data, error, to_tag="tt")
    if not case.answered:
        assert answer is None
        return
    assert answer is not None
    response = parse_message(answer, validate=False)
    assert isinstance(response, Response)
    assert response.status == case.status
    assert response.reason.startswith(error.reason_phrase[:20])
    assert response.headers.count("Via") >= 1
    assert response.headers.get("Content-Length") == "0"
    for name in ("From", "Call-ID", "CSeq"):  # copied as received (first value)
        assert response.headers.get(name) == _first_raw_value(data, name)


def _first_raw_value(data: bytes, name: str) -> str:
    compact = {"From": "f", "Call-ID": "i", "CSeq": "cseq"}[name]
    for line in data[: data.index(b"\r\n\r\n")].decode().split("\r\n")[1:]:
        field, _, value = line.partition(":")
        if field.strip().lower() in (name.lower(), compact):
            return value.strip()
    raise AssertionError(f"no {name} in the message")


def test_lazy_parse_accepts_what_validation_rejects() -> None:
    # Without validation the headers are not looked at: a proxy could still log or relay it.
    data = load("rfc4475/badaspec.dat")
    message = parse_message(data, validate=False)
    assert bytes(message) == data
    with pytest.raises(ParseError):
        _ = message.to


def test_corpus_is_complete_and_intact() -> None:
    """Every file in the table exists and matches SHA256SUMS (and nothing is left untested)."""
    corpus = _corpus_dir()
    if not (corpus / "SHA256SUMS").is_file():
        _missing(f"SIP torture corpus {corpus} is missing")
    sums = {}
    for line in (corpus / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    tested = {c.file for c in VALID} | {c.file for c in INVALID}
    assert tested == set(sums), set(sums) ^ tested
    for name, digest in sums.items():
        assert hashlib.sha256((corpus / name).read_bytes()).hexdigest() == digest, name
