"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for audio calls, sans-I/O.

A description is kept as its lines (each with its own line ending), so an unchanged
description serializes back byte-exact and unknown lines keep their order; typed views
(``Origin``, ``Connection``, ``MediaLine``, ``AudioStream`` …) are parsed from those lines on
demand. Structural lines (v, o, c, t, m) and attribute names are validated at parse time,
so the views never fail afterwards; attribute values are checked where used and a broken one
is ignored (see ``_lenient``).
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final, TypeVar

__all__ = [
    "G722",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "AudioStream",
    "Codec",
    "Connection",
    "Direction",
    "MediaLine",
    "MediaSection",
    "NoCommonCodecError",
    "OfferAnswerError",
    "Origin",
    "Rtpmap",
    "SdpError",
    "SdpLine",
    "SessionDescription",
    "make_answer",
    "make_offer",
    "versioned",
]


_T = TypeVar("_T")


class SdpError(Exception):
    """The peer's SDP is malformed (answer 400); names the offending line when known.

    Not a ``ValueError``: those mean *our* misuse (ENGINEERING.md §3), this the peer's fault.
    """

    def __init__(
        self, message: str, *, line_no: int | None = None, line: str | None = None
    ) -> None:
        where = f"line {line_no} {line[:60]!r}: " if line_no is not None and line else ""
        super().__init__(where + message)
        self.message = message
        self.line_no = line_no
        self.line = line


class OfferAnswerError(Exception):
    """An offer we understood but cannot accept."""


class NoCommonCodecError(OfferAnswerError):
    """No offered audio stream shares a codec with us: answer 488 (RFC 3261 §13.3.1.4)."""


# --- lines ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SdpLine:
    """One ``<type>=<value>`` line and the line ending it came with (RFC 4566 §5)."""

    kind: str
    value: str
    eol: str = "\r\n"

    def __str__(self) -> str:
        return f"{self.kind}={self.value}{self.eol}"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SdpError(message)


def _fields(value: str, count: int, what: str) -> list[str]:
    parts = value.split(" ")
    _check(len(parts) == count and all(parts), f"{what}: expected {count} fields")
    return parts


_MAX_DIGITS: Final = 32  # o= values are 64-bit NTP-style numbers in practice


def _is_number(text: str, max_digits: int = _MAX_DIGITS) -> bool:
    # Bounded: int() of a 5000-digit string raises, and nothing legitimate is that long.
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def _uint(text: str, what: str, maximum: int | None = None) -> int:
    _check(_is_number(text), f"{what}: expected digits, got {text[:40]!r}")
    number = int(text)
    _check(maximum is None or number <= maximum, f"{what}: {number} out of range")
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (RFC 4566 §5.2)."""

    username: str = "-"
    session_id: str
    version: int
    net_type: str = "IN"
    addr_type: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        user, session_id, version, net_type, addr_type, address = _fields(value, 6, "o=")
        _uint(session_id, "o= sess-id")
        return cls(
            username=user,
            session_id=session_id,
            version=_uint(version, "o= sess-version"),
            net_type=net_type,
            addr_type=addr_type,
            address=address,
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} "
            f"{self.net_type} {self.addr_type} {self.address}"
        )


def _addr_type(address: str) -> str:
    return "IP6" if isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address) else "IP4"


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (RFC 4566 §5.7)."""

    net_type: str = "IN"
    addr_type: str
    address: str  # may carry a multicast "/ttl/count" suffix

    @classmethod
    def parse(cls, value: str) -> Connection:
        net_type, addr_type, address = _fields(value, 3, "c=")
        return cls(net_type=net_type, addr_type=addr_type, address=address)

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls(addr_type=_addr_type(address), address=address)

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def is_unspecified(self) -> bool:
        # RFC 3264 §8.4: the RFC 2543 way to put a call on hold is c=0.0.0.0 ("::" in IPv6).
        return self.host in ("0.0.0.0", "::")  # noqa: S104 - compared, not bound

    def __str__(self) -> str:
        return f"{self.net_type} {self.addr_type} {self.address}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaLine:
    """``m=<media> <port>[/<count>] <proto> <fmt> …`` (RFC 4566 §5.14)."""

    media: str
    port: int
    port_count: int | None = None
    proto: str
    formats: tuple[str, ...]

    @classmethod
    def parse(cls, value: str) -> MediaLine:
        parts = value.split(" ")
        # Lenient: a rejected stream is sometimes sent without formats.
        _check(len(parts) >= 3 and all(parts), "m=: expected <media> <port> <proto> <fmt>…")
        port_text, _, count_text = parts[1].partition("/")
        return cls(
            media=parts[0],
            port=_uint(port_text, "m= port", 65535),
            port_count=_uint(count_text, "m= port count") if count_text else None,
            proto=parts[2],
            formats=tuple(parts[3:]),
        )

    def __str__(self) -> str:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        return " ".join([self.media, port, self.proto, *self.formats])


