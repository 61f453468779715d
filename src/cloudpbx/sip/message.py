"""SIP messages (RFC 3261 §7): model, parser, serializer and error responses.

Parsing is lazy (ENGINEERING.md §3): :func:`parse_message` splits the start line, the header
lines (unfolding continuation lines, RFC 3261 §7.3.1) and the body (sized by Content-Length,
RFC 3261 §18.3), then, unless ``validate=False``, checks the headers every message needs
(:meth:`Message.validate`). Other headers are parsed only when a typed accessor is used.

An unchanged message serializes to the exact bytes it was parsed from; once the start line,
a header or the body changes, the changed parts are re-rendered canonically while untouched
header lines keep their original text, and Content-Length always matches the body.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from cloudpbx.sip.errors import HeaderError, ParseError
from cloudpbx.sip.headers import (
    COMPACT_FORMS,
    CSeq,
    Headers,
    HeaderValue,
    _Field,
    canonical_name,
    parse_call_id,
    parse_contact_list,
    parse_cseq,
    parse_date,
    parse_name_addr_list,
    parse_number,
    parse_via_list,
)
from cloudpbx.sip.uri import (
    TOKEN_RE,
    URI,
    NameAddr,
    SipURI,
    Star,
    Via,
    parse_name_addr,
    parse_uri,
)

__all__ = [
    "REASON_PHRASES",
    "SIP_VERSION",
    "Message",
    "Request",
    "Response",
    "bad_request_response",
    "make_response",
    "parse_message",
]

T = TypeVar("T")
_MISSING = object()

SIP_VERSION = "SIP/2.0"

# RFC 3261 §21 and the extensions we answer with.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_MANDATORY = ("via", "from", "to", "call-id", "cseq")  # RFC 3261 §8.1.1 (minus Max-Forwards)
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_REASON_RE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")  # Reason-Phrase: text, SP, HTAB
_MAX_CONTENT_LENGTH = 2**32 - 1
_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")  # header names are tokens (RFC 3261 §25.1)


def _snip(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


# --- typed header parsers used by the accessors (module level: no closure per call) ----------


def _single(headers: Headers, key: str) -> str | None:
    fields = headers._lookup(key)  # key is already a lookup key: skip header_key()
    if not fields:
        return None
    if len(fields) > 1:
        # RFC 4475 §3.3.8: several Call-ID / To / From / CSeq / Max-Forwards values -> 400.
        raise ParseError("appears more than once")
    return fields[0][2]


def _required(headers: Headers, key: str) -> str:
    value = _single(headers, key)
    if value is None:
        raise ParseError("missing")
    return value


def _elements(headers: Headers, key: str) -> list[str]:
    fields = headers._lookup(key)
    if len(fields) == 1 and "," not in fields[0][2]:
        return [fields[0][2]]
    return headers.values(key)


def _via(h: Headers) -> tuple[Via, ...]:
    return tuple(parse_via_list(_elements(h, "via")))


def _from(h: Headers) -> NameAddr:
    return parse_name_addr(_required(h, "from"))


def _to(h: Headers) -> NameAddr:
    return parse_name_addr(_required(h, "to"))


def _call_id(h: Headers) -> str:
    return parse_call_id(_required(h, "call-id"))


def _cseq(h: Headers) -> CSeq:
    return parse_cseq(_required(h, "cseq"))


def _contact(h: Headers) -> tuple[NameAddr, ...] | Star:
    result = parse_contact_list(_elements(h, "contact"))
    return result if isinstance(result, Star) else tuple(result)


def _route(h: Headers) -> tuple[NameAddr, ...]:
    return tuple(parse_name_addr_list(h.values("route"), angle_brackets=True))


def _record_route(h: Headers) -> tuple[NameAddr, ...]:
    return tuple(parse_name_addr_list(h.values("record-route"), angle_brackets=True))


def _max_forwards(h: Headers) -> int | None:
    value = _single(h, "max-forwards")
    return None if value is None else parse_number(value, 255)  # RFC 3261 §20.22


def _content_length(h: Headers) -> int | None:
    value = _single(h, "content-length")
    return None if value is None else parse_number(value, _MAX_CONTENT_LENGTH)


def _expires(h: Headers) -> int | None:
    value = _single(h, "expires")
    return None if value is None else parse_number(value, 2**32 - 1)  # RFC 3261 §20.19


def _date(h: Headers) -> datetime | None:
    value = _single(h, "date")
    return None if value is None else parse_date(value)


# What validate() parses, in this order (cached for the accessors).
_VALIDATED: tuple[tuple[str, Callable[[Headers], object]], ...] = (
    ("via", _via),
    ("from", _from),
    ("to", _to),
    ("call-id", _call_id),
    ("cseq", _cseq),
    ("max-forwards", _max_forwards),
    ("contact", _contact),
    ("date", _date),
)


# --- the model ------------------------------------------------------------------------------


def _as_headers(headers: Headers | Iterable[tuple[str, HeaderValue]] | None) -> Headers:
    if headers is None:
        return Headers()
    return headers if isinstance(headers, Headers) else Headers(headers)


class Message:
    """What requests and responses share: headers, body, typed accessors, serialization."""

    __slots__ = ("_body", "_raw", "_start", "headers")

    def __init__(self, headers: Headers, body: bytes) -> None:
        self.headers = headers
        self._body = bytes(body)
        self._raw: bytes | None = None  # the exact bytes parsed, while unchanged
        self._start: str | None = None  # the start line as received, while unchanged

    # --- body -------------------------------------------------------------------------------

    @property
    def body(self) -> bytes:
        return self._body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = bytes(value)
        self._raw = None

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        """Replace the body and its Content-Type (Content-Length follows on serialization)."""
        self.body = body
        if content_type is not None:
            self.headers.set("Content-Type", content_type)
        elif not body:
            self.headers.remove("Content-Type")

    # --- typed accessors (lazy, cached until the header changes) ------------------------------

    def _typed(self, key: str, parse: Callable[[Headers], T]) -> T:
        """``parse(headers)`` memoised in the headers' cache (``key`` is a lookup key)."""
        headers = self.headers
        value = headers._cache.get(key, _MISSING)
        if value is _MISSING:
            try:
                value = parse(headers)
            except HeaderError:
                raise
            except ParseError as exc:
                raise HeaderError(canonical_name(key), exc.message) from None
            headers._cache[key] = value
        return value  # type: ignore[return-value]  # the cache maps key -> parse's result

    @property
    def via(self) -> list[Via]:
        """Every Via value, top first (RFC 3261 §20.42)."""
        return list(self._typed("via", _via))

    @property
    def from_(self) -> NameAddr:
        return self._typed("from", _from)

    @property
    def to(self) -> NameAddr:
        return self._typed("to", _to)

    @property
    def call_id(self) -> str:
        return self._typed("call-id", _call_id)

    @property
    def cseq(self) -> CSeq:
        return self._typed("cseq", _cseq)

    @property
    def contact(self) -> list[NameAddr] | Star:
        """Contact values (empty when absent), or :data:`~cloudpbx.sip.uri.STAR`."""
        result = self._typed("contact", _contact)
        return result if isinstance(result, Star) else list(result)

    @property
    def route(self) -> list[NameAddr]:
        return list(self._typed("route", _route))

    @property
    def record_route(self) -> list[NameAddr]:
        return list(self._typed("record-route", _record_route))

    @property
    def max_forwards(self) -> int | None:
        return self._typed("max-forwards", _max_forwards)

    @property
    def content_length(self) -> int | None:
        return self._typed("content-length", _content_length)

    @property
    def expires(self) -> int | None:
        return self._typed("expires", _expires)

    @property
    def date(self) -> datetime | None:
        return self._typed("date", _date)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    # --- validation and serialization --------------------------------------------------------

    def validate(self) -> None:
        """Check what every message on the wire needs (raises :class:`ParseError`).

        Via, From, To, Call-ID and CSeq must be present -- without them no response can be
        built (RFC 3261 §8.1.1, §8.2.6.2; RFC 4475 §3.3.1 says drop) -- Max-Forwards may be
        absent for RFC 2543 peers (RFC 4475 §3.4.1). The headers the transaction, dialog and
        registrar layers read on every message are parsed here, so that a malformed one
        becomes a 400 at the door (RFC 4475 §3.1.2) rather than an error deep inside.
        """
        headers = self.headers
        for key in _MANDATORY:
            if not headers._lookup(key):
                name = canonical_name(key)
                raise ParseError(f"missing {name} header", header=name)
        cache = headers._cache
        key = ""
        try:
            for key, parse in _VALIDATED:
                if key not in cache:
                    cache[key] = parse(headers)
        except HeaderError:
            raise
        except ParseError as exc:
            raise HeaderError(canonical_name(key), exc.message) from None

    def _start_line(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        raw = self._raw
        if raw is not None and not self.headers.modified:
            return raw
        start = self._start if self._start is not None else self._start_line()
        lines = [start, *self.headers.render(body_length=len(self._body))]
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self._body


class Request(Message):
    """A SIP request: ``Request(method, uri, headers, body)``."""

    __slots__ = ("_method", "_uri", "_uri_text")
    _method: str
    _uri: URI | None
    _uri_text: str

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Headers | Iterable[tuple[str, HeaderValue]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(_as_headers(headers), body)
        self.method = method
        self.uri = uri

    @property
    def method(self) -> str:
        return self._method

    @method.setter
    def method(self, value: str) -> None:
        if TOKEN_RE.fullmatch(value) is None:
            raise ValueError(f"invalid method {value!r}")
        self._method = value
        self._raw = self._start = None

    @property
    def uri(self) -> URI:
        """The Request-URI, parsed on first use (ParseError if the peer sent a bad one)."""
        if self._uri is None:
            self._uri = parse_uri(self._uri_text)
        return self._uri

    @uri.setter
    def uri(self, value: URI | str) -> None:
        if isinstance(value, str):
            self._uri = parse_uri(value)
            self._uri_text = value
        else:
            self._uri = value
            self._uri_text = str(value)
        self._raw = self._start = None

    @property
    def raw_uri(self) -> str:
        """The Request-URI exactly as received."""
        return self._uri_text

    def validate(self) -> None:
        # RFC 3261 §19.1.1 Table 1: headers are not allowed in a Request-URI (RFC 4475
        # §3.1.2.11 escruri: reject with 400).
        try:
            uri = self.uri
        except ParseError as exc:
            raise ParseError(f"bad Request-URI: {exc.message}") from None
        if isinstance(uri, SipURI) and uri.headers:
            raise ParseError("headers are not allowed in the Request-URI")
        super().validate()
        method = self._typed("cseq", _cseq).method
        if method != self._method:
            # RFC 3261 §8.1.1.5; RFC 4475 §3.1.2.17 and §3.1.2.18.
            raise HeaderError("CSeq", f"method {method} does not match {self._method}")

    def _start_line(self) -> str:
        return f"{self._method} {self._uri_text} {SIP_VERSION}"

    def copy(self) -> Request:
        new = Request.__new__(Request)
        _copy_into(self, new)
        new._method, new._uri, new._uri_text = self._method, self._uri, self._uri_text
        return new

    def __repr__(self) -> str:
        return f"<Request {self._method} {self._uri_text}>"


class Response(Message):
    """A SIP response: ``Response(status, reason, headers, body)``."""

    __slots__ = ("_reason", "_status")
    _reason: str
    _status: int

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, HeaderValue]] | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(_as_headers(headers), body)
        self.status = status
        self.reason = REASON_PHRASES.get(status, "Unknown") if reason is None else reason

    @property
    def status(self) -> int:
        return self._status

    @status.setter
    def status(self, value: int) -> None:
        if not 100 <= value <= 699:
            raise ValueError(f"status {value} out of range 100-699")
        self._status = value
        self._raw = self._start = None

    @property
    def reason(self) -> str:
        return self._reason

    @reason.setter
    def reason(self, value: str) -> None:
        if _REASON_RE.fullmatch(value) is None:
            raise ValueError("a reason phrase cannot contain control characters")
        self._reason = value
        self._raw = self._start = None

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self._status} {self._reason}"

    def copy(self) -> Response:
        new = Response.__new__(Response)
        _copy_into(self, new)
        new._status, new._reason = self._status, self._reason
        return new

    def __repr__(self) -> str:
        return f"<Response {self._status} {self._reason}>"


