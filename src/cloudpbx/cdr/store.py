"""Writing call detail records (CDR-1, DP-7): the only code that inserts or closes calls.

The engine (issue 5) opens a call when an INVITE arrives, adds a leg per SIP dialog and an event
per step entered / answer / transfer, and closes the call when the last leg ends. A crash leaves
calls open; :func:`close_orphans` closes them at the next start. :func:`bulk_insert_calls` is the
fast path for generated data (tests, ``bench/cdr_search.py``).

Numbers are stored as the engine resolved them: external numbers in E.164 with ``+``
(``+74951234567``), internal numbers as plain digits (``101``); ``caller_rev``/``called_rev``
hold the digits only, reversed, so that "ends with 1234567" is an index prefix range (CDR-2).
Times are UTC epoch milliseconds; money is :class:`~decimal.Decimal`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal, get_args

from sqlalchemy import Engine, Table, case, func, insert, select, update
from sqlalchemy.orm import Session

from cloudpbx.db.models import Call, CallEvent, CallLeg, Fax, Recording
from cloudpbx.numbers import digits_only

# CDR-1 directions: "incoming" for calls from a trunk, "internal" between the client's own
# numbers, and for calls out through a trunk the rating classes of numbers.Direction.
CallDirection = Literal[
    "incoming",
    "internal",
    "local",
    "long_distance",
    "international",
    "toll_free",
    "emergency",
]
DIRECTIONS: tuple[str, ...] = get_args(CallDirection)

# How a call ended, from the caller's point of view (DP-4): answered (whatever came after),
# the failure that ended the dialplan, the caller hanging up first (cancelled), the loop guard,
# or failed (an internal error, or a call left open by a crash: see close_orphans).
Outcome = Literal["answered", "no_answer", "busy", "no_route", "cancelled", "loop", "failed"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)

LEG_DIRECTIONS: tuple[str, ...] = ("in", "out")

# Core executemany batches: big enough to amortise round trips, small enough for memory.
CHUNK = 10_000

INTERRUPTED = "interrupted"


def reverse_digits(number: str | None) -> str:
    """The number's digits, last first: the key of trailing-digit search (CDR-2)."""
    return digits_only(number or "")[::-1]


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


# --- calls -----------------------------------------------------------------------------------


def open_call(
    session: Session,
    *,
    client_id: int,
    uuid: str,
    caller: str,
    called: str,
    internal_number: str | None,
    direction: str,
    start_ms: int,
    dialplan_version_id: int | None = None,
    operator_id: int | None = None,
) -> Call:
    """A new call, open until :func:`close_call`; flushed so that it has an id (CDR-1)."""
    _check_choice("direction", direction, DIRECTIONS)
    call = Call(
        client_id=client_id,
        uuid=uuid,
        caller=caller,
        called=called,
        caller_rev=reverse_digits(caller),
        called_rev=reverse_digits(called),
        internal_number=internal_number,
        direction=direction,
        start_ms=start_ms,
        heartbeat_ms=start_ms,
        dialplan_version_id=dialplan_version_id,
        operator_id=operator_id,
        steps=[],
    )
    session.add(call)
    session.flush()
    return call


def close_call(
    session: Session,
    call: Call,
    *,
    end_ms: int,
    answer_ms: int | None,
    outcome: str,
    billable_s: int,
    cost: Decimal,
    steps: list[int],
    operator_id: int | None = None,
) -> Call:
    """End a call: times, outcome, the rated cost and the DP-7 path; duration is computed."""
    _check_choice("outcome", outcome, OUTCOMES)
    if end_ms < call.start_ms:
        raise ValueError(f"end_ms {end_ms} is before start_ms {call.start_ms}")
    if answer_ms is not None and not call.start_ms <= answer_ms <= end_ms:
        raise ValueError(f"answer_ms {answer_ms} is outside the call [{call.start_ms}, {end_ms}]")
    if billable_s < 0 or cost < 0:
        raise ValueError("billable_s and cost cannot be negative")
    call.end_ms = end_ms
    call.heartbeat_ms = end_ms
    call.answer_ms = answer_ms
    call.duration_ms = end_ms - call.start_ms
    call.outcome = outcome
    call.billable_s = billable_s
    call.cost = cost
    call.steps = list(steps)
    if operator_id is not None:
        call.operator_id = operator_id
    session.flush()
    return call


