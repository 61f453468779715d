"""The engine's CDR writer on a real database: batched, nothing lost (CDR-1, DP-7, issue 5 §6)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.db.models import (
    BillingAccount,
    Call,
    CallEvent,
    CallLeg,
    Client,
    Fax,
    Operator,
    Recording,
    Tariff,
    TariffRate,
)
from cloudpbx.db.session import make_engine, make_sessionmaker
from cloudpbx.engine.cdr import CdrWriter, billable_seconds

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    async def guarded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(guarded())


class Clock:
    """Epoch milliseconds that the test moves by hand."""

    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def client_id(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        client = Client(name="CDR writer")
        s.add(client)
        s.commit()
        return client.id


def _count(sessions: sessionmaker[Session], model: Any, *where: Any) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _calls(sessions: sessionmaker[Session]) -> list[Call]:
    with sessions() as s:
        return list(s.scalars(select(Call).order_by(Call.id)))


def test_billable_seconds_count_started_seconds_from_the_answer() -> None:
    """CDR-1: billable time runs from the answer; a started second counts."""
    assert billable_seconds(None, 10_000) == 0
    assert billable_seconds(1_000, 1_000) == 0
    assert billable_seconds(1_000, 1_001) == 1
    assert billable_seconds(1_000, 31_000) == 30
    assert billable_seconds(1_000, 31_001) == 31


def _one_call(writer: CdrWriter, clock: Clock, client_id: int, i: int) -> str:
    start = clock.now
    call = writer.call_started(
        client_id=client_id, caller="100", called="200", internal_number="200", start_ms=start
    )
    leg_in = writer.leg_added(call, direction="in", party="100", start_ms=start)
    leg_out = writer.leg_added(call, direction="out", party="200", port_id=None, start_ms=start)
    writer.event(call, "step", step_level=1, at_ms=start)
    if i % 3 == 0:  # no answer: DP-4 goes to step 2, which hangs up
        writer.leg_ended(call, leg_out, outcome="no_answer", end_ms=start + 20_000)
        writer.event(call, "step", step_level=2, at_ms=start + 20_000)
        writer.call_ended(call, outcome="no_answer", steps=[1, 2], end_ms=start + 20_500)
        return call
    writer.leg_answered(call, leg_out, at_ms=start + 3_000)
    writer.call_answered(call, at_ms=start + 3_000)
    writer.leg_ended(call, leg_in, outcome="answered", end_ms=start + 63_500)
    writer.call_ended(call, outcome="answered", steps=[1], end_ms=start + 63_500)
    return call


def test_many_calls_are_all_written_in_batches(sessions, client_id) -> None:
    """CDR-1: 300 calls through the writer — every call, leg and event lands, completed."""
    clock = Clock()

    async def scenario() -> CdrWriter:
        writer = CdrWriter(sessions, clock_ms=clock, batch_size=200, flush_interval_s=0.01)
        await writer.start()
        for i in range(300):
            _one_call(writer, clock, client_id, i)
            clock.now += 10
        await writer.close()
        return writer

    writer = run(scenario())
    assert writer.stats.batches >= 5
    assert writer.stats.dropped == 0
    calls = _calls(sessions)
    assert len(calls) == 300
    assert all(c.end_ms is not None for c in calls)
    answered = [c for c in calls if c.outcome == "answered"]
    assert len(answered) == 200
    assert {(c.billable_s, c.duration_ms, tuple(c.steps)) for c in answered} == {(61, 63_500, (1,))}
    missed = [c for c in calls if c.outcome == "no_answer"]
    assert {(c.answer_ms, c.billable_s, tuple(c.steps)) for c in missed} == {(None, 0, (1, 2))}
    assert _count(sessions, CallLeg) == 600
    assert _count(sessions, CallLeg, CallLeg.end_ms.is_(None)) == 0
    # A leg left open by the engine ends with the call, answered if it was.
    assert _count(sessions, CallLeg, CallLeg.outcome == "answered") == 400
    assert _count(sessions, CallEvent) == 400


def test_call_row_is_written_when_the_call_starts(sessions, client_id) -> None:
    """Issue 5 §6: the call is in the database while it is still up, then completed."""
    clock = Clock()

    async def scenario() -> tuple[list[Call], list[Call]]:
        writer = CdrWriter(sessions, clock_ms=clock)
        await writer.start()
        call = writer.call_started(client_id=client_id, caller="100", called="200")
        await writer.flush()
        during = _calls(sessions)
        clock.now += 5_000
        writer.call_ended(call, outcome="cancelled", steps=[1])
        await writer.close()
        return during, _calls(sessions)

    during, after = run(scenario())
    assert [(c.end_ms, c.outcome) for c in during] == [(None, None)]
    assert [(c.end_ms, c.outcome, c.duration_ms) for c in after] == [
        (1_005_000, "cancelled", 5_000)
    ]


def test_crash_leaves_calls_closed_at_their_last_heartbeat(sessions, client_id) -> None:
    """Issue 5 §6: after a crash the next start closes open calls, end = the heartbeat."""
    clock = Clock(1_000)

    async def crashed_run() -> str:
        writer = CdrWriter(sessions, clock_ms=clock)
        await writer.start()
        call = writer.call_started(client_id=client_id, caller="100", called="200")
        leg = writer.leg_added(call, direction="out", party="200")
        clock.now = 2_000
        writer.call_answered(call)
        writer.leg_answered(call, leg)
        clock.now = 5_000
        writer.heartbeat()
        await writer.flush()
        clock.now = 9_000
        writer.event(call, "transfer")  # queued, never written: the process dies
        await writer.abort()
        return call

    async def next_start() -> int:
        writer = CdrWriter(sessions, clock_ms=clock)
        await writer.start()
        closed = await writer.close_orphans()
        await writer.close()
        return closed

    call_uuid = run(crashed_run())
    clock.now = 60_000
    assert run(next_start()) == 1
    with sessions() as s:
        call = s.scalar(select(Call).where(Call.uuid == call_uuid))
        assert call is not None
        assert (call.start_ms, call.answer_ms, call.end_ms, call.outcome) == (
            1_000,
            2_000,
            5_000,
            "failed",
        )
        assert [(leg.end_ms, leg.outcome) for leg in call.legs] == [(5_000, "failed")]
        kinds = s.scalars(select(CallEvent.kind).where(CallEvent.call_id == call.id)).all()
        assert kinds == ["interrupted"]


def test_close_orphans_spares_this_runs_open_calls(sessions, client_id) -> None:
    """Issue 5 §6: a call of the running engine is alive, whatever its last heartbeat."""
    clock = Clock(1_000)

    async def scenario() -> int:
        writer = CdrWriter(sessions, clock_ms=clock)
        await writer.start()
        writer.call_started(client_id=client_id, caller="100", called="200")
        await writer.flush()
        clock.now = 100_000
        closed = await writer.close_orphans()
        await writer.abort()
        return closed

    assert run(scenario()) == 0
    assert [c.end_ms for c in _calls(sessions)] == [None]


@pytest.fixture
def flaky(database_url: str, engine: Engine) -> Iterator[tuple[sessionmaker[Session], list[bool]]]:
    """A second engine on the test database whose statements fail while ``down[0]``."""
    own = make_engine(database_url)
    down = [False]

    def fail(*_args: Any) -> None:
        if down[0]:
            raise OperationalError("INSERT", {}, ConnectionError("database went away"))

    event.listen(own, "before_cursor_execute", fail)
    yield make_sessionmaker(own), down
    own.dispose()


def test_database_failure_is_retried_until_it_recovers(flaky, sessions, client_id, caplog):
    """Issue 5 §6: a database outage delays records, never loses them or raises into the
    engine."""
    failing_sessions, down = flaky
    clock = Clock()

    async def scenario() -> CdrWriter:
        writer = CdrWriter(
            failing_sessions, clock_ms=clock, flush_interval_s=0.01, backoff_s=(0.01,)
        )
        await writer.start()
        down[0] = True
        for i in range(20):
            _one_call(writer, clock, client_id, i)
        flushing = asyncio.create_task(writer.flush())
        while writer.stats.retries < 3:
            await asyncio.sleep(0.01)
        assert not flushing.done()
        assert writer.backlog > 0
        assert _count(sessions, Call) == 0  # the failed transactions left nothing behind
        down[0] = False
        await flushing
        await writer.close()
        return writer

    with caplog.at_level(logging.WARNING, logger="cloudpbx.engine.cdr"):
        writer = run(scenario())
    assert writer.stats.dropped == 0
    assert _count(sessions, Call, Call.end_ms.is_not(None)) == 20
    assert _count(sessions, CallLeg) == 40
    assert "CDR database unavailable" in caplog.text


def test_a_faulty_operation_is_logged_and_the_rest_written(sessions, client_id, caplog) -> None:
    """Issue 5 §6: one bad record (a client that does not exist) costs only itself, loudly."""
    clock = Clock()

    async def scenario() -> CdrWriter:
        writer = CdrWriter(sessions, clock_ms=clock)
        await writer.start()
        _one_call(writer, clock, client_id, 1)
        writer.call_started(client_id=999_999, caller="1", called="2", call_uuid="bad-call")
        _one_call(writer, clock, client_id, 2)
        await writer.close()
        return writer

    with caplog.at_level(logging.ERROR, logger="cloudpbx.engine.cdr"):
        writer = run(scenario())
    assert writer.stats.dropped == 1
    assert "bad-call" in caplog.text
    assert _count(sessions, Call) == 2
    assert _count(sessions, CallLeg) == 4


def test_close_writes_everything_still_queued(sessions, client_id) -> None:
    """Issue 5 §6: a stop writes what is queued before the writer ends."""
    clock = Clock()

    async def scenario() -> None:
        writer = CdrWriter(sessions, clock_ms=clock, flush_interval_s=60)
        await writer.start()
        for i in range(50):
            _one_call(writer, clock, client_id, i)
        await writer.close()

    run(scenario())
    assert _count(sessions, Call, Call.end_ms.is_not(None)) == 50


def test_recording_and_late_fax_land_in_the_call_record(sessions, client_id, tmp_path) -> None:
    """CDR-1: recordings and faxes reference the call; a fax converted after the call ended
    still finds it. Paths are stored relative to recordings_dir."""
    clock = Clock()
    rec_dir = tmp_path / "recordings"

    async def scenario() -> str:
        writer = CdrWriter(sessions, clock_ms=clock, recordings_dir=rec_dir)
        await writer.start()
        call = writer.call_started(client_id=client_id, caller="100", called="300")
        writer.call_answered(call)
        writer.recording(call, path=rec_dir / "1" / "a.wav", start_ms=clock.now, duration_ms=4_000)
        clock.now += 10_000
        writer.call_ended(call, outcome="answered", steps=[1])
        await writer.flush()
        writer.fax(call, pdf_path=rec_dir / "1" / "f.pdf", pages=2, remote_ident="FAX 1")
        await writer.close()
        return call

    call_uuid = run(scenario())
    with sessions() as s:
        call = s.scalar(select(Call).where(Call.uuid == call_uuid))
        assert call is not None
        assert call.billable_s == 10
        rec = s.scalar(select(Recording).where(Recording.call_id == call.id))
        fax = s.scalar(select(Fax).where(Fax.call_id == call.id))
        assert rec is not None
        assert fax is not None
        assert (rec.storage_path, rec.duration_ms) == (str(Path("1/a.wav")), 4_000)
        assert (fax.pdf_path, fax.pages, fax.remote_ident) == (str(Path("1/f.pdf")), 2, "FAX 1")


def test_bad_values_from_the_engine_are_refused_at_once(sessions) -> None:
    """A programming error (unknown outcome or direction) raises in the caller, not later."""
    writer = CdrWriter(sessions)
    with pytest.raises(ValueError, match="direction"):
        writer.call_started(client_id=1, caller="1", called="2", direction="sideways")
    call = writer.call_started(client_id=1, caller="1", called="2")
    with pytest.raises(ValueError, match="outcome"):
        writer.call_ended(call, outcome="exploded")


def _rated_client(sessions: sessionmaker[Session], client_id: int) -> tuple[int, int]:
    """A tariff (60/60, +7495 at 1.20/min + 0.50), an operator and the client's account."""
    with sessions() as s:
        tariff = Tariff(name="Base", currency="RUB", first_increment_s=60, increment_s=60)
        s.add(tariff)
        s.flush()
        s.add(TariffRate(tariff_id=tariff.id, prefix="7", price_per_minute=Decimal("2.00")))
        s.add(
            TariffRate(
                tariff_id=tariff.id,
                prefix="7495",
                price_per_minute=Decimal("1.20"),
                connection_fee=Decimal("0.50"),
            )
        )
        operator = Operator(name="Carrier", host="127.0.0.1")
        s.add(operator)
        s.add(
            BillingAccount(
                client_id=client_id, number="BA-1", tariff_id=tariff.id, balance=Decimal(10)
            )
        )
        s.commit()
        return tariff.id, operator.id


