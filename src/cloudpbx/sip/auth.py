"""SIP Digest authentication, server and client, sans-I/O.

RFC 2617 (Digest, qop, nc/cnonce), RFC 7616 (SHA-256, ``-sess``) and RFC 8760 (SHA-256 for
SIP). Works on header *values* (``str``): the message layer extracts ``WWW-Authenticate`` /
``Authorization`` values and feeds them here. Time (``now``) and randomness (a
``Callable[[int], bytes]``) are injected; nothing here reads a clock or a socket.

Design notes (see docs/sip-auth-sdp.md):

- Nonces are stateless: ``hex(timestamp ‖ random ‖ HMAC)``, so any engine node sharing the
  secret key can check a nonce another node issued.
- Replays are caught by a sliding nonce-count window per nonce (like the IPsec anti-replay
  window, RFC 4303 §3.4.3), because phones reuse one nonce for parallel requests and their
  nc values may arrive out of order. The window state is bounded (LRU with a watermark).
- An unknown user walks the same code path as a wrong password (dummy HA1, constant-time
  compare), so the answer never tells whether a username exists.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Protocol

RandomSource = Callable[[int], bytes]
"""Returns ``n`` cryptographically random bytes (``os.urandom`` or ``secrets.token_bytes``)."""

__all__ = [
    "Algorithm",
    "AuthOutcome",
    "AuthParseError",
    "AuthResult",
    "Authorization",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestServer",
    "InMemoryNonceCounts",
    "NcVerdict",
    "NonceCountStore",
    "Qop",
    "RandomSource",
    "compute_response",
    "ha1",
    "parse_params",
]


class AuthParseError(Exception):
    """A Digest header value is malformed (the peer's fault); ``param`` names the culprit.

    Not a ``ValueError``: those mean *our* misuse (ENGINEERING.md §3), this the peer's fault.
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


class Algorithm(StrEnum):
    """Digest algorithms: RFC 2617 (MD5), RFC 7616 §3.3 / RFC 8760 §2 (SHA-256)."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA256 = "SHA-256"
    SHA256_SESS = "SHA-256-sess"

    @property
    def is_session(self) -> bool:
        return self.value.endswith("-sess")

    @property
    def base(self) -> Algorithm:
        """The algorithm whose HA1 is stored (``MD5-sess`` derives from the ``MD5`` HA1)."""
        return Algorithm(self.value.removesuffix("-sess"))

    @classmethod
    def parse(cls, token: str) -> Algorithm:
        # RFC 7616 §3.3: algorithm tokens compare case-insensitively.
        for member in cls:
            if member.value.lower() == token.lower():
                return member
        raise AuthParseError("algorithm", f"unsupported algorithm {token!r}")


class Qop(StrEnum):
    """Quality of protection, RFC 2617 §3.2.1."""

    AUTH = "auth"
    AUTH_INT = "auth-int"


# --- hashing (RFC 2617 §3.2.2, RFC 7616 §3.4) -----------------------------------------------

_HASH_NAMES: Final = {Algorithm.MD5: "md5", Algorithm.SHA256: "sha256"}


def _h(algorithm: Algorithm, data: bytes) -> str:
    # MD5 is what the protocol mandates, not our choice; usedforsecurity=False keeps it
    # available on FIPS builds of OpenSSL.
    name = _HASH_NAMES[algorithm.base]
    return hashlib.new(name, data, usedforsecurity=False).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: Algorithm = Algorithm.MD5) -> str:
    """``H(username:realm:password)``: the value a PBX may store instead of the password.

    For ``-sess`` algorithms this is the stored base value; the per-session HA1 is derived
    from it with the nonce and cnonce at verification time (RFC 7616 §3.4.2).
    """
    return _h(algorithm, f"{username}:{realm}:{password}".encode())


def compute_response(
    *,
    algorithm: Algorithm,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: Qop | None = None,
    nc: int | None = None,
    cnonce: str | None = None,
    body: bytes | None = None,
) -> str:
    """The ``response`` digest (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1), lowercase hex."""
    if algorithm.is_session:
        if cnonce is None:
            raise ValueError("-sess algorithms need a cnonce")
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}".encode())  # RFC 7616 §3.4.2
    a2 = f"{method}:{uri}"
    if qop is Qop.AUTH_INT:
        a2 += ":" + _h(algorithm, body or b"")  # RFC 7616 §3.4.3
    ha2 = _h(algorithm, a2.encode())
    if qop is None:  # RFC 2069 compatibility, RFC 2617 §3.2.2.1
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}".encode())
    if nc is None or cnonce is None:
        raise ValueError("qop needs nc and cnonce")
    return _h(algorithm, f"{ha1}:{nonce}:{nc:08x}:{cnonce}:{qop.value}:{ha2}".encode())


# --- header value syntax (RFC 7235 §2.1, RFC 3261 §25.1) --------------------------------------

_WS: Final = " \t\r\n"
_TCHAR: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_HEX: Final = frozenset("0123456789abcdefABCDEF")

Params = tuple[tuple[str, str], ...]


def _is_ctl(ch: str) -> bool:
    return ch < " " or ch == "\x7f"


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _token(text: str, pos: int, what: str) -> tuple[str, int]:
    end = pos
    while end < len(text) and text[end] in _TCHAR:
        end += 1
    if end == pos:
        raise AuthParseError(what, f"expected a token at {text[pos : pos + 16]!r}")
    return text[pos:end], end


def _quoted(text: str, pos: int, name: str) -> tuple[str, int]:
    """A quoted-string starting at ``text[pos] == '"'`` with backslash escapes."""
    out: list[str] = []
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            i += 1
            if i == len(text):
                break
            ch = text[i]
        if _is_ctl(ch) and ch != "\t":
            raise AuthParseError(name, "control character in quoted string")
        out.append(ch)
        i += 1
    raise AuthParseError(name, "unterminated quoted string")


def _bare(text: str, pos: int, name: str) -> tuple[str, int]:
    # Lenient: some phones send unquoted URIs or base64 nonces (with '='), so accept any
    # run of visible characters up to a comma or whitespace.
    end = pos
    while end < len(text) and text[end] not in _WS + ',"' and not _is_ctl(text[end]):
        end += 1
    if end == pos:
        raise AuthParseError(name, "missing value")
    return text[pos:end], end


def _param(text: str, pos: int) -> tuple[str, str, int]:
    name, pos = _token(text, pos, text[pos : pos + 16])
    pos = _skip(text, pos, _WS)
    if not text.startswith("=", pos):
        raise AuthParseError(name, "expected '='")
    pos = _skip(text, pos + 1, _WS)
    if text.startswith('"', pos):
        value, pos = _quoted(text, pos, name)
    else:
        value, pos = _bare(text, pos, name)
    pos = _skip(text, pos, _WS)
    if pos < len(text) and text[pos] != ",":
        raise AuthParseError(name, "expected ',' after the value")
    return name, value, pos


def parse_params(value: str) -> Params:
    """Split ``Digest k=v, k="q", …`` into ordered ``(lowercase name, value)`` pairs."""
    pos = _skip(value, 0, _WS)
    scheme, pos = _token(value, pos, "scheme")
    if scheme.lower() != "digest":
        raise AuthParseError("scheme", f"unsupported scheme {scheme!r}")
    if pos < len(value) and value[pos] not in _WS:
        raise AuthParseError("scheme", "expected whitespace after the scheme")
    params: dict[str, str] = {}
    while True:
        # RFC 7230 §7: empty list elements (",,") are tolerated.
        pos = _skip(value, pos, _WS + ",")
        if pos == len(value):
            break
        name, param_value, pos = _param(value, pos)
        if name.lower() in params:  # auth-param names are case-insensitive (RFC 7235 §2.1)
            raise AuthParseError(name, "duplicate parameter")
        params[name.lower()] = param_value
    if not params:
        raise AuthParseError("scheme", "no parameters")
    return tuple(params.items())


def _quote(text: str) -> str:
    if any(_is_ctl(ch) and ch != "\t" for ch in text):
        raise ValueError(f"control character in {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _required(params: dict[str, str], name: str) -> str:
    try:
        return params.pop(name)
    except KeyError:
        raise AuthParseError(name, "missing") from None


def _extra_text(extra: Params) -> list[str]:
    return [f"{name}={_quote(value)}" for name, value in extra]


# --- challenge: WWW-Authenticate / Proxy-Authenticate ----------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """A parsed ``Digest`` challenge (RFC 7616 §3.3)."""

    realm: str
    nonce: str
    algorithm: Algorithm = Algorithm.MD5
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    extra: Params = ()

    @classmethod
    def parse(cls, value: str) -> Challenge:
        params = dict(parse_params(value))
        realm = _required(params, "realm")
        nonce = _required(params, "nonce")
        algorithm = Algorithm.parse(params.pop("algorithm", "MD5"))
        qop_text = params.pop("qop", None)
        qop = tuple(q.strip().lower() for q in qop_text.split(",")) if qop_text else ()
        return cls(
            realm=realm,
            nonce=nonce,
            algorithm=algorithm,
            qop=tuple(q for q in qop if q),
            opaque=params.pop("opaque", None),
            stale=params.pop("stale", "false").lower() == "true",
            domain=params.pop("domain", None),
            extra=tuple(params.items()),
        )

    def render(self) -> str:
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain)}")
        if self.stale:
            parts.append("stale=true")
        parts.append(f"algorithm={self.algorithm.value}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        return "Digest " + ", ".join(parts + _extra_text(self.extra))

    def __str__(self) -> str:
        return self.render()


# --- credentials: Authorization / Proxy-Authorization ----------------------------------------


def _parse_nc(text: str | None) -> int | None:
    if text is None:
        return None
    # RFC 2617 §3.2.2: nc-value = 8LHEX; 0 is never a valid count.
    if len(text) != 8 or not set(text) <= _HEX or int(text, 16) == 0:
        raise AuthParseError("nc", f"expected 8 hex digits, got {text!r}")
    return int(text, 16)


def _parse_qop(text: str | None) -> Qop | None:
    if text is None:
        return None
    try:
        return Qop(text.lower())
    except ValueError:
        raise AuthParseError("qop", f"unsupported qop {text!r}") from None


def _parse_response(text: str) -> str:
    if not text or not set(text) <= _HEX:
        raise AuthParseError("response", "expected a hex digest")
    return text.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class Authorization:
    """Parsed Digest credentials (RFC 7616 §3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: Algorithm = Algorithm.MD5
    qop: Qop | None = None
    nc: int | None = None
    cnonce: str | None = None
    opaque: str | None = None
    extra: Params = ()

    @classmethod
    def parse(cls, value: str) -> Authorization:
        params = dict(parse_params(value))
        if params.pop("userhash", "false").lower() == "true":
            raise AuthParseError("userhash", "userhash is not supported")  # RFC 7616 §3.4.4
        auth = cls(
            username=_required(params, "username"),
            realm=_required(params, "realm"),
            nonce=_required(params, "nonce"),
            uri=_required(params, "uri"),
            response=_parse_response(_required(params, "response")),
            algorithm=Algorithm.parse(params.pop("algorithm", "MD5")),
            qop=_parse_qop(params.pop("qop", None)),
            nc=_parse_nc(params.pop("nc", None)),
            cnonce=params.pop("cnonce", None),
            opaque=params.pop("opaque", None),
            extra=tuple(params.items()),
        )
        auth._check_consistency()
        return auth

    def _check_consistency(self) -> None:
        # RFC 2617 §3.2.2: cnonce and nc MUST be present with qop, and absent without it.
        if self.qop is not None:
            for name, value in (("cnonce", self.cnonce), ("nc", self.nc)):
                if value is None:
                    raise AuthParseError(name, "required with qop")
        elif self.nc is not None:
            raise AuthParseError("nc", "nc without qop")
        if self.algorithm.is_session and self.cnonce is None:
            raise AuthParseError("cnonce", "required by -sess algorithms")

    def render(self) -> str:
        parts = [
            f"username={_quote(self.username)}",
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"uri={_quote(self.uri)}",
            f"response={_quote(self.response)}",
            f"algorithm={self.algorithm.value}",
        ]
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None and self.nc is not None:
            # RFC 7616 §3.4: qop and nc are unquoted tokens.
            parts += [f"qop={self.qop.value}", f"nc={self.nc:08x}"]
        return "Digest " + ", ".join(parts + _extra_text(self.extra))

    def __str__(self) -> str:
        return self.render()


# --- stored secrets ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """What ``lookup(username)`` returns: the password or the stored per-realm HA1 values."""

    password: str | None = None
    ha1_md5: str | None = None
    ha1_sha256: str | None = None

    def ha1_for(self, username: str, realm: str, algorithm: Algorithm) -> str | None:
        if self.password is not None:
            return ha1(username, realm, self.password, algorithm)
        stored = self.ha1_md5 if algorithm.base is Algorithm.MD5 else self.ha1_sha256
        return stored.lower() if stored is not None else None


Lookup = Callable[[str], Credentials | None]


# --- stateless nonces -------------------------------------------------------------------------

_NONCE_LABEL: Final = b"cloudpbx digest nonce v1\x00"
_TIMESTAMP: Final = struct.Struct(">q")  # milliseconds, signed
_RANDOM_LEN: Final = 8
_MAC_LEN: Final = 12  # HMAC-SHA-256 truncated to 96 bits
_NONCE_LEN: Final = _TIMESTAMP.size + _RANDOM_LEN + _MAC_LEN


def _nonce_mac(key: bytes, realm: str, body: bytes) -> bytes:
    # The realm is bound in, so a nonce issued for one tenant's realm fails on another.
    message = _NONCE_LABEL + realm.encode() + b"\x00" + body
    return hmac.new(key, message, "sha256").digest()[:_MAC_LEN]


def _issue_nonce(key: bytes, realm: str, now: float, rand: RandomSource) -> str:
    body = _TIMESTAMP.pack(round(now * 1000)) + rand(_RANDOM_LEN)
    return (body + _nonce_mac(key, realm, body)).hex()


def _open_nonce(key: bytes, realm: str, nonce: str) -> float | None:
    """The issue time of a nonce we made, or ``None``."""
    if len(nonce) != 2 * _NONCE_LEN or not set(nonce) <= _HEX:
        return None
    raw = bytes.fromhex(nonce)
    if raw.hex() != nonce:  # one canonical spelling, so replay state cannot be dodged
        return None
    body, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
    if not hmac.compare_digest(mac, _nonce_mac(key, realm, body)):
        return None
    return float(_TIMESTAMP.unpack_from(body)[0]) / 1000


# --- nonce-count replay window ----------------------------------------------------------------


class NcVerdict(StrEnum):
    FRESH = "fresh"
    REPLAY = "replay"
    FORGOTTEN = "forgotten"  # state evicted: cannot tell, so the caller answers stale


class NonceCountStore(Protocol):
    """Remembers which nonce-counts were used; in-process here, Redis at scale."""

    def check(self, *, nonce: str, issued_at: float, nc: int, now: float) -> NcVerdict: ...


@dataclass(slots=True)
class _Window:
    issued_at: float
    highest: int = 0
    seen: int = 0  # bit i set ⇔ nc == highest - i was accepted


class InMemoryNonceCounts:
    """Sliding nc window per nonce (RFC 4303 §3.4.3 style), bounded to ``max_nonces``.

    Parallel requests reuse one nonce with increasing nc and may arrive out of order: any
    nc not seen before and within ``window`` of the highest is accepted once. When a
    nonce's state is evicted (LRU), every nonce issued no later than it is *forgotten*
    and must be re-challenged, so eviction never re-opens a replay.
    """

    def __init__(self, *, ttl: float, window: int = 64, max_nonces: int = 65536) -> None:
        if window < 1 or max_nonces < 1:
            raise ValueError("window and max_nonces must be positive")
        self._ttl = ttl
        self._window = window
        self._max = max_nonces
        self._entries: OrderedDict[str, _Window] = OrderedDict()
        self._forgotten_up_to = float("-inf")

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, *, nonce: str, issued_at: float, nc: int, now: float) -> NcVerdict:
        self._expire(now)
        entry = self._entries.get(nonce)
        if entry is None:
            if issued_at <= self._forgotten_up_to:
                return NcVerdict.FORGOTTEN
            entry = self._insert(nonce, issued_at)
        self._entries.move_to_end(nonce)
        return NcVerdict.FRESH if self._slide(entry, nc) else NcVerdict.REPLAY

    def _slide(self, entry: _Window, nc: int) -> bool:
        if nc > entry.highest:
            shift = nc - entry.highest
            mask = (1 << self._window) - 1
            entry.seen = ((entry.seen << shift) | 1) & mask if shift < self._window else 1
            entry.highest = nc
            return True
        offset = entry.highest - nc
        if offset >= self._window or entry.seen >> offset & 1:
            return False
        entry.seen |= 1 << offset
        return True

    def _insert(self, nonce: str, issued_at: float) -> _Window:
        while len(self._entries) >= self._max:
            _, evicted = self._entries.popitem(last=False)
            self._forgotten_up_to = max(self._forgotten_up_to, evicted.issued_at)
        entry = _Window(issued_at=issued_at)
        self._entries[nonce] = entry
        return entry

    def _expire(self, now: float) -> None:
        # Expired nonces are answered "stale" before reaching us: their state is useless.
        while self._entries:
            nonce, entry = next(iter(self._entries.items()))
            if entry.issued_at + self._ttl >= now:
                return
            del self._entries[nonce]


# --- server -----------------------------------------------------------------------------------


class AuthOutcome(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"  # wrong password *or* unknown user: never told apart
    STALE = "stale"  # right password, expired nonce: re-challenge with stale=true
    UNKNOWN_NONCE = "unknown_nonce"  # not ours (forged, other realm, other key)
    REPLAY = "replay"  # right password, nonce-count already used
    MALFORMED = "malformed"  # unparseable or against our policy (realm, algorithm, qop)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthResult:
    outcome: AuthOutcome
    username: str | None = None  # as claimed; authenticated only when ``ok``
    algorithm: Algorithm | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK

    @property
    def rechallenge_stale(self) -> bool:
        """The peer proved it knows the password: re-challenge with ``stale=true`` so it
        retries silently with a fresh nonce instead of prompting its user (RFC 7616 §3.3)."""
        return self.outcome in (AuthOutcome.STALE, AuthOutcome.REPLAY)


class DigestServer:
    """Challenges and verifies Digest credentials for one realm (one tenant domain)."""

    def __init__(
        self,
        realm: str,
        secret_key: bytes,
        nonce_ttl: float = 300.0,
        *,
        rand: RandomSource,
        qops: Sequence[Qop] = (Qop.AUTH,),
        require_qop: bool = True,
        accept: Sequence[Algorithm] = tuple(Algorithm),
        clock_skew: float = 30.0,
        counts: NonceCountStore | None = None,
    ) -> None:
        if len(secret_key) < 16:
            raise ValueError("secret_key must be at least 16 bytes")
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self._key = secret_key
        self._rand = rand
        self._qops = tuple(qops)
        self._require_qop = require_qop
        self._accept = frozenset(accept)
        self._skew = clock_skew
        self._counts = counts if counts is not None else InMemoryNonceCounts(ttl=nonce_ttl)
        # A fixed per-key dummy password: unknown users cost the same work as known ones.
        self._dummy_password = hmac.new(secret_key, b"dummy", "sha256").hexdigest()

    def challenge(
        self,
        now: float,
        algorithms: Sequence[Algorithm | str] = (Algorithm.MD5,),
        *,
        stale: bool = False,
    ) -> list[str]:
        """One header value per algorithm, in the order given.

        Many phones read only the first challenge, so put SHA-256 first only for ports that
        opt in (RFC 8760 §2.4 lets a server offer several, most preferred first).
        """
        nonce = _issue_nonce(self._key, self.realm, now, self._rand)
        qop = tuple(q.value for q in self._qops)
        return [
            Challenge(
                realm=self.realm, nonce=nonce, algorithm=Algorithm(a), qop=qop, stale=stale
            ).render()
            for a in algorithms
        ]

    def verify(
        self,
        method: str,
        credentials_value: str,
        now: float,
        lookup: Lookup,
        body: bytes | None = None,
    ) -> AuthResult:
        try:
            auth = Authorization.parse(credentials_value)
        except AuthParseError as exc:
            return AuthResult(outcome=AuthOutcome.MALFORMED, reason=str(exc))
        problem = self._policy_problem(auth)
        if problem:
            return _result(AuthOutcome.MALFORMED, auth, problem)
        issued_at = _open_nonce(self._key, self.realm, auth.nonce)
        if issued_at is None or issued_at > now + self._skew:
            return _result(AuthOutcome.UNKNOWN_NONCE, auth, "nonce not issued by us")
        if not self._response_matches(auth, method, lookup, body):
            return _result(AuthOutcome.BAD_CREDENTIALS, auth, "digest mismatch")
        if now - issued_at > self.nonce_ttl:
            return _result(AuthOutcome.STALE, auth, "nonce expired")
        return self._count(auth, issued_at, now)

    def _policy_problem(self, auth: Authorization) -> str:
        if auth.realm != self.realm:
            return f"realm {auth.realm!r} is not {self.realm!r}"
        if auth.algorithm not in self._accept:
            return f"algorithm {auth.algorithm} not accepted"
        if auth.qop is None and self._require_qop:
            return "qop required"
        if auth.qop is not None and auth.qop not in self._qops:
            return f"qop {auth.qop} not offered"
        return ""

    def _response_matches(
        self, auth: Authorization, method: str, lookup: Lookup, body: bytes | None
    ) -> bool:
        credentials = lookup(auth.username)
        stored = None
        if credentials is not None:
            stored = credentials.ha1_for(auth.username, self.realm, auth.algorithm)
        # No user enumeration: an unknown user gets a dummy HA1 and the same digest work.
        secret = stored
        if secret is None:
            secret = ha1(auth.username, self.realm, self._dummy_password, auth.algorithm)
        expected = compute_response(
            algorithm=auth.algorithm,
            ha1=secret,
            nonce=auth.nonce,
            method=method,
            uri=auth.uri,
            qop=auth.qop,
            nc=auth.nc,
            cnonce=auth.cnonce,
            body=body,
        )
        matches = hmac.compare_digest(expected.encode(), auth.response.encode())
        return matches and stored is not None

    def _count(self, auth: Authorization, issued_at: float, now: float) -> AuthResult:
        if auth.nc is None:  # RFC 2069 style, only when require_qop=False: no nc to track
            return _result(AuthOutcome.OK, auth)
        verdict = self._counts.check(nonce=auth.nonce, issued_at=issued_at, nc=auth.nc, now=now)
        if verdict is NcVerdict.REPLAY:
            return _result(AuthOutcome.REPLAY, auth, f"nonce-count {auth.nc:08x} reused")
        if verdict is NcVerdict.FORGOTTEN:
            return _result(AuthOutcome.STALE, auth, "nonce state evicted")
        return _result(AuthOutcome.OK, auth)


def _result(outcome: AuthOutcome, auth: Authorization, reason: str = "") -> AuthResult:
    return AuthResult(
        outcome=outcome, username=auth.username, algorithm=auth.algorithm, reason=reason
    )


# --- client -----------------------------------------------------------------------------------

_CLIENT_PREFERENCE: Final = (
    Algorithm.SHA256,
    Algorithm.SHA256_SESS,
    Algorithm.MD5,
    Algorithm.MD5_SESS,
)
_CNONCE_BYTES: Final = 8


def _client_qop(challenge: Challenge) -> tuple[bool, Qop | None]:
    """``(usable, qop)``: the qop to answer with; unusable when only unknown ones are offered."""
    if not challenge.qop:
        return True, None  # RFC 2069 server
    for qop in (Qop.AUTH, Qop.AUTH_INT):
        if qop.value in challenge.qop:
            return True, qop
    return False, None


class DigestClient:
    """Answers Digest challenges (for trunks registering upstream, test phones)."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        preference: Sequence[Algorithm] = _CLIENT_PREFERENCE,
        max_nonces: int = 32,
    ) -> None:
        self.username = username
        self._password = password
        self._preference = tuple(preference)
        self._max_nonces = max_nonces
        self._nc: OrderedDict[str, int] = OrderedDict()

    def authorize(
        self,
        method: str,
        uri: str,
        challenge_value: str | Sequence[str],
        *,
        cnonce_source: RandomSource,
        body: bytes | None = None,
    ) -> str:
        """The ``Authorization`` value answering the strongest usable challenge offered.

        Raises ``AuthParseError`` when no challenge is usable (the peer's fault).
        """
        challenge, qop = self._choose(challenge_value)
        needs_cnonce = qop is not None or challenge.algorithm.is_session
        cnonce = cnonce_source(_CNONCE_BYTES).hex() if needs_cnonce else None
        nc = self._next_nc(challenge.nonce) if qop else None
        response = compute_response(
            algorithm=challenge.algorithm,
            ha1=ha1(self.username, challenge.realm, self._password, challenge.algorithm),
            nonce=challenge.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            body=body,
        )
        return Authorization(
            username=self.username,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response=response,
            algorithm=challenge.algorithm,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            opaque=challenge.opaque,
        ).render()

    def _choose(self, challenge_value: str | Sequence[str]) -> tuple[Challenge, Qop | None]:
        values = [challenge_value] if isinstance(challenge_value, str) else challenge_value
        usable: list[tuple[int, Challenge, Qop | None]] = []
        for value in values:
            try:
                challenge = Challenge.parse(value)
            except AuthParseError:
                continue  # e.g. an algorithm we do not implement: use another challenge
            ok, qop = _client_qop(challenge)
            if ok and challenge.algorithm in self._preference:
                usable.append((self._preference.index(challenge.algorithm), challenge, qop))
        if not usable:
            raise AuthParseError("algorithm", "no challenge with a supported algorithm and qop")
        _, challenge, qop = min(usable, key=lambda item: item[0])
        return challenge, qop

    def _next_nc(self, nonce: str) -> int:
        # RFC 2617 §3.2.2: nc counts the requests sent with this nonce, starting at 1.
        count = self._nc.pop(nonce, 0) + 1
        self._nc[nonce] = count
        while len(self._nc) > self._max_nonces:
            self._nc.popitem(last=False)
        return count
