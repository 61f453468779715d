"""Errors of the SIP message layer.

Two kinds of failure are kept apart (ENGINEERING.md §3):

* the peer's fault: bytes that are not a valid SIP message. These raise :class:`ParseError`
  (or its subclass :class:`HeaderError`), which carries the response status the RFCs ask for
  (400 by default, 505 for an unknown SIP version, 513 for an oversize message) and the name of
  the offending header, so that the transport can answer (RFC 3261 §21.4.1: "the reason phrase
  SHOULD identify the syntax problem in more detail") or drop silently when no answer is
  possible;
* our own misuse (building a header with a CR/LF in it, a port out of range...). These raise
  plain :class:`ValueError`, never ``ParseError``: a bug of ours must not be mistaken for a
  peer's garbage.
"""

from __future__ import annotations

__all__ = ["HeaderError", "ParseError", "SipError"]

_MAX_REASON = 120


class SipError(Exception):
    """Base class of the SIP stack's errors."""


class ParseError(SipError):
    """The peer sent something that is not valid SIP.

    ``status`` is the response a server should send if it can answer at all (requests only;
    a broken response is always dropped): 400 by default, 505 for a version other than
    SIP/2.0 (RFC 3261 §21.5.6), 513 for an oversize message (RFC 3261 §21.5.9).
    """

    def __init__(self, message: str, header: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.header = header
        self.status = status

    @property
    def reason_phrase(self) -> str:
        """A reason phrase naming the problem (RFC 3261 §21.4.1), safe to put on the wire."""
        base = {505: "Version Not Supported", 513: "Message Too Large"}.get(
            self.status, "Bad Request"
        )
        detail = "".join(c if " " <= c <= "~" else "?" for c in self.message)
        text = f"{base} ({detail})"
        return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 4] + "...)"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, header={self.header!r}, status={self.status})"
        )


class HeaderError(ParseError):
    """A header field value does not match its grammar (raised by the typed accessors)."""

    def __init__(self, header_name: str, reason: str) -> None:
        super().__init__(f"invalid {header_name} header: {reason}", header=header_name)
        self.reason = reason

    def __repr__(self) -> str:
        return f"HeaderError({self.header!r}, {self.reason!r})"
