"""The engine's call-record writer: batched, off the event loop, nothing lost (CDR-1, DP-7).

The B2BUA calls :class:`CdrWriter` synchronously from the event loop; every method only
appends an operation to an in-memory queue and returns (``call_started`` and ``leg_added``
return the ids the engine uses afterwards). A background task takes up to ``batch_size``
operations at a time and applies them in one transaction through :mod:`cloudpbx.cdr.store`, in
a single-thread executor, so SIP signalling never waits for the database (issue 5 §6).

The shape follows the call: calls → legs → events, plus recordings and faxes. The call row is
written when the call starts and completed when it ends (outcome, duration, billable seconds
counted from the answer, the DP-7 steps). While a call is open, :meth:`CdrWriter.heartbeat`
(every ``heartbeat_s``) marks the open calls alive; after a crash, :meth:`CdrWriter.close_orphans`
at the next start closes the calls left open, their end bounded by that mark.

Failures: an operational database error (connection lost, database locked, timeout) fails the
whole batch, which is logged and retried with back-off until it goes through — nothing is
dropped and nothing raises into the engine. Any other error (a constraint, a bad value) is
specific to one operation: the batch is then replayed one operation per transaction and only
the faulty operation is left out, logged at ERROR with its full content. :meth:`CdrWriter.close`
writes everything still queued; what cannot be written before its timeout is logged at ERROR,
operation by operation.

Ids: a call is named by its uuid (``calls.uuid``), a leg by a key this writer makes; the
database ids stay inside the writer thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid as uuidlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.billing.charge import charge_call
from cloudpbx.cdr import store
from cloudpbx.db.base import now_ms
from cloudpbx.db.models import Call, CallLeg

__all__ = ["CdrStats", "CdrWriter", "billable_seconds"]

log = logging.getLogger(__name__)

BACKOFF_S: tuple[float, ...] = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0)
"""Waits between retries of a batch the database refused; the last one repeats."""


def billable_seconds(answer_ms: int | None, end_ms: int) -> int:
    """Whole seconds from the answer to the end, a started second counting as one (CDR-1);
    rating increments are the tariff's business."""
    if answer_ms is None or end_ms <= answer_ms:
        return 0
    return math.ceil((end_ms - answer_ms) / 1000)


def _check_outcome(outcome: str) -> None:
    if outcome not in store.OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(store.OUTCOMES)}, not {outcome!r}")


