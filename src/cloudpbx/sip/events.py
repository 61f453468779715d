"""Events the SIP core hands to the layer above it (ENGINEERING.md §3).

Events are frozen, slotted, keyword-only dataclasses: values the transport shell or the
transaction user (TU: the dialog layer, the registrar, the B2BUA) drains with ``next_event()``
and dispatches on with ``match``. This module holds the transaction layer's events
(:mod:`cloudpbx.sip.transaction`) and the key that names a transaction in them; the dialog
layer's events (:mod:`cloudpbx.sip.dialog`) are in their own section at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple, TypeAlias

from cloudpbx.sip.message import Request, Response

__all__ = [
    "AckReceived",
    "AckTimeout",
    "Address",
    "CancelReceived",
    "RequestReceived",
    "ResponseReceived",
    "TransactionEvent",
    "TransactionKey",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportError",
]

Address: TypeAlias = Any
"""Where a message came from / goes to, opaque to the SIP core: ``(host, port)`` or the
transport's flow object (a connection). The core only stores it, compares it with ``==`` and
hands it back with the bytes to send (responses go back where the request came from)."""


class TransactionKey(NamedTuple):
    """Names one transaction (RFC 3261 §17.1.3, §17.2.3).

    ``branch`` is the top Via branch (for an RFC 2543 request without the magic cookie, an
    identifier built from Call-ID, From tag, CSeq number and top Via); ``sent_by`` the top Via
    sent-by of a server transaction (``""`` for client transactions: the Via is ours);
    ``method`` the request method, ``INVITE`` for an ACK; ``server`` tells the sides apart (a
    request looping back to us has a client and a server transaction with the same branch).
    """

    branch: str
    sent_by: str
    method: str
    server: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReceived:
    """A new request created server transaction ``tx_key``; answer with ``send_response``.

    Retransmissions are absorbed by the transaction and never reported again.
    """

    tx_key: TransactionKey
    request: Request
    addr: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReceived:
    """A CANCEL created server transaction ``tx_key`` (RFC 3261 §9.2).

    ``invite_key`` is the INVITE server transaction it matches (``None``: no such transaction,
    answer 481). ``TransactionLayer.respond_487(tx_key, now)`` answers both the RFC way.
    """

    tx_key: TransactionKey
    request: Request
    addr: Address
    invite_key: TransactionKey | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived:
    """A response for client transaction ``tx_key`` (retransmissions are absorbed, except
    2xx to an INVITE: RFC 6026 §8.4 passes every 2xx up so that the TU re-sends its ACK)."""

    tx_key: TransactionKey
    response: Response


@dataclass(frozen=True, slots=True, kw_only=True)
class AckReceived:
    """An ACK that is not part of an INVITE transaction: the ACK for a 2xx (RFC 3261 §17,
    §13.3.1.4), for the dialog layer. ``tx_key`` is the INVITE server transaction in the
    Accepted state it matched (RFC 6026 §8.7), or ``None`` (the usual case: the ACK for a
    2xx carries a new branch). Also reported: late ACKs for a non-2xx final response that
    arrive after the transaction ended, which the dialog layer drops."""

    request: Request
    addr: Address
    tx_key: TransactionKey | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTimeout:
    """Timer B, F or H fired, or no final response came 64*T1 after a CANCEL (RFC 3261
    §17.1.1.2, §17.1.2.2, §17.2.1, §9.1). For a client transaction the TU acts as if it had
    received a 408. ``TransactionTerminated`` follows."""

    tx_key: TransactionKey


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportError:
    """The transport reported a failure for this transaction (RFC 3261 §17.1.4, §17.2.4).
    For a client transaction the TU acts as if it had received a 503 (§8.1.3.1).
    ``TransactionTerminated`` follows unless the transaction ignores the error."""

    tx_key: TransactionKey


@dataclass(frozen=True, slots=True, kw_only=True)
class TransactionTerminated:
    """The transaction reached the Terminated state and was forgotten. Every key the layer
    hands out (``send_request``, ``cancel``, ``RequestReceived``, ``CancelReceived``) gets
    exactly one of these."""

    tx_key: TransactionKey


@dataclass(frozen=True, slots=True, kw_only=True)
class AckTimeout:
    """The UAS core retransmitted a 2xx to an INVITE for 64*T1 without an ACK (RFC 3261
    §13.3.1.4): the dialog is confirmed but the session should be ended with a BYE.

    ``local_tag`` is the To tag of the 2xx, ``remote_tag`` the From tag, ``cseq`` the
    INVITE's CSeq number; ``tx_key`` the INVITE server transaction (possibly gone by now).
    """

    tx_key: TransactionKey
    call_id: str
    local_tag: str
    remote_tag: str
    cseq: int


TransactionEvent: TypeAlias = (
    RequestReceived
    | CancelReceived
    | ResponseReceived
    | AckReceived
    | TransactionTimeout
    | TransportError
    | TransactionTerminated
    | AckTimeout
)


# --- dialog layer events (cloudpbx.sip.dialog) --------------------------------------------------
#
# What :class:`cloudpbx.sip.dialog.DialogLayer` reports to its TU (the call engine). The dialog
# layer also passes up, unchanged, the transaction events of the transactions it does not own
# (out-of-dialog REGISTER, OPTIONS, SUBSCRIBE ... and their responses).

__all__ += [
    "ByeReceived",
    "CallAnswered",
    "CallFailed",
    "CallKey",
    "DialogAckReceived",
    "DialogEvent",
    "DialogId",
    "DialogRequest",
    "DialogResponse",
    "DialogTerminated",
    "EarlyDialog",
    "IncomingCall",
    "InviteCancelled",
    "PrackReceived",
    "ProvisionalReceived",
    "ReInvite",
    "SessionExpired",
    "TerminationReason",
    "Update",
]


class DialogId(NamedTuple):
    """Names one dialog (RFC 3261 §12): Call-ID, our tag, the peer's tag.

    On the UAC side the local tag is the From tag and the remote tag the To tag of the
    responses; on the UAS side the other way round. A missing peer tag (RFC 2543) is ``""``.
    """

    call_id: str
    local_tag: str
    remote_tag: str


class CallKey(NamedTuple):
    """Names an outgoing call attempt (our initial INVITE) before and across its dialogs:
    Call-ID and From tag. It stays the same when the layer retries the INVITE after a 422
    (RFC 4028 §7.3), and the TU can reuse it for an authentication retry (same Call-ID and
    From tag, CSeq + 1). Every dialog of the call has ``DialogId(call_id, local_tag, ...)``."""

    call_id: str
    local_tag: str


class TerminationReason(Enum):
    """Why a dialog ended (``DialogTerminated.reason``)."""

    LOCAL_BYE = "we sent BYE"  # RFC 3261 §15.1.1
    REMOTE_BYE = "the peer sent BYE"  # RFC 3261 §15.1.2
    REJECTED = "the INVITE got a 300-699 final response"  # RFC 3261 §12.3 (early dialogs)
    CANCELLED = "the INVITE was cancelled"  # RFC 3261 §9
    OTHER_FORK = "another fork answered the INVITE"  # RFC 3261 §13.2.2.4
    NO_DIALOG = "the peer answered 481"  # RFC 3261 §12.2.1.2
    TIMEOUT = "no response, or 408, to a request"  # RFC 3261 §12.2.1.2, RFC 4028 §10
    TRANSPORT_ERROR = "the transport failed"  # RFC 3261 §8.1.3.1
    ACK_TIMEOUT = "our 2xx was never acknowledged"  # RFC 3261 §13.3.1.4
    PRACK_TIMEOUT = "our reliable provisional response was never acknowledged"  # RFC 3262 §3


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingCall:
    """A new INVITE (no To tag). Answer with ``DialogLayer.respond(tx_key, ...)``; the first
    1xx or 2xx creates dialog ``dialog_id`` (its local tag is chosen now). Every
    ``IncomingCall`` ends with exactly one ``DialogTerminated`` for ``dialog_id``."""

    dialog_id: DialogId
    request: Request
    tx_key: TransactionKey
    addr: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class InviteCancelled:
    """A CANCEL arrived for an INVITE we had not answered finally (RFC 3261 §9.2): the layer
    sent 200 to the CANCEL and 487 to the INVITE. ``initial``: the dialog-creating INVITE
    (``DialogTerminated(CANCELLED)`` follows), else a re-INVITE (the dialog stays)."""

    dialog_id: DialogId
    request: Request
    tx_key: TransactionKey
    initial: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class EarlyDialog:
    """UAC: a 1xx with a new To tag created an early dialog (RFC 3261 §12.1.2); forking
    gives one per tag. ``reliable``: an RFC 3262 reliable provisional response, already
    PRACKed by the layer unless ``prack_pending`` (it carried an offer: the TU answers with
    ``DialogLayer.prack(dialog_id, now, body=...)``)."""

    call: CallKey
    dialog_id: DialogId
    response: Response
    reliable: bool
    prack_pending: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionalReceived:
    """UAC: any other 1xx (not 100) to our initial INVITE: without a To tag
    (``dialog_id=None``) or in an early dialog already reported. Duplicate and out-of-order
    reliable provisional responses are not reported (RFC 3262 §4)."""

    call: CallKey
    dialog_id: DialogId | None
    response: Response
    reliable: bool
    prack_pending: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered:
    """UAC: the first 2xx to our initial INVITE confirmed ``dialog_id`` (RFC 3261 §13.2.2.4).
    The layer sent the ACK, unless ``ack_pending``: the 2xx carried an offer (late offer, the
    INVITE had none) and the TU must send the answer with ``DialogLayer.send_ack``."""

    call: CallKey
    dialog_id: DialogId
    response: Response
    ack_pending: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFailed:
    """UAC: our initial INVITE ended without a dialog for the TU: a 300-699 response, a
    timeout (``status=408``, ``response=None``), a transport error (503, ``None``), or a
    2xx that crossed our CANCEL (the layer ACKed it and sent BYE). Every ``send_invite``
    ends with exactly one ``CallAnswered`` or ``CallFailed``."""

    call: CallKey
    status: int
    response: Response | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogAckReceived:
    """UAS: the ACK for our 2xx (initial INVITE or re-INVITE) arrived (RFC 3261 §13.3.1.4);
    after a late offer its body is the answer. (Not ``AckReceived``: that is the transaction
    layer's event, which the dialog layer consumes.)"""

    dialog_id: DialogId
    request: Request


@dataclass(frozen=True, slots=True, kw_only=True)
class ReInvite:
    """A re-INVITE in a dialog (RFC 3261 §14.2): a target refresh, a new offer (or none: the
    2xx must carry one), a session refresh (RFC 4028). Answer with
    ``DialogLayer.respond(tx_key, ...)`` unless ``auto_answered``: an unchanged session refresh
    the layer answered itself with our last session description."""

    dialog_id: DialogId
    request: Request
    tx_key: TransactionKey
    auto_answered: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """An UPDATE in a dialog (RFC 3311). With an offer the TU answers it
    (``DialogLayer.respond``); without one (a session or target refresh) the layer already
    answered 200 (``auto_answered``)."""

    dialog_id: DialogId
    request: Request
    tx_key: TransactionKey
    auto_answered: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PrackReceived:
    """UAS: a PRACK acknowledged our reliable provisional response (RFC 3262 §3). The layer
    answered 200 unless ``needs_answer``: the PRACK carried a new offer, answer it with
    ``DialogLayer.respond(tx_key, 200, body=...)``."""

    dialog_id: DialogId
    request: Request
    tx_key: TransactionKey
    needs_answer: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ByeReceived:
    """The peer ended the dialog (RFC 3261 §15.1.2); the layer answered 200 (and 487 to the
    requests of the dialog still pending). ``DialogTerminated(REMOTE_BYE)`` follows."""

    dialog_id: DialogId
    request: Request


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogRequest:
    """Another request inside a dialog (INFO, REFER, NOTIFY, OPTIONS, MESSAGE ... any method
    of ``DialogConfig.allow`` the layer does not handle itself): answer with
    ``DialogLayer.respond(tx_key, ...)``."""

    dialog_id: DialogId
    request: Request
    tx_key: TransactionKey


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogResponse:
    """A response to a request the TU sent in a dialog (``send_request``, ``prack``): final
    ones, and the provisional ones to a re-INVITE; a timeout is ``status=408``, a transport
    error ``503``, both with
    ``response=None``. ``ack_pending``: a 2xx to a re-INVITE without offer carried one, the TU
    answers with ``send_ack``. A 481, 408 or no response ends the dialog (RFC 3261 §12.2.1.2):
    ``DialogTerminated`` follows."""

    dialog_id: DialogId
    tx_key: TransactionKey
    method: str
    status: int
    response: Response | None
    ack_pending: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionExpired:
    """No session refresh came in time (RFC 4028 §10): the peer is presumed dead. The TU
    should end the call with ``DialogLayer.bye`` -- so that a dead peer's call ends instead of
    being billed forever."""

    dialog_id: DialogId


@dataclass(frozen=True, slots=True, kw_only=True)
class DialogTerminated:
    """The dialog is over for the TU (RFC 3261 §15: as soon as a BYE is sent or received).
    Every dialog reported by ``IncomingCall``, ``EarlyDialog`` or ``CallAnswered`` gets exactly
    one of these."""

    dialog_id: DialogId
    reason: TerminationReason


DialogEvent: TypeAlias = (
    IncomingCall
    | InviteCancelled
    | EarlyDialog
    | ProvisionalReceived
    | CallAnswered
    | CallFailed
    | DialogAckReceived
    | ReInvite
    | Update
    | PrackReceived
    | ByeReceived
    | DialogRequest
    | DialogResponse
    | SessionExpired
    | DialogTerminated
)
