"""SIP transactions (RFC 3261 §17, amended by RFC 6026), sans-I/O.

:class:`TransactionLayer` owns every transaction of one endpoint. The transport shell feeds it
parsed messages (or datagrams) with the peer address and ``now``; the transaction user (TU:
dialogs, registrar, B2BUA) sends requests and responses through it; both drain
``next_event()``, ``datagrams_to_send()`` and re-arm one timer at ``get_timer()``. Nothing here
reads a clock or a socket (ENGINEERING.md §3).

The four state machines of RFC 3261 §17.1.1, §17.1.2, §17.2.1 and §17.2.2 (with RFC 6026's
Accepted state and Timers L and M) are the tables ``INVITE_CLIENT``, ``NON_INVITE_CLIENT``,
``INVITE_SERVER`` and ``NON_INVITE_SERVER`` below: ``(state, input) -> (next state, action)``.
A missing entry is an illegal transition and raises :class:`TransactionStateError`; every
input a peer can cause has an entry in every state, so a peer's messages never raise.

Timers live in one heap of ``(deadline, seq, owner, timer)`` entries with lazy deletion: an
owner keeps ``timer -> seq`` of its armed timers; an entry whose seq is no longer there is
stale and skipped (and the heap is rebuilt when stale entries outnumber live ones).

Also here, because it shares the timer heap and the output queue: the UAS core's 2xx
retransmission (RFC 3261 §13.3.1.4), on by default (``retransmit_2xx``).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias, TypeGuard

from cloudpbx.sip.errors import ParseError
from cloudpbx.sip.events import (
    AckReceived,
    AckTimeout,
    Address,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
)
from cloudpbx.sip.headers import Headers, HeaderValue
from cloudpbx.sip.message import (
    Message,
    Request,
    Response,
    bad_request_response,
    make_response,
    parse_message,
)
from cloudpbx.sip.uri import Via, parse_name_addr

__all__ = [
    "INVITE_CLIENT",
    "INVITE_SERVER",
    "MAGIC_COOKIE",
    "NON_INVITE_CLIENT",
    "NON_INVITE_SERVER",
    "RELIABLE_TRANSPORTS",
    "Input",
    "Machine",
    "TimerConfig",
    "TransactionKey",
    "TransactionLayer",
    "TransactionState",
    "TransactionStateError",
    "UnknownTransactionError",
]

# RFC 3261 §8.1.1.7: branches of RFC 3261 elements start with the magic cookie.
MAGIC_COOKIE = "z9hG4bK"
# RFC 3261 §17.1.1.2 / §17.2.1: retransmission timers only run over unreliable transports.
RELIABLE_TRANSPORTS = frozenset({"TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerConfig:
    """Timer values in seconds (RFC 3261 §17.1.1.1, Table 4)."""

    t1: float = 0.5  # RTT estimate
    t2: float = 4.0  # longest retransmit interval (non-INVITE requests, INVITE responses)
    t4: float = 5.0  # longest time a message stays in the network
    d: float = 32.0  # Timer D over unreliable transports: "> 32 s" (Table 4)
    trying: float = 0.2  # §17.2.1: send 100 Trying if the TU has not answered within 200 ms

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2 or self.t4 <= 0:
            raise ValueError("timers need 0 < T1 <= T2 and T4 > 0")
        if self.d < 0 or self.trying < 0:
            raise ValueError("Timer D and the 100 Trying delay cannot be negative")

    @property
    def t64(self) -> float:
        """64*T1: Timers B, F, H, J (unreliable), L and M."""
        return 64 * self.t1


class TransactionState(Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026
    TERMINATED = "Terminated"


class Machine(Enum):
    INVITE_CLIENT = "INVITE client transaction"
    NON_INVITE_CLIENT = "non-INVITE client transaction"
    INVITE_SERVER = "INVITE server transaction"
    NON_INVITE_SERVER = "non-INVITE server transaction"


class Input(Enum):
    """What drives a state machine: the network, the TU or a timer."""

    PROVISIONAL = "1xx received"
    SUCCESS = "2xx received"
    FAILURE = "300-699 received"
    REQUEST = "request retransmission received"
    ACK = "ACK received"
    SEND_PROVISIONAL = "1xx from TU"
    SEND_SUCCESS = "2xx from TU"
    SEND_FAILURE = "300-699 from TU"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_TRYING = "100 Trying timer"  # §17.2.1: 200 ms
    TIMER_CANCEL = "no final response 64*T1 after CANCEL"  # §9.1
    TIMER_2XX = "2xx retransmission"  # §13.3.1.4 (UAS core)
    TIMER_ACK = "no ACK for 64*T1"  # §13.3.1.4 (UAS core)


class TransactionStateError(ValueError):
    """Our misuse: an input the machine does not accept in its state (e.g. the TU sends a
    response after the final one)."""

    def __init__(self, machine: Machine, state: TransactionState, event: Input) -> None:
        super().__init__(f"{machine.value}: no transition from {state.value} on {event.value}")
        self.machine = machine
        self.state = state
        self.event = event


class UnknownTransactionError(LookupError):
    """Our misuse: no live transaction has this key (or matches this response)."""


# --- the records the layer keeps ---------------------------------------------------------------


class _Timed:
    """Something that arms timers in the layer's heap: ``timers`` maps timer -> seq."""

    __slots__ = ("timers",)

    def __init__(self) -> None:
        self.timers: dict[Input, int] = {}