def answer_call(session: Session, call: Call, answer_ms: int) -> Call:
    """The call was answered (the first answer counts): written at once, so that a crash
    keeps it and close_orphans can keep it too (issue 5 §6)."""
    if answer_ms < call.start_ms:
        raise ValueError(f"answer_ms {answer_ms} is before start_ms {call.start_ms}")
    if call.answer_ms is None:
        call.answer_ms = answer_ms
        session.flush()
    return call


def touch_calls(session: Session, call_ids: Iterable[int], now_ms: int) -> None:
    """The engine's liveness mark on its open calls, bounding their end after a crash."""
    ids = list(call_ids)
    if ids:
        session.execute(
            update(Call).where(Call.id.in_(ids), Call.end_ms.is_(None)).values(heartbeat_ms=now_ms)
        )


# --- legs and events -------------------------------------------------------------------------


def add_leg(
    session: Session,
    call: Call,
    *,
    direction: str,
    party: str,
    start_ms: int,
    port_id: int | None = None,
    operator_id: int | None = None,
    sip_call_id: str | None = None,
) -> CallLeg:
    """One SIP dialog of the call ("in" from the caller, "out" to a port or trunk)."""
    _check_choice("leg direction", direction, LEG_DIRECTIONS)
    leg = CallLeg(
        call_id=call.id,
        client_id=call.client_id,
        direction=direction,
        party=party,
        start_ms=start_ms,
        port_id=port_id,
        operator_id=operator_id,
        sip_call_id=sip_call_id,
        quality={},
    )
    session.add(leg)
    session.flush()
    return leg


def close_leg(
    session: Session,
    leg: CallLeg,
    *,
    end_ms: int,
    answer_ms: int | None,
    outcome: str,
    billable_s: int = 0,
    cost: Decimal = Decimal(0),
    hangup_cause: str | None = None,
    codec: str | None = None,
    quality: Mapping[str, Any] | None = None,
) -> CallLeg:
    """End a leg with its own outcome and cost (CDR-1: each leg is rated separately)."""
    _check_choice("outcome", outcome, OUTCOMES)
    if end_ms < leg.start_ms:
        raise ValueError(f"end_ms {end_ms} is before the leg's start_ms {leg.start_ms}")
    leg.end_ms = end_ms
    leg.answer_ms = answer_ms
    leg.outcome = outcome
    leg.billable_s = billable_s
    leg.cost = cost
    leg.hangup_cause = hangup_cause
    leg.codec = codec
    if quality is not None:
        leg.quality = dict(quality)
    session.flush()
    return leg


def answer_leg(session: Session, leg: CallLeg, answer_ms: int) -> CallLeg:
    """The leg's dialog was answered (200 OK to its INVITE)."""
    if answer_ms < leg.start_ms:
        raise ValueError(f"answer_ms {answer_ms} is before the leg's start_ms {leg.start_ms}")
    if leg.answer_ms is None:
        leg.answer_ms = answer_ms
        session.flush()
    return leg


