"""The SIP stack, sans-I/O (ENGINEERING.md §3): no sockets, clocks or randomness in here.

This package's message layer: :mod:`.message` (requests, responses, parsing, error
responses), :mod:`.headers` (header fields and typed values), :mod:`.uri` (URIs, name-addr,
Via), :mod:`.framing` (stream framing) and :mod:`.errors`. Above it: :mod:`.transaction`
(RFC 3261 §17) and :mod:`.dialog` (dialogs, session timers, 100rel/PRACK; exported here),
reporting through :mod:`.events`.
"""

from cloudpbx.sip.dialog import (
    Dialog,
    DialogConfig,
    DialogLayer,
    DialogState,
    DialogStateError,
    Endpoint,
    OfferAnswerState,
    UnknownDialogError,
)
from cloudpbx.sip.errors import HeaderError, ParseError, SipError
from cloudpbx.sip.events import CallKey, DialogId, TerminationReason
from cloudpbx.sip.framing import StreamFramer
from cloudpbx.sip.headers import CSeq, Headers
from cloudpbx.sip.message import (
    Message,
    Request,
    Response,
    bad_request_response,
    make_response,
    parse_message,
)
from cloudpbx.sip.uri import (
    STAR,
    URI,
    AbsoluteURI,
    NameAddr,
    SipURI,
    Star,
    TelURI,
    Via,
    parse_name_addr,
    parse_uri,
    parse_via,
)

__all__ = [
    "STAR",
    "URI",
    "AbsoluteURI",
    "CSeq",
    "CallKey",
    "Dialog",
    "DialogConfig",
    "DialogId",
    "DialogLayer",
    "DialogState",
    "DialogStateError",
    "Endpoint",
    "HeaderError",
    "Headers",
    "Message",
    "NameAddr",
    "OfferAnswerState",
    "ParseError",
    "Request",
    "Response",
    "SipError",
    "SipURI",
    "Star",
    "StreamFramer",
    "TelURI",
    "TerminationReason",
    "UnknownDialogError",
    "Via",
    "bad_request_response",
    "make_response",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
]
