"""URIs, name-addr values and Via values.

RFC 3261 §19.1 (SIP and SIPS URIs), §20.10 / §20.20 / §20.39 (name-addr and addr-spec in
Contact, From, To), §20.42 (Via), §25.1 (the ABNF); RFC 3966 (tel URIs); RFC 5118 (IPv6
references); RFC 3581 (rport).

All values are frozen, slotted dataclasses. ``parse_*`` functions raise :class:`ParseError`
(the peer's fault); ``str()`` renders the canonical form, re-escaping what must be escaped.
Structural ``==`` compares fields as stored; it is not the URI equivalence of RFC 3261 §19.1.4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum
from functools import lru_cache
from typing import ClassVar, TypeAlias
from urllib.parse import quote, unquote

from cloudpbx.sip.errors import ParseError

__all__ = [
    "STAR",
    "URI",
    "AbsoluteURI",
    "NameAddr",
    "Params",
    "SipURI",
    "Star",
    "TelURI",
    "Via",
    "parse_name_addr",
    "parse_params",
    "parse_uri",
    "parse_via",
    "quote_string",
    "unquote_string",
]

Params: TypeAlias = tuple[tuple[str, str | None], ...]
"""Ordered ``(name, value)`` pairs; ``value`` is ``None`` for a parameter without ``=``."""

# --- RFC 3261 §25.1 character classes -------------------------------------------------------

_TOKEN_CLASS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN_RE = re.compile(f"[{_TOKEN_CLASS}]+")
_USER_CHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+")  # unreserved / user-unreserved
_PASSWORD_CHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,%]*")
_PARAM_CHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+")  # paramchar
_HNAME_CHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/?:+$%]+")  # hnv-unreserved / unreserved
_HVALUE_CHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/?:+$%]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_OPAQUE = re.compile(r"[A-Za-z0-9\-_.!~*'();/?:@&=+$,%\[\]]+")  # uric (+ [] for IPv6 hosts)
# hostname: lenient on "_" (common in the wild); IPv6 reference per RFC 5118 (the 3-colon form
# of RFC 5118 §4.9 is accepted: we do not validate the address beyond its characters).
_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9\-_.]*")
_IPV6_REF = re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]")
_HOSTPORT = re.compile(r"(\[[^\]]*\]|[^:;?\[\]]*)(?::([^;?]*))?")
_TEL_GLOBAL = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")  # RFC 3966 §3 global-number-digits
_TEL_LOCAL = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")

# Characters kept unescaped on output, beyond alphanumerics and "_.-~" (RFC 3261 §25.1).
_USER_SAFE = "!*'()&=+$,;?/"
_PASSWORD_SAFE = "!*'()&=+$,"
_PARAM_SAFE = "!*'()[]/:&+$"
_HEADER_SAFE = "!*'()[]/?:+$"

# quoted-string (RFC 3261 §25.1): qdtext or quoted-pair; CR and LF never appear inside.
_QSTRING = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
_QUOTED_RE = re.compile(_QSTRING)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string, with
# SEMI and EQUAL allowing surrounding whitespace (SWS, RFC 3261 §25.1).
_PARAM_RE = re.compile(
    rf"[ \t]*;[ \t]*([{_TOKEN_CLASS}]+)(?:[ \t]*=[ \t]*({_QSTRING}|[{_TOKEN_CLASS}:\[\]]+))?[ \t]*"
)
_PARAMS_FAST = re.compile(rf"(?:;[{_TOKEN_CLASS}]+(?:=[{_TOKEN_CLASS}:\[\]]+)?)+")
_DISPLAY_TOKENS = re.compile(rf"[{_TOKEN_CLASS}]+(?:[ \t]+[{_TOKEN_CLASS}]+)*")
# sent-protocol LWS sent-by (RFC 3261 §20.42); SLASH and COLON allow whitespace around them.
_VIA_RE = re.compile(
    rf"([{_TOKEN_CLASS}]+)[ \t]*/[ \t]*([{_TOKEN_CLASS}]+)[ \t]*/[ \t]*([{_TOKEN_CLASS}]+)[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)(?:[ \t]*:[ \t]*([0-9]+))?"
)
# Fast paths for the shapes nearly every message uses; anything else takes the general path.
_URI_PARAM = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]+"
_SIP_FAST = re.compile(
    r"(?:([A-Za-z0-9\-_.!~*'()&=+$,;?/]+)@)?"
    r"([A-Za-z0-9_][A-Za-z0-9\-_.]*|\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\])"
    rf"(?::([0-9]{{1,5}}))?((?:;{_URI_PARAM}(?:={_URI_PARAM})?)*)"
)
_NAME_ADDR_FAST = re.compile(
    rf'(?:"([^"\\\x00-\x1f\x7f]*)"[ \t]*|([{_TOKEN_CLASS}]+(?:[ \t]+[{_TOKEN_CLASS}]+)*)[ \t]*)?'
    r'<([^<>"\s]*)>'
)
_VIA_FAST = re.compile(
    r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9\-_.]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
    rf"((?:;[{_TOKEN_CLASS}]+(?:=[{_TOKEN_CLASS}:\[\]]+)?)*)"
)
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_MAX_DELTA = 2**32 - 1


def _snip(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _unescape(text: str, what: str) -> str:
    if "%" not in text:
        return text
    if _BAD_ESCAPE.search(text):
        raise ParseError(f"invalid %-escape in {what} {_snip(text)}")
    return unquote(text, errors="surrogateescape")


def _escape(text: str, safe: str) -> str:
    return quote(text, safe=safe, errors="surrogateescape")


def _param_value(params: Params, name: str) -> str | None:
    lname = name.lower()
    for key, value in params:
        if key.lower() == lname:
            return value
    return None


def _has_param(params: Params, name: str) -> bool:
    lname = name.lower()
    return any(key.lower() == lname for key, _ in params)


def _set_param(params: Params, name: str, value: str | None) -> Params:
    lname = name.lower()
    kept = tuple(p for p in params if p[0].lower() != lname)
    if len(kept) == len(params):
        return (*params, (name, value))
    out: list[tuple[str, str | None]] = []
    done = False
    for key, old in params:
        if key.lower() != lname:
            out.append((key, old))
        elif not done:
            out.append((name, value))
            done = True
    return tuple(out)


def _drop_param(params: Params, name: str) -> Params:
    lname = name.lower()
    return tuple(p for p in params if p[0].lower() != lname)


def _check_port(text: str) -> int:
    if not 0 < len(text) <= 5 or not text.isascii() or not text.isdigit():
        raise ParseError(f"invalid port {_snip(text)}")
    port = int(text)
    if port > 65535:
        raise ParseError(f"port {port} out of range")
    return port


def _check_host(host: str) -> str:
    if host.startswith("["):
        if _IPV6_REF.fullmatch(host) is None:
            raise ParseError(f"invalid IPv6 reference {_snip(host)}")
    elif _HOSTNAME.fullmatch(host) is None:
        raise ParseError(f"invalid host {_snip(host)}")
    return host


def _render_params(params: Params, safe: str | None) -> str:
    """``;name=value`` pairs; ``safe`` escapes URI parameters, ``None`` keeps header params."""
    out = []
    for name, value in params:
        if safe is not None:
            name = _escape(name, safe)
            value = None if value is None else _escape(value, safe)
        out.append(f";{name}" if value is None else f";{name}={value}")
    return "".join(out)


# --- quoted strings -------------------------------------------------------------------------


def quote_string(text: str) -> str:
    """Render ``text`` as a quoted-string (RFC 3261 §25.1), escaping ``"``, ``\\`` and CTLs."""
    if "\r" in text or "\n" in text:
        raise ValueError("a quoted string cannot contain CR or LF")
    out = []
    for char in text:
        if char in '"\\' or (char < " " and char != "\t") or char == "\x7f":
            out.append("\\")
        out.append(char)
    return '"' + "".join(out) + '"'