def _copy_into(src: Message, dst: Message) -> None:
    dst.headers = src.headers.copy()
    dst._body, dst._raw, dst._start = src._body, src._raw, src._start


# --- parsing --------------------------------------------------------------------------------


def parse_message(data: bytes, *, validate: bool = True) -> Request | Response:
    """Parse one datagram-framed message (RFC 3261 §7, §18.3). Raises :class:`ParseError`.

    Octets past Content-Length are ignored (RFC 4475 §3.1.1.8); without Content-Length the
    body is the rest of the datagram (RFC 3261 §18.3; use :mod:`.framing` on streams, where
    it is mandatory). ``validate=False`` skips :meth:`Message.validate` -- for bodies such as
    message/sipfrag (RFC 3420) that legitimately lack the mandatory headers.
    """
    message = _parse(bytes(data))
    if validate:
        message.validate()
    return message


def _parse(data: bytes) -> Request | Response:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise ParseError("no empty line after the header fields")
    head_bytes = data[:end]
    head = head_bytes.decode("utf-8", "surrogateescape")
    lines = head.split("\r\n")
    crlf = len(lines) - 1
    if head_bytes.count(b"\n") != crlf or head_bytes.count(b"\r") != crlf:
        raise ParseError("bare CR or LF in the header section")  # RFC 3261 §7: lines end in CRLF
    start = lines[0]
    message: Request | Response
    if start[:4].upper() == "SIP/":
        message = _parse_status_line(start)
    else:
        message = _parse_request_line(start)
    if "\r\n " in head or "\r\n\t" in head:
        fields, index = _parse_folded_fields(lines)
    else:
        fields, index = _parse_fields(lines)
    body_start = end + 4
    stop = _body_end(index.get("content-length"), body_start, len(data))
    message.headers = Headers._from_fields(fields, index)
    message._body = data[body_start:stop]
    message._raw = data if stop == len(data) else data[:stop]
    message._start = start
    return message