class _Transaction(_Timed):
    __slots__ = (
        "ack",
        "addr",
        "cancel_key",
        "cancel_pending",
        "data",
        "final_to",
        "interval",
        "key",
        "machine",
        "reliable",
        "request",
        "response",
        "state",
        "table",
        "text_key",
    )

    def __init__(
        self,
        key: TransactionKey,
        machine: Machine,
        request: Request,
        addr: Address,
        reliable: bool,
    ) -> None:
        super().__init__()
        self.key = key
        self.machine = machine
        self.table = TABLES[machine]
        self.state = INITIAL_STATE[machine]
        self.request: Request | None = request  # released once final (see _linger)
        self.addr = addr
        self.reliable = reliable
        self.data = b""  # client: the request as sent; server: the last response sent
        self.response: Response | None = None  # server: the last response sent
        self.final_to: str | None = None  # server: the To of the final response (_linger)
        self.ack = b""  # INVITE client: the ACK for a non-2xx final response
        self.interval = 0.0  # current retransmission interval (Timers A, E, G)
        self.cancel_key: TransactionKey | None = None  # INVITE client: CANCEL requested
        self.cancel_pending = False  # ... but not sent yet (no provisional response)
        self.text_key: tuple[str | None, str | None] | None = None  # server: see _by_text


_DialogId: TypeAlias = tuple[str, str, str, int]  # Call-ID, local (To) tag, remote (From) tag, CSeq


class _Pending2xx(_Timed):
    """A 2xx to an INVITE the UAS core retransmits until the ACK comes (§13.3.1.4)."""

    __slots__ = ("addr", "data", "dialog", "interval", "tx_key")

    def __init__(
        self, tx_key: TransactionKey, dialog: _DialogId, data: bytes, addr: Address, t1: float
    ) -> None:
        super().__init__()
        self.tx_key = tx_key
        self.dialog = dialog
        self.data = data
        self.addr = addr
        self.interval = t1


# --- actions: what a transition does -------------------------------------------------------------

_Layer: TypeAlias = "TransactionLayer"
_Msg: TypeAlias = Message | None
Action: TypeAlias = Callable[[_Layer, _Transaction, _Msg, float], None]


def _linger(tx: _Transaction) -> None:
    """Past its final response a transaction only repeats bytes (or absorbs): let the parsed
    messages go, so that the 64*T1 of Timers J and L cost ~1.3 KB a transaction, not ~7."""
    response = tx.response
    if response is not None:
        tx.final_to = response.headers.get("to")
    tx.request = tx.response = None
    if not tx.key.server:
        tx.data = b""