def _call_out(writer: CdrWriter, client_id: int, operator_id: int, start: int) -> str:
    """A phone's call to +74951234567 answered by the carrier after 3 s, 61 s of talk."""
    call = writer.call_started(
        client_id=client_id,
        caller="101",
        called="+74951234567",
        direction="local",
        start_ms=start,
    )
    writer.leg_added(call, direction="in", party="101", start_ms=start)
    # The carrier's 407 first: an unanswered out leg of its own, free.
    challenged = writer.leg_added(
        call, direction="out", party="84951234567", operator_id=operator_id, start_ms=start
    )
    writer.leg_ended(call, challenged, outcome="no_route", end_ms=start + 100)
    out = writer.leg_added(
        call, direction="out", party="84951234567", operator_id=operator_id, start_ms=start
    )
    writer.leg_answered(call, out, at_ms=start + 3_000)
    writer.call_answered(call, at_ms=start + 3_000)
    writer.call_ended(call, outcome="answered", operator_id=operator_id, end_ms=start + 64_000)
    return call


def test_a_call_out_is_rated_and_charged_with_its_close(sessions, client_id) -> None:
    """CDR-1 cost, ADM-6: 61 s to +7495 at 60/60 = 0.50 + 2 × 1.20 = 2.90 on the call and its
    trunk leg, taken from the account's balance in the same batch; the engine is told."""
    _, operator_id = _rated_client(sessions, client_id)
    charged: list[int] = []

    async def scenario() -> None:
        writer = CdrWriter(sessions, flush_interval_s=0.01, on_charged=charged.append)
        await writer.start()
        _call_out(writer, client_id, operator_id, 1_000_000)
        await writer.flush()
        internal = writer.call_started(client_id=client_id, caller="101", called="102")
        writer.call_answered(internal, at_ms=1_100_000)
        writer.call_ended(internal, outcome="answered", end_ms=1_200_000)
        await writer.close()

    run(scenario())
    out, internal = _calls(sessions)
    assert (out.cost, out.currency, out.billable_s) == (Decimal("2.9000"), "RUB", 61)
    assert internal.cost == Decimal(0)
    with sessions() as s:
        legs = s.scalars(select(CallLeg.cost).where(CallLeg.call_id == out.id).order_by(CallLeg.id))
        assert list(legs) == [Decimal(0), Decimal(0), Decimal("2.9000")]
        account = s.scalars(select(BillingAccount)).one()
        assert (account.balance, account.spent_total) == (Decimal("7.1000"), Decimal("2.9000"))
    assert charged == [client_id]


def test_an_unrated_client_is_not_charged(sessions, client_id) -> None:
    """ADM-6: no tariff on the account → cost 0, balance untouched, nobody told."""
    _, operator_id = _rated_client(sessions, client_id)
    with sessions() as s:
        s.scalars(select(BillingAccount)).one().tariff_id = None
        s.commit()
    charged: list[int] = []

    async def scenario() -> None:
        writer = CdrWriter(sessions, flush_interval_s=0.01, on_charged=charged.append)
        await writer.start()
        _call_out(writer, client_id, operator_id, 1_000_000)
        await writer.close()

    run(scenario())
    assert _calls(sessions)[0].cost == Decimal(0)
    with sessions() as s:
        assert s.scalars(select(BillingAccount.balance)).one() == Decimal(10)
    assert charged == []
