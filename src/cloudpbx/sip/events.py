"""Events the SIP core hands to the layer above it (ENGINEERING.md §3).

Events are frozen, slotted, keyword-only dataclasses: values the transport shell or the
transaction user (TU: the dialog layer, the registrar, the B2BUA) drains with ``next_event()``
and dispatches on with ``match``. This module holds the transaction layer's events
(:mod:`cloudpbx.sip.transaction`) and the key that names a transaction in them.
"""

from __future__ import annotations

from dataclasses import dataclass
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