def _transient(exc: BaseException) -> bool:
    """Errors of the database as a whole (worth retrying), not of one operation."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


# --- operations (applied in the writer thread) -----------------------------------------------


class _UnknownCallError(LookupError):
    pass


@dataclass
class _Batch:
    """One transaction: new ids stay local until it commits."""

    session: Session
    ids: _Ids
    new_calls: dict[str, int] = field(default_factory=dict)
    new_legs: dict[str, tuple[str, int]] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    charged: set[int] = field(default_factory=set)  # clients whose account this batch charged

    # The session's identity map holds objects weakly: these keep a batch's rows loaded so
    # that each is selected at most once per transaction.
    calls: dict[str, Call] = field(default_factory=dict)
    legs: dict[str, CallLeg] = field(default_factory=dict)

    def call(self, call_uuid: str) -> Call:
        found = self.calls.get(call_uuid)
        if found is not None:
            return found
        call_id = self.new_calls.get(call_uuid) or self.ids.calls.get(call_uuid)
        if call_id is not None:
            found = self.session.get(Call, call_id)
        else:  # a late recording or fax of a call already closed
            found = self.session.scalar(select(Call).where(Call.uuid == call_uuid))
        if found is None:
            raise _UnknownCallError(f"no call {call_uuid}")
        self.calls[call_uuid] = found
        return found

    def leg(self, leg_key: str) -> CallLeg:
        leg = self.legs.get(leg_key)
        if leg is not None:
            return leg
        entry = self.new_legs.get(leg_key) or self.ids.legs.get(leg_key)
        leg = None if entry is None else self.session.get(CallLeg, entry[1])
        if leg is None:
            raise _UnknownCallError(f"no open leg {leg_key}")
        self.legs[leg_key] = leg
        return leg

    def commit(self) -> None:
        self.session.commit()
        self.ids.calls.update(self.new_calls)
        self.ids.legs.update(self.new_legs)
        self.ids.charged.update(self.charged)
        for call_uuid in self.closed:
            self.ids.forget(call_uuid)


@dataclass
class _Ids:
    """Database ids of open calls and their legs; touched only by the writer thread."""

    calls: dict[str, int] = field(default_factory=dict)
    legs: dict[str, tuple[str, int]] = field(default_factory=dict)  # key → (call uuid, id)
    charged: set[int] = field(default_factory=set)  # taken by the loop side after each batch

    def forget(self, call_uuid: str) -> None:
        self.calls.pop(call_uuid, None)
        for key in [k for k, (c, _) in self.legs.items() if c == call_uuid]:
            del self.legs[key]


class _Op:
    seq: int = 0

    def apply(self, b: _Batch) -> None:
        raise NotImplementedError


@dataclass
class _OpenCall(_Op):
    uuid: str
    values: dict[str, Any]

    def apply(self, b: _Batch) -> None:
        call = store.open_call(b.session, uuid=self.uuid, **self.values)
        b.new_calls[self.uuid] = call.id
        b.calls[self.uuid] = call


@dataclass
class _AnswerCall(_Op):
    uuid: str
    at_ms: int

    def apply(self, b: _Batch) -> None:
        store.answer_call(b.session, b.call(self.uuid), self.at_ms)


@dataclass
class _AddLeg(_Op):
    call_uuid: str
    key: str
    values: dict[str, Any]

    def apply(self, b: _Batch) -> None:
        leg = store.add_leg(b.session, b.call(self.call_uuid), **self.values)
        b.new_legs[self.key] = (self.call_uuid, leg.id)
        b.legs[self.key] = leg


@dataclass
class _AnswerLeg(_Op):
    key: str
    at_ms: int

    def apply(self, b: _Batch) -> None:
        store.answer_leg(b.session, b.leg(self.key), self.at_ms)


@dataclass
class _CloseLeg(_Op):
    key: str
    values: dict[str, Any]

    def apply(self, b: _Batch) -> None:
        store.close_leg(b.session, b.leg(self.key), **self.values)


@dataclass
class _Event(_Op):
    call_uuid: str
    leg_key: str | None
    values: dict[str, Any]

    def apply(self, b: _Batch) -> None:
        leg = None if self.leg_key is None else b.leg(self.leg_key)
        store.add_event(b.session, b.call(self.call_uuid), leg=leg, **self.values)


@dataclass
class _CloseCall(_Op):
    uuid: str
    values: dict[str, Any]

    def apply(self, b: _Batch) -> None:
        call = store.close_call(b.session, b.call(self.uuid), **self.values)
        # CDR-1 cost, ADM-6: rated and charged in the transaction that closes the call.
        if not self.values.get("cost") and charge_call(b.session, call) > 0:
            b.charged.add(call.client_id)
        b.closed.add(self.uuid)


@dataclass
class _Recording(_Op):
    call_uuid: str
    values: dict[str, Any]

    def apply(self, b: _Batch) -> None:
        store.add_recording(b.session, b.call(self.call_uuid), **self.values)


@dataclass
class _Fax(_Op):
    call_uuid: str
    values: dict[str, Any]

    def apply(self, b: _Batch) -> None:
        store.add_fax(b.session, b.call(self.call_uuid), **self.values)


@dataclass
class _Touch(_Op):
    at_ms: int

    def apply(self, b: _Batch) -> None:
        store.touch_calls(b.session, [*b.ids.calls.values(), *b.new_calls.values()], self.at_ms)


@dataclass
class _CloseOrphans(_Op):
    at_ms: int
    grace_ms: int
    closed: int = 0

    def apply(self, b: _Batch) -> None:
        # Our own open calls are alive: mark them first so they are never taken for orphans.
        _Touch(self.at_ms).apply(b)
        self.closed = store.close_orphans(b.session, self.at_ms, grace_ms=self.grace_ms)


class _Applier:
    """Runs in the writer's single thread: applies batches, keeps the id maps."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self.ids = _Ids()
        self.dropped = 0

    def apply(self, ops: Sequence[_Op]) -> int:
        """Apply ``ops``; returns how many are done (written or dropped as faulty).

        Raises a transient database error when nothing more can be written now.
        """
        try:
            self._transaction(ops)
            return len(ops)
        except Exception as exc:
            if _transient(exc):
                raise
            log.warning("CDR batch of %d failed (%s); replaying one by one", len(ops), exc)
        return self._one_by_one(ops)

    def _transaction(self, ops: Sequence[_Op]) -> None:
        with self._sessions() as session:
            batch = _Batch(session, self.ids)
            try:
                for op in ops:
                    op.apply(batch)
                batch.commit()
            except BaseException:
                session.rollback()
                raise

    def _one_by_one(self, ops: Sequence[_Op]) -> int:
        for done, op in enumerate(ops):
            try:
                self._transaction([op])
            except Exception as exc:
                if _transient(exc):
                    if done:
                        return done
                    raise
                self.dropped += 1
                log.error("CDR operation dropped, it cannot be stored: %r: %s", op, exc)
        return len(ops)


