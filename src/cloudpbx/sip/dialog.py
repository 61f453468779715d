"""SIP dialogs (RFC 3261 §12-§15), sans-I/O, with UPDATE (RFC 3311), reliable provisional
responses (RFC 3262), session timers (RFC 4028) and option tags (RFC 3261 §8.2.2.3).

:class:`DialogLayer` is the transaction user of a :class:`TransactionLayer`: it feeds it,
consumes its events and sends through it; its own TU (the call engine) sees dialog events
(:mod:`cloudpbx.sip.events`) and the untouched transaction events of everything that is not
an INVITE dialog (REGISTER, OPTIONS, SUBSCRIBE ...). Nothing here reads a clock or a socket
(ENGINEERING.md §3): time comes in as ``now``, randomness through ``new_token``.

What the layer does by itself, because the RFCs leave no choice: ACK every 2xx (and re-ACK its
retransmissions), ACK + BYE a 2xx from a second fork, answer BYE, CANCEL, PRACK and bodiless
UPDATEs, reject what must be rejected (420, 422, 481, 482, 491, 500, 501), retransmit
reliable provisional responses, PRACK them, refresh the session and retry after a 422.
What it leaves to the TU: whether and how to answer a call or a re-INVITE, the session
descriptions (it only carries bodies and tracks the offer/answer state), ending a call.

The dialog state machine is the table ``DIALOG_TRANSITIONS``; a missing entry is our misuse
and raises :class:`DialogStateError`. Timers (session refresh and expiry, reliable 1xx
retransmission and PRACK timeout) live in this layer's own heap with lazy deletion, like the
transaction layer's: :meth:`DialogLayer.get_timer` is the earlier of both deadlines and
:meth:`DialogLayer.handle_timer` runs both, so the shell re-arms one timer.
"""

from __future__ import annotations

import heapq
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum
from typing import NamedTuple, TypeAlias

from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.events import (
    AckReceived,
    AckTimeout,
    Address,
    ByeReceived,
    CallAnswered,
    CallFailed,
    CallKey,
    CancelReceived,
    DialogAckReceived,
    DialogEvent,
    DialogId,
    DialogRequest,
    DialogResponse,
    DialogTerminated,
    EarlyDialog,
    IncomingCall,
    InviteCancelled,
    PrackReceived,
    ProvisionalReceived,
    ReInvite,
    RequestReceived,
    ResponseReceived,
    SessionExpired,
    TerminationReason,
    TransactionEvent,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
    Update,
)
from cloudpbx.sip.headers import Headers, HeaderValue
from cloudpbx.sip.message import Message, Request, Response, make_response
from cloudpbx.sip.transaction import (
    MAGIC_COOKIE,
    TransactionLayer,
    TransactionState,
    UnknownTransactionError,
)
from cloudpbx.sip.uri import URI, NameAddr, SipURI, Star, parse_name_addr, parse_params

__all__ = [
    "ABSOLUTE_MIN_SE",
    "DIALOG_TRANSITIONS",
    "Dialog",
    "DialogConfig",
    "DialogInput",
    "DialogLayer",
    "DialogState",
    "DialogStateError",
    "DialogTimer",
    "Endpoint",
    "OfferAnswerState",
    "SessionExpires",
    "SessionTimer",
    "UnknownDialogError",
    "expiry_delay",
    "parse_rack",
    "parse_session_expires",
]