@dataclass(frozen=True, slots=True, kw_only=True)
class Rtpmap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` (RFC 4566 §6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> Rtpmap:
        pt_text, _, spec = value.partition(" ")
        parts = spec.strip().split("/")
        _check(len(parts) in (2, 3) and parts[0] != "", "rtpmap: expected <pt> <name>/<rate>")
        return cls(
            payload_type=_uint(pt_text, "rtpmap payload type", 127),
            encoding=parts[0],
            clock_rate=_uint(parts[1], "rtpmap clock rate"),
            channels=_uint(parts[2], "rtpmap channels") if len(parts) == 3 else None,
        )

    def __str__(self) -> str:
        channels = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{channels}"


_PTIME: Final = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")
_ATTR_NAME: Final = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+")


def _split_attribute(value: str) -> tuple[str, str | None]:
    """``a=<name>`` or ``a=<name>:<value>`` (RFC 4566 §5.13)."""
    name, colon, attr_value = value.partition(":")
    _check(_ATTR_NAME.fullmatch(name) is not None, f"a=: bad attribute name {name!r}")
    return name, attr_value if colon else None


def _parse_ptime(value: str) -> int:
    _check(_PTIME.fullmatch(value.strip()) is not None, f"ptime: bad value {value!r}")
    return max(1, round(float(value)))


def _lenient(parse: Callable[[str], _T], value: str) -> _T | None:
    # Attribute values are checked where they are used, not at parse time: real offers carry
    # broken ones (RFC 4475 §3.3.15 has "a=rtpmap:31 LPC") and one bad attribute must not
    # fail a whole call. An unusable rtpmap just makes its payload type unknown.
    try:
        return parse(value)
    except SdpError:
        return None


def _check_attribute(value: str) -> None:
    _split_attribute(value)


def _check_timing(value: str) -> None:
    start, stop = _fields(value, 2, "t=")
    _uint(start, "t= start")
    _uint(stop, "t= stop")


def _check_version(value: str) -> None:
    _check(value == "0", "v=: only version 0 exists")


_VALIDATORS: Final = {
    "v": _check_version,
    "o": Origin.parse,
    "c": Connection.parse,
    "t": _check_timing,
    "m": MediaLine.parse,
    "a": _check_attribute,
}


# --- directions, codecs -----------------------------------------------------------------------


class Direction(StrEnum):
    """RFC 3264 §5.1 / RFC 4566 §6 direction attributes."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def from_flags(cls, *, send: bool, receive: bool) -> Direction:
        return {
            (True, True): cls.SENDRECV,
            (True, False): cls.SENDONLY,
            (False, True): cls.RECVONLY,
            (False, False): cls.INACTIVE,
        }[(send, receive)]

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def without_receive(self) -> Direction:
        return Direction.from_flags(send=self.sends, receive=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Codec:
    """An RTP payload format: name, clock rate and the payload type it is offered with."""

    name: str
    clock_rate: int
    payload_type: int
    channels: int | None = None
    fmtp: str | None = None

    @property
    def is_telephone_event(self) -> bool:
        return self.name.lower() == "telephone-event"

    def same_format(self, other: Codec) -> bool:
        # RFC 4855 §3: encoding names are case-insensitive; channels default to 1.
        return (
            self.name.lower() == other.name.lower()
            and self.clock_rate == other.clock_rate
            and (self.channels or 1) == (other.channels or 1)
        )

    def rtpmap(self) -> Rtpmap:
        return Rtpmap(
            payload_type=self.payload_type,
            encoding=self.name,
            clock_rate=self.clock_rate,
            channels=self.channels,
        )


PCMU: Final = Codec(name="PCMU", clock_rate=8000, payload_type=0)
PCMA: Final = Codec(name="PCMA", clock_rate=8000, payload_type=8)
# RFC 3551 §4.5.2: G.722 samples at 16 kHz but its RTP clock rate is 8000 for historical reasons.
G722: Final = Codec(name="G722", clock_rate=8000, payload_type=9)
# RFC 4733 §2.3: events 0-15 are DTMF digits, 16 is flash.
TELEPHONE_EVENT: Final = Codec(
    name="telephone-event", clock_rate=8000, payload_type=101, fmtp="0-16"
)

# RFC 3551 §6, table 4: static audio payload types, usable without an rtpmap.
STATIC_PAYLOAD_TYPES: Final[dict[int, Rtpmap]] = {
    pt: Rtpmap(payload_type=pt, encoding=name, clock_rate=rate, channels=channels)
    for pt, name, rate, channels in (
        (0, "PCMU", 8000, None),
        (3, "GSM", 8000, None),
        (4, "G723", 8000, None),
        (5, "DVI4", 8000, None),
        (6, "DVI4", 16000, None),
        (7, "LPC", 8000, None),
        (8, "PCMA", 8000, None),
        (9, "G722", 8000, None),
        (10, "L16", 44100, 2),
        (11, "L16", 44100, None),
        (12, "QCELP", 8000, None),
        (13, "CN", 8000, None),
        (14, "MPA", 90000, None),
        (15, "G728", 8000, None),
        (16, "DVI4", 11025, None),
        (17, "DVI4", 22050, None),
        (18, "G729", 8000, None),
    )
}


# --- sections and descriptions ----------------------------------------------------------------


_DIRECTIONS: Final = frozenset(d.value for d in Direction)


def _attributes(lines: Iterable[SdpLine]) -> list[tuple[str, str | None]]:
    return [_split_attribute(line.value) for line in lines if line.kind == "a"]


def _direction(lines: Iterable[SdpLine]) -> Direction | None:
    for name, value in _attributes(lines):
        if value is None and name in _DIRECTIONS:
            return Direction(name)
    return None


def _first(lines: Iterable[SdpLine], kind: str) -> SdpLine | None:
    return next((line for line in lines if line.kind == kind), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaSection:
    """An ``m=`` line and the lines up to the next one (RFC 4566 §5)."""

    lines: tuple[SdpLine, ...]

    def __str__(self) -> str:
        return "".join(map(str, self.lines))

    @property
    def media_line(self) -> MediaLine:
        return MediaLine.parse(self.lines[0].value)

    @property
    def connection(self) -> Connection | None:
        line = _first(self.lines, "c")
        return Connection.parse(line.value) if line else None

    @property
    def attributes(self) -> list[tuple[str, str | None]]:
        return _attributes(self.lines)

    def attribute(self, name: str) -> str | None:
        return next((v for n, v in self.attributes if n == name and v is not None), None)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute written at media level, if any."""
        return _direction(self.lines)

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        return _lenient(_parse_ptime, value) if value is not None else None

    @property
    def rtpmaps(self) -> dict[int, Rtpmap]:
        values = (v for n, v in self.attributes if n == "rtpmap" and v is not None)
        maps = (_lenient(Rtpmap.parse, v) for v in values)
        return {m.payload_type: m for m in maps if m is not None}

    @property
    def fmtps(self) -> dict[str, str]:
        pairs = (v.partition(" ") for n, v in self.attributes if n == "fmtp" and v is not None)
        return {fmt: params.strip() for fmt, _, params in pairs}

    def codecs(self) -> tuple[Codec, ...]:
        """Known payload formats in m-line order (rtpmap, else the RFC 3551 static table)."""
        rtpmaps, fmtps = self.rtpmaps, self.fmtps
        found = []
        for fmt in self.media_line.formats:
            pt = int(fmt) if _is_number(fmt, 3) else -1
            rtpmap = rtpmaps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if rtpmap is not None:
                found.append(_codec_from(rtpmap, fmtps.get(fmt)))
        return tuple(found)


def _codec_from(rtpmap: Rtpmap, fmtp: str | None) -> Codec:
    return Codec(
        name=rtpmap.encoding,
        clock_rate=rtpmap.clock_rate,
        payload_type=rtpmap.payload_type,
        channels=rtpmap.channels,
        fmtp=fmtp,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioStream:
    """The audio view of one ``m=audio`` section, with session-level defaults applied."""

    index: int
    host: str | None
    port: int
    proto: str
    codecs: tuple[Codec, ...]
    ptime: int | None
    direction: Direction
    unspecified_address: bool

    @property
    def effective_direction(self) -> Direction:
        # RFC 3264 §8.4: c=0.0.0.0 means "do not send to me" whatever the attribute says.
        return self.direction.without_receive() if self.unspecified_address else self.direction

    @property
    def on_hold(self) -> bool:
        """The peer does not want our media: sendonly, inactive or the old c=0.0.0.0 form."""
        return not self.effective_direction.receives

    @property
    def telephone_event(self) -> Codec | None:
        return next((c for c in self.codecs if c.is_telephone_event), None)


def _encode(text: str) -> bytes:
    # surrogateescape: non-UTF-8 bytes (a Latin-1 s= line) survive the round trip.
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionDescription:
    """A whole SDP body: session-level lines, media sections and trailing blank lines."""

    lines: tuple[SdpLine, ...]
    media: tuple[MediaSection, ...] = ()
    trailer: str = ""

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        return _parse(data)

    def to_bytes(self) -> bytes:
        return _encode(str(self))

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def __str__(self) -> str:
        all_lines = [*self.lines, *(line for m in self.media for line in m.lines)]
        return "".join(map(str, all_lines)) + self.trailer

    @property
    def origin(self) -> Origin:
        line = _first(self.lines, "o")
        assert line is not None  # guaranteed by parse
        return Origin.parse(line.value)

    @property
    def session_name(self) -> str | None:
        line = _first(self.lines, "s")
        return line.value if line else None

    @property
    def connection(self) -> Connection | None:
        line = _first(self.lines, "c")
        return Connection.parse(line.value) if line else None

    @property
    def direction(self) -> Direction | None:
        """The session-level direction attribute, if any (RFC 4566 §6)."""
        return _direction(self.lines)

    def with_origin(self, origin: Origin) -> SessionDescription:
        lines = tuple(
            replace(line, value=str(origin)) if line.kind == "o" else line for line in self.lines
        )
        return replace(self, lines=lines)

    def audio_streams(self) -> tuple[AudioStream, ...]:
        return tuple(
            self._audio_stream(i, section)
            for i, section in enumerate(self.media)
            if section.media_line.media == "audio"
        )

    def audio(self) -> AudioStream | None:
        """The first audio stream that was not rejected (port 0), if any."""
        return next((s for s in self.audio_streams() if s.port != 0), None)

    def _audio_stream(self, index: int, section: MediaSection) -> AudioStream:
        # RFC 4566 §5.7 and §6: media-level c= and attributes override session-level ones.
        connection = section.connection or self.connection
        m = section.media_line
        return AudioStream(
            index=index,
            host=connection.host if connection else None,
            port=m.port,
            proto=m.proto,
            codecs=section.codecs(),
            ptime=section.ptime,
            direction=section.direction or self.direction or Direction.SENDRECV,
            unspecified_address=connection is not None and connection.is_unspecified,
        )


# --- parsing ----------------------------------------------------------------------------------

_LINE: Final = re.compile(r"([a-z])=([^\x00\r\n]*)")


def _decode(data: bytes | str) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "surrogateescape")
    try:
        _encode(data)
    except UnicodeEncodeError:
        raise SdpError("text cannot be encoded") from None
    return data


def _split_lines(text: str) -> tuple[list[tuple[str, str]], str]:
    """``(content, eol)`` pairs; trailing blank lines are returned apart as the trailer."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        newline = text.find("\n", pos)
        end, nxt = (len(text), len(text)) if newline == -1 else (newline, newline + 1)
        if newline != -1 and end > pos and text[end - 1] == "\r":
            end -= 1
        pieces.append((text[pos:end], text[end:nxt]))
        pos = nxt
    trailer = ""
    while pieces and pieces[-1][0] == "":
        trailer = pieces.pop()[1] + trailer
    return pieces, trailer


def _parse_line(number: int, content: str, eol: str) -> SdpLine:
    match = _LINE.fullmatch(content)
    try:
        _check(match is not None, "expected <type>=<value>")
        assert match is not None
        line = SdpLine(kind=match[1], value=match[2], eol=eol)
        validator = _VALIDATORS.get(line.kind)
        if validator is not None:
            validator(line.value)
    except SdpError as exc:
        raise SdpError(exc.message, line_no=number, line=content or "(empty)") from None
    return line


def _parse(data: bytes | str) -> SessionDescription:
    pieces, trailer = _split_lines(_decode(data))
    if not pieces:
        raise SdpError("empty description")
    lines = [_parse_line(n, content, eol) for n, (content, eol) in enumerate(pieces, 1)]
    if lines[0].kind != "v":
        raise SdpError("must start with v=", line_no=1, line=pieces[0][0])
    session, sections = _group(lines)
    _check_session(lines, len(session))
    return SessionDescription(lines=session, media=sections, trailer=trailer)


def _group(lines: list[SdpLine]) -> tuple[tuple[SdpLine, ...], tuple[MediaSection, ...]]:
    starts = [i for i, line in enumerate(lines) if line.kind == "m"]
    bounds = [*starts, len(lines)]
    sections = tuple(MediaSection(lines=tuple(lines[a:b])) for a, b in itertools.pairwise(bounds))
    return tuple(lines[: bounds[0]]), sections


def _check_session(lines: list[SdpLine], session_len: int) -> None:
    # RFC 4566 §5: one v= (first) and one o= per description, both at session level.
    for kind, allowed in (("v", 1), ("o", session_len)):
        found = [n for n, line in enumerate(lines, 1) if line.kind == kind]
        if len(found) != 1 or found[0] > allowed:
            number = found[1] if len(found) > 1 else found[0] if found else len(lines)
            raise SdpError(
                f"exactly one session-level {kind}= line needed",
                line_no=number,
                line=f"{lines[number - 1]}".rstrip("\r\n"),
            )


# --- offer / answer (RFC 3264) ----------------------------------------------------------------


def _media_lines(
    *, port: int, proto: str, codecs: Sequence[Codec], ptime: int | None, direction: Direction
) -> list[SdpLine]:
    m = MediaLine(
        media="audio", port=port, proto=proto, formats=tuple(str(c.payload_type) for c in codecs)
    )
    lines = [SdpLine(kind="m", value=str(m))]
    for codec in codecs:
        lines.append(SdpLine(kind="a", value=f"rtpmap:{codec.rtpmap()}"))
        if codec.fmtp:
            lines.append(SdpLine(kind="a", value=f"fmtp:{codec.payload_type} {codec.fmtp}"))
    if ptime is not None:
        lines.append(SdpLine(kind="a", value=f"ptime:{ptime}"))
    lines.append(SdpLine(kind="a", value=direction.value))
    return lines


def _session_lines(
    *, local_addr: str, session_id: int | str, version: int, username: str, session_name: str
) -> list[SdpLine]:
    connection = Connection.for_address(local_addr)
    origin = Origin(
        username=username,
        session_id=str(session_id),
        version=version,
        addr_type=connection.addr_type,
        address=local_addr,
    )
    return [
        SdpLine(kind="v", value="0"),
        SdpLine(kind="o", value=str(origin)),
        SdpLine(kind="s", value=session_name),
        SdpLine(kind="c", value=str(connection)),
        SdpLine(kind="t", value="0 0"),
    ]


def _check_codecs(codecs: Sequence[Codec]) -> None:
    pts = [c.payload_type for c in codecs]
    if not codecs or len(set(pts)) != len(pts) or not all(0 <= pt <= 127 for pt in pts):
        raise ValueError(f"need codecs with distinct payload types 0-127, got {pts}")


def make_offer(
    *,
    local_addr: str,
    port: int,
    codecs: Sequence[Codec],
    session_id: int | str,
    version: int,
    direction: Direction = Direction.SENDRECV,
    ptime: int | None = 20,
    username: str = "-",
    session_name: str = "-",
) -> SessionDescription:
    """An audio offer (RFC 3264 §5); hold is ``direction=SENDONLY`` (§8.4)."""
    _check_codecs(codecs)
    session = _session_lines(
        local_addr=local_addr,
        session_id=session_id,
        version=version,
        username=username,
        session_name=session_name,
    )
    media = _media_lines(
        port=port, proto="RTP/AVP", codecs=codecs, ptime=ptime, direction=direction
    )
    return SessionDescription(lines=tuple(session), media=(MediaSection(lines=tuple(media)),))


_MAX_EVENT: Final = 255  # RFC 4733 §2.3.1: the event code is 8 bits


def _events(fmtp: str | None) -> frozenset[int] | None:
    """Parse a telephone-event list such as ``0-15,66``; ``None`` when garbled."""
    if fmtp is None:
        return frozenset(range(16))  # RFC 4733 §2.4.1: no fmtp means DTMF 0-15
    events: set[int] = set()
    for item in fmtp.replace(" ", "").split(","):
        low, dash, high = item.partition("-")
        if not (_is_number(low, 9) and (not dash or _is_number(high, 9))):
            return None
        first, last = int(low), int(high or low)
        events.update(range(first, min(last, _MAX_EVENT) + 1))
    return frozenset(e for e in events if e <= _MAX_EVENT)


def _render_events(events: Iterable[int]) -> str:
    ordered = sorted(events)
    runs: list[list[int]] = []
    for event in ordered:
        if runs and event == runs[-1][-1] + 1:
            runs[-1].append(event)
        else:
            runs.append([event])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def _match(offered: Codec, supported: Sequence[Codec]) -> Codec | None:
    ours = next((s for s in supported if s.same_format(offered)), None)
    # RFC 3264 §6.1: answer with the offerer's payload type number; our fmtp if we have one.
    return replace(offered, fmtp=ours.fmtp or offered.fmtp) if ours else None


def _answer_dtmf(offered: Codec, ours: Codec) -> Codec | None:
    common = (_events(offered.fmtp) or frozenset()) & (_events(ours.fmtp) or frozenset())
    return replace(offered, fmtp=_render_events(common)) if common else None


def _choose_codecs(
    stream: AudioStream, supported: Sequence[Codec], *, single_codec: bool
) -> list[Codec]:
    voice = [
        chosen
        for offered in stream.codecs
        if not offered.is_telephone_event and (chosen := _match(offered, supported)) is not None
    ]
    if not voice:
        return []
    voice = voice[:1] if single_codec else voice
    # RFC 4733 §2.1: telephone-event must share the audio codec's clock rate.
    ours_te = next((s for s in supported if s.is_telephone_event), None)
    offered_te = next(
        (c for c in stream.codecs if c.is_telephone_event and c.clock_rate == voice[0].clock_rate),
        None,
    )
    dtmf = _answer_dtmf(offered_te, ours_te) if offered_te and ours_te else None
    picked = {c.payload_type: c for c in [*voice, *([dtmf] if dtmf else [])]}
    # Keep the offerer's order (RFC 3264 §6.1: the answerer SHOULD list its preference, and
    # we have none stronger than the offerer's).
    return [picked[c.payload_type] for c in stream.codecs if c.payload_type in picked]


def _answer_direction(offer: AudioStream, wish: Direction) -> Direction:
    # RFC 3264 §6.1: sendonly ↔ recvonly, inactive stays inactive; our own wish (e.g. we
    # hold) can only narrow the result. §8.4: c=0.0.0.0 means the offerer will not receive.
    offered = offer.effective_direction
    return Direction.from_flags(
        send=offered.receives and wish.sends, receive=offered.sends and wish.receives
    )


def _rejected(section: MediaSection) -> MediaSection:
    # RFC 3264 §6: a rejected stream keeps its m= line with port 0 and the offered formats.
    m = replace(section.media_line, port=0, port_count=None)
    return MediaSection(lines=(SdpLine(kind="m", value=str(m)),))


def make_answer(
    offer: SessionDescription,
    *,
    local_addr: str,
    port: int,
    supported: Sequence[Codec],
    session_id: int | str,
    version: int,
    direction: Direction = Direction.SENDRECV,
    ptime: int | None = 20,
    single_codec: bool = False,
    protos: Sequence[str] = ("RTP/AVP",),
    username: str = "-",
    session_name: str = "-",
) -> SessionDescription:
    """Answer an offer (RFC 3264 §6): accept the first usable audio stream, reject the rest.

    Raises ``NoCommonCodecError`` (answer 488) when no audio stream can be accepted.
    """
    _check_codecs(supported)
    accepted: tuple[int, AudioStream, list[Codec]] | None = None
    for stream in offer.audio_streams():
        codecs = _choose_codecs(stream, supported, single_codec=single_codec)
        if stream.port != 0 and stream.proto in protos and codecs:
            accepted = (stream.index, stream, codecs)
            break
    if accepted is None:
        raise NoCommonCodecError("no offered audio stream shares a codec with us")
    index, stream, codecs = accepted
    media_lines = _media_lines(
        port=port,
        proto=stream.proto,
        codecs=codecs,
        ptime=ptime,
        direction=_answer_direction(stream, direction),
    )
    sections = tuple(
        MediaSection(lines=tuple(media_lines)) if i == index else _rejected(section)
        for i, section in enumerate(offer.media)
    )
    session = _session_lines(
        local_addr=local_addr,
        session_id=session_id,
        version=version,
        username=username,
        session_name=session_name,
    )
    return SessionDescription(lines=tuple(session), media=sections)


def versioned(
    candidate: SessionDescription, previous: SessionDescription | None
) -> SessionDescription:
    """The description to send next in a dialog (RFC 3264 §8).

    The o= line stays that of the previous description we sent; its version goes up by one
    only when something else changed, and an unchanged description is resent as it was.
    """
    if previous is None:
        return candidate
    origin = previous.origin
    if candidate.with_origin(origin).to_bytes() == previous.to_bytes():
        return previous
    return candidate.with_origin(replace(origin, version=origin.version + 1))