def _check_version(version: str) -> None:
    if version == SIP_VERSION:
        return
    if _VERSION_RE.fullmatch(version) is None:
        raise ParseError(f"invalid SIP-Version {_snip(version)}")
    if version.upper() != SIP_VERSION:
        # RFC 3261 §8.2.2.1 / §21.5.6; RFC 4475 §3.1.2.16 (badvers).
        raise ParseError(f"unsupported version {_snip(version)}", status=505)


def _parse_request_line(line: str) -> Request:
    # Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP between elements and
    # none at the end (RFC 4475 §3.1.2.8-10: lwsruri, lwsstart, trws; §3.1.2.7: ltgtruri is
    # caught when the URI is parsed).
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ParseError(
            f"Request-Line must be 'Method SP Request-URI SP SIP-Version': {_snip(line)}"
        )
    method, uri_text, version = parts
    if TOKEN_RE.fullmatch(method) is None:
        raise ParseError(f"invalid method {_snip(method)}")
    _check_version(version)
    request = Request.__new__(Request)
    request._method = method
    request._uri = None
    request._uri_text = uri_text
    return request


def _parse_status_line(line: str) -> Response:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")
    _check_version(version)
    if len(code) != 3 or not code.isascii() or not code.isdigit() or code[0] not in "123456":
        # RFC 3261 §7.2: Status-Code is 3DIGIT, 100-699 (RFC 4475 §3.1.2.19: bigcode).
        raise ParseError(f"invalid Status-Code {_snip(code)}")
    if _REASON_RE.fullmatch(reason) is None:
        raise ParseError("control character in the Reason-Phrase")
    response = Response.__new__(Response)
    response._status = int(code)
    response._reason = reason
    return response