def unquote_string(text: str) -> str:
    """The content of a quoted-string with quoted-pairs resolved; other text is returned as is."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        return _QUOTED_PAIR.sub(r"\1", inner) if "\\" in inner else inner
    return text


# --- URIs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SipURI:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 §19.1.1). ``user``/``password``/parameter names
    and values and header names and values are stored unescaped; ``host`` keeps the brackets of
    an IPv6 reference (RFC 5118)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    scheme: str = "sip"

    def __post_init__(self) -> None:
        if self.scheme not in ("sip", "sips"):
            raise ValueError(f"SipURI scheme must be 'sip' or 'sips', not {self.scheme!r}")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} out of range")
        if not self.host:
            raise ValueError("SipURI needs a host")

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def transport(self) -> str | None:
        return _param_value(self.params, "transport")

    @property
    def maddr(self) -> str | None:
        return _param_value(self.params, "maddr")

    @property
    def user_param(self) -> str | None:
        return _param_value(self.params, "user")

    @property
    def lr(self) -> bool:
        """Loose routing flag (RFC 3261 §19.1.1, §16.12)."""
        return _has_param(self.params, "lr")

    def param(self, name: str) -> str | None:
        return _param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> SipURI:
        return replace(self, params=_set_param(self.params, name, value))

    def without_param(self, name: str) -> SipURI:
        return replace(self, params=_drop_param(self.params, name))

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                parts += [":", _escape(self.password, _PASSWORD_SAFE)]
            parts.append("@")
        parts.append(self.host_port)
        parts.append(_render_params(self.params, _PARAM_SAFE))
        if self.headers:
            rendered = (
                f"{_escape(n, _HEADER_SAFE)}={_escape(v, _HEADER_SAFE)}" for n, v in self.headers
            )
            parts += ["?", "&".join(rendered)]
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class TelURI:
    """A ``tel:`` URI (RFC 3966): the number as written (visual separators kept) and params."""

    number: str
    params: Params = ()
    scheme: ClassVar[str] = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return "".join(c for c in self.number if c not in "-.()")

    @property
    def phone_context(self) -> str | None:
        return _param_value(self.params, "phone-context")

    def param(self, name: str) -> str | None:
        return _param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def __str__(self) -> str:
        return f"tel:{self.number}{_render_params(self.params, _PARAM_SAFE)}"


@dataclass(frozen=True, slots=True)
class AbsoluteURI:
    """Any other URI (RFC 3261 §25.1 absoluteURI), kept opaque: ``isbn:``, ``http:``..."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"


