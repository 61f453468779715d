"""Header fields: the ordered, lossless :class:`Headers` list and typed value parsers.

RFC 3261 §7.3 (header fields, folding, lists), §7.3.3 (compact forms), §20 (the headers),
§25.1 (ABNF).

:class:`Headers` keeps every header line in order, unknown ones included, with the exact text
it was received with: an unchanged field is written back byte for byte, a changed one is
re-rendered canonically (``Full-Name: value``). Lookups are case-insensitive and accept compact
forms (``v`` = ``Via``). Typed parsing is lazy and cached per header name (``cached``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TypeAlias, TypeVar, cast, overload

from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.uri import (
    STAR,
    AbsoluteURI,
    NameAddr,
    SipURI,
    Star,
    TelURI,
    Via,
    parse_name_addr,
    parse_via,
)

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "CSeq",
    "HeaderValue",
    "Headers",
    "canonical_name",
    "header_key",
    "parse_call_id",
    "parse_contact_list",
    "parse_cseq",
    "parse_date",
    "parse_name_addr_list",
    "parse_number",
    "parse_via_list",
    "split_list",
]

T = TypeVar("T")

# RFC 3261 §7.3.3 and the extensions that registered one (IANA "Header Fields" registry).
COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",  # RFC 3841
    "b": "referred-by",  # RFC 3892
    "c": "content-type",
    "d": "request-disposition",  # RFC 3841
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",  # RFC 3841
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",  # RFC 4474
    "o": "event",  # RFC 6665
    "r": "refer-to",  # RFC 3515
    "s": "subject",
    "t": "to",
    "u": "allow-events",  # RFC 6665
    "v": "via",
    "x": "session-expires",  # RFC 4028
    "y": "identity",  # RFC 8224
}

_CANONICAL: dict[str, str] = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
    "p-asserted-identity": "P-Asserted-Identity",
    "p-preferred-identity": "P-Preferred-Identity",
    "identity-info": "Identity-Info",
}

# Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1): only these are split.
# Unknown headers, the authentication headers (their parameters contain commas), Date,
# Retry-After, Subject... are never split.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "require",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")  # header names are tokens (RFC 3261 §25.1)
_LIST_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|<[^>]*>?|,', re.DOTALL)


def header_key(name: str) -> str:
    """The lookup key of a header name: lower-case full name (compact forms expanded)."""
    lname = name.lower()
    return COMPACT_FORMS.get(lname, lname)


def canonical_name(name: str) -> str:
    """``Call-ID``, ``CSeq``, ``WWW-Authenticate``, ``Via`` (compact forms expanded)."""
    key = header_key(name)
    known = _CANONICAL.get(key)
    if known is not None:
        return known
    return "-".join(part[:1].upper() + part[1:] for part in key.split("-"))


def split_list(value: str) -> list[str]:
    """Split a list header value on commas outside quoted strings and ``<...>``.

    Elements are stripped; empty elements are kept (as ``""``) so that typed parsers can
    reject them (RFC 4475 §3.1.2.1).
    """
    if "," not in value:
        return [value.strip(" \t")]
    out = []
    start = 0
    for m in _LIST_TOKENS.finditer(value):
        if m.group() == ",":
            out.append(value[start : m.start()].strip(" \t"))
            start = m.end()
    out.append(value[start:].strip(" \t"))
    return out


# One header field: (key, name as received, unfolded value, exact text or None once edited).
# Plain tuples: the parser builds one per line, so they must be cheap (bench/sip_parse.py).
_Field: TypeAlias = tuple[str, str, str, str | None]


def _field_text(field: _Field) -> str:
    _, name, value, raw = field
    return raw if raw is not None else f"{canonical_name(name)}: {value}"


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16)."""

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


_NO_FIELDS: tuple[_Field, ...] = ()

HeaderValue = str | int | NameAddr | Via | SipURI | TelURI | AbsoluteURI | CSeq
_MISSING = object()


def _new_field(name: str, value: HeaderValue) -> _Field:
    if _NAME_RE.fullmatch(name) is None:
        raise ValueError(f"invalid header name {name!r}")
    text = str(value).strip(" \t")
    if "\r" in text or "\n" in text:
        raise ValueError(f"header {name} value contains CR or LF")
    return header_key(name), name, text, None


