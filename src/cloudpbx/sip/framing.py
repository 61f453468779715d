"""Message framing on stream transports (TCP, TLS), sans-I/O.

RFC 3261 §18.3: on a stream, Content-Length is mandatory and delimits the body; CRLFs before a
start line are ignored (§7.5). RFC 5626 §3.5.1 / §4.4.1: a client keeps a flow alive with a
double-CRLF "ping", answered by a single-CRLF "pong".

Usage by the asyncio shell::

    framer.feed(data)
    while (frame := framer.next_message()) is not None:   # may raise ParseError
        message = parse_message(frame)
    if framer.take_pong_due():
        transport.write(b"\\r\\n")

A framing error is fatal for the connection (the stream cannot be resynchronised): the error
is raised by :meth:`StreamFramer.next_message` once the frames before it are drained, and on
every later call; :attr:`StreamFramer.failed_data` keeps the offending head so that a 400/513
can be sent (:func:`cloudpbx.sip.message.bad_request_response`) before closing.
"""

from __future__ import annotations

import re
from collections import deque

from cloudpbx.sip.errors import HeaderError, ParseError

__all__ = ["DEFAULT_MAX_SIZE", "StreamFramer"]

DEFAULT_MAX_SIZE = 65536

# A Content-Length line (full or compact form, HCOLON may be folded) at the start of a line.
_CONTENT_LENGTH = re.compile(
    rb"\r\n(?:content-length|l)[ \t]*:(?:[ \t]|\r\n[ \t])*([^\r\n]*)", re.IGNORECASE
)


class StreamFramer:
    """Cuts a byte stream into whole SIP messages (see the module docstring).

    Memory is bounded: after each :meth:`feed` the pending buffer holds at most ``max_size``
    bytes (during it, at most ``max_size`` plus the chunk); a message larger than
    ``max_size`` is a :class:`ParseError` with status 513 (RFC 3261 §21.5.9).
    """

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size < 16:
            raise ValueError("max_size is too small for any SIP message")
        self.max_size = max_size
        self.failed_data: bytes | None = None
        self._buffer = bytearray()
        self._frames: deque[bytes] = deque()
        self._error: ParseError | None = None
        self._scan = 0  # where the search for the end of the head resumes
        self._pending = 0  # size of the message being received, once its head is complete
        self._crlfs = 0  # CRLFs seen since the last message (keep-alive detection)
        self._pong_due = False
        self._pongs = 0

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a whole message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Add received bytes. Never raises for the peer's data (see :meth:`next_message`)."""
        if self._error is not None:
            return
        self._buffer += data
        try:
            self._extract()
        except ParseError as exc:
            self._error = exc
            self.failed_data = bytes(self._buffer[: self.max_size])
            self._buffer.clear()

    def next_message(self) -> bytes | None:
        """The next whole message, ``None`` if more data is needed; raises the framing
        :class:`ParseError` once the messages received before it have been returned."""
        if self._frames:
            return self._frames.popleft()
        if self._error is not None:
            raise self._error
        return None

    def take_pong_due(self) -> bool:
        """True (once) if a double-CRLF ping arrived since the last call: send ``b"\\r\\n"``."""
        due, self._pong_due = self._pong_due, False
        return due

    def take_pongs(self) -> int:
        """How many single-CRLF pongs arrived since the last call (for a pinging client).

        The first CRLF of a ping counts too: a server ignores this figure, and a client never
        receives pings, so both roles read what they need."""
        pongs, self._pongs = self._pongs, 0
        return pongs

    def _extract(self) -> None:
        buf = self._buffer
        while self._skip_keepalives():
            total = self._pending or self._message_size()
            if not total:
                return
            if len(buf) < total:
                self._pending = total
                return
            self._frames.append(bytes(buf[:total]))
            del buf[:total]
            self._scan = self._pending = 0

    def _message_size(self) -> int:
        """Size of the message at the start of the buffer, 0 while its head is incomplete."""
        buf = self._buffer
        end = buf.find(b"\r\n\r\n", self._scan)
        if end < 0:
            if len(buf) > self.max_size:
                raise ParseError(f"header section longer than {self.max_size} octets", status=513)
            self._scan = max(0, len(buf) - 3)
            return 0
        total = end + 4 + _content_length(bytes(buf[:end]))
        if total > self.max_size:
            raise ParseError(f"message of {total} octets exceeds {self.max_size}", status=513)
        return total

    def _skip_keepalives(self) -> bool:
        """Consume CRLFs at a message boundary; True when a message start is buffered."""
        buf = self._buffer
        while buf[:2] == b"\r\n":
            del buf[:2]
            self._crlfs += 1
            if self._crlfs == 2:  # RFC 5626 §4.4.1: CRLFCRLF ping
                self._crlfs = 0
                self._pong_due = True
            else:
                self._pongs += 1
        if not buf or buf == b"\r":
            return False  # wait: a lone CR may be the start of a keep-alive
        self._crlfs = 0
        return True


def _content_length(head: bytes) -> int:
    values = _CONTENT_LENGTH.findall(head)
    if not values:
        # RFC 3261 §18.3 / §20.14: mandatory on stream transports.
        raise ParseError(
            "missing Content-Length (mandatory on stream transports)", header="Content-Length"
        )
    if len(values) > 1:
        raise HeaderError("Content-Length", "appears more than once")  # RFC 4475 §3.3.9
    text = values[0].strip(b" \t")
    if not 0 < len(text) <= 10 or not text.isdigit():
        raise HeaderError("Content-Length", f"not a decimal number: {text[:20]!r}")
    return int(text)