def _absorb(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    """Nothing to do: a retransmission or a late message the state swallows."""


def _pass_up(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    assert isinstance(msg, Response)
    layer._events.append(ResponseReceived(tx_key=tx.key, response=msg))


def _inform_timeout(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    layer._events.append(TransactionTimeout(tx_key=tx.key))


def _inform_transport_error(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    layer._events.append(TransportError(tx_key=tx.key))


def _ic_retransmit(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.1.1.2: on Timer A, retransmit and double A (no cap: 0.5, 1, 2, 4 ... s).
    layer._out.append((tx.data, tx.addr))
    tx.interval *= 2
    layer._arm(tx, Input.TIMER_A, tx.interval, now)


def _ic_proceeding(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.1.1.2: a provisional response stops retransmissions; Timer B only
    # matters in Calling. §9.1: a CANCEL waiting for a provisional response goes out now.
    layer._disarm(tx, Input.TIMER_A)
    layer._disarm(tx, Input.TIMER_B)
    _pass_up(layer, tx, msg, now)
    if tx.cancel_pending:
        layer._send_cancel(tx, now)


def _ic_final(layer: _Layer, tx: _Transaction) -> None:
    for timer in (Input.TIMER_A, Input.TIMER_B, Input.TIMER_CANCEL):
        layer._disarm(tx, timer)
    if tx.cancel_pending:  # §9.1: once a final response came, the CANCEL is not sent
        layer._drop_pending_cancel(tx)


def _ic_accepted(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 6026 §8.4: a 2xx goes to the TU and the transaction waits in Accepted for Timer M,
    # so that 2xx retransmissions (and 2xx from other forks) still find it.
    _ic_final(layer, tx)
    _pass_up(layer, tx, msg, now)
    _linger(tx)
    layer._arm(tx, Input.TIMER_M, layer.config.t64, now)


def _ic_completed(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.1.1.2: a 300-699 response goes to the TU, the transaction ACKs it
    # (§17.1.1.3) and waits Timer D (0 over reliable transports) for retransmissions.
    assert isinstance(msg, Response)
    assert tx.request is not None
    _ic_final(layer, tx)
    _pass_up(layer, tx, msg, now)
    tx.ack = bytes(_ack_for_non_2xx(tx.request, msg))
    layer._out.append((tx.ack, tx.addr))
    _linger(tx)
    layer._arm(tx, Input.TIMER_D, 0.0 if tx.reliable else layer.config.d, now)


def _ic_resend_ack(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.1.1.2: a retransmitted final response gets the ACK again, not the TU.
    layer._out.append((tx.ack, tx.addr))


def _nic_retransmit(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.1.2.2: Timer E doubles up to T2 in Trying and is T2 in Proceeding.
    layer._out.append((tx.data, tx.addr))
    t2 = layer.config.t2
    proceeding = tx.state is TransactionState.PROCEEDING
    tx.interval = t2 if proceeding else min(2 * tx.interval, t2)
    layer._arm(tx, Input.TIMER_E, tx.interval, now)


def _nic_completed(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.1.2.2: a final response goes to the TU; Timer K (T4, 0 if reliable)
    # absorbs its retransmissions.
    layer._disarm(tx, Input.TIMER_E)
    layer._disarm(tx, Input.TIMER_F)
    _pass_up(layer, tx, msg, now)
    _linger(tx)
    layer._arm(tx, Input.TIMER_K, 0.0 if tx.reliable else layer.config.t4, now)


def _s_send(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    """Pass a response from the TU to the transport; it is the one retransmissions repeat."""
    assert isinstance(msg, Response)
    tx.response = msg
    tx.data = bytes(msg)
    layer._out.append((tx.data, tx.addr))
    layer._disarm(tx, Input.TIMER_TRYING)


def _s_resend(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.2.1, §17.2.2: a retransmitted request gets the last response again.
    layer._out.append((tx.data, tx.addr))


def _is_trying(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.2.1: 100 Trying unless the TU answered within 200 ms. A retransmitted
    # INVITE before any response also gets it: the client is waiting.
    if not tx.data:
        assert tx.request is not None
        _s_send(layer, tx, make_response(tx.request, 100), now)
    else:
        _s_resend(layer, tx, msg, now)


def _is_accepted(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 6026 §8.7: after a 2xx the transaction waits in Accepted for Timer L (64*T1),
    # absorbing INVITE retransmissions; the UAS core retransmits the 2xx (§13.3.1.4).
    _s_send(layer, tx, msg, now)
    layer._arm(tx, Input.TIMER_L, layer.config.t64, now)
    if layer.retransmit_2xx:
        layer._start_2xx(tx, now)
    _linger(tx)


def _is_resend_2xx(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 6026 §8.7: a 2xx the TU passes in Accepted goes to the transport.
    _s_send(layer, tx, msg, now)
    if layer.retransmit_2xx:
        layer._start_2xx(tx, now)
    _linger(tx)


def _is_completed(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.2.1: a 300-699 is retransmitted on Timer G (T1 doubling to T2, unreliable
    # transports only) until the ACK comes or Timer H (64*T1) gives up.
    _s_send(layer, tx, msg, now)
    _linger(tx)
    config = layer.config
    if not tx.reliable:
        tx.interval = config.t1
        layer._arm(tx, Input.TIMER_G, config.t1, now)
    layer._arm(tx, Input.TIMER_H, config.t64, now)


def _is_retransmit(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    layer._out.append((tx.data, tx.addr))
    tx.interval = min(2 * tx.interval, layer.config.t2)
    layer._arm(tx, Input.TIMER_G, tx.interval, now)


def _is_confirmed(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.2.1: the ACK stops retransmissions; Timer I (T4, 0 if reliable) absorbs
    # ACK retransmissions.
    layer._disarm(tx, Input.TIMER_G)
    layer._disarm(tx, Input.TIMER_H)
    layer._arm(tx, Input.TIMER_I, 0.0 if tx.reliable else layer.config.t4, now)


def _is_ack_to_tu(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 6026 §8.7: an ACK matching the transaction in Accepted is passed to the TU.
    assert isinstance(msg, Request)
    layer._ack_to_tu(msg, tx.addr, tx.key)


def _nis_completed(layer: _Layer, tx: _Transaction, msg: _Msg, now: float) -> None:
    # RFC 3261 §17.2.2: Timer J (64*T1, 0 if reliable) absorbs request retransmissions.
    _s_send(layer, tx, msg, now)
    _linger(tx)
    layer._arm(tx, Input.TIMER_J, 0.0 if tx.reliable else layer.config.t64, now)


# --- the transition tables ---------------------------------------------------------------------

_S = TransactionState
_I = Input
Table: TypeAlias = dict[tuple[TransactionState, Input], tuple[TransactionState, Action]]

# RFC 3261 §17.1.1.2 (Figure 5), with RFC 6026 §8.4 (Accepted, Timer M).
INVITE_CLIENT: Table = {
    (_S.CALLING, _I.TIMER_A): (_S.CALLING, _ic_retransmit),  # A doubles from T1
    (_S.CALLING, _I.TIMER_B): (_S.TERMINATED, _inform_timeout),  # B = 64*T1
    (_S.CALLING, _I.PROVISIONAL): (_S.PROCEEDING, _ic_proceeding),
    (_S.CALLING, _I.SUCCESS): (_S.ACCEPTED, _ic_accepted),
    (_S.CALLING, _I.FAILURE): (_S.COMPLETED, _ic_completed),
    (_S.CALLING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
    (_S.PROCEEDING, _I.PROVISIONAL): (_S.PROCEEDING, _pass_up),
    (_S.PROCEEDING, _I.SUCCESS): (_S.ACCEPTED, _ic_accepted),
    (_S.PROCEEDING, _I.FAILURE): (_S.COMPLETED, _ic_completed),
    (_S.PROCEEDING, _I.TIMER_CANCEL): (_S.TERMINATED, _inform_timeout),  # §9.1
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
    (_S.COMPLETED, _I.PROVISIONAL): (_S.COMPLETED, _absorb),
    (_S.COMPLETED, _I.SUCCESS): (_S.COMPLETED, _absorb),
    (_S.COMPLETED, _I.FAILURE): (_S.COMPLETED, _ic_resend_ack),
    (_S.COMPLETED, _I.TIMER_D): (_S.TERMINATED, _absorb),  # D > 32 s, 0 if reliable
    (_S.COMPLETED, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
    (_S.ACCEPTED, _I.PROVISIONAL): (_S.ACCEPTED, _absorb),
    (_S.ACCEPTED, _I.SUCCESS): (_S.ACCEPTED, _pass_up),  # the TU re-sends its ACK
    (_S.ACCEPTED, _I.FAILURE): (_S.ACCEPTED, _absorb),
    (_S.ACCEPTED, _I.TIMER_M): (_S.TERMINATED, _absorb),  # M = 64*T1
    (_S.ACCEPTED, _I.TRANSPORT_ERROR): (_S.ACCEPTED, _absorb),  # it sends nothing any more
}

# RFC 3261 §17.1.2.2 (Figure 6).
NON_INVITE_CLIENT: Table = {
    (_S.TRYING, _I.TIMER_E): (_S.TRYING, _nic_retransmit),  # E = min(2E, T2)
    (_S.TRYING, _I.TIMER_F): (_S.TERMINATED, _inform_timeout),  # F = 64*T1
    (_S.TRYING, _I.PROVISIONAL): (_S.PROCEEDING, _pass_up),
    (_S.TRYING, _I.SUCCESS): (_S.COMPLETED, _nic_completed),
    (_S.TRYING, _I.FAILURE): (_S.COMPLETED, _nic_completed),
    (_S.TRYING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
    (_S.PROCEEDING, _I.TIMER_E): (_S.PROCEEDING, _nic_retransmit),  # E = T2
    (_S.PROCEEDING, _I.TIMER_F): (_S.TERMINATED, _inform_timeout),
    (_S.PROCEEDING, _I.PROVISIONAL): (_S.PROCEEDING, _pass_up),
    (_S.PROCEEDING, _I.SUCCESS): (_S.COMPLETED, _nic_completed),
    (_S.PROCEEDING, _I.FAILURE): (_S.COMPLETED, _nic_completed),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
    (_S.COMPLETED, _I.PROVISIONAL): (_S.COMPLETED, _absorb),
    (_S.COMPLETED, _I.SUCCESS): (_S.COMPLETED, _absorb),
    (_S.COMPLETED, _I.FAILURE): (_S.COMPLETED, _absorb),
    (_S.COMPLETED, _I.TIMER_K): (_S.TERMINATED, _absorb),  # K = T4, 0 if reliable
    (_S.COMPLETED, _I.TRANSPORT_ERROR): (_S.COMPLETED, _absorb),
}

# RFC 3261 §17.2.1 (Figure 7), with RFC 6026 §8.7 (Accepted, Timer L).
INVITE_SERVER: Table = {
    (_S.PROCEEDING, _I.REQUEST): (_S.PROCEEDING, _is_trying),  # last provisional again
    (_S.PROCEEDING, _I.ACK): (_S.PROCEEDING, _absorb),  # no final response to ACK yet
    (_S.PROCEEDING, _I.TIMER_TRYING): (_S.PROCEEDING, _is_trying),
    (_S.PROCEEDING, _I.SEND_PROVISIONAL): (_S.PROCEEDING, _s_send),
    (_S.PROCEEDING, _I.SEND_SUCCESS): (_S.ACCEPTED, _is_accepted),
    (_S.PROCEEDING, _I.SEND_FAILURE): (_S.COMPLETED, _is_completed),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
    (_S.COMPLETED, _I.REQUEST): (_S.COMPLETED, _s_resend),
    (_S.COMPLETED, _I.ACK): (_S.CONFIRMED, _is_confirmed),
    (_S.COMPLETED, _I.TIMER_G): (_S.COMPLETED, _is_retransmit),  # G = min(2G, T2)
    (_S.COMPLETED, _I.TIMER_H): (_S.TERMINATED, _inform_timeout),  # H = 64*T1: no ACK
    (_S.COMPLETED, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
    (_S.CONFIRMED, _I.REQUEST): (_S.CONFIRMED, _absorb),
    (_S.CONFIRMED, _I.ACK): (_S.CONFIRMED, _absorb),
    (_S.CONFIRMED, _I.TIMER_I): (_S.TERMINATED, _absorb),  # I = T4, 0 if reliable
    (_S.CONFIRMED, _I.TRANSPORT_ERROR): (_S.CONFIRMED, _absorb),
    (_S.ACCEPTED, _I.REQUEST): (_S.ACCEPTED, _absorb),  # the UAS core retransmits the 2xx
    (_S.ACCEPTED, _I.ACK): (_S.ACCEPTED, _is_ack_to_tu),
    (_S.ACCEPTED, _I.SEND_SUCCESS): (_S.ACCEPTED, _is_resend_2xx),
    (_S.ACCEPTED, _I.TIMER_L): (_S.TERMINATED, _absorb),  # L = 64*T1
    (_S.ACCEPTED, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
}

# RFC 3261 §17.2.2 (Figure 8).
NON_INVITE_SERVER: Table = {
    (_S.TRYING, _I.REQUEST): (_S.TRYING, _absorb),  # nothing to repeat yet
    (_S.TRYING, _I.SEND_PROVISIONAL): (_S.PROCEEDING, _s_send),
    (_S.TRYING, _I.SEND_SUCCESS): (_S.COMPLETED, _nis_completed),
    (_S.TRYING, _I.SEND_FAILURE): (_S.COMPLETED, _nis_completed),
    (_S.TRYING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
    (_S.PROCEEDING, _I.REQUEST): (_S.PROCEEDING, _s_resend),
    (_S.PROCEEDING, _I.SEND_PROVISIONAL): (_S.PROCEEDING, _s_send),
    (_S.PROCEEDING, _I.SEND_SUCCESS): (_S.COMPLETED, _nis_completed),
    (_S.PROCEEDING, _I.SEND_FAILURE): (_S.COMPLETED, _nis_completed),
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
    (_S.COMPLETED, _I.REQUEST): (_S.COMPLETED, _s_resend),
    (_S.COMPLETED, _I.TIMER_J): (_S.TERMINATED, _absorb),  # J = 64*T1, 0 if reliable
    (_S.COMPLETED, _I.TRANSPORT_ERROR): (_S.TERMINATED, _inform_transport_error),
}

TABLES: dict[Machine, Table] = {
    Machine.INVITE_CLIENT: INVITE_CLIENT,
    Machine.NON_INVITE_CLIENT: NON_INVITE_CLIENT,
    Machine.INVITE_SERVER: INVITE_SERVER,
    Machine.NON_INVITE_SERVER: NON_INVITE_SERVER,
}
INITIAL_STATE: dict[Machine, TransactionState] = {
    Machine.INVITE_CLIENT: _S.CALLING,
    Machine.NON_INVITE_CLIENT: _S.TRYING,
    Machine.INVITE_SERVER: _S.PROCEEDING,
    Machine.NON_INVITE_SERVER: _S.TRYING,
}


# --- message helpers -------------------------------------------------------------------------


def _is_rfc3261_branch(branch: str | None) -> TypeGuard[str]:
    """The magic cookie and something after it (RFC 3261 §8.1.1.7)."""
    cookie = MAGIC_COOKIE
    return branch is not None and len(branch) > len(cookie) and branch.startswith(cookie)


def _is_reliable(via: Via) -> bool:
    return via.transport.upper() in RELIABLE_TRANSPORTS


def _server_key(msg: Message, via: Via, method: str) -> TransactionKey:
    """RFC 3261 §17.2.3: branch + sent-by + method (INVITE for an ACK)."""
    host = via.host.lower()
    sent_by = host if via.port is None else f"{host}:{via.port}"
    branch = via.branch
    if not _is_rfc3261_branch(branch):
        # RFC 3261 §17.2.3 for RFC 2543 peers (and RFC 4475 §3.2.1 badbranch: a bare magic
        # cookie identifies nothing): Request-URI, To tag, From tag, Call-ID, CSeq
        # and top Via. We leave out the Request-URI (a response does not carry it, and
        # send_response matches by the response) and the To tag (the ACK for a non-2xx
        # carries the tag of our response, the INVITE none).
        branch = f"rfc2543 {msg.call_id} {msg.from_.tag or ''} {msg.cseq.number} {via}"
    return TransactionKey(branch, sent_by, method, True)


def _top_via_text(request: Request) -> str:
    return request.headers.values("via")[0]


def _copied(request: Request, names: tuple[str, ...]) -> list[tuple[str, HeaderValue]]:
    return [(name, value) for name in names for value in request.headers.get_all(name)]


def _ack_for_non_2xx(request: Request, response: Response) -> Request:
    """RFC 3261 §17.1.1.3: Request-URI, Call-ID, From, CSeq number and Route of the INVITE,
    To of the response (its tag), and a single Via: the INVITE's top Via (same branch)."""
    items: list[tuple[str, HeaderValue]] = [("Via", _top_via_text(request))]
    items += _copied(request, ("Route",))
    items += [("Max-Forwards", 70), *_copied(request, ("From",))]
    items.append(("To", response.headers.get("to", "")))
    items += _copied(request, ("Call-ID",))
    items += [("CSeq", f"{request.cseq.number} ACK"), ("Content-Length", 0)]
    return Request("ACK", request.uri, Headers(items))


def _cancel_for(request: Request) -> Request:
    """RFC 3261 §9.1: Request-URI, Call-ID, To, From, CSeq number and Route of the request,
    and a single Via: its top Via (same branch)."""
    items: list[tuple[str, HeaderValue]] = [("Via", _top_via_text(request))]
    items += _copied(request, ("Route",))
    items += [("Max-Forwards", 70), *_copied(request, ("From", "To", "Call-ID"))]
    items += [("CSeq", f"{request.cseq.number} CANCEL"), ("Content-Length", 0)]
    return Request("CANCEL", request.uri, Headers(items))


def _sent_tag(tx: _Transaction) -> str | None:
    """The To tag of the responses a server transaction sent (None: none yet, or a 100)."""
    to = tx.response.headers.get("to") if tx.response is not None else tx.final_to
    if to is None:
        return None
    try:
        return parse_name_addr(to).tag
    except ParseError:
        return None


def _response_input(status: int, sending: bool) -> Input:
    if status < 200:
        return Input.SEND_PROVISIONAL if sending else Input.PROVISIONAL
    if status < 300:
        return Input.SEND_SUCCESS if sending else Input.SUCCESS
    return Input.SEND_FAILURE if sending else Input.FAILURE


# --- the layer -----------------------------------------------------------------------------------


class TransactionLayer:
    """All client and server transactions of one endpoint (see the module docstring).

    ``new_tag`` makes To tags for the responses the layer itself writes (503 when overloaded,
    400 to garbage, the CANCEL answers of :meth:`respond_487`). ``max_server_transactions``
    bounds memory: beyond it new requests get a stateless 503. ``retransmit_2xx`` runs the
    UAS core's 2xx retransmission and ACK timeout (RFC 3261 §13.3.1.4) here; turn it off if
    the TU does that itself.
    """

    def __init__(
        self,
        *,
        new_tag: Callable[[], str],
        config: TimerConfig | None = None,
        max_server_transactions: int = 100_000,
        retransmit_2xx: bool = True,
    ) -> None:
        self.config = config if config is not None else TimerConfig()
        self.max_server_transactions = max_server_transactions
        self.retransmit_2xx = retransmit_2xx
        self._new_tag = new_tag
        self._client: dict[TransactionKey, _Transaction] = {}
        self._server: dict[TransactionKey, _Transaction] = {}
        self._pending_2xx: dict[_DialogId, _Pending2xx] = {}
        # Server transactions with an RFC 3261 branch by the text of their first Via line and
        # CSeq: make_response copies both verbatim, so finding the transaction of a response
        # costs two lookups instead of parsing its Via (a branch is unique, parse memos miss).
        self._by_text: dict[tuple[str | None, str | None], TransactionKey] = {}
        self._events: deque[TransactionEvent] = deque()
        self._out: list[tuple[bytes, Address]] = []
        self._heap: list[tuple[float, int, _Timed, Input]] = []
        self._seq = 0
        self._armed = 0  # live (non-stale) heap entries
        self.dropped = 0  # peer messages dropped: unusable headers, unmatched responses
        self.rejected = 0  # requests answered 503 because of max_server_transactions

    # --- from the transport --------------------------------------------------------------

    def receive_datagram(
        self, data: bytes, addr: Address, now: float, *, reliable: bool | None = None
    ) -> None:
        """Parse one message and :meth:`receive` it; garbage gets its 400 (or is dropped)."""
        try:
            msg = parse_message(data)
        except ParseError as exc:
            answer = bad_request_response(data, exc, to_tag=self._new_tag())
            if answer is not None:
                self._out.append((answer, addr))
            self.dropped += 1
            return
        self.receive(msg, addr, now, reliable=reliable)

    def receive(
        self, msg: Request | Response, addr: Address, now: float, *, reliable: bool | None = None
    ) -> None:
        """A parsed (validated) message from ``addr``. ``reliable`` defaults to the top
        Via's transport (TCP, TLS, SCTP, WS, WSS are reliable)."""
        if isinstance(msg, Response):
            self._receive_response(msg, now)
        else:
            self._receive_request(msg, addr, now, reliable)

    def _receive_response(self, response: Response, now: float) -> None:
        # RFC 3261 §17.1.3: top Via branch + CSeq method. RFC 6026 (amending §18.1.2):
        # a response that matches no client transaction is discarded.
        try:
            key = TransactionKey(response.via[0].branch or "", "", response.cseq.method, False)
        except (ParseError, IndexError):
            key = None
        tx = None if key is None else self._client.get(key)
        if tx is None:
            self.dropped += 1
            return
        self._fire(tx, _response_input(response.status, False), response, now)

    def _receive_request(
        self, request: Request, addr: Address, now: float, reliable: bool | None
    ) -> None:
        method = request.method
        is_ack = method == "ACK"
        try:
            via = request.via[0]
            key = _server_key(request, via, "INVITE" if is_ack else method)
        except (ParseError, IndexError):
            self.dropped += 1  # parse_message validates these: only unvalidated input
            return
        tx = self._server.get(key)
        if tx is not None:
            self._fire(tx, Input.ACK if is_ack else Input.REQUEST, request, now)
        elif is_ack:
            self._ack_to_tu(request, addr, None)  # §17: the ACK for a 2xx is no transaction's
        else:
            self._new_server(
                request, key, addr, _is_reliable(via) if reliable is None else reliable, now
            )

    def _new_server(
        self, request: Request, key: TransactionKey, addr: Address, reliable: bool, now: float
    ) -> None:
        if len(self._server) >= self.max_server_transactions:
            self.rejected += 1
            self.send_stateless(make_response(request, 503, to_tag=self._new_tag()), addr)
            return
        invite = key.method == "INVITE"
        machine = Machine.INVITE_SERVER if invite else Machine.NON_INVITE_SERVER
        tx = _Transaction(key, machine, request, addr, reliable)
        self._server[key] = tx
        if _is_rfc3261_branch(key.branch):  # the text determines the key
            headers = request.headers
            tx.text_key = (headers.get("via"), headers.get("cseq"))
            self._by_text[tx.text_key] = key
        if request.method == "CANCEL":
            invite_key = key._replace(method="INVITE")
            found = invite_key if invite_key in self._server else None
            self._events.append(
                CancelReceived(tx_key=key, request=request, addr=addr, invite_key=found)
            )
        else:
            self._events.append(RequestReceived(tx_key=key, request=request, addr=addr))
        if invite:
            self._arm(tx, Input.TIMER_TRYING, self.config.trying, now)

    def transport_error(self, tx_key: TransactionKey, now: float) -> None:
        """The transport failed to send for this transaction (RFC 3261 §17.1.4, §17.2.4).
        Unknown keys are ignored (the transaction may have ended meanwhile)."""
        tx = (self._server if tx_key.server else self._client).get(tx_key)
        if tx is not None:
            self._fire(tx, Input.TRANSPORT_ERROR, None, now)

    def transport_error_for_address(self, addr: Address, now: float) -> None:
        """Every transaction talking to ``addr`` failed (a closed connection, an ICMP
        error): a linear scan, meant for rare events."""
        for tx in [*self._client.values(), *self._server.values()]:
            if tx.addr == addr and tx.state is not TransactionState.TERMINATED:
                self._fire(tx, Input.TRANSPORT_ERROR, None, now)

    # --- from the TU -----------------------------------------------------------------------

    def send_request(
        self, request: Request, addr: Address, now: float, *, reliable: bool | None = None
    ) -> TransactionKey:
        """Start a client transaction for ``request`` (not ACK: see :meth:`send_stateless`).

        The top Via must carry an RFC 3261 branch (magic cookie), unique per transaction.
        ``reliable`` defaults to the Via transport. The request must not change afterwards.
        """
        method = request.method
        if method == "ACK":
            raise ValueError("an ACK is sent with send_stateless, not in a transaction")
        branch = request.via[0].branch if request.headers.count("via") else None
        if not _is_rfc3261_branch(branch):
            raise ValueError(f"the top Via needs a branch starting with {MAGIC_COOKIE}")
        key = TransactionKey(branch, "", method, False)
        if key in self._client:
            raise ValueError(f"a client transaction with branch {branch} already exists")
        if reliable is None:
            reliable = _is_reliable(request.via[0])
        self._start_client(request, key, addr, reliable, now)
        return key

    def _start_client(
        self, request: Request, key: TransactionKey, addr: Address, reliable: bool, now: float
    ) -> None:
        invite = key.method == "INVITE"
        machine = Machine.INVITE_CLIENT if invite else Machine.NON_INVITE_CLIENT
        tx = _Transaction(key, machine, request, addr, reliable)
        tx.data = bytes(request)
        self._client[key] = tx
        self._out.append((tx.data, addr))
        config = self.config
        if not reliable:  # §17.1.1.2, §17.1.2.2: Timers A and E start at T1
            tx.interval = config.t1
            self._arm(tx, Input.TIMER_A if invite else Input.TIMER_E, config.t1, now)
        self._arm(tx, Input.TIMER_B if invite else Input.TIMER_F, config.t64, now)

    def send_response(
        self, response: Response, now: float, *, tx_key: TransactionKey | None = None
    ) -> None:
        """Send ``response`` through its server transaction: the one its top Via and CSeq
        name, or ``tx_key`` (the key of its ``RequestReceived``). Raises
        :class:`UnknownTransactionError` when there is none, :class:`TransactionStateError`
        when the transaction cannot send it (a second final response)."""
        if tx_key is None:
            headers = response.headers
            tx_key = self._by_text.get((headers.get("via"), headers.get("cseq")))
        if tx_key is None:
            tx_key = _server_key(response, response.via[0], response.cseq.method)
        tx = self._server.get(tx_key)
        if tx is None:
            raise UnknownTransactionError(f"no server transaction {tx_key}")
        self._fire(tx, _response_input(response.status, True), response, now)

    def send_stateless(self, message: Request | Response, addr: Address) -> None:
        """Queue a message outside any transaction: the ACK for a 2xx (RFC 3261
        §13.2.2.4), stateless responses."""
        self._out.append((bytes(message), addr))

    def cancel(self, tx_key: TransactionKey, now: float) -> TransactionKey | None:
        """CANCEL an INVITE client transaction (RFC 3261 §9.1); returns the CANCEL's client
        transaction key, or ``None`` when there is nothing to cancel (final response
        received, transaction gone). Before any provisional response the CANCEL waits for one
        (§9.1); if a final response comes first it is never sent and its key gets
        ``TransactionTerminated``. Without a final response 64*T1 after the CANCEL, the
        INVITE transaction times out (§9.1)."""
        tx = self._client.get(tx_key)
        if tx is None or tx.machine is not Machine.INVITE_CLIENT:
            return None
        if tx.cancel_key is not None:
            return tx.cancel_key
        if tx.state not in (TransactionState.CALLING, TransactionState.PROCEEDING):
            return None
        tx.cancel_key = tx_key._replace(method="CANCEL")
        tx.cancel_pending = True
        if tx.state is TransactionState.PROCEEDING:
            self._send_cancel(tx, now)
        return tx.cancel_key

    def _send_cancel(self, tx: _Transaction, now: float) -> None:
        assert tx.cancel_key is not None
        assert tx.request is not None
        tx.cancel_pending = False
        self._start_client(_cancel_for(tx.request), tx.cancel_key, tx.addr, tx.reliable, now)
        self._arm(tx, Input.TIMER_CANCEL, self.config.t64, now)

    def _drop_pending_cancel(self, tx: _Transaction) -> None:
        assert tx.cancel_key is not None
        tx.cancel_pending = False
        self._events.append(TransactionTerminated(tx_key=tx.cancel_key))

    def respond_487(
        self, cancel_key: TransactionKey, now: float, *, to_tag: str | None = None
    ) -> TransactionKey | None:
        """Answer a received CANCEL the RFC 3261 §9.2 way: 481 if it matches no INVITE
        transaction; else 200 to the CANCEL and, if the INVITE has no final response yet,
        487 to the INVITE (returning its key). Both carry the To tag the INVITE's responses
        carry, else ``to_tag``, else a new one (§9.2: the same tag)."""
        if cancel_key.method != "CANCEL":
            raise ValueError(f"not a CANCEL transaction: {cancel_key}")
        cancel = self._server.get(cancel_key)
        if cancel is None:
            raise UnknownTransactionError(f"no server transaction {cancel_key}")
        if cancel.request is None:  # answered already
            raise TransactionStateError(cancel.machine, cancel.state, Input.SEND_SUCCESS)
        invite = self._server.get(cancel_key._replace(method="INVITE"))
        if invite is None:
            answer = make_response(cancel.request, 481, to_tag=to_tag or self._new_tag())
            self._fire(cancel, Input.SEND_FAILURE, answer, now)
            return None
        tag = _sent_tag(invite) or to_tag or self._new_tag()
        self._fire(cancel, Input.SEND_SUCCESS, make_response(cancel.request, 200, to_tag=tag), now)
        if invite.state is not TransactionState.PROCEEDING or invite.request is None:
            return None  # §9.2: a final response was sent; the CANCEL has no effect
        terminated = make_response(invite.request, 487, to_tag=tag)
        self._fire(invite, Input.SEND_FAILURE, terminated, now)
        return invite.key

    # --- UAS core 2xx retransmission (RFC 3261 §13.3.1.4) ------------------------------------

    def _start_2xx(self, tx: _Transaction, now: float) -> None:
        response = tx.response
        assert response is not None
        dialog = (
            response.call_id,
            response.to.tag or "",
            response.from_.tag or "",
            response.cseq.number,
        )
        pending = self._pending_2xx.get(dialog)
        if pending is not None:  # the TU passed the 2xx again: keep the schedule
            pending.data = tx.data
            return
        config = self.config
        pending = _Pending2xx(tx.key, dialog, tx.data, tx.addr, config.t1)
        self._pending_2xx[dialog] = pending
        # "an interval that starts at T1 seconds and doubles ... until it reaches T2",
        # on every transport: the 2xx is end to end, a reliable first hop proves nothing.
        self._arm(pending, Input.TIMER_2XX, config.t1, now)
        self._arm(pending, Input.TIMER_ACK, config.t64, now)

    def _fire_2xx(self, pending: _Pending2xx, timer: Input, now: float) -> None:
        if timer is Input.TIMER_2XX:
            self._out.append((pending.data, pending.addr))
            pending.interval = min(2 * pending.interval, self.config.t2)
            self._arm(pending, Input.TIMER_2XX, pending.interval, now)
            return
        # §13.3.1.4: 64*T1 without an ACK: the session should be ended with a BYE.
        self._forget_2xx(pending)
        call_id, local_tag, remote_tag, cseq = pending.dialog
        self._events.append(
            AckTimeout(
                tx_key=pending.tx_key,
                call_id=call_id,
                local_tag=local_tag,
                remote_tag=remote_tag,
                cseq=cseq,
            )
        )

    def _forget_2xx(self, pending: _Pending2xx) -> None:
        del self._pending_2xx[pending.dialog]
        self._armed -= len(pending.timers)
        pending.timers.clear()

    def _ack_to_tu(self, ack: Request, addr: Address, tx_key: TransactionKey | None) -> None:
        try:
            dialog = (ack.call_id, ack.to.tag or "", ack.from_.tag or "", ack.cseq.number)
        except ParseError:
            self.dropped += 1
            return
        pending = self._pending_2xx.get(dialog)
        if pending is not None:  # §13.3.1.4: the ACK ends the 2xx retransmissions
            self._forget_2xx(pending)
        self._events.append(AckReceived(request=ack, addr=addr, tx_key=tx_key))

    def stop_2xx_retransmission(
        self, call_id: str, local_tag: str, remote_tag: str, cseq: int
    ) -> bool:
        """Stop retransmitting a 2xx without an ACK (the dialog ended otherwise)."""
        pending = self._pending_2xx.get((call_id, local_tag, remote_tag, cseq))
        if pending is None:
            return False
        self._forget_2xx(pending)
        return True

    # --- outputs ---------------------------------------------------------------------------

    def next_event(self) -> TransactionEvent | None:
        events = self._events
        return events.popleft() if events else None

    def datagrams_to_send(self, now: float | None = None) -> list[tuple[bytes, Address]]:
        """The messages to transmit, in order (``now`` is accepted for the uniform
        sans-I/O signature and unused)."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline at which :meth:`handle_timer` has work, or ``None``."""
        heap = self._heap
        while heap:
            _when, seq, owner, timer = heap[0]
            if owner.timers.get(timer) == seq:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Run every timer due at ``now``."""
        while self._heap and self._heap[0][0] <= now:
            _when, seq, owner, timer = heapq.heappop(self._heap)
            timers = owner.timers
            if timers.get(timer) != seq:
                continue  # stale: cancelled or re-armed since
            del timers[timer]
            self._armed -= 1
            self._expire(owner, timer, now)

    # --- introspection -------------------------------------------------------------------

    def state_of(self, tx_key: TransactionKey) -> TransactionState | None:
        tx = (self._server if tx_key.server else self._client).get(tx_key)
        return None if tx is None else tx.state

    @property
    def transaction_count(self) -> int:
        return len(self._client) + len(self._server)

    @property
    def server_transaction_count(self) -> int:
        return len(self._server)

    @property
    def pending_2xx_count(self) -> int:
        return len(self._pending_2xx)

    def is_idle(self) -> bool:
        """No transaction, no 2xx being retransmitted, no timer, nothing queued."""
        return not (
            self._client
            or self._server
            or self._pending_2xx
            or self._by_text
            or self._events
            or self._out
            or self.get_timer() is not None
        )

    # --- machinery -------------------------------------------------------------------------

    def _fire(self, tx: _Transaction, event: Input, msg: Message | None, now: float) -> None:
        try:
            state, action = tx.table[tx.state, event]
        except KeyError:
            raise TransactionStateError(tx.machine, tx.state, event) from None
        tx.state = state
        action(self, tx, msg, now)
        if state is TransactionState.TERMINATED:
            self._remove(tx)

    def _remove(self, tx: _Transaction) -> None:
        # RFC 3261 §17.1.1.2 and others: "once the transaction is in the Terminated state,
        # it MUST be destroyed immediately".
        (self._server if tx.key.server else self._client).pop(tx.key, None)
        if tx.text_key is not None:
            self._by_text.pop(tx.text_key, None)
        self._armed -= len(tx.timers)
        tx.timers.clear()
        self._events.append(TransactionTerminated(tx_key=tx.key))
        if tx.cancel_pending:
            self._drop_pending_cancel(tx)

    def _arm(self, owner: _Timed, timer: Input, delay: float, now: float) -> None:
        if delay <= 0:  # a zero timer (reliable transports) fires at once
            self._disarm(owner, timer)
            self._expire(owner, timer, now)
            return
        self._seq = seq = self._seq + 1
        if timer not in owner.timers:
            self._armed += 1
        owner.timers[timer] = seq
        heapq.heappush(self._heap, (now + delay, seq, owner, timer))
        if len(self._heap) > 2 * self._armed + 64:
            self._compact()

    def _disarm(self, owner: _Timed, timer: Input) -> None:
        if owner.timers.pop(timer, None) is not None:
            self._armed -= 1

    def _compact(self) -> None:
        """Drop stale entries (they hold on to dead transactions) and rebuild the heap."""
        self._heap = [e for e in self._heap if e[2].timers.get(e[3]) == e[1]]
        heapq.heapify(self._heap)

    def _expire(self, owner: _Timed, timer: Input, now: float) -> None:
        if isinstance(owner, _Transaction):
            self._fire(owner, timer, None, now)
        else:
            assert isinstance(owner, _Pending2xx)
            self._fire_2xx(owner, timer, now)