URI: TypeAlias = SipURI | TelURI | AbsoluteURI


# Parsed values are immutable, so identical texts can share them: a bounded memo of short
# texts makes the URIs, Contacts, From/To and Vias that recur within dialogs, transactions
# and devices nearly free to parse (bench/sip_parse.py). Long texts bypass it, which bounds
# its memory; errors are not memoised.
_MEMO_MAX_LEN = 256
_MEMO_SIZE = 2048


def parse_uri(text: str) -> URI:
    """Parse a SIP, SIPS, tel or other absolute URI. Raises :class:`ParseError`."""
    return _parse_uri_memo(text) if len(text) <= _MEMO_MAX_LEN else _parse_uri(text)


def _parse_uri(text: str) -> URI:
    colon = text.find(":")
    if colon <= 0:
        raise ParseError(f"not a URI: {_snip(text)}")
    scheme = text[:colon].lower()
    rest = text[colon + 1 :]
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        return _parse_tel(rest)
    if _SCHEME.fullmatch(scheme) is None:
        raise ParseError(f"invalid URI scheme in {_snip(text)}")
    if _OPAQUE.fullmatch(rest) is None:
        raise ParseError(f"invalid characters in URI {_snip(text)}")
    return AbsoluteURI(scheme, rest)


_parse_uri_memo = lru_cache(maxsize=_MEMO_SIZE)(_parse_uri)


def _parse_sip(scheme: str, rest: str) -> SipURI:
    m = _SIP_FAST.fullmatch(rest)
    if m is not None and "%" not in rest:
        user, host, port, params = m.groups()
        if port is None or int(port) <= 65535:
            return SipURI(
                host,
                user,
                None,
                None if port is None else int(port),
                _split_params(params[1:]) if params else (),
                (),
                scheme,
            )
    return _parse_sip_general(scheme, rest)