class Headers:
    """Ordered header fields of one message (see the module docstring)."""

    __slots__ = ("_cache", "_fields", "_index", "_modified")

    def __init__(self, items: Iterable[tuple[str, HeaderValue]] = ()) -> None:
        self._fields: list[_Field] = []
        self._index: dict[str, list[_Field]] | None = None
        self._cache: dict[str, object] = {}
        self._modified = False
        for name, value in items:
            self.add(name, value)
        self._modified = False

    @classmethod
    def _from_fields(cls, fields: list[_Field], index: dict[str, list[_Field]] | None) -> Headers:
        self = cls.__new__(cls)
        self._fields = fields
        self._index = index
        self._cache = {}
        self._modified = False
        return self

    # --- reading ----------------------------------------------------------------------------

    def _lookup(self, key: str) -> Sequence[_Field]:
        """The fields whose lookup key is ``key`` (already lower-case, compact expanded)."""
        index = self._index
        if index is None:
            index = {}
            for field in self._fields:
                index.setdefault(field[0], []).append(field)
            self._index = index
        return index.get(key, _NO_FIELDS)

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The (unfolded) value of the first field called ``name``."""
        fields = self._lookup(header_key(name))
        return fields[0][2] if fields else default

    def get_all(self, name: str) -> list[str]:
        """The values of every field called ``name``, in order, not split on commas."""
        return [f[2] for f in self._lookup(header_key(name))]

    def values(self, name: str) -> list[str]:
        """All list elements of ``name`` across its fields: comma-split for list headers
        (:data:`LIST_HEADERS`), one element per field for the others."""
        key = header_key(name)
        fields = self._lookup(key)
        if key not in LIST_HEADERS:
            return [f[2] for f in fields]
        out: list[str] = []
        for field in fields:
            out += split_list(field[2])
        return out

    def count(self, name: str) -> int:
        return len(self._lookup(header_key(name)))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._lookup(header_key(name)))

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """``(name, value)`` pairs in order; names as received (compact forms kept)."""
        return ((f[1], f[2]) for f in self._fields)

    def items(self) -> list[tuple[str, str]]:
        return [(f[1], f[2]) for f in self._fields]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"

    @property
    def modified(self) -> bool:
        """True once any field was added, removed or changed since parsing."""
        return self._modified

    def cached(self, name: str, parse: Callable[[Headers], T]) -> T:
        """``parse(self)``, memoised until a field called ``name`` changes."""
        key = header_key(name)
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            value = parse(self)
            self._cache[key] = value
        return cast(T, value)

    # --- writing ----------------------------------------------------------------------------

    def _changed(self, key: str) -> None:
        self._index = None
        self._cache.pop(key, None)
        self._modified = True

    def _position(self, key: str, default: int) -> int:
        return next((i for i, f in enumerate(self._fields) if f[0] == key), default)

    def add(self, name: str, value: HeaderValue) -> None:
        """Append a field (after any existing ones)."""
        field = _new_field(name, value)
        self._fields.append(field)
        self._changed(field[0])

    def prepend(self, name: str, value: HeaderValue) -> None:
        """Insert a field before the first field of the same name (or at the top): the
        place of a new Via or Record-Route value (RFC 3261 §16.6 steps 4 and 8)."""
        field = _new_field(name, value)
        self._fields.insert(self._position(field[0], 0), field)
        self._changed(field[0])

    def set(self, name: str, value: HeaderValue) -> None:
        """Replace every field called ``name`` by one field, where the first one was."""
        field = _new_field(name, value)
        key = field[0]
        at = self._position(key, len(self._fields))
        self._fields = [f for f in self._fields if f[0] != key]
        self._fields.insert(at, field)
        self._changed(key)

    def remove(self, name: str) -> int:
        """Remove every field called ``name``; returns how many were removed."""
        key = header_key(name)
        before = len(self._fields)
        self._fields = [f for f in self._fields if f[0] != key]
        removed = before - len(self._fields)
        if removed:
            self._changed(key)
        return removed

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first list element of ``name`` -- the top Via of a response
        (RFC 3261 §16.7 step 3) or the top Route (§16.4) -- keeping the other elements."""
        key = header_key(name)
        at = self._position(key, -1)
        if at < 0:
            return None
        _, field_name, value, _ = self._fields[at]
        elements = split_list(value) if key in LIST_HEADERS else [value]
        if len(elements) > 1:
            self._fields[at] = (key, field_name, ", ".join(elements[1:]), None)
        else:
            del self._fields[at]
        self._changed(key)
        return elements[0]

    def replace_first(self, name: str, value: HeaderValue) -> None:
        """Replace the first list element of ``name`` (e.g. add ``received`` to the top Via)."""
        self.pop_first(name)
        self.prepend(name, value)

    def copy(self) -> Headers:
        """An independent copy (fields are immutable tuples, so they are shared)."""
        new = Headers._from_fields(list(self._fields), None)
        new._modified = self._modified
        return new

    def render(self, body_length: int | None = None) -> list[str]:
        """The header lines, in order, without their CRLF.

        With ``body_length``, exactly one Content-Length line carrying it is written (the
        existing line is kept verbatim when it already says so, else re-rendered; one is
        appended when absent): a serialized message always frames correctly (RFC 3261 §18.3).
        """
        if body_length is None:
            return [_field_text(f) for f in self._fields]
        out = []
        length = str(body_length)
        seen = False
        for field in self._fields:
            if field[0] != "content-length":
                out.append(_field_text(field))
            elif not seen:
                seen = True
                raw = field[3]
                same = raw is not None and field[2] == length
                out.append(raw if same and raw is not None else f"Content-Length: {length}")
        if not seen:
            out.append(f"Content-Length: {length}")
        return out