# One header line: CRLF, name, HCOLON = *( SP / HTAB ) ":" SWS, value (RFC 3261 §25.1).
# Header names as commonly spelled -> lookup key, sparing a lower() per line.
_KNOWN_KEYS: dict[str, str] = (
    {
        spelled: key
        for key in (
            "via",
            "from",
            "to",
            "call-id",
            "cseq",
            "contact",
            "max-forwards",
            "content-length",
            "content-type",
            "route",
            "record-route",
            "allow",
            "supported",
            "require",
            "user-agent",
            "server",
            "expires",
            "authorization",
            "proxy-authorization",
            "www-authenticate",
            "proxy-authenticate",
            "event",
            "subscription-state",
            "accept",
            "date",
            "session-expires",
            "min-se",
            "p-asserted-identity",
            "refer-to",
            "referred-by",
        )
        for spelled in (key, canonical_name(key))
    }
    | COMPACT_FORMS
    | {letter.upper(): key for letter, key in COMPACT_FORMS.items()}
)


def _parse_fields(lines: list[str]) -> tuple[list[_Field], dict[str, list[_Field]]]:
    """Header lines (no continuation lines among them) -> fields and their index by key."""
    known = _KNOWN_KEYS
    fields: list[_Field] = []
    index: dict[str, list[_Field]] = {}
    for i in range(1, len(lines)):
        line = lines[i]
        name, colon, value = line.partition(":")
        key = known.get(name) if colon else None
        if key is None:
            # HCOLON = *( SP / HTAB ) ":" SWS (RFC 3261 §25.1): "Via  : ..." is valid.
            name = name.rstrip(" \t")
            if not colon or _NAME_RE.fullmatch(name) is None:
                raise ParseError(f"malformed header line {_snip(line)}")
            lname = name.lower()
            key = COMPACT_FORMS.get(lname, lname)
        field = (key, name, value.strip(" \t"), line)
        fields.append(field)
        same = index.get(key)
        if same is None:
            index[key] = [field]
        else:
            same.append(field)
    return fields, index