# RFC 4028 §4, §5: Session-Expires and Min-SE are never below 90 seconds.
ABSOLUTE_MIN_SE = 90
# RFC 3261 §12.1.1, §12.1.2: a dialog is secure when its INVITE went over TLS to a SIPS URI.
_SECURE_TRANSPORTS = frozenset({"TLS", "WSS", "TLS-SCTP"})
# Requests that carry our Contact and refresh the target (RFC 3261 §12.2, RFC 3311, 6665, 3515).
_TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})
_DEFAULT_ALLOW = (
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "UPDATE",
    "PRACK",
    "INFO",
    "REFER",
    "NOTIFY",
    "MESSAGE",
)
# Methods of other dialog usages (RFC 6665 subscriptions ...): with an unknown To tag they go
# to the TU instead of getting a 481.
_DEFAULT_PASSTHROUGH = frozenset({"SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "OPTIONS"})
_AUTH_HEADERS = ("Authorization", "Proxy-Authorization")


# --- states, inputs, the transition table --------------------------------------------------------


class DialogState(Enum):
    EARLY = "Early"
    CONFIRMED = "Confirmed"
    TERMINATING = "Terminating"  # our BYE is out, its transaction still runs (§15.1.1)
    TERMINATED = "Terminated"


class DialogInput(Enum):
    PROVISIONAL = "1xx with a To tag"
    SUCCESS = "2xx to the INVITE"
    FAILURE = "300-699 to the INVITE"
    INVITE_ENDED = "INVITE ended elsewhere"
    SEND_BYE = "BYE from TU"
    BYE_RECEIVED = "BYE received"
    BYE_COMPLETED = "BYE transaction ended"
    DIALOG_GONE = "481, 408 or no response in the dialog"


_D = DialogState
_DI = DialogInput

DIALOG_TRANSITIONS: dict[tuple[DialogState, DialogInput], DialogState] = {
    (_D.EARLY, _DI.PROVISIONAL): _D.EARLY,  # §12.1: more 1xx in the early dialog
    (_D.EARLY, _DI.SUCCESS): _D.CONFIRMED,  # §12.1.1, §13.2.2.4: the 2xx confirms it
    (_D.EARLY, _DI.FAILURE): _D.TERMINATED,  # §12.3: a non-2xx final ends early dialogs
    (_D.EARLY, _DI.INVITE_ENDED): _D.TERMINATED,  # §13.2.2.4: another fork answered
    (_D.EARLY, _DI.BYE_RECEIVED): _D.TERMINATED,  # §15: the caller MAY BYE an early dialog
    (_D.EARLY, _DI.DIALOG_GONE): _D.TERMINATED,  # §12.2.1.2
    # (EARLY, SEND_BYE) is missing on purpose: the callee MUST NOT BYE an early dialog (§15)
    # and we end our own early dialogs with CANCEL (§9.1).
    (_D.CONFIRMED, _DI.PROVISIONAL): _D.CONFIRMED,  # a late 1xx changes nothing
    (_D.CONFIRMED, _DI.SUCCESS): _D.CONFIRMED,  # 2xx retransmission (RFC 6026)
    (_D.CONFIRMED, _DI.FAILURE): _D.CONFIRMED,  # a late non-2xx cannot undo the 2xx
    (_D.CONFIRMED, _DI.SEND_BYE): _D.TERMINATING,  # §15.1.1
    (_D.CONFIRMED, _DI.BYE_RECEIVED): _D.TERMINATED,  # §15.1.2
    (_D.CONFIRMED, _DI.DIALOG_GONE): _D.TERMINATED,  # §12.2.1.2
    (_D.TERMINATING, _DI.PROVISIONAL): _D.TERMINATING,
    (_D.TERMINATING, _DI.SUCCESS): _D.TERMINATING,
    (_D.TERMINATING, _DI.FAILURE): _D.TERMINATING,
    (_D.TERMINATING, _DI.BYE_RECEIVED): _D.TERMINATED,  # BYEs crossed: answer 200 and go
    (_D.TERMINATING, _DI.BYE_COMPLETED): _D.TERMINATED,
    (_D.TERMINATING, _DI.DIALOG_GONE): _D.TERMINATED,
}


class OfferAnswerState(Enum):
    """The offer/answer state of a dialog (RFC 3261 §13.2.1, RFC 3262 §5, RFC 3311 §5,
    RFC 6337 §2)."""

    NONE = "no offer yet"
    LOCAL_OFFER = "our offer awaits an answer"
    REMOTE_OFFER = "their offer awaits our answer"
    STABLE = "offer answered"


class DialogTimer(Enum):
    SESSION_REFRESH = "session refresh (RFC 4028 §10: half the interval)"
    SESSION_EXPIRE = "session expiry (RFC 4028 §10)"
    RELIABLE_1XX = "reliable 1xx retransmission (RFC 3262 §3: T1, doubling)"
    PRACK_TIMEOUT = "no PRACK (RFC 3262 §3: 64*T1)"


class DialogStateError(ValueError):
    """Our misuse: an action the dialog does not allow in its state (a BYE on an early
    dialog, a re-INVITE while an INVITE is pending, a second offer, a response after the
    final one ...)."""

    def __init__(self, state: DialogState, event: str) -> None:
        super().__init__(f"dialog: no transition from {state.value} on {event}")
        self.state = state
        self.event = event


class UnknownDialogError(LookupError):
    """Our misuse: no live dialog (or call) has this id."""


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogConfig:
    """Dialog layer policy.

    ``supported``: the option tags we understand (RFC 3261 §8.2.2.3, §19.2); ``"timer"``
    turns session timers on (RFC 4028), ``"100rel"`` reliable provisional responses (RFC 3262).
    ``allow``: the methods accepted inside a dialog (others get 501, §12.2.2).
    ``passthrough``: methods that, with a To tag matching no INVITE dialog, go to the TU
    instead of getting 481 (other dialog usages: RFC 6665 subscriptions).
    ``session_expires`` / ``min_se``: RFC 4028 §4, §5 (defaults: the recommended 1800 s and
    the minimum 90 s). ``uas_refresher``: who refreshes when a request leaves it to us
    (``None``: the UAC when it supports timers, else us; RFC 4028 §9).
    ``auto_answer_refresh``: answer an unchanged re-INVITE (a session refresh) ourselves.
    ``refresh_unaware_peers``: keep a session timer, refreshed by us, with a peer that does
    not support timers (see ``DialogLayer._uac_session``): dead-peer detection for every call.
    """

    supported: frozenset[str] = frozenset({"100rel", "timer"})
    allow: tuple[str, ...] = _DEFAULT_ALLOW
    passthrough: frozenset[str] = _DEFAULT_PASSTHROUGH
    session_expires: int = 1800
    min_se: int = ABSOLUTE_MIN_SE
    uas_refresher: str | None = None
    auto_answer_refresh: bool = True
    refresh_unaware_peers: bool = True
    max_forwards: int = 70

    def __post_init__(self) -> None:
        if self.min_se < ABSOLUTE_MIN_SE or self.session_expires < self.min_se:
            raise ValueError("RFC 4028 §4: need 90 <= min_se <= session_expires")
        if self.uas_refresher not in (None, "uac", "uas"):
            raise ValueError("uas_refresher must be 'uac', 'uas' or None")
        if any(tag != tag.lower() for tag in self.supported):
            raise ValueError("option tags are compared in lower case")
        if not {"INVITE", "ACK", "BYE", "CANCEL"} <= set(self.allow):
            raise ValueError("allow must contain INVITE, ACK, BYE and CANCEL")

    @property
    def session_timers(self) -> bool:
        return "timer" in self.supported


class Endpoint(NamedTuple):
    """Our side of a flow: the Via (without branch, e.g. ``SIP/2.0/UDP 192.0.2.1:5060;rport``)
    and the Contact (e.g. ``<sip:pbx@192.0.2.1:5060>``) of the messages we send there."""

    via: str
    contact: str


# --- parsed header values ----------------------------------------------------------------------


class SessionExpires(NamedTuple):
    """``Session-Expires: 1800;refresher=uac`` (RFC 4028 §4)."""

    interval: int
    refresher: str | None


def _delta(text: str, header: str) -> int:
    text = text.strip()
    if not 0 < len(text) <= 10 or not text.isascii() or not text.isdigit():
        raise ParseError(f"invalid {header} header", header=header)
    return int(text)


def parse_session_expires(text: str) -> SessionExpires:
    """Parse a Session-Expires (or Min-SE) value; ParseError names the header."""
    value, _, params = text.partition(";")
    interval = _delta(value, "Session-Expires")
    try:
        parsed = parse_params(";" + params) if params else ()
    except ParseError:
        raise ParseError("invalid Session-Expires header", header="Session-Expires") from None
    refresher = next((v for k, v in parsed if k.lower() == "refresher"), None)
    if refresher is not None:
        refresher = refresher.lower()
        if refresher not in ("uac", "uas"):
            raise ParseError("invalid Session-Expires refresher", header="Session-Expires")
    return SessionExpires(interval, refresher)


def parse_rack(text: str) -> tuple[int, int, str]:
    """``RAck: 776656 1 INVITE`` (RFC 3262 §7.2): response number, CSeq number, method."""
    parts = text.split()
    if len(parts) != 3:
        raise ParseError("invalid RAck header", header="RAck")
    return _delta(parts[0], "RAck"), _delta(parts[1], "RAck"), parts[2]


def expiry_delay(interval: int) -> float:
    """RFC 4028 §10: without a refresh, the session ends ``interval - min(32, interval/3)``
    seconds after the last one (leaving time for the BYE)."""
    return interval - min(32.0, interval / 3)


def _option_tags(msg: Message, header: str) -> frozenset[str]:
    return frozenset(t.strip().lower() for t in msg.headers.values(header) if t.strip())


def _optional(msg: Message, header: str) -> str | None:
    values = msg.headers.get_all(header)
    if len(values) > 1:
        raise ParseError(f"{header} appears more than once", header=header)
    return values[0] if values else None


def _session_of(msg: Message) -> SessionExpires | None:
    text = _optional(msg, "session-expires")
    return None if text is None else parse_session_expires(text)


def _min_se_of(msg: Message) -> int | None:
    text = _optional(msg, "min-se")
    return None if text is None else _delta(text.partition(";")[0], "Min-SE")


def _contact_of(msg: Message) -> URI | None:
    contact = msg.contact
    if isinstance(contact, Star):
        raise ParseError("Contact: * in a dialog", header="Contact")
    return contact[0].uri if contact else None


def _allow_of(msg: Message) -> frozenset[str] | None:
    if "allow" not in msg.headers:
        return None
    return frozenset(m.strip().upper() for m in msg.headers.values("allow"))


class _RequestInfo(NamedTuple):
    """What the layer reads from a request, parsed up front (a malformed header -> 400)."""

    require: frozenset[str]
    supported: frozenset[str]
    session: SessionExpires | None
    min_se: int | None
    contact: URI | None
    allow: frozenset[str] | None
    record_route: tuple[NameAddr, ...]
    rack: tuple[int, int, str] | None

    @classmethod
    def parse(cls, request: Request) -> _RequestInfo:
        method = request.method
        rack = _optional(request, "rack")
        return cls(
            require=_option_tags(request, "require"),
            supported=_option_tags(request, "supported"),
            session=_session_of(request),
            min_se=_min_se_of(request),
            contact=_contact_of(request),
            allow=_allow_of(request),
            record_route=tuple(request.record_route) if method == "INVITE" else (),
            rack=parse_rack(rack) if method == "PRACK" and rack is not None else None,
        )

    @property
    def supports_timer(self) -> bool:
        return "timer" in self.supported or "timer" in self.require


class _ResponseInfo(NamedTuple):
    to_tag: str | None
    require: frozenset[str]
    session: SessionExpires | None
    min_se: int | None
    contact: URI | None
    allow: frozenset[str] | None
    supported: frozenset[str]
    record_route: tuple[NameAddr, ...]
    rseq: int | None

    @classmethod
    def parse(cls, response: Response) -> _ResponseInfo:
        rseq = _optional(response, "rseq")
        return cls(
            to_tag=response.to.tag,
            require=_option_tags(response, "require"),
            session=_session_of(response),
            min_se=_min_se_of(response),
            contact=_contact_of(response),
            allow=_allow_of(response),
            supported=_option_tags(response, "supported"),
            record_route=tuple(response.record_route),
            rseq=None if rseq is None else _delta(rseq, "RSeq"),
        )

    @classmethod
    def minimal(cls, response: Response) -> _ResponseInfo:
        """For a final failure whose other headers are garbage: still end the call."""
        try:
            tag = response.to.tag
            min_se = _min_se_of(response)
        except ParseError:
            tag, min_se = None, None
        empty: frozenset[str] = frozenset()
        return cls(tag, empty, None, min_se, None, None, empty, (), None)


# --- the dialog record ----------------------------------------------------------------------------


class _Timed:
    """Something that arms timers in the layer's heap: ``timers`` maps timer -> seq."""

    __slots__ = ("timers",)

    def __init__(self) -> None:
        self.timers: dict[DialogTimer, int] = {}


@dataclass(slots=True)
class SessionTimer:
    """A running session timer (RFC 4028): the negotiated interval, whether we are the
    refresher, and when the last refresh (2xx to INVITE or UPDATE) went through."""

    interval: int
    we_refresh: bool
    refreshed_at: float

    @property
    def refresh_at(self) -> float | None:
        """When we send the next refresh (RFC 4028 §10: half the interval), if we refresh."""
        return self.refreshed_at + self.interval / 2 if self.we_refresh else None

    @property
    def expires_at(self) -> float:
        return self.refreshed_at + expiry_delay(self.interval)


class Dialog(_Timed):
    """One dialog (RFC 3261 §12.1): read its attributes, change it through the layer.

    ``local_uri`` / ``remote_uri`` are the From / To of our requests (with the tags),
    ``local_seq`` / ``remote_seq`` the CSeq numbers (``None``: empty), ``remote_target`` the
    peer's Contact URI, ``route_set`` the Route values for our requests, ``secure`` the §12.1
    flag, ``local_contact`` our Contact, ``peer_addr`` the address or flow our requests go to
    (where the dialog's INVITE came from or went to; the TU may change it, e.g. after RFC 3263
    resolution of the route set or remote target). ``local_body`` / ``remote_body`` are the
    last session descriptions sent / received in an offer or answer.
    """

    __slots__ = (
        "_ack_due",
        "_awaiting_ack",
        "_bye_after_ack",
        "_bye_key",
        "_end_announced",
        "_invite_in",
        "_invite_out",
        "_min_se",
        "_oa_before",
        "_offer_in_2xx",
        "_offer_seen",
        "_pending_in",
        "_prack_due",
        "_refreshing",
        "_remote_rseq",
        "_reported",
        "id",
        "is_uac",
        "local_body",
        "local_contact",
        "local_content_type",
        "local_seq",
        "local_uri",
        "offer_answer",
        "peer_addr",
        "remote_allow",
        "remote_body",
        "remote_content_type",
        "remote_seq",
        "remote_supported",
        "remote_target",
        "remote_uri",
        "route_set",
        "secure",
        "session_timer",
        "state",
    )

    def __init__(
        self,
        *,
        id: DialogId,
        state: DialogState,
        is_uac: bool,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        local_seq: int | None,
        remote_seq: int | None,
        remote_target: URI,
        route_set: tuple[NameAddr, ...],
        secure: bool,
        local_contact: str,
        peer_addr: Address,
    ) -> None:
        super().__init__()
        self.id = id
        self.state = state
        self.is_uac = is_uac
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set = route_set
        self.secure = secure
        self.local_contact = local_contact
        self.peer_addr = peer_addr
        self.offer_answer = OfferAnswerState.NONE
        self.local_body = b""
        self.local_content_type: str | None = None
        self.remote_body = b""
        self.remote_content_type: str | None = None
        self.session_timer: SessionTimer | None = None
        self.remote_allow: frozenset[str] | None = None
        self.remote_supported: frozenset[str] = frozenset()
        self._reported = False  # the TU has heard of it: it gets a DialogTerminated
        self._end_announced = False
        self._invite_out: TransactionKey | None = None  # our INVITE, until its ACK is sent
        self._invite_in: TransactionKey | None = None  # their INVITE, until our final response
        self._awaiting_ack: int | None = None  # CSeq of the 2xx we sent, until its ACK
        self._ack_due: _ClientInvite | None = None  # a 2xx whose ACK the TU must write
        self._bye_after_ack: tuple[tuple[str, HeaderValue], ...] | None = None  # §15: BYE
        # headers, while the callee's BYE waits for the ACK of its 2xx
        self._bye_key: TransactionKey | None = None
        self._pending_in: set[TransactionKey] = set()  # their requests we have not answered
        self._offer_seen = False  # the current INVITE transaction carried an offer
        self._offer_in_2xx = False  # our 2xx carried an offer: the ACK has the answer
        self._oa_before = OfferAnswerState.NONE  # to roll back a rejected offer
        self._remote_rseq: int | None = None  # RFC 3262 §4: last in-order RSeq
        self._prack_due: tuple[int, int] | None = None  # (RSeq, CSeq) the TU must PRACK
        self._refreshing = False  # our session refresh is in progress
        self._min_se = ABSOLUTE_MIN_SE  # the largest Min-SE a 422 taught us (RFC 4028 §7.4)

    def __repr__(self) -> str:
        return f"<Dialog {self.id} {self.state.value}>"

    # --- building requests (RFC 3261 §12.2.1.1) ----------------------------------------------

    def next_cseq(self) -> int:
        """RFC 3261 §12.2.1.1: one more than the local sequence number (empty on a UAS that
        has not sent a request yet: start at 1, §8.1.1.5)."""
        self.local_seq = 1 if self.local_seq is None else self.local_seq + 1
        return self.local_seq

    def request_target(self) -> tuple[URI, tuple[NameAddr, ...]]:
        """The Request-URI and Route values of a request in this dialog (§12.2.1.1)."""
        routes = self.route_set
        if not routes:
            return self.remote_target, ()
        first = routes[0].uri
        if not isinstance(first, SipURI) or first.lr:
            return self.remote_target, routes  # loose routing: the remote target, every route
        # A strict router (RFC 2543): it goes in the Request-URI (without what is not allowed
        # there, §19.1.1 Table 1), the rest of the route set and the remote target in Route.
        uri = replace(first, headers=()).without_param("method")
        return uri, (*routes[1:], NameAddr(self.remote_target))

    def make_request(
        self,
        method: str,
        *,
        via: str,
        branch: str,
        cseq: int | None = None,
        max_forwards: int = 70,
    ) -> Request:
        """A request in this dialog (§12.2.1.1): Request-URI and Route from the route set and
        remote target, From/To/Call-ID from the dialog, CSeq the next local number (or
        ``cseq``, for the ACK), our Contact on target refresh requests."""
        number = self.next_cseq() if cseq is None else cseq
        uri, routes = self.request_target()
        items: list[tuple[str, HeaderValue]] = [("Via", f"{via};branch={branch}")]
        items += [("Route", route) for route in routes]
        items += [
            ("Max-Forwards", max_forwards),
            ("From", self.local_uri),
            ("To", self.remote_uri),
            ("Call-ID", self.id.call_id),
            ("CSeq", f"{number} {method}"),
        ]
        if method in _TARGET_REFRESH:
            items.append(("Contact", self.local_contact))
        return Request(method, uri, Headers(items))


# --- what the layer remembers per transaction ----------------------------------------------------


class _Purpose(Enum):
    TU = "the TU's request"
    REFRESH = "our session refresh (RFC 4028 §10)"
    PRACK = "our automatic PRACK (RFC 3262 §4)"
    BYE = "BYE"


class _ClientInvite:
    """An INVITE we sent: the initial one of a call (``dialog is None``) or a re-INVITE."""

    __slots__ = (
        "acks",
        "addr",
        "answered",
        "call",
        "cancelled",
        "dialog",
        "early",
        "final",
        "purpose",
        "request",
        "retries",
        "tx_key",
    )

    def __init__(
        self,
        tx_key: TransactionKey,
        request: Request,
        addr: Address,
        *,
        call: CallKey | None,
        dialog: Dialog | None,
        purpose: _Purpose,
    ) -> None:
        self.tx_key = tx_key
        self.request = request
        self.addr = addr
        self.call = call
        self.dialog = dialog
        self.purpose = purpose
        self.early: dict[str, Dialog] = {}  # remote tag -> early dialog (forking)
        self.acks: dict[str, Request] = {}  # remote tag -> our ACK for its 2xx
        self.answered: str | None = None  # the tag of the first 2xx
        self.cancelled = False
        self.final = False
        self.retries = 0  # RFC 4028 §7.3 retries after 422


class _ClientRequest:
    """A non-INVITE request we sent in a dialog."""

    __slots__ = ("dialog", "final", "method", "purpose", "tx_key")

    def __init__(
        self, tx_key: TransactionKey, dialog: Dialog, method: str, purpose: _Purpose
    ) -> None:
        self.tx_key = tx_key
        self.dialog = dialog
        self.method = method
        self.purpose = purpose
        self.final = False


class _Queued(NamedTuple):
    response: Response
    rseq: int | None  # a reliable 1xx's RSeq; None for the 2xx
    sdp: bool


class _ServerInvite(_Timed):
    """An INVITE we received (initial or re-INVITE), until our final response."""

    __slots__ = (
        "addr",
        "dialog",
        "dialog_id",
        "final_sent",
        "info",
        "initial",
        "interval",
        "merge_key",
        "next_rseq",
        "queue",
        "request",
        "session",
        "tx_key",
        "unacked",
        "unacked_offer",
        "unacked_rseq",
    )

    def __init__(
        self,
        tx_key: TransactionKey,
        request: Request,
        addr: Address,
        info: _RequestInfo,
        dialog_id: DialogId,
        dialog: Dialog | None,
        first_rseq: int,
    ) -> None:
        super().__init__()
        self.tx_key = tx_key
        self.request = request
        self.addr = addr
        self.info = info
        self.dialog_id = dialog_id
        self.dialog = dialog
        self.initial = dialog is None
        self.final_sent = False
        self.merge_key: tuple[str, str, int] | None = None
        self.next_rseq = first_rseq  # RFC 3262 §3
        self.unacked: Response | None = None  # the reliable 1xx awaiting its PRACK
        self.unacked_rseq = 0
        self.unacked_offer = False
        self.interval = 0.0
        self.queue: deque[_Queued] = deque()  # responses held until the PRACK comes
        self.session: tuple[int, bool] | None = None  # negotiated for a held 2xx


class _ServerRequest:
    """A non-INVITE request in a dialog that the TU answers (UPDATE, PRACK, INFO ...)."""

    __slots__ = ("dialog", "info", "request", "tx_key")

    def __init__(
        self, tx_key: TransactionKey, request: Request, dialog: Dialog, info: _RequestInfo
    ) -> None:
        self.tx_key = tx_key
        self.request = request
        self.dialog = dialog
        self.info = info


class _Content(NamedTuple):
    """What the TU puts in a response or request."""

    reason: str | None = None
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, HeaderValue], ...] = ()