# --- typed values ---------------------------------------------------------------------------


_CSEQ_RE = re.compile(r"([0-9]{1,10})[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)")
# callid = word [ "@" word ] (RFC 3261 §25.1)
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(f"{_WORD}(?:@{_WORD})?")
_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_cseq(value: str) -> CSeq:
    """RFC 3261 §8.1.1.5: the sequence number is a 32-bit unsigned integer (RFC 4475
    §3.1.2.4 rejects larger ones). Short values are memoised: they recur in transactions."""
    return _parse_cseq_memo(value) if len(value) <= 64 else _parse_cseq(value)


def _parse_cseq(value: str) -> CSeq:
    m = _CSEQ_RE.fullmatch(value.strip(" \t"))
    if m is None:
        raise ParseError("expected '<number> <method>'")
    number = int(m.group(1))
    if number > 2**32 - 1:
        raise ParseError(f"sequence number {number} exceeds 2**32-1")
    return CSeq(number, m.group(2))


_parse_cseq_memo = lru_cache(maxsize=1024)(_parse_cseq)


def parse_call_id(value: str) -> str:
    text = value.strip(" \t")
    if _CALL_ID_RE.fullmatch(text) is None:
        raise ParseError("expected word [@ word]")
    return text


def parse_number(value: str, maximum: int) -> int:
    """A decimal header value such as Max-Forwards or Content-Length, in ``0..maximum``."""
    text = value.strip(" \t")
    if not 0 < len(text) <= 10 or not text.isascii() or not text.isdigit():
        raise ParseError(f"expected a decimal number, got {text[:20]!r}")
    number = int(text)
    if number > maximum:
        raise ParseError(f"{number} exceeds {maximum}")
    return number


def parse_date(value: str) -> datetime:
    """rfc1123-date, which RFC 3261 §20.17 restricts to GMT (RFC 4475 §3.1.2.12)."""
    m = _DATE_RE.fullmatch(value.strip(" \t"))
    if m is None:
        raise ParseError("expected 'Wkd, DD Mon YYYY HH:MM:SS GMT'")
    _, day, month, year, hour, minute, second = m.groups()
    try:
        return datetime(
            int(year),
            _MONTHS.index(month) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise ParseError(f"impossible date: {exc}") from None


def parse_via_list(values: list[str]) -> list[Via]:
    return [parse_via(_non_empty(v)) for v in values]


def parse_name_addr_list(values: list[str], *, angle_brackets: bool = False) -> list[NameAddr]:
    """Parse list elements as name-addr/addr-spec; ``angle_brackets`` requires name-addr
    (Route and Record-Route, RFC 3261 §20.30 and §20.34)."""
    out = []
    for value in values:
        text = _non_empty(value)
        if angle_brackets and not _is_name_addr(text):
            raise ParseError("route values must be in <...>")
        out.append(parse_name_addr(text))
    return out


def parse_contact_list(values: list[str]) -> list[NameAddr] | Star:
    """Contact values, or :data:`STAR` for ``Contact: *`` which must stand alone
    (RFC 3261 §10.2.2, §20.10)."""
    if any(v.strip(" \t") == "*" for v in values):
        if len(values) != 1:
            raise ParseError("'*' must be the only Contact value")
        return STAR
    return parse_name_addr_list(values)


def _is_name_addr(text: str) -> bool:
    s = text.lstrip(" \t")
    lt, semi = s.find("<"), s.find(";")
    return s.startswith('"') or (lt >= 0 and (semi < 0 or lt < semi))


def _non_empty(value: str) -> str:
    if not value.strip(" \t"):
        raise ParseError("empty list element")
    return value