def _parse_sip_general(scheme: str, rest: str) -> SipURI:
    # userinfo cannot contain an unescaped "@", nor can parameters or headers (RFC 3261 §25.1),
    # so the first "@" ends the userinfo; "sip:user;par=u%40example.net@example.com" is a user
    # with a ";" in it (RFC 4475 §3.1.1.9).
    user = password = None
    at = rest.find("@")
    if at >= 0:
        user, colon, pw = rest[:at].partition(":")
        if _USER_CHARS.fullmatch(user) is None:
            raise ParseError(f"invalid user part {_snip(user)}")
        user = _unescape(user, "user part")
        if colon:
            if _PASSWORD_CHARS.fullmatch(pw) is None:
                raise ParseError("invalid password in URI")
            password = _unescape(pw, "password")
        rest = rest[at + 1 :]
    m = _HOSTPORT.match(rest)
    assert m is not None  # every group is optional
    host = _check_host(m.group(1))
    port = None if m.group(2) is None else _check_port(m.group(2))
    tail = rest[m.end() :]
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    if tail and tail[0] not in ";?":
        raise ParseError(f"unexpected {_snip(tail)} after the host")
    if tail:
        query = tail.find("?")
        if query >= 0:
            headers = _parse_uri_headers(tail[query + 1 :])
            tail = tail[:query]
        if tail:
            params = _parse_uri_params(tail[1:])
    return SipURI(host, user, password, port, params, headers, scheme)


def _parse_uri_params(text: str) -> Params:
    """uri-parameters without the leading ";" (RFC 3261 §19.1.1); names/values unescaped."""
    out: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if _PARAM_CHARS.fullmatch(name) is None or (eq and _PARAM_CHARS.fullmatch(value) is None):
            raise ParseError(f"invalid URI parameter {_snip(item)}")
        out.append(
            (_unescape(name, "URI parameter"), _unescape(value, "URI parameter") if eq else None)
        )
    return tuple(out)