def add_event(
    session: Session,
    call: Call,
    *,
    kind: str,
    at_ms: int,
    leg: CallLeg | None = None,
    step_level: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> CallEvent:
    """Step entered, answered, transferred, … (CDR-1; ``step_level`` draws DP-7's trace)."""
    event = CallEvent(
        call_id=call.id,
        client_id=call.client_id,
        leg_id=leg.id if leg is not None else None,
        at_ms=at_ms,
        kind=kind,
        step_level=step_level,
        detail=dict(detail or {}),
    )
    session.add(event)
    session.flush()
    return event


# --- recordings and faxes --------------------------------------------------------------------


def add_recording(
    session: Session,
    call: Call,
    *,
    storage_path: str,
    start_ms: int,
    duration_ms: int = 0,
    size_bytes: int = 0,
    kind: str = "call",
    content_type: str = "audio/wav",
) -> Recording:
    """A recording of the call (or a voicemail message); the path is relative to
    ``recordings_dir``, as the API serves it (CDR-2)."""
    if duration_ms < 0 or size_bytes < 0:
        raise ValueError("duration_ms and size_bytes cannot be negative")
    row = Recording(
        call_id=call.id,
        client_id=call.client_id,
        storage_path=storage_path,
        content_type=content_type,
        start_ms=start_ms,
        duration_ms=duration_ms,
        size_bytes=size_bytes,
        kind=kind,
    )
    session.add(row)
    session.flush()
    return row


def add_fax(
    session: Session,
    call: Call,
    *,
    received_ms: int,
    pdf_path: str | None = None,
    tiff_path: str | None = None,
    pages: int = 0,
    remote_ident: str = "",
    status: str = "received",
    error: str = "",
) -> Fax:
    """A fax received on the call (FAX-1); paths relative to ``recordings_dir``."""
    row = Fax(
        call_id=call.id,
        client_id=call.client_id,
        pdf_path=pdf_path,
        tiff_path=tiff_path,
        pages=pages,
        remote_ident=remote_ident[:64],
        status=status,
        error=error,
        received_ms=received_ms,
    )
    session.add(row)
    session.flush()
    return row


# --- crash recovery --------------------------------------------------------------------------


def close_orphans(session: Session, now_ms: int, *, grace_ms: int = 0) -> int:
    """Close calls a crashed engine left open; returns how many (issue 5 §6).

    A call is an orphan when it has no end and its last liveness mark (heartbeat, else start)
    is older than ``now_ms - grace_ms``. It ends at that mark — the last moment it was known to
    be alive, never later — with outcome "failed" and an "interrupted" event. Billable seconds
    and cost stay what was recorded: nothing is invented. On one node call it at start-up with
    ``grace_ms=0``; with several engine nodes give a grace of a few heartbeat periods so that
    live calls of other nodes are left alone.
    """
    mark = func.coalesce(Call.heartbeat_ms, Call.start_ms)
    orphans = session.scalars(
        select(Call)
        .where(Call.end_ms.is_(None), mark < now_ms - grace_ms)
        .order_by(Call.id)
        .with_for_update(skip_locked=True)
    ).all()
    for call in orphans:
        _close_orphan(session, call, now_ms)
    session.flush()
    return len(orphans)


def _close_orphan(session: Session, call: Call, now_ms: int) -> None:
    end = max(call.start_ms, call.heartbeat_ms or call.start_ms)
    answer = call.answer_ms if call.answer_ms is not None and call.answer_ms <= end else None
    call.end_ms = end
    call.answer_ms = answer
    call.duration_ms = end - call.start_ms
    call.outcome = "failed"
    session.execute(
        update(CallLeg)
        .where(CallLeg.call_id == call.id, CallLeg.end_ms.is_(None))
        .values(
            end_ms=case((CallLeg.start_ms > end, CallLeg.start_ms), else_=end), outcome="failed"
        )
    )
    session.add(
        CallEvent(
            call_id=call.id,
            client_id=call.client_id,
            at_ms=end,
            kind=INTERRUPTED,
            detail={"reason": "engine stopped while the call was up", "closed_at_ms": now_ms},
        )
    )


# --- bulk load -------------------------------------------------------------------------------


def bulk_insert_calls(engine: Engine, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert closed calls fast (Core executemany in chunks of 10,000); returns the count.

    Each row has the :class:`~cloudpbx.db.models.Call` columns; ``caller_rev``/``called_rev``,
    ``duration_ms`` and ``heartbeat_ms`` are derived when missing. For generated data only:
    the engine writes through :func:`open_call`/:func:`close_call`.
    """
    table = Call.__table__
    assert isinstance(table, Table)
    count = 0
    chunk: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for row in rows:
            chunk.append(_complete(row))
            if len(chunk) >= CHUNK:
                conn.execute(insert(table), chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            conn.execute(insert(table), chunk)
            count += len(chunk)
    return count


_DEFAULTS: dict[str, Any] = {
    "internal_number": None,
    "direction": "internal",
    "answer_ms": None,
    "end_ms": None,
    "billable_s": 0,
    "outcome": None,
    "cost": Decimal(0),
    "currency": "RUB",
    "operator_id": None,
    "dialplan_version_id": None,
    "steps": [],
}


def _complete(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {**_DEFAULTS, **row}
    out.setdefault("caller_rev", reverse_digits(out.get("caller")))
    out.setdefault("called_rev", reverse_digits(out.get("called")))
    end = out["end_ms"]
    out.setdefault("duration_ms", 0 if end is None else end - out["start_ms"])
    out.setdefault("heartbeat_ms", end if end is not None else out["start_ms"])
    return out


__all__ = [
    "DIRECTIONS",
    "OUTCOMES",
    "CallDirection",
    "Outcome",
    "add_event",
    "add_fax",
    "add_leg",
    "add_recording",
    "answer_call",
    "answer_leg",
    "bulk_insert_calls",
    "close_call",
    "close_leg",
    "close_orphans",
    "open_call",
    "reverse_digits",
    "touch_calls",
]