def _parse_folded_fields(lines: list[str]) -> tuple[list[_Field], dict[str, list[_Field]]]:
    """The same, unfolding continuation lines first (RFC 3261 §7.3.1)."""
    merged: list[str] = [lines[0]]
    folded: dict[int, str] = {}  # merged line index -> the exact original text
    for i in range(1, len(lines)):
        line = lines[i]
        if line[:1] not in (" ", "\t"):
            merged.append(line)
            continue
        if len(merged) == 1:
            raise ParseError("continuation line before the first header field")
        last = len(merged) - 1
        folded[last] = f"{folded.get(last, merged[last])}\r\n{line}"
        merged[last] = _unfold(merged[last], line)
    fields, _ = _parse_fields(merged)
    for at, raw in folded.items():
        key, name, value, _ = fields[at - 1]
        fields[at - 1] = (key, name, value, raw)
    index: dict[str, list[_Field]] = {}
    for field in fields:
        index.setdefault(field[0], []).append(field)
    return fields, index


def _unfold(line: str, continuation: str) -> str:
    # CRLF + leading whitespace is equivalent to one SP (RFC 3261 §7.3.1).
    more = continuation.strip(" \t")
    return f"{line} {more}" if more else line


def _body_end(fields: Sequence[_Field] | None, body_start: int, size: int) -> int:
    if not fields:
        return size  # no Content-Length on a datagram: the body is the rest (RFC 3261 §18.3)
    if len(fields) > 1:
        raise HeaderError("Content-Length", "appears more than once")  # RFC 4475 §3.3.9
    try:
        length = parse_number(fields[0][2], _MAX_CONTENT_LENGTH)
    except ParseError as exc:
        raise HeaderError("Content-Length", exc.message) from None  # RFC 4475 §3.1.2.3
    if body_start + length > size:
        # RFC 3261 §18.3 / RFC 4475 §3.1.2.2 (clerr): a datagram shorter than announced.
        raise HeaderError("Content-Length", f"{length} but only {size - body_start} body octets")
    return body_start + length


# --- responses ------------------------------------------------------------------------------