def _parse_uri_headers(text: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if not eq or _HNAME_CHARS.fullmatch(name) is None or _HVALUE_CHARS.fullmatch(value) is None:
            raise ParseError(f"invalid URI header {_snip(item)}")
        out.append((_unescape(name, "URI header"), _unescape(value, "URI header")))
    return tuple(out)


def _parse_tel(rest: str) -> TelURI:
    number, semi, params = rest.partition(";")
    pattern = _TEL_GLOBAL if number.startswith("+") else _TEL_LOCAL
    if pattern.fullmatch(number) is None:
        raise ParseError(f"invalid telephone number {_snip(number)}")
    return TelURI(number, _parse_uri_params(params) if semi else ())


# --- name-addr / addr-spec with header parameters --------------------------------------------


class Star(Enum):
    """The ``Contact: *`` wildcard of a REGISTER that removes all bindings (RFC 3261 §10.2.2)."""

    STAR = "*"

    def __str__(self) -> str:
        return "*"


STAR = Star.STAR


def parse_params(text: str, pos: int = 0) -> Params:
    """``*( SEMI generic-param )`` from ``pos`` to the end of ``text`` (RFC 3261 §25.1).

    Values are kept as written (a quoted-string keeps its quotes; see :func:`unquote_string`).
    An empty parameter (``;;``) or a dangling ``=`` is an error (RFC 4475 §3.1.2.1).
    """
    end = len(text)
    if pos >= end:
        return ()
    if _PARAMS_FAST.fullmatch(text, pos) is not None:  # no whitespace, no quotes: split
        return _split_params(text[pos + 1 :])
    out: list[tuple[str, str | None]] = []
    while pos < end:
        m = _PARAM_RE.match(text, pos)
        if m is None:
            raise ParseError(f"malformed parameter near {_snip(text[pos:])}")
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    return tuple(out)


def _split_params(text: str) -> Params:
    """``a=b;c`` (already validated, without the leading ``;``) -> pairs."""
    out = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        out.append((name, value if eq else None))
    return tuple(out)


def _q_value(text: str | None) -> float | None:
    if text is None:
        return None
    if _QVALUE.fullmatch(text) is None:
        raise ParseError(f"invalid q value {_snip(text)}")
    return float(text)


def _delta_seconds(text: str | None, what: str) -> int | None:
    if text is None:
        return None
    if not 0 < len(text) <= 10 or not text.isascii() or not text.isdigit():
        raise ParseError(f"invalid {what} {_snip(text)}")
    value = int(text)
    if value > _MAX_DELTA:
        raise ParseError(f"{what} {text} exceeds 2**32-1")
    return value


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``[display-name] <URI> *(;param)`` (RFC 3261 §20.10, §20.20, §20.39).

    Used for From, To, Contact, Route, Record-Route and the like. Header parameters keep
    their values as written (quoted strings keep their quotes).
    """

    uri: URI
    display_name: str | None = None
    params: Params = ()

    @property
    def tag(self) -> str | None:
        return _param_value(self.params, "tag")

    @property
    def expires(self) -> int | None:
        """The ``expires`` contact parameter (RFC 3261 §20.10); ParseError when malformed."""
        return _delta_seconds(_param_value(self.params, "expires"), "expires parameter")

    @property
    def q(self) -> float | None:
        """The ``q`` contact parameter (RFC 3261 §20.10); ParseError when malformed."""
        return _q_value(_param_value(self.params, "q"))

    def param(self, name: str) -> str | None:
        return _param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> NameAddr:
        return replace(self, params=_set_param(self.params, name, value))

    def without_param(self, name: str) -> NameAddr:
        return replace(self, params=_drop_param(self.params, name))

    def with_tag(self, tag: str) -> NameAddr:
        return self.with_param("tag", tag)

    def __str__(self) -> str:
        # Always name-addr form: valid whatever the URI contains (RFC 3261 §20.10).
        shown = "" if self.display_name is None else quote_string(self.display_name) + " "
        return f"{shown}<{self.uri}>{_render_params(self.params, None)}"


def parse_name_addr(text: str) -> NameAddr:
    """Parse ``name-addr / addr-spec`` followed by header parameters.

    In addr-spec form (no ``<>``) the URI ends at the first ``;`` -- what follows are header
    parameters -- and the URI must not contain ``,``, ``?`` or ``;`` (RFC 3261 §20.10), which
    rejects RFC 4475 §3.1.2.13 (regbadct). Whitespace inside ``<>`` is an error (§3.1.2.14),
    as is an unquoted display name with non-token characters (§3.1.2.15).
    """
    return _parse_name_addr_memo(text) if len(text) <= _MEMO_MAX_LEN else _parse_name_addr(text)


def _parse_name_addr(text: str) -> NameAddr:
    s = text.strip(" \t")
    m = _NAME_ADDR_FAST.match(s)
    if m is not None:
        quoted, tokens, uri = m.groups()
        display = quoted if quoted is not None else tokens
        return NameAddr(parse_uri(uri), display, parse_params(s, m.end()))
    return _parse_name_addr_general(s)


_parse_name_addr_memo = lru_cache(maxsize=_MEMO_SIZE)(_parse_name_addr)


def _parse_name_addr_general(s: str) -> NameAddr:
    if not s:
        raise ParseError("empty name-addr")
    display: str | None = None
    if s[0] == '"':
        m = _QUOTED_RE.match(s)
        if m is None:
            raise ParseError("unterminated quoted display name")
        display = unquote_string(m.group())
        lt = m.end()
        while lt < len(s) and s[lt] in " \t":
            lt += 1
        if lt >= len(s) or s[lt] != "<":
            raise ParseError("expected '<' after the display name")
    else:
        lt = s.find("<")
        if lt < 0:
            return _parse_addr_spec(s)
        if lt:
            words = s[:lt].rstrip(" \t")
            if _DISPLAY_TOKENS.fullmatch(words) is None:
                raise ParseError(f"display name {_snip(words)} must be tokens or quoted")
            display = words
    gt = s.find(">", lt + 1)
    if gt < 0:
        raise ParseError("missing '>' after the URI")
    return NameAddr(parse_uri(s[lt + 1 : gt]), display, parse_params(s, gt + 1))


def _parse_addr_spec(s: str) -> NameAddr:
    semi = s.find(";")
    uri_text = (s if semi < 0 else s[:semi]).rstrip(" \t")
    if "," in uri_text or "?" in uri_text:
        raise ParseError(f"URI {_snip(uri_text)} with ',' or '?' must be enclosed in <>")
    params = () if semi < 0 else parse_params(s, semi)
    return NameAddr(parse_uri(uri_text), None, params)


# --- Via --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...`` (RFC 3261 §20.42, RFC 3581).

    ``transport`` is kept as written (compare with ``.upper()``); ``host`` keeps IPv6 brackets.
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP"
    version: str = "2.0"

    @property
    def branch(self) -> str | None:
        return _param_value(self.params, "branch")

    @property
    def received(self) -> str | None:
        """The ``received`` address; RFC 5118 §4.5/§4.6: with or without brackets."""
        return _param_value(self.params, "received")

    @property
    def maddr(self) -> str | None:
        return _param_value(self.params, "maddr")

    @property
    def ttl(self) -> int | None:
        ttl = _param_value(self.params, "ttl")
        return None if ttl is None else int(ttl)

    @property
    def has_rport(self) -> bool:
        """The client asked for symmetric response routing (RFC 3581 §3)."""
        return _has_param(self.params, "rport")

    @property
    def rport(self) -> int | None:
        """The port filled in by the server (RFC 3581 §4); ``None`` when empty or absent."""
        value = _param_value(self.params, "rport")
        return None if value is None else int(value)

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def param(self, name: str) -> str | None:
        return _param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> Via:
        return replace(self, params=_set_param(self.params, name, value))

    def without_param(self, name: str) -> Via:
        return replace(self, params=_drop_param(self.params, name))

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        params = _render_params(self.params, None)
        return f"{self.protocol}/{self.version}/{self.transport} {self.host}{port}{params}"


def parse_via(text: str) -> Via:
    """Parse one via-parm (one comma-separated element of a Via header field)."""
    return _parse_via_memo(text) if len(text) <= _MEMO_MAX_LEN else _parse_via(text)


def _parse_via(text: str) -> Via:
    s = text.strip(" \t")
    m = _VIA_FAST.fullmatch(s)
    if m is not None:
        transport, host, port_text, params_text = m.groups()
        params = _split_params(params_text[1:]) if params_text else ()
        for name, value in params:
            lname = name.lower()
            if lname in _VIA_CHECKED:
                _check_via_param(lname, value)
        port = None if port_text is None else int(port_text)
        if port is not None and port > 65535:
            raise ParseError(f"port {port} out of range")
        return Via(transport, host, port, params, "SIP", "2.0")
    m = _VIA_RE.match(s)
    if m is None:
        raise ParseError(f"malformed Via value {_snip(s)}")
    protocol, version, transport, host, port_text = m.groups()
    port = None if port_text is None else _check_port(port_text)
    params = parse_params(s, m.end())
    for name, value in params:
        _check_via_param(name.lower(), value)
    return Via(transport, host, port, params, protocol, version)


_parse_via_memo = lru_cache(maxsize=_MEMO_SIZE)(_parse_via)


_VIA_CHECKED = frozenset(("branch", "received", "maddr", "ttl", "rport"))


def _check_via_param(name: str, value: str | None) -> None:
    """RFC 3261 §25.1 via-params (and RFC 3581 rport) whose values have a fixed grammar."""
    if name in ("branch", "received", "maddr", "ttl", "rport") and value is not None:
        if value.startswith('"'):
            raise ParseError(f"Via parameter {name} cannot be a quoted string")
        if name in ("ttl", "rport") and not (value.isascii() and value.isdigit()):
            raise ParseError(f"Via parameter {name}={_snip(value)} is not a number")
        if name == "ttl" and (len(value) > 3 or int(value) > 255):
            raise ParseError(f"Via ttl {_snip(value)} out of range")
        if name == "rport":
            _check_port(value)
    elif name in ("branch", "received", "maddr", "ttl") and value is None:
        raise ParseError(f"Via parameter {name} needs a value")
