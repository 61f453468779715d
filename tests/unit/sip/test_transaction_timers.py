"""Transaction timers (RFC 3261 §17 Table 4, §13.3.1.4; RFC 6026 Timers L and M), as tables
of send times and ends, on a fake clock that jumps to ``get_timer()``; and a property test:
any interleaving of peer messages, TU actions and time never raises an unexpected error, and
every transaction ends, leaving the layer empty."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudpbx.sip import Request, make_response
from cloudpbx.sip.events import (
    AckTimeout,
    CancelReceived,
    RequestReceived,
    TransactionKey,
    TransactionTerminated,
    TransactionTimeout,
)
from cloudpbx.sip.transaction import (
    TimerConfig,
    TransactionState,
    TransactionStateError,
    UnknownTransactionError,
)

from .test_transaction import Harness, ack_for_2xx, request, response, wire

UDP_T1 = [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # T1 doubling, no cap (Timer A)
UDP_T1_T2 = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]  # capped at T2
FAST = TimerConfig(t1=0.1, t2=0.4, t4=1.0, d=8.0)
FAST_T1 = [0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3]  # Timer A, T1 = 0.1, B = 6.4
FAST_T1_T2 = [0.0, 0.1, 0.3, 0.7, *(1.1 + 0.4 * n for n in range(14))]  # E capped at 0.4


def send_times(h: Harness) -> list[float]:
    return [t for t, _, _ in h.sent]


# --- client transactions that get no answer: Timers A/B and E/F ---------------------------------


@pytest.mark.parametrize(
    ("method", "transport", "config", "sends", "timeout"),
    [
        # RFC 3261 §17.1.1.2: A = T1, 2T1, 4T1 ...; B = 64*T1.
        ("INVITE", "UDP", TimerConfig(), UDP_T1, 32.0),
        # §17.1.2.2: E = T1 doubling up to T2, then every T2; F = 64*T1.
        ("OPTIONS", "UDP", TimerConfig(), UDP_T1_T2, 32.0),
        ("REGISTER", "UDP", TimerConfig(), UDP_T1_T2, 32.0),
        ("INVITE", "UDP", FAST, FAST_T1, 6.4),
        ("OPTIONS", "UDP", FAST, FAST_T1_T2, 6.4),
        # Reliable transports: no retransmission, B and F still run.
        ("INVITE", "TCP", TimerConfig(), [0.0], 32.0),
        ("INVITE", "TLS", TimerConfig(), [0.0], 32.0),
        ("OPTIONS", "TCP", TimerConfig(), [0.0], 32.0),
        ("MESSAGE", "WS", TimerConfig(), [0.0], 32.0),
        ("INVITE", "WSS", FAST, [0.0], 6.4),
    ],
)
def test_client_without_answer(
    method: str, transport: str, config: TimerConfig, sends: list[float], timeout: float
) -> None:
    h = Harness(config=config)
    key = h.send_request(request(method, transport=transport))
    h.run_out()
    assert send_times(h) == pytest.approx(sends)
    assert len({data for _, data, _ in h.sent}) == 1  # the same bytes every time
    assert h.events == [TransactionTimeout(tx_key=key), TransactionTerminated(tx_key=key)]
    assert h.now == pytest.approx(timeout)
    assert h.layer.is_idle()


def test_non_invite_retransmits_every_t2_once_proceeding() -> None:
    """RFC 3261 §17.1.2.2: in Proceeding Timer E is reset to T2."""
    h = Harness()
    options = request("OPTIONS")
    h.send_request(options)
    h.now = 0.2
    h.receive(response(options, 100))
    h.run_out()
    assert send_times(h) == [0.0, 0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert isinstance(h.events[-2], TransactionTimeout)


def test_invite_provisional_stops_retransmission_and_timer_b() -> None:
    h = Harness()
    invite = request()
    key = h.send_request(invite)
    h.advance(1.0)
    h.receive(response(invite, 180))
    h.advance(600.0)
    assert send_times(h) == [0.0, 0.5]
    assert h.layer.state_of(key) is TransactionState.PROCEEDING  # §17.1.1.2: B only in Calling


# --- how long each machine lingers after its final response: D, K, I, J, L, M -------------------


def _invite_client(status: int) -> Callable[[Harness, str], TransactionKey]:
    def run(h: Harness, transport: str) -> TransactionKey:
        invite = request(transport=transport)
        key = h.send_request(invite)
        h.receive(response(invite, status))
        return key

    return run


def _non_invite_client(h: Harness, transport: str) -> TransactionKey:
    options = request("OPTIONS", transport=transport)
    key = h.send_request(options)
    h.receive(response(options, 200))
    return key


def _invite_server(status: int) -> Callable[[Harness, str], TransactionKey]:
    def run(h: Harness, transport: str) -> TransactionKey:
        invite = request(transport=transport)
        h.receive(invite)
        key = next(e.tx_key for e in h.events if isinstance(e, RequestReceived))
        h.send_response(response(invite, status))
        h.receive(ack_for_2xx(invite) if status < 300 else request("ACK", transport=transport))
        return key

    return run


def _non_invite_server(h: Harness, transport: str) -> TransactionKey:
    register = request("REGISTER", transport=transport)
    h.receive(register)
    key = next(e.tx_key for e in h.events if isinstance(e, RequestReceived))
    h.send_response(response(register, 200))
    return key


@pytest.mark.parametrize(
    ("scenario", "transport", "lingers"),
    [
        (_invite_client(486), "UDP", 32.0),  # Timer D > 32 s
        (_invite_client(486), "TCP", 0.0),  # D = 0
        (_invite_client(200), "UDP", 32.0),  # RFC 6026 Timer M = 64*T1
        (_invite_client(200), "TCP", 32.0),
        (_non_invite_client, "UDP", 5.0),  # Timer K = T4
        (_non_invite_client, "TLS", 0.0),
        (_invite_server(486), "UDP", 5.0),  # Timer I = T4 (after the ACK)
        (_invite_server(486), "TCP", 0.0),
        (_invite_server(200), "UDP", 32.0),  # RFC 6026 Timer L = 64*T1
        (_invite_server(200), "WS", 32.0),
        (_non_invite_server, "UDP", 32.0),  # Timer J = 64*T1
        (_non_invite_server, "TCP", 0.0),
    ],
    ids=[
        "D-udp",
        "D-tcp",
        "M-udp",
        "M-tcp",
        "K-udp",
        "K-tls",
        "I-udp",
        "I-tcp",
        "L-udp",
        "L-ws",
        "J-udp",
        "J-tcp",
    ],
)
def test_linger_after_final_response(
    scenario: Callable[[Harness, str], TransactionKey], transport: str, lingers: float
) -> None:
    h = Harness()
    h.now = 100.0
    key = scenario(h, transport)
    if lingers:
        assert h.layer.state_of(key) is not None
        h.advance(100.0 + lingers - 0.001)
        assert h.layer.state_of(key) is not None
    h.advance(100.0 + lingers)
    assert h.layer.state_of(key) is None
    assert TransactionTerminated(tx_key=key) in h.events


# --- server retransmissions: Timers G/H and the UAS core's 2xx ------------------------------------


@pytest.mark.parametrize(
    ("transport", "sends"),
    [("UDP", UDP_T1_T2), ("TCP", [0.0])],
)
def test_invite_server_failure_without_ack(transport: str, sends: list[float]) -> None:
    """RFC 3261 §17.2.1: G = T1 doubling to T2 (unreliable only); H = 64*T1 on every
    transport, then the TU hears of the failure."""
    h = Harness()
    invite = request(transport=transport)
    h.receive(invite)
    key = next(e.tx_key for e in h.events if isinstance(e, RequestReceived))
    h.send_response(response(invite, 486))
    h.run_out()
    assert send_times(h) == sends
    assert h.events[-2:] == [TransactionTimeout(tx_key=key), TransactionTerminated(tx_key=key)]
    assert h.now == 32.0


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_uas_2xx_schedule_without_ack(transport: str) -> None:
    """RFC 3261 §13.3.1.4: T1, 2T1 ... capped at T2 until the ACK -- on every transport, the
    2xx being end to end -- and after 64*T1 the TU is told to send BYE."""
    h = Harness()
    invite = request(transport=transport)
    h.receive(invite)
    h.send_response(response(invite, 200))
    h.run_out()
    assert send_times(h) == UDP_T1_T2
    # Timer L and the ACK timeout both come due at 64*T1.
    assert {type(e) for e in h.events[-2:]} == {AckTimeout, TransactionTerminated}
    assert h.now == 32.0
    assert h.layer.is_idle()


def test_uas_2xx_schedule_follows_config() -> None:
    h = Harness(config=FAST)
    invite = request()
    h.receive(invite)
    h.send_response(response(invite, 200))
    h.run_out()
    assert send_times(h) == pytest.approx(FAST_T1_T2)
    assert h.now == pytest.approx(6.4)


# --- the property ------------------------------------------------------------------------------

N = 2  # indices per kind: small, so that operations collide on the same transactions
STATUSES = [100, 180, 200, 486, 503]

# Mostly short waits (retransmissions, 100 Trying), sometimes past Timers B, F, H, L, M.
WAIT = st.one_of(st.floats(0.0, 2.0), st.floats(0.0, 2.0), st.floats(0.0, 40.0))
OPERATION = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(["INVITE", "OPTIONS"]), st.booleans()),
    st.tuples(st.just("peer-response"), st.integers(0, N), st.sampled_from(STATUSES)),
    st.tuples(
        st.just("peer-request"),
        st.integers(0, N),
        st.sampled_from(["INVITE", "OPTIONS", "ACK", "CANCEL"]),
        st.booleans(),
    ),
    st.tuples(st.just("peer-ack-2xx"), st.integers(0, N)),
    st.tuples(st.just("tu-response"), st.integers(0, N), st.sampled_from(STATUSES)),
    st.tuples(st.just("cancel"), st.integers(0, N)),
    st.tuples(st.just("respond-487"), st.integers(0, N)),
    st.tuples(st.just("transport-error"), st.integers(0, N), st.booleans()),
    st.tuples(st.just("wait"), WAIT),
)


class World:
    """A layer with both a UAC and a UAS peer around it, played by the operations."""

    def __init__(self) -> None:
        self.h = Harness()
        self.client_keys: list[TransactionKey] = []  # every key handed out on the client side
        self.client_requests: dict[TransactionKey, Request] = {}  # ... and what it sent
        self.server_requests: dict[TransactionKey, Request] = {}
        self.seen = 0  # events already looked at

    def apply(self, op: tuple[object, ...]) -> None:
        getattr(self, "op_" + str(op[0]).replace("-", "_"))(*op[1:])
        self.h.pump()
        for event in self.h.events[self.seen :]:
            if isinstance(event, RequestReceived | CancelReceived):
                self.server_requests.setdefault(event.tx_key, event.request)
        self.seen = len(self.h.events)

    def _pick(self, keys: list[TransactionKey], i: int) -> TransactionKey | None:
        """Mostly a live transaction (index ``i``); with the top index, any, dead or alive."""
        live = [k for k in keys if self.h.layer.state_of(k) is not None]
        pool = keys if i == N or not live else live
        return pool[i % len(pool)] if pool else None

    def op_send(self, method: str, reliable: bool) -> None:
        n = len(self.client_keys)
        req = request(method, branch=f"z9hG4bKc{n}", call_id=f"c{n}")
        key = self.h.layer.send_request(req, "uas", self.h.now, reliable=reliable)
        self.client_keys.append(key)
        self.client_requests[key] = req

    def op_peer_response(self, i: int, status: int) -> None:
        key = self._pick(self.client_keys, i)
        if key is not None:
            answer = response(self.client_requests[key], status)
            self.h.layer.receive(wire(answer), "uas", self.h.now)

    def op_peer_request(self, i: int, method: str, tcp: bool) -> None:
        transport = "TCP" if tcp else "UDP"
        req = request(method, branch=f"z9hG4bKs{i}", call_id=f"s{i}", transport=transport)
        self.h.layer.receive(req, "uac", self.h.now)

    def op_peer_ack_2xx(self, i: int) -> None:
        invite = request(branch=f"z9hG4bKs{i}", call_id=f"s{i}")
        self.h.layer.receive(ack_for_2xx(invite, to_tag="uas"), "uac", self.h.now)

    def op_tu_response(self, i: int, status: int) -> None:
        key = self._pick(list(self.server_requests), i)
        if key is not None:
            req = self.server_requests[key]
            answer = make_response(req, status, to_tag=None if status == 100 else "uas")
            # The TU's misuse (a second final response...) is reported as such.
            with contextlib.suppress(TransactionStateError, UnknownTransactionError):
                self.h.layer.send_response(answer, self.h.now)

    def op_cancel(self, i: int) -> None:
        key = self._pick([k for k in self.client_keys if k.method == "INVITE"], i)
        if key is not None:
            self._cancel(key)

    def _cancel(self, key: TransactionKey) -> None:
        cancel_key = self.h.layer.cancel(key, self.h.now)
        if cancel_key is not None and cancel_key not in self.client_requests:
            self.client_keys.append(cancel_key)
            invite = self.client_requests[key]
            branch = key.branch
            self.client_requests[cancel_key] = request(
                "CANCEL", branch=branch, call_id=invite.call_id
            )

    def op_respond_487(self, i: int) -> None:
        key = self._pick([k for k in self.server_requests if k.method == "CANCEL"], i)
        if key is not None:
            with contextlib.suppress(TransactionStateError, UnknownTransactionError):
                self.h.layer.respond_487(key, self.h.now)

    def op_transport_error(self, i: int, server: bool) -> None:
        key = self._pick(list(self.server_requests) if server else self.client_keys, i)
        if key is not None:
            self.h.layer.transport_error(key, self.h.now)

    def op_wait(self, seconds: float) -> None:
        self.h.advance(self.h.now + seconds)

    def finish(self) -> None:
        """The TUs end what only they can end: unanswered requests, unanswered INVITEs."""
        layer = self.h.layer
        for key, req in self.server_requests.items():
            if layer.state_of(key) in (TransactionState.TRYING, TransactionState.PROCEEDING):
                layer.send_response(make_response(req, 500, to_tag="uas"), self.h.now)
        for key in list(self.client_keys):
            if layer.state_of(key) is TransactionState.PROCEEDING and key.method == "INVITE":
                self._cancel(key)
        self.h.pump()
        self.h.run_out()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPERATION, min_size=20, max_size=100))
def test_any_interleaving_ends_with_every_transaction_terminated(
    operations: list[tuple[object, ...]],
) -> None:
    world = World()
    for op in operations:
        world.apply(op)
    world.finish()
    events = world.h.events
    # Every key handed out ends exactly once per life: a server key lives again when a
    # retransmission comes after its transaction ended (a new transaction, RFC 6026's
    # reason for Timer L).
    created = Counter(world.client_keys)
    created.update(e.tx_key for e in events if isinstance(e, RequestReceived | CancelReceived))
    terminated = Counter(e.tx_key for e in events if isinstance(e, TransactionTerminated))
    assert terminated == created
    # Nothing is reported about a transaction outside its life.
    alive: set[TransactionKey] = set()
    ended: set[TransactionKey] = set()
    for event in events:
        key = getattr(event, "tx_key", None)
        if key is not None and not key.server:
            assert key not in ended
            if isinstance(event, TransactionTerminated):
                ended.add(key)
        if isinstance(event, RequestReceived | CancelReceived):
            assert event.tx_key not in alive
            alive.add(event.tx_key)
        elif isinstance(event, TransactionTerminated) and event.tx_key.server:
            alive.remove(event.tx_key)
        elif isinstance(event, TransactionTimeout) and event.tx_key.server:
            assert event.tx_key in alive
    assert world.h.layer.is_idle()
    assert world.h.layer.transaction_count == 0
    assert world.h.layer.pending_2xx_count == 0