def make_response(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """A response to ``request`` (RFC 3261 §8.2.6): Via (all values, in order), From, To,
    Call-ID and CSeq copied, ``to_tag`` added to To when it has none (§8.2.6.2: the caller
    decides -- never on 100 Trying, always on other responses of a UAS), Timestamp copied
    into a 100 (§8.2.6.1), and ``Content-Length: 0``."""
    src = request.headers
    items: list[tuple[str, HeaderValue]] = [("Via", v) for v in src.get_all("via")]
    to = src.get("to")
    if to is not None and to_tag is not None and request.to.tag is None:
        if TOKEN_RE.fullmatch(to_tag) is None:
            raise ValueError(f"invalid tag {to_tag!r}")
        to = f"{to};tag={to_tag}"
    for name, value in (
        ("From", src.get("from")),
        ("To", to),
        ("Call-ID", src.get("call-id")),
        ("CSeq", src.get("cseq")),
    ):
        if value is None:
            raise ValueError(f"request has no {name} header")
        items.append((name, value))
    timestamp = src.get("timestamp")
    if status == 100 and timestamp is not None:
        items.append(("Timestamp", timestamp))
    items.append(("Content-Length", "0"))
    return Response(status, reason, Headers(items))


def bad_request_response(
    data: bytes, error: ParseError | None = None, *, to_tag: str | None = None
) -> bytes | None:
    """The error response owed to an unparseable request, or ``None`` to drop it silently.

    ``error`` is the ParseError raised for ``data`` (parsed again when omitted; ``None`` is
    returned when ``data`` is in fact valid). Responses, ACKs and requests whose Via, From,
    To, Call-ID and CSeq cannot be recovered get no answer (RFC 4475 §3.3.1; RFC 3261
    §17.2.1 for ACK). The status is the error's (400, 505, 513) and the reason phrase names
    the problem (RFC 3261 §21.4.1). Header values are copied as received.
    """
    if error is None:
        try:
            parse_message(data)
        except ParseError as exc:
            error = exc
        else:
            return None
    recovered = _recover_headers(bytes(data))
    if recovered is None:
        return None
    vias, single = recovered
    to = single["to"]
    if to_tag is not None and TOKEN_RE.fullmatch(to_tag) and _tag_missing(to):
        to = f"{to};tag={to_tag}"
    lines = [f"{SIP_VERSION} {error.status} {error.reason_phrase}"]
    lines += [f"Via: {v}" for v in vias]
    lines += [f"From: {single['from']}", f"To: {to}", f"Call-ID: {single['call-id']}"]
    lines += [f"CSeq: {single['cseq']}", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def _tag_missing(to: str) -> bool:
    try:
        return parse_name_addr(to).tag is None
    except ParseError:
        return False  # leave a To we cannot read alone


def _recover_headers(data: bytes) -> tuple[list[str], dict[str, str]] | None:
    """Leniently pick Via/From/To/Call-ID/CSeq out of a request that failed to parse."""
    end = data.find(b"\r\n\r\n")
    lines = (data if end < 0 else data[:end]).decode("utf-8", "surrogateescape").split("\r\n")
    method = lines[0].split(" ", 1)[0]
    if lines[0][:4].upper() == "SIP/" or method == "ACK" or TOKEN_RE.fullmatch(method) is None:
        return None
    vias: list[str] = []
    single: dict[str, str] = {}
    for name, value in _lenient_fields(lines[1:]):
        if any(c in value for c in "\r\n\x00"):
            return None  # never echo what could split or truncate our own header lines
        key = COMPACT_FORMS.get(name.lower(), name.lower())
        if key == "via":
            vias.append(value)
        elif key in ("from", "to", "call-id", "cseq"):
            single.setdefault(key, value)
    if not vias or len(single) != 4:
        return None
    return vias, single


def _lenient_fields(lines: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:
            name, value = out[-1]
            more = line.strip(" \t")
            out[-1] = (name, f"{value} {more}" if value else more)
            continue
        name, colon, value = line.partition(":")
        if colon and _NAME_RE.fullmatch(name.rstrip(" \t")):
            out.append((name.rstrip(" \t"), value.strip(" \t")))
    return out