_ClientRecord: TypeAlias = _ClientInvite | _ClientRequest
_ServerRecord: TypeAlias = _ServerInvite | _ServerRequest
LayerEvent: TypeAlias = DialogEvent | TransactionEvent


# --- small helpers -------------------------------------------------------------------------------


def _is_secure(uri: URI, request: Request) -> bool:
    """§12.1.1 / §12.1.2: the INVITE went over TLS (its top Via says so) to a SIPS URI."""
    try:
        transport = request.via[0].transport.upper()
    except (ParseError, IndexError):
        return False
    return isinstance(uri, SipURI) and uri.secure and transport in _SECURE_TRANSPORTS


def _fraction(token: str) -> float:
    """A number in [0, 1) from an injected random token (the sans-I/O core has no random)."""
    return zlib.crc32(token.encode()) / 2**32


def _add_headers(msg: Message, items: Iterable[tuple[str, HeaderValue]]) -> None:
    for name, value in items:
        msg.headers.add(name, value)


def _set_body(msg: Message, body: bytes, content_type: str | None) -> None:
    if body:
        msg.set_body(body, content_type)


# --- the layer -----------------------------------------------------------------------------------


class DialogLayer:
    """Every INVITE dialog of one endpoint, on top of its :class:`TransactionLayer`.

    ``new_token`` gives random tokens (tags, branches, Call-IDs, RSeq and retry values are
    derived from it); ``endpoint_for(addr)`` our Via and Contact towards an address or flow.
    Drive it like the transaction layer: ``receive_datagram`` / ``receive``, then drain
    ``next_event()`` and ``datagrams_to_send()``, re-arm one timer at ``get_timer()``.
    """

    def __init__(
        self,
        transactions: TransactionLayer | None = None,
        *,
        new_token: Callable[[], str],
        endpoint_for: Callable[[Address], Endpoint],
        config: DialogConfig | None = None,
    ) -> None:
        self.transactions = (
            transactions if transactions is not None else TransactionLayer(new_tag=new_token)
        )
        self.config = config if config is not None else DialogConfig()
        self._new_token = new_token
        self._endpoint_for = endpoint_for
        self._dialogs: dict[DialogId, Dialog] = {}
        self._client: dict[TransactionKey, _ClientRecord] = {}
        self._server: dict[TransactionKey, _ServerRecord] = {}
        self._calls: dict[CallKey, _ClientInvite] = {}
        self._merge: dict[tuple[str, str, int], TransactionKey] = {}  # §8.2.2.2
        self._swallow: set[TransactionKey] = set()  # ours: their TransactionTerminated is not
        self._passed: dict[TransactionKey, Request] = {}  # requests passed up, until terminated
        self._events: deque[LayerEvent] = deque()
        self._heap: list[tuple[float, int, _Timed, DialogTimer]] = []
        self._seq = 0
        self._armed = 0
        self._now = 0.0
        self.dropped = 0  # peer messages the dialog layer could not use

    # --- from the transport -------------------------------------------------------------------

    def receive_datagram(
        self, data: bytes, addr: Address, now: float, *, reliable: bool | None = None
    ) -> None:
        self.transactions.receive_datagram(data, addr, now, reliable=reliable)
        self._pump(now)

    def receive(
        self, msg: Request | Response, addr: Address, now: float, *, reliable: bool | None = None
    ) -> None:
        self.transactions.receive(msg, addr, now, reliable=reliable)
        self._pump(now)

    def transport_error(self, tx_key: TransactionKey, now: float) -> None:
        self.transactions.transport_error(tx_key, now)
        self._pump(now)

    def transport_error_for_address(self, addr: Address, now: float) -> None:
        self.transactions.transport_error_for_address(addr, now)
        self._pump(now)

    # --- outputs ---------------------------------------------------------------------------------

    def next_event(self) -> LayerEvent | None:
        """The next dialog event, or a transaction event of something that is not ours."""
        self._pump(self._now)  # catch up if the shell used the transaction layer directly
        events = self._events
        return events.popleft() if events else None

    def datagrams_to_send(self, now: float | None = None) -> list[tuple[bytes, Address]]:
        return self.transactions.datagrams_to_send(now)

    def get_timer(self) -> float | None:
        """The earlier of the transaction layer's and our own next deadline."""
        ours = self._own_timer()
        theirs = self.transactions.get_timer()
        if ours is None or theirs is None:
            return theirs if ours is None else ours
        return min(ours, theirs)

    def handle_timer(self, now: float) -> None:
        self._now = now
        self.transactions.handle_timer(now)
        self._pump(now)
        while self._heap and self._heap[0][0] <= now:
            _when, seq, owner, timer = heapq.heappop(self._heap)
            if owner.timers.get(timer) != seq:
                continue
            del owner.timers[timer]
            self._armed -= 1
            self._fire(owner, timer, now)
            self._pump(now)

    # --- introspection ---------------------------------------------------------------------------

    def dialog(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    @property
    def dialogs(self) -> tuple[Dialog, ...]:
        """Every live dialog (early, confirmed, or with our BYE in progress)."""
        return tuple(self._dialogs.values())

    @property
    def dialog_count(self) -> int:
        return len(self._dialogs)

    def is_idle(self) -> bool:
        """No dialog, call, pending transaction, timer or event here or below."""
        return (
            not (
                self._dialogs
                or self._client
                or self._server
                or self._calls
                or self._merge
                or self._swallow
                or self._passed
                or self._events
                or self._own_timer() is not None
            )
            and self.transactions.is_idle()
        )

    # --- UAC: the initial INVITE -------------------------------------------------------------

    def create_invite(
        self,
        *,
        request_uri: URI | str,
        from_: NameAddr | str,
        to: NameAddr | str,
        addr: Address,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, HeaderValue]] = (),
        route: Iterable[NameAddr | str] = (),
        call_id: str | None = None,
        cseq: int = 1,
    ) -> Request:
        """An initial INVITE (RFC 3261 §8.1.1, §13.2.1): a From tag is added when ``from_``
        has none, a new Call-ID unless given, our Via and Contact for ``addr``, Supported and
        Allow, Session-Expires and Min-SE when session timers are on (RFC 4028 §7.1)."""
        endpoint = self._endpoint_for(addr)
        sender = parse_name_addr(from_) if isinstance(from_, str) else from_
        if sender.tag is None:
            sender = sender.with_tag(self._new_token())
        callee = parse_name_addr(to) if isinstance(to, str) else to
        items: list[tuple[str, HeaderValue]] = [("Via", self._via(endpoint))]
        items += [("Route", r) for r in route]
        items += [
            ("Max-Forwards", self.config.max_forwards),
            ("From", sender),
            ("To", callee.without_param("tag")),
            ("Call-ID", call_id or self._new_token()),
            ("CSeq", f"{cseq} INVITE"),
            ("Contact", endpoint.contact),
            *self._capabilities(),
            *self._session_request_headers(None),
            *headers,
        ]
        invite = Request("INVITE", request_uri, Headers(items))
        _set_body(invite, body, content_type)
        return invite

    def send_invite(self, invite: Request, addr: Address, now: float) -> CallKey:
        """Send an initial INVITE (from :meth:`create_invite`, possibly edited) to ``addr``.
        Its events carry the returned :class:`CallKey`."""
        self._now = now
        tag = invite.from_.tag
        if invite.method != "INVITE" or tag is None or invite.to.tag is not None:
            raise ValueError("an initial INVITE needs a From tag and no To tag")
        call = CallKey(invite.call_id, tag)
        if call in self._calls:
            raise ValueError(f"call {call} is still in progress")
        key = self.transactions.send_request(invite, addr, now)
        record = _ClientInvite(key, invite, addr, call=call, dialog=None, purpose=_Purpose.TU)
        self._client[key] = record
        self._calls[call] = record
        self._pump(now)
        return call

    def cancel(self, call: CallKey, now: float) -> bool:
        """CANCEL our initial INVITE (RFC 3261 §9.1). False: nothing to cancel (final response
        received). A 2xx that crosses the CANCEL is ACKed and BYEd (``CallFailed``)."""
        self._now = now
        record = self._calls.get(call)
        if record is None or record.final or record.answered is not None:
            return False
        if record.cancelled:
            return True  # once (its CANCEL transaction may be over already)
        cancel_key = self.transactions.cancel(record.tx_key, now)
        if cancel_key is None:
            return False
        record.cancelled = True
        self._swallow.add(cancel_key)
        self._pump(now)
        return True

    # --- requests in a dialog ------------------------------------------------------------------

    def send_request(
        self,
        dialog_id: DialogId,
        method: str,
        now: float,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, HeaderValue]] = (),
    ) -> TransactionKey:
        """Send a request in a dialog (§12.2.1.1): re-INVITE (§14.1), UPDATE (RFC 3311), INFO,
        REFER, NOTIFY, OPTIONS, MESSAGE ... Its responses come as ``DialogResponse``. BYE, ACK,
        PRACK and CANCEL have their own methods."""
        self._now = now
        if method in ("ACK", "BYE", "CANCEL", "PRACK"):
            raise ValueError(f"use the layer's own method for {method}")
        dialog = self._live(dialog_id)
        content = _Content(body=body, content_type=content_type, headers=tuple(headers))
        if method == "INVITE":
            key = self._send_reinvite(dialog, content, _Purpose.TU, now)
        else:
            key = self._send_other(dialog, method, content, _Purpose.TU, now)
        self._pump(now)
        return key

    def send_ack(
        self,
        dialog_id: DialogId,
        now: float,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, HeaderValue]] = (),
    ) -> None:
        """The ACK the TU owes after ``ack_pending`` (a 2xx with an offer: the ACK carries the
        answer, RFC 3261 §13.2.2.4). Nothing happens if the dialog ended meanwhile (the layer
        ACKed the 2xx without a body then)."""
        self._now = now
        dialog = self._dialogs.get(dialog_id)
        if dialog is None or dialog.state is DialogState.TERMINATING:
            return
        if dialog._ack_due is None:
            raise DialogStateError(dialog.state, "ACK without a 2xx awaiting it")
        content = _Content(None, body, content_type, tuple(headers))
        self._send_2xx_ack(dialog._ack_due, dialog, content)
        self._pump(now)

    def prack(
        self,
        dialog_id: DialogId,
        now: float,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, HeaderValue]] = (),
    ) -> TransactionKey | None:
        """The PRACK the TU owes after ``prack_pending`` (a reliable 1xx with an offer: the
        PRACK carries the answer, RFC 3262 §5). None if the dialog ended meanwhile."""
        self._now = now
        dialog = self._dialogs.get(dialog_id)
        if dialog is None or dialog.state is DialogState.TERMINATING:
            return None
        due = dialog._prack_due
        if due is None:
            raise DialogStateError(dialog.state, "PRACK without a reliable 1xx to acknowledge")
        content = _Content(None, body, content_type, tuple(headers))
        key = self._send_prack(dialog, due, content, _Purpose.TU, now)
        self._pump(now)
        return key

    def bye(
        self, dialog_id: DialogId, now: float, *, headers: Iterable[tuple[str, HeaderValue]] = ()
    ) -> TransactionKey | None:
        """End a confirmed dialog (RFC 3261 §15.1.1); ``DialogTerminated(LOCAL_BYE)`` follows at
        once. Returns the BYE's key, or None when it waits for the ACK of our 2xx (§15) or the
        dialog has ended already. An early dialog cannot be BYEd (§15): CANCEL or reject."""
        self._now = now
        dialog = self._dialogs.get(dialog_id)
        if dialog is None or dialog.state is not DialogState.CONFIRMED:
            if dialog is not None and dialog.state is DialogState.EARLY:
                raise DialogStateError(
                    dialog.state, "BYE (end an early dialog with CANCEL or a 4xx)"
                )
            return None  # ended already: a BYE crossed ours, or the call failed meanwhile
        key = self._send_bye(dialog, TerminationReason.LOCAL_BYE, now, tuple(headers))
        self._pump(now)
        return key

    # --- responses from the TU -------------------------------------------------------------------

    def respond(
        self,
        tx_key: TransactionKey,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, HeaderValue]] = (),
        contact: str | None = None,
        reliable: bool | None = None,
    ) -> Response:
        """Answer a request the layer reported (``IncomingCall``, ``ReInvite``, ``Update``,
        ``PrackReceived``, ``DialogRequest``, or a passed-up ``RequestReceived``).

        The layer adds what the RFCs ask: To tag, Contact (``contact`` or ``endpoint_for``),
        Record-Route, Supported, Allow, Session-Expires / Require: timer (RFC 4028 §9),
        RSeq / Require: 100rel for a reliable 1xx (``reliable=None``: when the UAC requires
        100rel, or supports it and the 1xx has a body). A 2xx is held back while a reliable 1xx
        with a session description awaits its PRACK (RFC 3262 §3).
        """
        self._now = now
        content = _Content(reason, body, content_type, tuple(headers))
        record = self._server.get(tx_key)
        if isinstance(record, _ServerInvite):
            response = self._respond_invite(record, status, content, contact, reliable, now)
        elif isinstance(record, _ServerRequest):
            response = self._respond_request(record, status, content, now)
        else:
            response = self._respond_plain(tx_key, status, content, now)
        self._pump(now)
        return response

    # --- dispatching transaction events ---------------------------------------------------------

    def _pump(self, now: float) -> None:
        self._now = now
        transactions = self.transactions
        while (event := transactions.next_event()) is not None:
            self._dispatch(event, now)

    def _dispatch(self, event: TransactionEvent, now: float) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event, now)
        elif isinstance(event, CancelReceived):
            self._on_cancel(event, now)
        elif isinstance(event, ResponseReceived):
            self._on_response(event, now)
        elif isinstance(event, AckReceived):
            self._on_ack(event, now)
        elif isinstance(event, AckTimeout):
            self._on_ack_timeout(event, now)
        elif isinstance(event, TransactionTerminated):
            self._on_terminated(event, now)
        else:
            self._on_failure(event, now)

    # --- requests from the peer ------------------------------------------------------------------

    def _on_request(self, event: RequestReceived, now: float) -> None:
        request = event.request
        to_tag, from_tag = request.to.tag, request.from_.tag or ""
        dialog = None
        if to_tag is not None:
            dialog = self._dialogs.get(DialogId(request.call_id, to_tag, from_tag))
        if (to_tag is None and request.method != "INVITE") or (
            dialog is None and to_tag is not None and request.method in self.config.passthrough
        ):
            # Out of any dialog (REGISTER, OPTIONS ...) or another dialog usage (RFC 6665).
            self._passed[event.tx_key] = request
            self._events.append(event)
            return
        try:
            info = _RequestInfo.parse(request)
        except ParseError as exc:
            self._reply(event.tx_key, request, exc.status, now, reason=exc.reason_phrase)
            return
        unsupported = sorted(info.require - self.config.supported)
        if unsupported:  # §8.2.2.3: 420 listing what we do not understand (Proxy-Require: ignored)
            self._reply(event.tx_key, request, 420, now, [("Unsupported", ", ".join(unsupported))])
        elif to_tag is None:
            self._incoming_call(event, info, now)
        elif dialog is None or dialog.state is DialogState.TERMINATED:
            self._reply(event.tx_key, request, 481, now)  # §12.2.2: no such dialog
        else:
            self._in_dialog(dialog, event, info, now)

    def _incoming_call(self, event: RequestReceived, info: _RequestInfo, now: float) -> None:
        request = event.request
        from_tag = request.from_.tag or ""
        merge_key = (request.call_id, from_tag, request.cseq.number)
        if merge_key in self._merge:  # §8.2.2.2: the same request by another path
            self._reply(event.tx_key, request, 482, now)
            return
        if self._reject_interval(event.tx_key, request, info, now):
            return
        dialog_id = DialogId(request.call_id, self._new_token(), from_tag)
        record = _ServerInvite(
            event.tx_key, request, event.addr, info, dialog_id, None, self._first_rseq()
        )
        record.merge_key = merge_key
        self._merge[merge_key] = event.tx_key
        self._server[event.tx_key] = record
        self._events.append(
            IncomingCall(dialog_id=dialog_id, request=request, tx_key=event.tx_key, addr=event.addr)
        )

    def _in_dialog(
        self, dialog: Dialog, event: RequestReceived, info: _RequestInfo, now: float
    ) -> None:
        request, method = event.request, event.request.method
        if dialog.state is DialogState.TERMINATING and method != "BYE":
            self._reply(event.tx_key, request, 481, now)  # we are ending it (§15.1.1)
            return
        if method not in self.config.allow:  # §12.2.2 via §8.2.1
            self._reply(event.tx_key, request, 501, now, [("Allow", ", ".join(self.config.allow))])
            return
        cseq = request.cseq.number
        if dialog.remote_seq is not None and cseq < dialog.remote_seq:
            # §12.2.2: a lower CSeq than the last one is out of order.
            self._reply(event.tx_key, request, 500, now, reason="Out of Order CSeq")
            return
        dialog.remote_seq = cseq
        if method == "BYE":
            self._on_bye(dialog, event, now)
        elif method == "INVITE":
            self._on_reinvite(dialog, event, info, now)
        elif method == "UPDATE":
            self._on_update(dialog, event, info, now)
        elif method == "PRACK":
            self._on_prack(dialog, event, info, now)
        else:
            self._server[event.tx_key] = _ServerRequest(event.tx_key, request, dialog, info)
            dialog._pending_in.add(event.tx_key)
            self._events.append(
                DialogRequest(dialog_id=dialog.id, request=request, tx_key=event.tx_key)
            )

    def _on_bye(self, dialog: Dialog, event: RequestReceived, now: float) -> None:
        # §15.1.2: answer 200, end the dialog, answer what is still pending with 487.
        self._reply(event.tx_key, event.request, 200, now)
        if dialog.state is not DialogState.TERMINATING:
            self._events.append(ByeReceived(dialog_id=dialog.id, request=event.request))
        self._terminate(dialog, DialogInput.BYE_RECEIVED, TerminationReason.REMOTE_BYE)

    def _on_reinvite(
        self, dialog: Dialog, event: RequestReceived, info: _RequestInfo, now: float
    ) -> None:
        request = event.request
        if self._glare(dialog, event.tx_key, request, bool(request.body), now, invite=True):
            return
        if self._reject_interval(event.tx_key, request, info, now):
            return
        record = _ServerInvite(
            event.tx_key, request, event.addr, info, dialog.id, dialog, self._first_rseq()
        )
        self._server[event.tx_key] = record
        dialog._pending_in.add(event.tx_key)
        dialog._invite_in = event.tx_key
        dialog._remote_rseq = None
        unchanged = not request.body or request.body == dialog.remote_body
        dialog._offer_seen = bool(request.body)
        self._receive_offer(dialog, request)
        auto = (
            self.config.auto_answer_refresh
            and unchanged
            and dialog.state is DialogState.CONFIRMED
            and bool(dialog.local_body)
        )
        self._events.append(
            ReInvite(dialog_id=dialog.id, request=request, tx_key=event.tx_key, auto_answered=auto)
        )
        if auto:  # a session refresh (RFC 4028): our last description again (RFC 3264 §8)
            content = _Content(body=dialog.local_body, content_type=dialog.local_content_type)
            self._respond_invite(record, 200, content, None, None, now)

    def _on_update(
        self, dialog: Dialog, event: RequestReceived, info: _RequestInfo, now: float
    ) -> None:
        request = event.request
        if self._glare(dialog, event.tx_key, request, bool(request.body), now, invite=False):
            return
        if self._reject_interval(event.tx_key, request, info, now):
            return
        record = _ServerRequest(event.tx_key, request, dialog, info)
        self._server[event.tx_key] = record
        dialog._pending_in.add(event.tx_key)
        self._receive_offer(dialog, request)
        auto = not request.body
        self._events.append(
            Update(dialog_id=dialog.id, request=request, tx_key=event.tx_key, auto_answered=auto)
        )
        if auto:  # RFC 3311 §5.2: a refresh without offer, 200 without answer
            self._respond_request(record, 200, _Content(), now)

    def _glare(
        self,
        dialog: Dialog,
        tx_key: TransactionKey,
        request: Request,
        offer: bool,
        now: float,
        *,
        invite: bool,
    ) -> bool:
        """RFC 3261 §14.2, RFC 3311 §5.2: 491 when our INVITE or offer is pending, 500 with
        Retry-After when theirs is; True when the request was rejected. An INVITE conflicts
        with a pending offer even without one of its own: its 2xx would have to offer."""
        state = dialog.offer_answer
        offers = offer or invite
        if (invite and dialog._invite_out is not None) or (
            offers and state is OfferAnswerState.LOCAL_OFFER
        ):
            self._reply(tx_key, request, 491, now)
            return True
        if (invite and dialog._invite_in is not None) or (
            offers and state is OfferAnswerState.REMOTE_OFFER
        ):
            retry = int(_fraction(self._new_token()) * 11)  # §14.2: 0 to 10 seconds
            self._reply(tx_key, request, 500, now, [("Retry-After", retry)])
            return True
        return False

    def _on_prack(
        self, dialog: Dialog, event: RequestReceived, info: _RequestInfo, now: float
    ) -> None:
        request = event.request
        record = self._unacked_for(dialog, info.rack)
        if record is None:  # RFC 3262 §3: matches no unacknowledged reliable 1xx
            self._reply(event.tx_key, request, 481, now)
            return
        self._disarm(record, DialogTimer.RELIABLE_1XX)
        self._disarm(record, DialogTimer.PRACK_TIMEOUT)
        record.unacked = None
        needs_answer = False
        if request.body:
            needs_answer = dialog.offer_answer is not OfferAnswerState.LOCAL_OFFER
            self._receive_offer(dialog, request)
        self._server[event.tx_key] = pending = _ServerRequest(event.tx_key, request, dialog, info)
        dialog._pending_in.add(event.tx_key)
        self._events.append(
            PrackReceived(
                dialog_id=dialog.id, request=request, tx_key=event.tx_key, needs_answer=needs_answer
            )
        )
        if not needs_answer:
            self._respond_request(pending, 200, _Content(), now)
        self._flush(record, now)

    def _unacked_for(
        self, dialog: Dialog, rack: tuple[int, int, str] | None
    ) -> _ServerInvite | None:
        if rack is None or dialog._invite_in is None:
            return None
        record = self._server.get(dialog._invite_in)
        if not isinstance(record, _ServerInvite) or record.unacked is None:
            return None
        rseq, cseq, method = rack
        if (rseq, cseq, method) != (record.unacked_rseq, record.request.cseq.number, "INVITE"):
            return None
        return record

    def _on_cancel(self, event: CancelReceived, now: float) -> None:
        # §9.2: 200 to the CANCEL and 487 to the INVITE if not answered finally yet.
        self._swallow.add(event.tx_key)
        record = None if event.invite_key is None else self._server.get(event.invite_key)
        if not isinstance(record, _ServerInvite):
            self.transactions.respond_487(event.tx_key, now, to_tag=self._new_token())
            return
        tag = record.dialog_id.local_tag
        if self.transactions.respond_487(event.tx_key, now, to_tag=tag) is None:
            return  # a final response went out already: the CANCEL changes nothing
        self._events.append(
            InviteCancelled(
                dialog_id=record.dialog_id,
                request=event.request,
                tx_key=record.tx_key,
                initial=record.initial,
            )
        )
        self._invite_failed(record, TerminationReason.CANCELLED)

    def _on_ack(self, event: AckReceived, now: float) -> None:
        ack = event.request
        dialog = self._dialogs.get(DialogId(ack.call_id, ack.to.tag or "", ack.from_.tag or ""))
        if dialog is None or dialog._awaiting_ack != ack.cseq.number:
            self.dropped += 1  # a late ACK for a non-2xx, or a retransmission
            return
        dialog._awaiting_ack = None
        if ack.body and dialog.offer_answer is OfferAnswerState.LOCAL_OFFER:
            self._receive_offer(dialog, ack)  # the answer to the offer in our 2xx
        elif dialog._offer_in_2xx and dialog.offer_answer is OfferAnswerState.LOCAL_OFFER:
            dialog.offer_answer = dialog._oa_before  # no answer: the offer is void
        dialog._offer_in_2xx = False
        if dialog._bye_after_ack is not None:
            self._transmit_bye(dialog, dialog._bye_after_ack, now)
            return
        self._events.append(DialogAckReceived(dialog_id=dialog.id, request=ack))

    def _on_ack_timeout(self, event: AckTimeout, now: float) -> None:
        # §13.3.1.4: no ACK for our 2xx in 64*T1: the session ends with a BYE.
        dialog_id = DialogId(event.call_id, event.local_tag, event.remote_tag)
        dialog = self._dialogs.get(dialog_id)
        if dialog is None or dialog._awaiting_ack != event.cseq:
            return
        dialog._awaiting_ack = None
        if dialog._bye_after_ack is not None:
            self._transmit_bye(dialog, dialog._bye_after_ack, now)
        elif dialog.state is DialogState.CONFIRMED:
            self._send_bye(dialog, TerminationReason.ACK_TIMEOUT, now, ())

    # --- responses from the peer -----------------------------------------------------------------

    def _on_response(self, event: ResponseReceived, now: float) -> None:
        if event.tx_key in self._swallow:
            return  # our CANCEL's answer, a 422 we retried already
        record = self._client.get(event.tx_key)
        if record is None:
            self._events.append(event)  # not ours: a REGISTER's, an OPTIONS' ...
            return
        response = event.response
        try:
            info = _ResponseInfo.parse(response)
        except ParseError:
            if response.status < 300:
                self.dropped += 1
                return
            info = _ResponseInfo.minimal(response)
        if isinstance(record, _ClientInvite):
            self._invite_response(record, response, info, now)
        elif response.status >= 200:
            self._request_final(record, response.status, response, info, now)

    def _invite_response(
        self, record: _ClientInvite, response: Response, info: _ResponseInfo, now: float
    ) -> None:
        status = response.status
        if status == 100:
            return  # hop by hop
        if record.dialog is not None:
            self._reinvite_response(record, record.dialog, response, info, now)
        elif status < 200:
            self._initial_provisional(record, response, info, now)
        elif status < 300:
            self._initial_success(record, response, info, now)
        else:
            self._initial_failure(record, status, response, info, now)

    def _initial_provisional(
        self, record: _ClientInvite, response: Response, info: _ResponseInfo, now: float
    ) -> None:
        assert record.call is not None
        tag = info.to_tag
        if record.answered is not None or record.final:
            return  # a fork still ringing after the call was answered
        if tag is None:
            self._events.append(
                ProvisionalReceived(
                    call=record.call,
                    dialog_id=None,
                    response=response,
                    reliable=False,
                    prack_pending=False,
                )
            )
            return
        dialog = record.early.get(tag)
        created = dialog is None
        if dialog is None:
            dialog = self._uac_dialog(record, response, info, DialogState.EARLY)
            record.early[tag] = dialog
        elif dialog.state is DialogState.TERMINATED:
            return
        else:
            self._transition(dialog, DialogInput.PROVISIONAL)
        reliable, prack_pending, fresh = self._uac_reliable(dialog, record, response, info, now)
        if not fresh:
            return  # RFC 3262 §4: a duplicate or out-of-order reliable 1xx
        dialog._reported = True
        kind = EarlyDialog if created else ProvisionalReceived
        self._events.append(
            kind(
                call=record.call,
                dialog_id=dialog.id,
                response=response,
                reliable=reliable,
                prack_pending=prack_pending,
            )
        )

    def _initial_success(
        self, record: _ClientInvite, response: Response, info: _ResponseInfo, now: float
    ) -> None:
        assert record.call is not None
        tag = info.to_tag
        if tag is None:
            self.dropped += 1
            return
        if record.answered is not None:
            self._later_2xx(record, response, info, tag)
            return
        record.answered = tag
        record.final = True
        dialog = record.early.pop(tag, None)
        # §9.1: a 2xx that crossed our CANCEL, or for an early dialog we ended already
        # (§12.2.1.2): it is ACKed and BYEd, the call failed for the TU.
        given_up = record.cancelled or (dialog is not None and dialog.state is not _D.EARLY)
        reason = TerminationReason.CANCELLED if given_up else TerminationReason.OTHER_FORK
        for other in record.early.values():
            if other.state is DialogState.EARLY:
                self._terminate(other, DialogInput.INVITE_ENDED, reason)
        record.early.clear()
        if given_up:
            if dialog is not None and dialog.state is DialogState.EARLY:
                self._terminate(dialog, DialogInput.INVITE_ENDED, reason)
            self._abandon(record, response, info, now)
            self._calls.pop(record.call, None)
            self._events.append(
                CallFailed(call=record.call, status=response.status, response=response)
            )
            return
        if dialog is None:
            dialog = self._uac_dialog(record, response, info, DialogState.CONFIRMED)
        else:  # §13.2.2.4: the 2xx recomputes the route set and remote target
            self._transition(dialog, DialogInput.SUCCESS)
            self._refresh_from_2xx(dialog, response, info, initial=True)
        self._answered(record, dialog, response, info, now)

    def _answered(
        self,
        record: _ClientInvite,
        dialog: Dialog,
        response: Response,
        info: _ResponseInfo,
        now: float,
    ) -> None:
        assert record.call is not None
        offer = self._receive_answer_or_offer(dialog, response, can_offer=not dialog._offer_seen)
        self._uac_session(dialog, info, now)
        dialog._reported = True
        self._calls.pop(record.call, None)
        if offer:  # a late offer: the TU writes the ACK with the answer (§13.2.2.4)
            dialog._ack_due = record
        else:
            self._send_2xx_ack(record, dialog, _Content())
        self._events.append(
            CallAnswered(
                call=record.call, dialog_id=dialog.id, response=response, ack_pending=offer
            )
        )

    def _later_2xx(
        self, record: _ClientInvite, response: Response, info: _ResponseInfo, tag: str
    ) -> None:
        """RFC 6026 §8.4: a 2xx retransmission gets our ACK again; a 2xx from another fork
        gets an ACK and a BYE (§13.2.2.4)."""
        ack = record.acks.get(tag)
        if ack is not None:
            self.transactions.send_stateless(ack, record.addr)
        elif tag != record.answered:
            self._abandon(record, response, info, self._now)

    def _abandon(
        self, record: _ClientInvite, response: Response, info: _ResponseInfo, now: float
    ) -> None:
        """ACK a 2xx we do not want, then BYE its dialog (§13.2.2.4), which the TU never
        sees: a throw-away dialog record, gone when the BYE completes."""
        unwanted = self._uac_dialog(record, response, info, DialogState.CONFIRMED, register=False)
        self._send_2xx_ack(record, unwanted, _Content())
        self._transmit_bye(unwanted, (), now)

    def _initial_failure(
        self,
        record: _ClientInvite,
        status: int,
        response: Response | None,
        info: _ResponseInfo | None,
        now: float,
    ) -> None:
        assert record.call is not None
        if record.final:
            return
        record.final = True
        if record.cancelled:
            reason = TerminationReason.CANCELLED
        elif response is None:
            reason = (
                TerminationReason.TIMEOUT if status == 408 else TerminationReason.TRANSPORT_ERROR
            )
        else:
            reason = TerminationReason.REJECTED
        for dialog in record.early.values():
            if dialog.state is not DialogState.TERMINATED:
                self._terminate(dialog, DialogInput.FAILURE, reason)
        record.early.clear()
        if status == 422 and info is not None and self._retry_422(record, info, now):
            return
        if self._calls.get(record.call) is record:
            del self._calls[record.call]
        self._events.append(CallFailed(call=record.call, status=status, response=response))

    def _retry_422(self, record: _ClientInvite, info: _ResponseInfo, now: float) -> bool:
        """RFC 4028 §7.3: retry with the Min-SE of the 422 as Session-Expires and Min-SE
        (same Call-ID and From tag, CSeq + 1, a new branch)."""
        sent = _session_of(record.request)
        min_se = info.min_se
        if min_se is None or record.retries >= 2 or (sent is not None and min_se <= sent.interval):
            return False
        invite = record.request.copy()
        via = invite.via[0].with_param("branch", self._branch())
        invite.headers.replace_first("Via", via)
        invite.headers.set("CSeq", f"{invite.cseq.number + 1} INVITE")
        invite.headers.set("Session-Expires", min_se)
        invite.headers.set("Min-SE", min_se)
        key = self.transactions.send_request(invite, record.addr, now)
        self._swallow.add(record.tx_key)
        del self._client[record.tx_key]
        record.tx_key, record.request, record.final = key, invite, False
        record.retries += 1
        self._client[key] = record
        return True

    def _reinvite_response(
        self,
        record: _ClientInvite,
        dialog: Dialog,
        response: Response,
        info: _ResponseInfo,
        now: float,
    ) -> None:
        status = response.status
        if status < 200:
            self._reinvite_provisional(record, dialog, response, info, now)
        elif status < 300:
            self._reinvite_success(record, dialog, response, info, now)
        else:
            self._reinvite_failure(record, dialog, status, response, info, now)

    def _reinvite_provisional(
        self,
        record: _ClientInvite,
        dialog: Dialog,
        response: Response,
        info: _ResponseInfo,
        now: float,
    ) -> None:
        if dialog.state is not DialogState.CONFIRMED:
            return
        _, prack_pending, fresh = self._uac_reliable(dialog, record, response, info, now)
        if fresh and record.purpose is _Purpose.TU:
            self._report(dialog, record.tx_key, "INVITE", response.status, response, prack_pending)

    def _reinvite_success(
        self,
        record: _ClientInvite,
        dialog: Dialog,
        response: Response,
        info: _ResponseInfo,
        now: float,
    ) -> None:
        tag = dialog.id.remote_tag
        if record.answered is not None:
            ack = record.acks.get(tag)
            if ack is not None:  # RFC 6026 §8.4: the 2xx again, our ACK again
                self.transactions.send_stateless(ack, record.addr)
            return
        record.answered, record.final = tag, True
        offer = False
        if dialog.state is DialogState.CONFIRMED:
            self._refresh_from_2xx(dialog, response, info, initial=False)
            offer = self._receive_answer_or_offer(
                dialog, response, can_offer=not dialog._offer_seen
            )
            self._uac_session(dialog, info, now)
        if record.purpose is _Purpose.REFRESH:
            dialog._refreshing = False
        if offer:
            dialog._ack_due = record
        else:
            self._send_2xx_ack(record, dialog, _Content())
        if record.purpose is _Purpose.TU:
            self._report(dialog, record.tx_key, "INVITE", response.status, response, offer)

    def _reinvite_failure(
        self,
        record: _ClientInvite,
        dialog: Dialog,
        status: int,
        response: Response | None,
        info: _ResponseInfo | None,
        now: float,
    ) -> None:
        if record.final:
            return
        record.final = True
        dialog._invite_out = None
        if dialog._offer_seen and dialog.offer_answer is OfferAnswerState.LOCAL_OFFER:
            dialog.offer_answer = dialog._oa_before  # our offer was rejected (§14.1)
        if record.purpose is _Purpose.REFRESH:
            self._refresh_failed(dialog, status, info, now)
            return
        self._report(dialog, record.tx_key, "INVITE", status, response, False)
        self._dialog_failure(dialog, status, response is None, now)

    def _request_final(
        self,
        record: _ClientRequest,
        status: int,
        response: Response | None,
        info: _ResponseInfo | None,
        now: float,
    ) -> None:
        if record.final:
            return
        record.final = True
        dialog, purpose = record.dialog, record.purpose
        if purpose is _Purpose.BYE:
            if dialog._bye_key == record.tx_key and dialog.state is DialogState.TERMINATING:
                self._terminate(dialog, DialogInput.BYE_COMPLETED, TerminationReason.LOCAL_BYE)
            return
        if purpose is _Purpose.PRACK or dialog.state is DialogState.TERMINATED:
            return
        if record.method == "UPDATE":
            self._update_final(dialog, status, response, info, now)
        if purpose is _Purpose.REFRESH:
            dialog._refreshing = False
            if not 200 <= status < 300:
                self._refresh_failed(dialog, status, info, now)
            return
        self._report(dialog, record.tx_key, record.method, status, response, False)
        self._dialog_failure(dialog, status, response is None, now)

    def _update_final(
        self,
        dialog: Dialog,
        status: int,
        response: Response | None,
        info: _ResponseInfo | None,
        now: float,
    ) -> None:
        if response is not None and info is not None and 200 <= status < 300:
            if info.contact is not None:
                dialog.remote_target = info.contact  # RFC 3311 §5.1: a target refresh
            self._receive_answer_or_offer(dialog, response, can_offer=False)
            self._uac_session(dialog, info, now)
        elif dialog.offer_answer is OfferAnswerState.LOCAL_OFFER:
            dialog.offer_answer = dialog._oa_before  # RFC 3311 §5.1: the offer is void

    def _dialog_failure(self, dialog: Dialog, status: int, synthetic: bool, now: float) -> None:
        """RFC 3261 §12.2.1.2: a 481 or 408, or no response at all (``synthetic``: a timeout or
        transport error), ends the dialog."""
        if dialog.state is not DialogState.CONFIRMED and dialog.state is not DialogState.EARLY:
            return
        if status == 481 and not synthetic:
            self._terminate(dialog, DialogInput.DIALOG_GONE, TerminationReason.NO_DIALOG)
        elif status == 408 or synthetic:
            reason = (
                TerminationReason.TIMEOUT if status == 408 else TerminationReason.TRANSPORT_ERROR
            )
            if dialog.state is DialogState.CONFIRMED:
                self._send_bye(dialog, reason, now, ())
            else:
                self._terminate(dialog, DialogInput.DIALOG_GONE, reason)

    def _report(
        self,
        dialog: Dialog,
        tx_key: TransactionKey,
        method: str,
        status: int,
        response: Response | None,
        pending: bool,
    ) -> None:
        self._events.append(
            DialogResponse(
                dialog_id=dialog.id,
                tx_key=tx_key,
                method=method,
                status=status,
                response=response,
                ack_pending=pending,
            )
        )

    # --- transaction failures and ends ---------------------------------------------------------

    def _on_failure(self, event: TransactionTimeout | TransportError, now: float) -> None:
        key = event.tx_key
        if key in self._swallow:
            return
        status = 408 if isinstance(event, TransactionTimeout) else 503
        client = self._client.get(key)
        server = self._server.get(key)
        if isinstance(client, _ClientInvite):
            self._invite_gone(client, status, now)
        elif isinstance(client, _ClientRequest):
            self._request_final(client, status, None, None, now)
        elif isinstance(server, _ServerInvite) and isinstance(event, TransportError):
            self._invite_failed(server, TerminationReason.TRANSPORT_ERROR)
        elif server is None:
            self._events.append(event)

    def _invite_gone(self, record: _ClientInvite, status: int, now: float) -> None:
        if record.dialog is None:
            self._initial_failure(record, status, None, None, now)
        else:
            self._reinvite_failure(record, record.dialog, status, None, None, now)

    def _on_terminated(self, event: TransactionTerminated, now: float) -> None:
        key = event.tx_key
        if key in self._swallow:
            self._swallow.discard(key)
            return
        client = self._client.pop(key, None)
        server = self._server.pop(key, None)
        if isinstance(client, _ClientInvite):
            if not client.final and client.answered is None:
                self._invite_gone(client, 408, now)  # e.g. only unusable 2xx came
            if client.call is not None and self._calls.get(client.call) is client:
                del self._calls[client.call]
        elif isinstance(client, _ClientRequest):
            self._request_final(client, 408, None, None, now)
        elif isinstance(server, _ServerInvite):
            if not server.final_sent:
                self._invite_failed(server, TerminationReason.TRANSPORT_ERROR)
        elif isinstance(server, _ServerRequest):
            server.dialog._pending_in.discard(key)
        else:
            self._passed.pop(key, None)
            self._events.append(event)

    # --- answering -------------------------------------------------------------------------------

    def _reply(
        self,
        tx_key: TransactionKey,
        request: Request,
        status: int,
        now: float,
        headers: Iterable[tuple[str, HeaderValue]] = (),
        *,
        reason: str | None = None,
    ) -> None:
        """A response the layer writes itself, to a request the TU never sees."""
        tag = None if request.to.tag is not None or status == 100 else self._new_token()
        response = make_response(request, status, reason, to_tag=tag)
        _add_headers(response, headers)
        self._swallow.add(tx_key)
        self.transactions.send_response(response, now, tx_key=tx_key)

    def _respond_plain(
        self, tx_key: TransactionKey, status: int, content: _Content, now: float
    ) -> Response:
        """A passed-up request (REGISTER, OPTIONS ...): a plain response with a To tag."""
        request = self._passed.get(tx_key)
        if request is None:
            raise UnknownTransactionError(f"{tx_key}: unknown, or answered finally already")
        tag = None if request.to.tag is not None or status == 100 else self._new_token()
        response = self._response(request, status, content, tag)
        self.transactions.send_response(response, now, tx_key=tx_key)
        return response

    def _response(
        self, request: Request, status: int, content: _Content, to_tag: str | None
    ) -> Response:
        response = make_response(request, status, content.reason, to_tag=to_tag)
        _add_headers(response, content.headers)
        _set_body(response, content.body, content.content_type)
        return response

    def _respond_invite(
        self,
        record: _ServerInvite,
        status: int,
        content: _Content,
        contact: str | None,
        reliable: bool | None,
        now: float,
    ) -> Response:
        if record.final_sent:
            state = record.dialog.state if record.dialog is not None else DialogState.TERMINATED
            raise DialogStateError(state, f"{status} after the final response to the INVITE")
        tag = record.dialog_id.local_tag if record.initial else None
        if status == 100 or status >= 300:
            response = self._response(
                record.request, status, content, None if status == 100 else tag
            )
            if status >= 300:
                self._invite_failed(record, TerminationReason.REJECTED)
            self.transactions.send_response(response, now, tx_key=record.tx_key)
            return response
        # Check before anything changes: a refused response leaves no trace.
        use_100rel = status < 200 and self._use_100rel(record, reliable, bool(content.body))
        if status >= 200:
            self._check_success_body(record, bool(content.body))
        dialog = self._uas_dialog(record, contact)
        response = self._response(record.request, status, content, tag)
        self._dialog_headers(record, dialog, response)
        if status < 200:
            self._send_provisional(record, dialog, response, use_100rel, now)
        else:
            self._send_success(record, dialog, response, now)
        return response

    def _check_success_body(self, record: _ServerInvite, body: bool) -> None:
        """RFC 3261 §13.2.1, §13.3.1: a 2xx to an INVITE carries the answer to its offer, or
        an offer if no offer was made in the transaction yet."""
        dialog = record.dialog
        if dialog is None:
            offer_seen = pending = bool(record.request.body)
            state = DialogState.EARLY
        else:
            offer_seen, state = dialog._offer_seen, dialog.state
            pending = dialog.offer_answer is OfferAnswerState.REMOTE_OFFER
        if not body and not offer_seen:
            raise DialogStateError(state, "2xx without the offer an INVITE without one needs")
        if not body and pending:
            raise DialogStateError(state, "2xx without the answer to the INVITE's offer")

    def _dialog_headers(self, record: _ServerInvite, dialog: Dialog, response: Response) -> None:
        """§12.1.1: Contact, and the Record-Route of the request in the responses that create
        the dialog; Supported and Allow (§20.37, §20.5)."""
        headers = response.headers
        if record.initial:
            for route in record.request.headers.get_all("record-route"):
                headers.add("Record-Route", route)
        headers.add("Contact", dialog.local_contact)
        _add_headers(response, self._capabilities())

    def _send_provisional(
        self,
        record: _ServerInvite,
        dialog: Dialog,
        response: Response,
        reliable: bool,
        now: float,
    ) -> None:
        if not reliable:
            # An unreliable 1xx's session description only previews the answer (RFC 6337
            # §3.1): the offer/answer state does not move.
            self._transition(dialog, DialogInput.PROVISIONAL)
            self.transactions.send_response(response, now, tx_key=record.tx_key)
            return
        if response.body:
            self._send_offer_or_answer(dialog, response, can_offer=not dialog._offer_seen)
        rseq = record.next_rseq
        record.next_rseq += 1
        response.headers.add("Require", "100rel")  # RFC 3262 §3
        response.headers.add("RSeq", rseq)
        item = _Queued(response, rseq, bool(response.body))
        if record.unacked is None and not record.queue:
            self._transmit_reliable(record, dialog, item, now)
        else:
            record.queue.append(item)  # RFC 3262 §3: one unacknowledged at a time

    def _use_100rel(self, record: _ServerInvite, reliable: bool | None, body: bool) -> bool:
        info = record.info
        required = "100rel" in info.require
        supported = required or "100rel" in info.supported
        if "100rel" not in self.config.supported:
            if reliable:
                raise ValueError("100rel is not in DialogConfig.supported")
            return False
        if reliable is None:
            return required or (supported and body)
        if reliable and not supported:
            raise ValueError("the UAC does not support 100rel (RFC 3262 §3)")
        if not reliable and required:
            raise ValueError("the UAC requires 100rel: provisional responses must be reliable")
        return reliable

    def _transmit_reliable(
        self, record: _ServerInvite, dialog: Dialog, item: _Queued, now: float
    ) -> None:
        assert item.rseq is not None
        record.unacked, record.unacked_rseq, record.unacked_offer = (
            item.response,
            item.rseq,
            item.sdp,
        )
        record.interval = self.transactions.config.t1
        self._transition(dialog, DialogInput.PROVISIONAL)
        self.transactions.send_response(item.response, now, tx_key=record.tx_key)
        # RFC 3262 §3: retransmit at T1, doubling; give up after 64*T1.
        self._arm(record, DialogTimer.RELIABLE_1XX, record.interval, now)
        self._arm(record, DialogTimer.PRACK_TIMEOUT, self.transactions.config.t64, now)

    def _send_success(
        self, record: _ServerInvite, dialog: Dialog, response: Response, now: float
    ) -> None:
        offer = False
        if response.body:
            offer = self._send_offer_or_answer(dialog, response, can_offer=not dialog._offer_seen)
        dialog._offer_in_2xx = offer
        record.session = self._uas_session(record.info, response)
        held = record.unacked_offer and record.unacked is not None
        if held or any(item.sdp for item in record.queue):
            record.queue.append(_Queued(response, None, False))  # RFC 3262 §3: after the PRACK
            return
        self._transmit_2xx(record, dialog, response, now)

    def _transmit_2xx(
        self, record: _ServerInvite, dialog: Dialog, response: Response, now: float
    ) -> None:
        self._disarm_all(record)
        record.unacked = None
        record.queue.clear()
        record.final_sent = True
        self._transition(dialog, DialogInput.SUCCESS)
        info = record.info
        if not record.initial and info.contact is not None:
            # §12.2.2: the target refresh takes effect (once accepted: RFC 6141).
            dialog.remote_target = info.contact
        dialog.remote_allow = info.allow if info.allow is not None else dialog.remote_allow
        dialog.remote_supported = info.supported or dialog.remote_supported
        dialog._invite_in = None
        dialog._awaiting_ack = record.request.cseq.number
        dialog._reported = True
        self._start_session(dialog, record.session, now)
        self._finish_server(record)
        self.transactions.send_response(response, now, tx_key=record.tx_key)

    def _flush(self, record: _ServerInvite, now: float) -> None:
        """After a PRACK: send what waited for it (the next reliable 1xx, the 2xx)."""
        dialog = record.dialog
        while record.queue and record.unacked is None and dialog is not None:
            item = record.queue.popleft()
            if item.rseq is not None:
                self._transmit_reliable(record, dialog, item, now)
            else:
                self._transmit_2xx(record, dialog, item.response, now)

    def _invite_failed(self, record: _ServerInvite, reason: TerminationReason) -> None:
        """Our (or the transaction layer's) 300-699 to an INVITE, or its transaction died."""
        record.final_sent = True
        self._disarm_all(record)
        record.unacked = None
        record.queue.clear()
        dialog = record.dialog
        if record.initial:
            if dialog is None:
                self._events.append(DialogTerminated(dialog_id=record.dialog_id, reason=reason))
            elif dialog.state is DialogState.EARLY:
                self._terminate(dialog, DialogInput.FAILURE, reason)
        elif dialog is not None:
            dialog._invite_in = None
            if dialog._offer_seen and dialog.offer_answer is OfferAnswerState.REMOTE_OFFER:
                dialog.offer_answer = dialog._oa_before  # their offer was rejected (§14.2)
        self._finish_server(record)

    def _finish_server(self, record: _ServerRecord) -> None:
        if self._server.pop(record.tx_key, None) is not None:
            self._swallow.add(record.tx_key)  # its TransactionTerminated is ours
        dialog = record.dialog
        if dialog is not None:
            dialog._pending_in.discard(record.tx_key)
        if isinstance(record, _ServerInvite) and record.merge_key is not None:
            self._merge.pop(record.merge_key, None)

    def _respond_request(
        self, record: _ServerRequest, status: int, content: _Content, now: float
    ) -> Response:
        dialog, request = record.dialog, record.request
        response = self._response(request, status, content, None)
        if request.method == "UPDATE":
            self._answer_update(record, dialog, response, now)
        elif 200 <= status < 300 and response.body:
            self._send_offer_or_answer(dialog, response, can_offer=False)  # PRACK's answer
        elif (
            status >= 300 and request.body and dialog.offer_answer is OfferAnswerState.REMOTE_OFFER
        ):
            dialog.offer_answer = dialog._oa_before  # their offer was rejected
        if status >= 200:
            self._finish_server(record)
        self.transactions.send_response(response, now, tx_key=record.tx_key)
        return response

    def _answer_update(
        self, record: _ServerRequest, dialog: Dialog, response: Response, now: float
    ) -> None:
        status = response.status
        if not 200 <= status < 300:
            if status >= 300 and dialog.offer_answer is OfferAnswerState.REMOTE_OFFER:
                dialog.offer_answer = dialog._oa_before  # RFC 3311 §5.2: offer rejected
            return
        if dialog.offer_answer is OfferAnswerState.REMOTE_OFFER and not response.body:
            raise DialogStateError(dialog.state, "2xx to UPDATE without the answer")
        if response.body:
            self._send_offer_or_answer(dialog, response, can_offer=False)
        if record.info.contact is not None and dialog.state is not DialogState.TERMINATED:
            dialog.remote_target = record.info.contact  # RFC 3311 §5.2: a target refresh
        response.headers.add("Contact", dialog.local_contact)
        self._start_session(dialog, self._uas_session(record.info, response), now)

    # --- dialogs: creation, transitions, end ------------------------------------------------------

    def _uac_dialog(
        self,
        record: _ClientInvite,
        response: Response,
        info: _ResponseInfo,
        state: DialogState,
        *,
        register: bool = True,
    ) -> Dialog:
        """§12.1.2: the UAC side of a dialog from a 1xx or 2xx with a To tag."""
        invite = record.request
        local = invite.from_
        dialog = Dialog(
            id=DialogId(invite.call_id, local.tag or "", info.to_tag or ""),
            state=state,
            is_uac=True,
            local_uri=local,
            remote_uri=response.to,
            local_seq=invite.cseq.number,
            remote_seq=None,
            remote_target=info.contact if info.contact is not None else invite.uri,
            route_set=tuple(reversed(info.record_route)),  # §12.1.2: in reverse order
            secure=_is_secure(invite.uri, invite),
            local_contact=invite.headers.get("contact", ""),
            peer_addr=record.addr,
        )
        if invite.body:
            dialog.offer_answer = OfferAnswerState.LOCAL_OFFER
            dialog.local_body, dialog.local_content_type = invite.body, invite.content_type
        dialog._offer_seen = bool(invite.body)
        dialog._invite_out = record.tx_key
        dialog.remote_allow, dialog.remote_supported = info.allow, info.supported
        if register:
            self._dialogs[dialog.id] = dialog
        return dialog

    def _refresh_from_2xx(
        self, dialog: Dialog, response: Response, info: _ResponseInfo, *, initial: bool
    ) -> None:
        if initial:  # §13.2.2.4 / §12.1.2: the 2xx sets the route set for good
            dialog.route_set = tuple(reversed(info.record_route))
            dialog.remote_uri = response.to
        if info.contact is not None:  # §12.2.1.2: a 2xx to a target refresh
            dialog.remote_target = info.contact
        if info.allow is not None:
            dialog.remote_allow = info.allow
        dialog.remote_supported = info.supported or dialog.remote_supported

    def _uas_dialog(self, record: _ServerInvite, contact: str | None) -> Dialog:
        """§12.1.1: the UAS side of a dialog, created by our first 1xx or 2xx."""
        if record.dialog is not None:
            if contact is not None:
                record.dialog.local_contact = contact  # a target refresh of ours
            return record.dialog
        request, info = record.request, record.info
        endpoint_contact = (
            contact if contact is not None else self._endpoint_for(record.addr).contact
        )
        dialog = Dialog(
            id=record.dialog_id,
            state=DialogState.EARLY,
            is_uac=False,
            local_uri=request.to.with_tag(record.dialog_id.local_tag),
            remote_uri=request.from_,
            local_seq=None,
            remote_seq=request.cseq.number,
            remote_target=info.contact if info.contact is not None else request.from_.uri,
            route_set=info.record_route,  # §12.1.1: in order
            secure=_is_secure(request.uri, request),
            local_contact=endpoint_contact,
            peer_addr=record.addr,
        )
        if request.body:
            dialog.offer_answer = OfferAnswerState.REMOTE_OFFER
            dialog.remote_body, dialog.remote_content_type = request.body, request.content_type
        dialog._offer_seen = bool(request.body)
        dialog._invite_in = record.tx_key
        dialog._pending_in.add(record.tx_key)
        dialog.remote_allow, dialog.remote_supported = info.allow, info.supported
        dialog._reported = True  # IncomingCall named it
        self._dialogs[dialog.id] = dialog
        record.dialog = dialog
        return dialog

    def _transition(self, dialog: Dialog, event: DialogInput) -> DialogState:
        try:
            state = DIALOG_TRANSITIONS[dialog.state, event]
        except KeyError:
            raise DialogStateError(dialog.state, event.value) from None
        dialog.state = state
        return state

    def _terminate(self, dialog: Dialog, event: DialogInput, reason: TerminationReason) -> None:
        if self._transition(dialog, event) is not DialogState.TERMINATED:
            return
        if dialog._ack_due is not None:  # §13.2.2.4: every 2xx is ACKed, even now
            self._send_2xx_ack(dialog._ack_due, dialog, _Content())
        if self._dialogs.get(dialog.id) is dialog:
            del self._dialogs[dialog.id]
        self._disarm_all(dialog)
        dialog.session_timer = None
        if dialog._awaiting_ack is not None:
            call_id, local, remote = dialog.id
            self.transactions.stop_2xx_retransmission(call_id, local, remote, dialog._awaiting_ack)
            dialog._awaiting_ack = None
        self._announce_end(dialog, reason)
        self._close_pending(dialog, self._now)

    def _announce_end(self, dialog: Dialog, reason: TerminationReason) -> None:
        if dialog._reported and not dialog._end_announced:
            dialog._end_announced = True
            self._events.append(DialogTerminated(dialog_id=dialog.id, reason=reason))

    def _close_pending(self, dialog: Dialog, now: float) -> None:
        """§15.1.2: the requests of an ended dialog still get an answer: 487 (also when it
        ends otherwise: an INVITE must not wait for an answer forever)."""
        for key in sorted(dialog._pending_in):
            record = self._server.get(key)
            if isinstance(record, _ServerInvite) and not record.final_sent:
                response = make_response(record.request, 487, to_tag=record.dialog_id.local_tag)
                self._invite_failed(record, TerminationReason.REMOTE_BYE)
                self.transactions.send_response(response, now, tx_key=key)
            elif isinstance(record, _ServerRequest):
                self._finish_server(record)
                self.transactions.send_response(make_response(record.request, 487), now, tx_key=key)
        dialog._pending_in.clear()

    def _live(self, dialog_id: DialogId) -> Dialog:
        dialog = self._dialogs.get(dialog_id)
        if dialog is None or dialog.state is DialogState.TERMINATED:
            raise UnknownDialogError(f"no dialog {dialog_id}")
        return dialog

    # --- sending in a dialog -------------------------------------------------------------------

    def _build(self, dialog: Dialog, method: str, content: _Content) -> Request:
        via = self._endpoint_for(dialog.peer_addr).via
        request = dialog.make_request(
            method, via=via, branch=self._branch(), max_forwards=self.config.max_forwards
        )
        if method in ("INVITE", "UPDATE"):
            _add_headers(request, self._capabilities())
            _add_headers(request, self._session_request_headers(dialog))
        _add_headers(request, content.headers)
        _set_body(request, content.body, content.content_type)
        return request

    def _send_reinvite(
        self, dialog: Dialog, content: _Content, purpose: _Purpose, now: float
    ) -> TransactionKey:
        """§14.1: not while an INVITE is in progress either way, not during an offer."""
        busy = (
            dialog._invite_out is not None
            or dialog._invite_in is not None
            or dialog._awaiting_ack is not None
            or dialog._ack_due is not None
        )
        if dialog.state is not DialogState.CONFIRMED or busy:
            raise DialogStateError(dialog.state, "re-INVITE while an INVITE is in progress")
        self._check_offer(dialog, content.body)
        request = self._build(dialog, "INVITE", content)
        dialog._offer_seen = bool(request.body)
        dialog._remote_rseq = None
        if request.body:
            self._send_offer_or_answer(dialog, request, can_offer=True)
        key = self.transactions.send_request(request, dialog.peer_addr, now)
        record = _ClientInvite(
            key, request, dialog.peer_addr, call=None, dialog=dialog, purpose=purpose
        )
        self._client[key] = record
        dialog._invite_out = key
        return key

    def _send_other(
        self, dialog: Dialog, method: str, content: _Content, purpose: _Purpose, now: float
    ) -> TransactionKey:
        if dialog.state is DialogState.TERMINATING:
            raise DialogStateError(dialog.state, f"{method} after BYE")
        if method == "UPDATE":
            self._check_offer(dialog, content.body)
        request = self._build(dialog, method, content)
        if method == "UPDATE" and request.body:
            self._send_offer_or_answer(dialog, request, can_offer=True)
        key = self.transactions.send_request(request, dialog.peer_addr, now)
        self._client[key] = _ClientRequest(key, dialog, method, purpose)
        return key

    def _check_offer(self, dialog: Dialog, body: bytes) -> None:
        if body and dialog.offer_answer in (
            OfferAnswerState.LOCAL_OFFER,
            OfferAnswerState.REMOTE_OFFER,
        ):
            # RFC 3261 §13.2.1, RFC 3311 §5.1: one offer at a time.
            raise DialogStateError(dialog.state, "an offer while another one is outstanding")

    def _send_prack(
        self,
        dialog: Dialog,
        due: tuple[int, int],
        content: _Content,
        purpose: _Purpose,
        now: float,
    ) -> TransactionKey:
        rseq, cseq = due
        if content.body and dialog.offer_answer is OfferAnswerState.LOCAL_OFFER:
            raise DialogStateError(dialog.state, "an offer in PRACK while ours is outstanding")
        request = self._build(dialog, "PRACK", content)
        request.headers.add("RAck", f"{rseq} {cseq} INVITE")  # RFC 3262 §7.2
        if request.body:
            self._send_offer_or_answer(dialog, request, can_offer=True)
        dialog._prack_due = None
        key = self.transactions.send_request(request, dialog.peer_addr, now)
        self._client[key] = _ClientRequest(key, dialog, "PRACK", purpose)
        return key

    def _send_2xx_ack(self, record: _ClientInvite, dialog: Dialog, content: _Content) -> None:
        """§13.2.2.4: the ACK for a 2xx is a request of the dialog with the INVITE's CSeq
        number, a new branch, the route set, and the INVITE's credentials; RFC 6026: it is
        sent again for each retransmission of the 2xx."""
        via = self._endpoint_for(dialog.peer_addr).via
        ack = dialog.make_request(
            "ACK",
            via=via,
            branch=self._branch(),
            cseq=record.request.cseq.number,
            max_forwards=self.config.max_forwards,
        )
        for name in _AUTH_HEADERS:
            for value in record.request.headers.get_all(name):
                ack.headers.add(name, value)
        _add_headers(ack, content.headers)
        _set_body(ack, content.body, content.content_type)
        if ack.body and dialog.offer_answer is OfferAnswerState.REMOTE_OFFER:
            self._send_offer_or_answer(dialog, ack, can_offer=False)
        record.acks[dialog.id.remote_tag] = ack
        if dialog._ack_due is record:
            dialog._ack_due = None
        if dialog._invite_out == record.tx_key:
            dialog._invite_out = None
        self.transactions.send_stateless(ack, dialog.peer_addr)

    def _send_bye(
        self,
        dialog: Dialog,
        reason: TerminationReason,
        now: float,
        headers: tuple[tuple[str, HeaderValue], ...],
    ) -> TransactionKey | None:
        if dialog._ack_due is not None:  # §13.2.2.4: every 2xx is ACKed, even to hang up
            self._send_2xx_ack(dialog._ack_due, dialog, _Content())
        self._transition(dialog, DialogInput.SEND_BYE)
        self._disarm_all(dialog)
        dialog.session_timer = None
        self._announce_end(dialog, reason)
        self._close_pending(dialog, now)
        if dialog._awaiting_ack is not None:  # §15: the callee waits for the ACK
            dialog._bye_after_ack = headers
            return None
        return self._transmit_bye(dialog, headers, now)

    def _transmit_bye(
        self, dialog: Dialog, headers: tuple[tuple[str, HeaderValue], ...], now: float
    ) -> TransactionKey:
        dialog._bye_after_ack = None
        request = self._build(dialog, "BYE", _Content(headers=headers))
        key = self.transactions.send_request(request, dialog.peer_addr, now)
        self._client[key] = _ClientRequest(key, dialog, "BYE", _Purpose.BYE)
        dialog._bye_key = key
        return key

    # --- offer / answer -------------------------------------------------------------------------

    def _send_offer_or_answer(self, dialog: Dialog, msg: Message, *, can_offer: bool) -> bool:
        """We send a session description; True when it is an offer."""
        state = dialog.offer_answer
        dialog.local_body, dialog.local_content_type = msg.body, msg.content_type
        if state is OfferAnswerState.REMOTE_OFFER:
            dialog.offer_answer = OfferAnswerState.STABLE
            return False
        if state is OfferAnswerState.LOCAL_OFFER:
            raise DialogStateError(dialog.state, "a second offer before the answer (§13.2.1)")
        if not can_offer:
            return False  # the same description again (RFC 3261 §13.2.1, RFC 6337 §3.1)
        dialog._oa_before = state
        dialog.offer_answer = OfferAnswerState.LOCAL_OFFER
        dialog._offer_seen = True
        return True

    def _receive_offer(self, dialog: Dialog, msg: Message) -> None:
        """A request of theirs with a body: an offer (INVITE, UPDATE, PRACK) or the answer to
        ours (ACK, PRACK)."""
        if not msg.body:
            return
        dialog.remote_body, dialog.remote_content_type = msg.body, msg.content_type
        if dialog.offer_answer is OfferAnswerState.LOCAL_OFFER:
            dialog.offer_answer = OfferAnswerState.STABLE
        else:
            dialog._oa_before = dialog.offer_answer
            dialog.offer_answer = OfferAnswerState.REMOTE_OFFER

    def _receive_answer_or_offer(self, dialog: Dialog, msg: Message, *, can_offer: bool) -> bool:
        """A response with a body: the answer to our offer, or (2xx / reliable 1xx to an
        INVITE without offer) their offer; True when it is an offer."""
        if not msg.body:
            return False
        state = dialog.offer_answer
        if state is OfferAnswerState.LOCAL_OFFER:
            dialog.remote_body, dialog.remote_content_type = msg.body, msg.content_type
            dialog.offer_answer = OfferAnswerState.STABLE
            return False
        if not can_offer or state is OfferAnswerState.REMOTE_OFFER:
            return False  # the answer again in the 2xx after a reliable 1xx
        dialog.remote_body, dialog.remote_content_type = msg.body, msg.content_type
        dialog._oa_before = state
        dialog.offer_answer = OfferAnswerState.REMOTE_OFFER
        dialog._offer_seen = True
        return True

    # --- 100rel, UAC side (RFC 3262 §4) -----------------------------------------------------------

    def _uac_reliable(
        self,
        dialog: Dialog,
        record: _ClientInvite,
        response: Response,
        info: _ResponseInfo,
        now: float,
    ) -> tuple[bool, bool, bool]:
        """(reliable, PRACK left to the TU, fresh). A reliable 1xx is PRACKed once, in RSeq
        order: duplicates and gaps are not processed (RFC 3262 §4)."""
        if "100rel" not in info.require or "100rel" not in self.config.supported:
            return False, False, True
        rseq = info.rseq
        if rseq is None:
            return False, False, True
        last = dialog._remote_rseq
        if last is not None and rseq != last + 1:
            return True, False, False
        dialog._remote_rseq = rseq
        offer = self._receive_answer_or_offer(dialog, response, can_offer=not dialog._offer_seen)
        due = (rseq, record.request.cseq.number)
        if offer:
            dialog._prack_due = due  # RFC 3262 §5: the PRACK carries the answer
        else:
            self._send_prack(dialog, due, _Content(), _Purpose.PRACK, now)
        return True, offer, True

    # --- session timers (RFC 4028) ----------------------------------------------------------------

    def _session_request_headers(self, dialog: Dialog | None) -> list[tuple[str, HeaderValue]]:
        """RFC 4028 §7.1, §7.4: Session-Expires (the running interval, ``refresher`` as it
        stands) and Min-SE on INVITE and UPDATE."""
        config = self.config
        if not config.session_timers:
            return []
        timer = dialog.session_timer if dialog is not None else None
        min_se = max(config.min_se, dialog._min_se if dialog is not None else 0)
        if timer is None:
            value = str(max(config.session_expires, min_se))
        else:
            value = (
                f"{max(timer.interval, min_se)};refresher={'uac' if timer.we_refresh else 'uas'}"
            )
        return [("Session-Expires", value), ("Min-SE", min_se)]

    def _reject_interval(
        self, tx_key: TransactionKey, request: Request, info: _RequestInfo, now: float
    ) -> bool:
        """RFC 4028 §9: 422 with our Min-SE to a Session-Expires below it (only to a UAC that
        supports timers: others could not understand it, we raise the interval instead)."""
        session = info.session
        config = self.config
        if not config.session_timers or session is None or not info.supports_timer:
            return False
        if session.interval >= config.min_se:
            return False
        self._reply(
            tx_key,
            request,
            422,
            now,
            [("Min-SE", config.min_se)],
            reason="Session Interval Too Small",
        )
        return True

    def _uas_session(self, info: _RequestInfo, response: Response) -> tuple[int, bool] | None:
        """RFC 4028 §9: the interval and refresher of our 2xx to an INVITE or UPDATE; adds
        Session-Expires (and Require: timer when the UAC supports it) to ``response``.
        Returns (interval, we refresh) or None (no session timer)."""
        config = self.config
        if not config.session_timers:
            return None
        floor = max(config.min_se, info.min_se or 0)
        supports = info.supports_timer
        session = info.session
        if session is not None:  # we may lower the interval, never below Min-SE
            interval = max(min(session.interval, config.session_expires), floor)
            refresher = session.refresher or config.uas_refresher or ("uac" if supports else "uas")
        else:  # the request did not ask: we ask, and refresh ourselves unless told otherwise
            interval = max(config.session_expires, floor)
            refresher = config.uas_refresher or "uas"
        if refresher == "uac" and not supports:
            refresher = "uas"  # a UAC without timer support cannot refresh
        response.headers.add("Session-Expires", f"{interval};refresher={refresher}")
        if supports:
            response.headers.add("Require", "timer")
        return interval, refresher == "uas"

    def _uac_session(self, dialog: Dialog, info: _ResponseInfo, now: float) -> None:
        """RFC 4028 §7.2: the 2xx says the interval and who refreshes; without Require: timer
        the UAS does not know about it and we refresh. No Session-Expires means no session
        timer -- from a peer that knows timers; one that does not (no ``timer`` in its
        Supported) can never send one, so with ``refresh_unaware_peers`` we refresh anyway
        (its answers to our UPDATEs or re-INVITEs show it is alive)."""
        config = self.config
        if not config.session_timers:
            return
        session = info.session
        if session is None:
            aware = "timer" in info.supported or "timer" in info.require
            if aware or not config.refresh_unaware_peers:
                self._start_session(dialog, None, now)
                return
            timer = dialog.session_timer
            interval = timer.interval if timer is not None else config.session_expires
            self._start_session(dialog, (max(interval, dialog._min_se), True), now)
            return
        refresher = session.refresher if "timer" in info.require else "uac"
        interval = max(session.interval, ABSOLUTE_MIN_SE)
        self._start_session(dialog, (interval, refresher != "uas"), now)

    def _start_session(self, dialog: Dialog, session: tuple[int, bool] | None, now: float) -> None:
        self._disarm(dialog, DialogTimer.SESSION_REFRESH)
        self._disarm(dialog, DialogTimer.SESSION_EXPIRE)
        if session is None or dialog.state is not DialogState.CONFIRMED:
            dialog.session_timer = None
            return
        interval, we_refresh = session
        dialog.session_timer = timer = SessionTimer(interval, we_refresh, now)
        if we_refresh:
            self._arm(dialog, DialogTimer.SESSION_REFRESH, interval / 2, now)
        self._arm(dialog, DialogTimer.SESSION_EXPIRE, timer.expires_at - now, now)

    def _refresh_due(self, dialog: Dialog, now: float) -> None:
        """RFC 4028 §10: refresh with UPDATE when the peer allows it, else re-INVITE with our
        last session description; retry shortly while an INVITE or offer is in progress."""
        if dialog.state is not DialogState.CONFIRMED or dialog.session_timer is None:
            return
        busy = (
            dialog._refreshing
            or dialog._invite_out is not None
            or dialog._invite_in is not None
            or dialog._awaiting_ack is not None
            or dialog._ack_due is not None
            or dialog.offer_answer in (OfferAnswerState.LOCAL_OFFER, OfferAnswerState.REMOTE_OFFER)
        )
        if busy:
            self._arm(dialog, DialogTimer.SESSION_REFRESH, self.transactions.config.t2, now)
            return
        dialog._refreshing = True
        allow = dialog.remote_allow
        if (allow is not None and "UPDATE" in allow) or not dialog.local_body:
            self._send_other(dialog, "UPDATE", _Content(), _Purpose.REFRESH, now)
        else:
            content = _Content(body=dialog.local_body, content_type=dialog.local_content_type)
            self._send_reinvite(dialog, content, _Purpose.REFRESH, now)

    def _refresh_failed(
        self, dialog: Dialog, status: int, info: _ResponseInfo | None, now: float
    ) -> None:
        """RFC 4028 §10: 481/408/no answer end the dialog; a 422 raises the interval; others
        (491, 405 ...) are retried -- with a re-INVITE if UPDATE was refused."""
        dialog._refreshing = False
        synthetic = info is None
        if status in (481, 408) or synthetic or dialog.state is not DialogState.CONFIRMED:
            self._dialog_failure(dialog, status, synthetic, now)
            return
        if status == 422 and info is not None and info.min_se is not None:
            dialog._min_se = max(dialog._min_se, info.min_se)
            if dialog.session_timer is not None:
                dialog.session_timer.interval = max(dialog.session_timer.interval, info.min_se)
            self._arm(dialog, DialogTimer.SESSION_REFRESH, 0.0, now)
            return
        if status in (405, 501) and dialog.remote_allow is not None:
            dialog.remote_allow = dialog.remote_allow - {"UPDATE"}
        delay = (
            (2.1 + 1.9 * _fraction(self._new_token()))
            if dialog.is_uac
            else 2 * _fraction(self._new_token())
        )  # §14.1's 491 back-off
        self._arm(dialog, DialogTimer.SESSION_REFRESH, delay, now)

    def _session_expired(self, dialog: Dialog) -> None:
        self._disarm(dialog, DialogTimer.SESSION_REFRESH)
        dialog.session_timer = None
        if dialog.state is DialogState.CONFIRMED:
            self._events.append(SessionExpired(dialog_id=dialog.id))

    # --- timers ---------------------------------------------------------------------------------

    def _own_timer(self) -> float | None:
        heap = self._heap
        while heap:
            _when, seq, owner, timer = heap[0]
            if owner.timers.get(timer) == seq:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def _arm(self, owner: _Timed, timer: DialogTimer, delay: float, now: float) -> None:
        self._seq = seq = self._seq + 1
        if timer not in owner.timers:
            self._armed += 1
        owner.timers[timer] = seq
        heapq.heappush(self._heap, (now + max(delay, 0.0), seq, owner, timer))
        if len(self._heap) > 2 * self._armed + 64:
            self._heap = [e for e in self._heap if e[2].timers.get(e[3]) == e[1]]
            heapq.heapify(self._heap)

    def _disarm(self, owner: _Timed, timer: DialogTimer) -> None:
        if owner.timers.pop(timer, None) is not None:
            self._armed -= 1

    def _disarm_all(self, owner: _Timed) -> None:
        self._armed -= len(owner.timers)
        owner.timers.clear()

    def _fire(self, owner: _Timed, timer: DialogTimer, now: float) -> None:
        if isinstance(owner, Dialog):
            if timer is DialogTimer.SESSION_REFRESH:
                self._refresh_due(owner, now)
            else:
                self._session_expired(owner)
        elif isinstance(owner, _ServerInvite):
            if timer is DialogTimer.RELIABLE_1XX:
                self._retransmit_reliable(owner, now)
            else:
                self._prack_timeout(owner, now)

    def _retransmit_reliable(self, record: _ServerInvite, now: float) -> None:
        tx_state = self.transactions.state_of(record.tx_key)
        if record.unacked is None or tx_state is not TransactionState.PROCEEDING:
            return
        self.transactions.send_response(record.unacked, now, tx_key=record.tx_key)
        record.interval *= 2  # RFC 3262 §3: doubling, no T2 cap
        self._arm(record, DialogTimer.RELIABLE_1XX, record.interval, now)

    def _prack_timeout(self, record: _ServerInvite, now: float) -> None:
        # RFC 3262 §3: no PRACK for 64*T1: reject the INVITE with a 5xx.
        if record.final_sent or self.transactions.state_of(record.tx_key) is None:
            return
        tag = record.dialog_id.local_tag if record.initial else None
        response = make_response(record.request, 500, "No PRACK Received", to_tag=tag)
        self._invite_failed(record, TerminationReason.PRACK_TIMEOUT)
        self.transactions.send_response(response, now, tx_key=record.tx_key)

    # --- tokens -----------------------------------------------------------------------------------

    def _branch(self) -> str:
        return MAGIC_COOKIE + self._new_token()

    def _via(self, endpoint: Endpoint) -> str:
        return f"{endpoint.via};branch={self._branch()}"

    def _first_rseq(self) -> int:
        # RFC 3262 §3: the first RSeq is chosen between 1 and 2**31 - 1.
        return 1 + int(_fraction(self._new_token()) * (2**31 - 2))

    def _capabilities(self) -> list[tuple[str, HeaderValue]]:
        items: list[tuple[str, HeaderValue]] = []
        if self.config.supported:
            items.append(("Supported", ", ".join(sorted(self.config.supported))))
        items.append(("Allow", ", ".join(self.config.allow)))
        return items