# --- the writer (event loop side) ------------------------------------------------------------


@dataclass
class _OpenState:
    """What the loop side remembers of an open call, to complete it without the database."""

    client_id: int
    start_ms: int
    answer_ms: int | None = None
    legs: dict[str, _LegState] = field(default_factory=dict)


@dataclass
class _LegState:
    start_ms: int
    answer_ms: int | None = None
    ended: bool = False


@dataclass
class CdrStats:
    queued: int = 0
    written: int = 0
    batches: int = 0
    retries: int = 0
    dropped: int = 0
    open_calls: int = 0


class CdrWriter:
    """Call records for the engine; see the module docstring."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock_ms: Callable[[], int] = now_ms,
        batch_size: int = 500,
        flush_interval_s: float = 0.1,
        heartbeat_s: float = 30.0,
        recordings_dir: Path | None = None,
        backoff_s: Sequence[float] = BACKOFF_S,
        on_charged: Callable[[int], None] | None = None,
    ) -> None:
        self._clock = clock_ms
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._heartbeat_s = heartbeat_s
        self._recordings = None if recordings_dir is None else Path(recordings_dir).resolve()
        self._backoff = tuple(backoff_s) or BACKOFF_S
        self._applier = _Applier(sessions)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cdr")
        self._pending: list[_Op] = []
        self._seq = 0
        self._applied = 0
        self._open: dict[str, _OpenState] = {}
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.stats = CdrStats()
        # ADM-5: told (on the loop) the id of each client charged by a written batch, so that
        # the engine's snapshot learns the new balance (EngineRuntime: snapshots.invalidate).
        self.on_charged = on_charged

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background writer and the heartbeat (inside the engine's loop)."""
        if self._tasks:
            return
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._tasks = [
            asyncio.create_task(self._run(), name="cdr-writer"),
            asyncio.create_task(self._beat(), name="cdr-heartbeat"),
        ]

    async def close_orphans(self, *, grace_ms: int = 0) -> int:
        """Close the calls a crash or a stop left open (end = their last heartbeat); returns
        how many. Call it after :meth:`start`, before the engine takes calls."""
        op = _CloseOrphans(self._clock(), grace_ms)
        await self._until(self._enqueue(op))
        if op.closed:
            log.warning("closed %d call(s) left open by a previous run", op.closed)
        return op.closed

    async def flush(self) -> None:
        """Wait until everything queued so far is in the database."""
        await self._until(self._seq)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write everything still queued, then stop; what the database refuses until the
        timeout is logged at ERROR operation by operation, never dropped silently."""
        if not self._tasks:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self.flush()
        except TimeoutError:
            for op in self._pending:
                log.error("CDR operation not written (database unavailable at stop): %r", op)
        await self._stop_tasks()

    async def abort(self) -> None:
        """Stop without writing what is queued — what a crash does (crash-recovery tests)."""
        await self._stop_tasks()
        self._pending.clear()

    async def _stop_tasks(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        # A batch already in the thread finishes (or fails) before the next run starts.
        await asyncio.to_thread(self._executor.shutdown, True)

    # --- what the engine reports (synchronous, never blocks, never raises on DB trouble) ---

    def call_started(
        self,
        *,
        client_id: int,
        caller: str,
        called: str,
        direction: str = "internal",
        internal_number: str | None = None,
        dialplan_version_id: int | None = None,
        operator_id: int | None = None,
        start_ms: int | None = None,
        call_uuid: str | None = None,
    ) -> str:
        """A call arrived: its row is written now (CDR-1); returns the call uuid."""
        if direction not in store.DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(store.DIRECTIONS)}")
        call_uuid = call_uuid or str(uuidlib.uuid4())
        start = self._clock() if start_ms is None else start_ms
        self._open[call_uuid] = _OpenState(client_id, start)
        values = {
            "client_id": client_id,
            "caller": caller,
            "called": called,
            "internal_number": internal_number,
            "direction": direction,
            "start_ms": start,
            "dialplan_version_id": dialplan_version_id,
            "operator_id": operator_id,
        }
        self._enqueue(_OpenCall(call_uuid, values))
        self.stats.open_calls = len(self._open)
        return call_uuid

    def call_answered(self, call_uuid: str, at_ms: int | None = None) -> None:
        """The caller's call was answered (the first answer counts; billing starts here)."""
        state = self._open.get(call_uuid)
        if state is None or state.answer_ms is not None:
            return
        state.answer_ms = max(self._at(at_ms), state.start_ms)
        self._enqueue(_AnswerCall(call_uuid, state.answer_ms))

    def leg_added(
        self,
        call_uuid: str,
        *,
        direction: str,
        party: str,
        port_id: int | None = None,
        operator_id: int | None = None,
        sip_call_id: str | None = None,
        start_ms: int | None = None,
    ) -> str:
        """A SIP dialog joined the call ("in" from the caller, "out" to a port or trunk);
        returns the leg key for the leg's later reports."""
        if direction not in store.LEG_DIRECTIONS:
            raise ValueError("leg direction must be 'in' or 'out'")
        key = uuidlib.uuid4().hex
        start = self._at(start_ms)
        state = self._open.get(call_uuid)
        if state is not None:
            start = max(start, state.start_ms)
            state.legs[key] = _LegState(start)
        values = {
            "direction": direction,
            "party": party,
            "start_ms": start,
            "port_id": port_id,
            "operator_id": operator_id,
            "sip_call_id": sip_call_id,
        }
        self._enqueue(_AddLeg(call_uuid, key, values))
        return key

    def leg_answered(self, call_uuid: str, leg_key: str, at_ms: int | None = None) -> None:
        leg = self._leg(call_uuid, leg_key)
        if leg is None or leg.answer_ms is not None:
            return
        leg.answer_ms = max(self._at(at_ms), leg.start_ms)
        self._enqueue(_AnswerLeg(leg_key, leg.answer_ms))

    def leg_ended(
        self,
        call_uuid: str,
        leg_key: str,
        *,
        outcome: str,
        end_ms: int | None = None,
        hangup_cause: str | None = None,
        codec: str | None = None,
        quality: Mapping[str, Any] | None = None,
        cost: Decimal = Decimal(0),
    ) -> None:
        """The leg's dialog ended with its own outcome (CDR-1: legs are rated separately)."""
        _check_outcome(outcome)
        leg = self._leg(call_uuid, leg_key)
        if leg is None or leg.ended:
            return
        end = max(self._at(end_ms), leg.start_ms)
        values = self._leg_close(leg, end, outcome, hangup_cause)
        values.update(codec=codec, quality=quality, cost=cost)
        self._enqueue(_CloseLeg(leg_key, values))

    def event(
        self,
        call_uuid: str,
        kind: str,
        *,
        step_level: int | None = None,
        detail: Mapping[str, Any] | None = None,
        leg_key: str | None = None,
        at_ms: int | None = None,
    ) -> None:
        """Step entered (``step_level``, DP-7), answered, transferred, … (CDR-1)."""
        values = {
            "kind": kind,
            "at_ms": self._at(at_ms),
            "step_level": step_level,
            "detail": dict(detail or {}),
        }
        self._enqueue(_Event(call_uuid, leg_key, values))

    def call_ended(
        self,
        call_uuid: str,
        *,
        outcome: str,
        steps: Sequence[int] = (),
        end_ms: int | None = None,
        cost: Decimal = Decimal(0),
        operator_id: int | None = None,
    ) -> None:
        """The call is over: outcome, duration, billable seconds from the answer and the
        DP-7 steps. Legs still open end with it."""
        _check_outcome(outcome)
        state = self._open.pop(call_uuid, None)
        self.stats.open_calls = len(self._open)
        if state is None:
            log.error("CDR: call_ended for unknown or ended call %s (%s)", call_uuid, outcome)
            return
        end = max(self._at(end_ms), state.start_ms, state.answer_ms or 0)
        for key, leg in state.legs.items():
            if not leg.ended:
                leg_outcome = "answered" if leg.answer_ms is not None else outcome
                self._enqueue(_CloseLeg(key, self._leg_close(leg, end, leg_outcome, None)))
        values = {
            "end_ms": end,
            "answer_ms": state.answer_ms,
            "outcome": outcome,
            "billable_s": billable_seconds(state.answer_ms, end),
            "cost": cost,
            "steps": list(steps),
            "operator_id": operator_id,
        }
        self._enqueue(_CloseCall(call_uuid, values))

    def recording(
        self,
        call_uuid: str,
        *,
        path: str | Path,
        start_ms: int,
        duration_ms: int = 0,
        size_bytes: int = 0,
        kind: str = "call",
        content_type: str = "audio/wav",
    ) -> None:
        """A recording of the call (automatic recording, voicemail): it lands in the CDR."""
        values = {
            "storage_path": self._relative(path),
            "start_ms": start_ms,
            "duration_ms": max(0, duration_ms),
            "size_bytes": max(0, size_bytes),
            "kind": kind,
            "content_type": content_type,
        }
        self._enqueue(_Recording(call_uuid, values))

    def fax(
        self,
        call_uuid: str,
        *,
        pdf_path: str | Path | None,
        tiff_path: str | Path | None = None,
        pages: int = 0,
        remote_ident: str = "",
        status: str = "received",
        error: str = "",
        received_ms: int | None = None,
    ) -> None:
        """A fax received on the call (FAX-1); it may arrive after the call ended."""
        values = {
            "pdf_path": None if pdf_path is None else self._relative(pdf_path),
            "tiff_path": None if tiff_path is None else self._relative(tiff_path),
            "pages": pages,
            "remote_ident": remote_ident,
            "status": status,
            "error": error,
            "received_ms": self._at(received_ms),
        }
        self._enqueue(_Fax(call_uuid, values))

    def heartbeat(self) -> None:
        """Mark every open call alive now (bounds their end if the engine dies)."""
        if self._open:
            self._enqueue(_Touch(self._clock()))

    def is_open(self, call_uuid: str) -> bool:
        return call_uuid in self._open

    @property
    def backlog(self) -> int:
        return len(self._pending)

    # --- internals -------------------------------------------------------------------------

    def _at(self, at_ms: int | None) -> int:
        return self._clock() if at_ms is None else at_ms

    def _leg(self, call_uuid: str, leg_key: str) -> _LegState | None:
        state = self._open.get(call_uuid)
        return None if state is None else state.legs.get(leg_key)

    @staticmethod
    def _leg_close(
        leg: _LegState, end: int, outcome: str, hangup_cause: str | None
    ) -> dict[str, Any]:
        leg.ended = True
        return {
            "end_ms": end,
            "answer_ms": leg.answer_ms,
            "outcome": outcome,
            "billable_s": billable_seconds(leg.answer_ms, end),
            "hangup_cause": hangup_cause,
        }

    def _relative(self, path: str | Path) -> str:
        """Paths are stored relative to ``recordings_dir`` (what the API serves)."""
        candidate = Path(path)
        if self._recordings is not None and candidate.is_absolute():
            resolved = candidate.resolve()
            if resolved.is_relative_to(self._recordings):
                return str(resolved.relative_to(self._recordings))
        return str(path)

    def _enqueue(self, op: _Op) -> int:
        self._seq += 1
        op.seq = self._seq
        self._pending.append(op)
        self.stats.queued += 1
        if self._wake is not None and len(self._pending) >= self._batch_size:
            self._wake.set()
        return self._seq

    async def _until(self, seq: int) -> None:
        if self._progress is None:
            raise RuntimeError("CdrWriter.start() was not called")
        if self._wake is not None:
            self._wake.set()
        async with self._progress:
            await self._progress.wait_for(lambda: self._applied >= seq)

    async def _run(self) -> None:
        assert self._wake is not None
        failures = 0
        while True:
            if not self._pending:
                await self._sleep_until_woken(self._interval)
                continue
            batch = self._pending[: self._batch_size]
            try:
                done = await self._apply(batch)
            except Exception as exc:
                delay = self._backoff[min(failures, len(self._backoff) - 1)]
                failures += 1
                self.stats.retries += 1
                log.warning(
                    "CDR database unavailable (%s); %d operation(s) kept, retry in %.2f s",
                    exc,
                    len(self._pending),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            await self._done(batch[:done])
            if len(self._pending) < self._batch_size:
                await self._sleep_until_woken(self._interval)

    async def _apply(self, batch: list[_Op]) -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._applier.apply, batch)

    async def _done(self, ops: list[_Op]) -> None:
        assert self._progress is not None
        del self._pending[: len(ops)]
        self.stats.batches += 1
        self.stats.written += len(ops)
        self.stats.dropped = self._applier.dropped
        if ops:
            self._applied = ops[-1].seq
        self._notify_charged()
        async with self._progress:
            self._progress.notify_all()

    def _notify_charged(self) -> None:
        # The executor runs one batch at a time and is idle here: the set is ours to take.
        charged, self._applier.ids.charged = self._applier.ids.charged, set()
        if self.on_charged is None:
            return
        for client_id in sorted(charged):
            try:
                self.on_charged(client_id)
            except Exception:
                log.exception("CDR: on_charged(%d) failed", client_id)

    async def _sleep_until_woken(self, timeout: float) -> None:
        assert self._wake is not None
        # asyncio.timeout, not wait_for: 3.11's wait_for can lose a cancellation that races
        # its own timeout, and then stop() would wait forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            self.heartbeat()
