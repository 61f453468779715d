"""Searching call detail records (CDR-2) and totalling them (ST-1).

One module builds every CDR query, so that the API, the CSV export and ``bench/cdr_search.py``
run the same SQL. Every query is led by ``client_id`` (ADM-4) and every index on ``calls``
starts with it, so a tenant's search never reads another tenant's rows.

Number matching (docs/cdr.md):

* ``caller`` / ``called`` / ``internal_number``: exact, on ``ix_calls_client_caller`` etc.
* ``number``: exact, caller OR called (two index lookups, OR-ed).
* ``number_suffix``: trailing digits, caller OR called. ``*_rev`` hold the digits reversed, so
  "ends with 1234567" is the index range ``caller_rev >= '7654321' AND caller_rev < '7654321:'``
  (``:`` is the character after ``9``; the columns use byte order on both databases).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    case,
    false,
    func,
    or_,
    select,
    union,
)
from sqlalchemy.orm import Session

from cloudpbx.db.models import Call, ExternalNumber, InternalNumber, Operator
from cloudpbx.numbers import digits_only

SortKey = Literal["-start_ms", "start_ms", "-duration_ms", "duration_ms"]
SORTS: tuple[str, ...] = ("-start_ms", "start_ms", "-duration_ms", "duration_ms")
GroupKey = Literal["day", "direction", "operator", "internal_number"]
GROUPS: tuple[str, ...] = ("day", "direction", "operator", "internal_number")

# Above this many matches the listing says "more than 10,000" instead of counting them all:
# an exact count of a large tenant's whole history costs more than the page itself.
COUNT_CAP = 10_000
# Statistics buckets: every time zone in use today is offset from UTC by a multiple of 15
# minutes, so a 15-minute bucket never straddles a local midnight (ST-1 "per day").
_BUCKET_MS = 15 * 60 * 1000
# A trailing-digit search that matches more distinct numbers than this (a short suffix) sorts
# its matches instead of merging one ordered index range per number.
MAX_SUFFIX_NUMBERS = 20


@dataclass(frozen=True, slots=True)
class NumberScope:
    """A client user's numbers (ADM-1): the calls they may see are the calls of these."""

    internal_numbers: frozenset[str] = frozenset()
    external_numbers: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What a CDR search asks for (CDR-2); ``None`` means "any". Times are epoch ms,
    ``start_to_ms`` exclusive. ``scope`` limits a client user to the calls of their numbers."""

    client_id: int
    start_from_ms: int | None = None
    start_to_ms: int | None = None
    caller: str | None = None
    called: str | None = None
    internal_number: str | None = None
    number: str | None = None
    number_suffix: str | None = None
    outcome: str | None = None
    direction: str | None = None
    scope: NumberScope | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Keyset position: the (start_ms, id) of the last row of the previous page."""

    start_ms: int
    id: int

    def encode(self) -> str:
        return f"{self.start_ms}.{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse ``"<start_ms>.<id>"``; raises ValueError when it is anything else."""
        start, sep, ident = text.partition(".")
        if not sep or not start.isdigit() or not ident.isdigit():
            raise ValueError("not a cursor returned by this API")
        return cls(int(start), int(ident))


@dataclass
class SearchResult:
    items: list[Call]
    total: int
    total_exact: bool
    next_cursor: str | None = None


# --- conditions ------------------------------------------------------------------------------


def suffix_range(column: Any, digits: str) -> ColumnElement[bool]:
    """``column`` (reversed digits) starts with ``digits`` reversed: an index range scan."""
    rev = digits[::-1]
    return and_(column >= rev, column < rev + ":")


def conditions(f: CallFilter) -> list[ColumnElement[bool]]:
    """The WHERE terms of a filter, ``client_id`` first (ADM-4)."""
    terms: list[ColumnElement[bool]] = [Call.client_id == f.client_id]
    if f.start_from_ms is not None:
        terms.append(Call.start_ms >= f.start_from_ms)
    if f.start_to_ms is not None:
        terms.append(Call.start_ms < f.start_to_ms)
    for column, value in (
        (Call.caller, f.caller),
        (Call.called, f.called),
        (Call.internal_number, f.internal_number),
        (Call.outcome, f.outcome),
        (Call.direction, f.direction),
    ):
        if value is not None:
            terms.append(column == value)
    if f.number is not None:
        terms.append(or_(Call.caller == f.number, Call.called == f.number))
    if f.number_suffix is not None:
        digits = digits_only(f.number_suffix)
        terms.append(
            or_(suffix_range(Call.caller_rev, digits), suffix_range(Call.called_rev, digits))
        )
    if f.scope is not None:
        terms.append(scope_condition(f.scope))
    return terms


def scope_condition(scope: NumberScope) -> ColumnElement[bool]:
    """ADM-1 client user: calls through one of their internal numbers, or from or to one of
    their external numbers."""
    terms: list[ColumnElement[bool]] = []
    if scope.internal_numbers:
        terms.append(Call.internal_number.in_(sorted(scope.internal_numbers)))
    if scope.external_numbers:
        externals = sorted(scope.external_numbers)
        terms += [Call.caller.in_(externals), Call.called.in_(externals)]
    return or_(*terms) if terms else false()


def scope_for(
    session: Session, client_id: int, internal_ids: Sequence[int], external_ids: Sequence[int]
) -> NumberScope:
    """The numbers behind a client user's number ids, restricted to the client (ADM-4)."""
    internal = (
        session.scalars(
            select(InternalNumber.number).where(
                InternalNumber.client_id == client_id, InternalNumber.id.in_(internal_ids)
            )
        ).all()
        if internal_ids
        else []
    )
    external = (
        session.scalars(
            select(ExternalNumber.number).where(
                ExternalNumber.client_id == client_id, ExternalNumber.id.in_(external_ids)
            )
        ).all()
        if external_ids
        else []
    )
    return NumberScope(frozenset(internal), frozenset(external))


# --- listing ---------------------------------------------------------------------------------


def order_by(sort: str) -> list[Any]:
    """ORDER BY for a sort key; ``id`` breaks ties so pages never repeat or skip a row."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    column = Call.duration_ms if sort.endswith("duration_ms") else Call.start_ms
    if sort.startswith("-"):
        return [column.desc(), Call.id.desc()]
    return [column.asc(), Call.id.asc()]


def after_cursor(sort: str, cursor: Cursor) -> ColumnElement[bool]:
    """Rows after the cursor in ``start_ms`` order; the plain ``<=``/``>=`` keeps it a range."""
    if sort == "-start_ms":
        return and_(
            Call.start_ms <= cursor.start_ms,
            or_(Call.start_ms < cursor.start_ms, Call.id < cursor.id),
        )
    if sort == "start_ms":
        return and_(
            Call.start_ms >= cursor.start_ms,
            or_(Call.start_ms > cursor.start_ms, Call.id > cursor.id),
        )
    raise ValueError("a cursor works with sort start_ms or -start_ms only")


def calls_query(
    f: CallFilter, *, sort: str = "-start_ms", cursor: Cursor | None = None
) -> Select[Call]:
    """Every match in order: the export's query, and a page's when no split applies."""
    query = select(Call).where(*conditions(f))
    if cursor is not None:
        query = query.where(after_cursor(sort, cursor))
    return query.order_by(*order_by(sort))


def number_branches(session: Session, f: CallFilter) -> tuple[CallFilter, list[Any]] | None:
    """Split "caller OR called" into terms that each read one index in ``start_ms`` order.

    ``number`` gives ``caller = n`` and ``called = n``. ``number_suffix`` first finds the
    distinct reversed numbers that end with the digits (an index-only scan, stopping after
    :data:`MAX_SUFFIX_NUMBERS` + 1) and gives one equality term per number and side. Returns
    the filter without the split condition and the terms, or ``None`` when there is nothing to
    split or too many numbers match (then one sorted query is cheaper).
    """
    if f.number is not None:
        return replace(f, number=None), [Call.caller == f.number, Call.called == f.number]
    if f.number_suffix is None:
        return None
    digits = digits_only(f.number_suffix)
    terms: list[Any] = []
    for column in (Call.caller_rev, Call.called_rev):
        found = session.scalars(
            select(column)
            .where(Call.client_id == f.client_id, suffix_range(column, digits))
            .distinct()
            .limit(MAX_SUFFIX_NUMBERS + 1)
        ).all()
        if len(found) > MAX_SUFFIX_NUMBERS:
            return None
        terms += [column == value for value in found]
    return replace(f, number_suffix=None), terms


def page_query(
    session: Session,
    f: CallFilter,
    *,
    sort: str = "-start_ms",
    limit: int = 50,
    offset: int = 0,
    cursor: Cursor | None = None,
) -> Select[Call]:
    """One page of matches (CDR-2). A number search is the union of the first
    ``offset + limit`` rows of each branch (each an ordered index range), re-sorted: the top
    rows of a union are among the top rows of its parts, so no number's whole history is read
    or sorted, however many calls it has."""
    split = number_branches(session, f)
    if split is None:
        return calls_query(f, sort=sort, cursor=cursor).limit(limit).offset(offset)
    rest, terms = split
    if not terms:
        return select(Call).where(false())
    base = conditions(rest)
    if cursor is not None:
        base.append(after_cursor(sort, cursor))
    heads = [
        select(
            select(Call.id)
            .where(*base, term)
            .order_by(*order_by(sort))
            .limit(offset + limit)
            .subquery()
            .c.id
        )
        for term in terms
    ]
    ids = heads[0] if len(heads) == 1 else union(*heads)
    return (
        select(Call).where(Call.id.in_(ids)).order_by(*order_by(sort)).limit(limit).offset(offset)
    )


def count_query(f: CallFilter, cap: int = COUNT_CAP) -> Select[int]:
    """COUNT of at most ``cap + 1`` matches: enough to say "more than cap"."""
    capped = select(Call.id).where(*conditions(f)).limit(cap + 1).subquery()
    return select(func.count()).select_from(capped)


def search_calls(
    session: Session,
    f: CallFilter,
    *,
    sort: str = "-start_ms",
    limit: int = 50,
    offset: int = 0,
    cursor: Cursor | None = None,
    count_cap: int = COUNT_CAP,
) -> SearchResult:
    """One page of matching calls, newest first by default, and the (capped) total (CDR-2)."""
    query = page_query(session, f, sort=sort, limit=limit, offset=offset, cursor=cursor)
    items = list(session.scalars(query))
    total = session.scalar(count_query(f, count_cap)) or 0
    next_cursor = None
    if len(items) == limit and sort in ("-start_ms", "start_ms"):
        next_cursor = Cursor(items[-1].start_ms, items[-1].id).encode()
    return SearchResult(items, min(total, count_cap), total <= count_cap, next_cursor)


def get_call(session: Session, f: CallFilter, call_id: int) -> Call | None:
    """One call if the filter (tenant and, for client users, their numbers) allows it."""
    return session.scalar(select(Call).where(Call.id == call_id, *conditions(f)))


def export_query(f: CallFilter, sort: str = "-start_ms") -> Select[Call, str | None]:
    """The CSV export's rows: the call's columns and its operator's name."""
    return (
        select(Call, Operator.name.label("operator_name"))
        .outerjoin(Operator, Operator.id == Call.operator_id)
        .where(*conditions(f))
        .order_by(*order_by(sort))
    )


def iter_export(
    session: Session, f: CallFilter, sort: str = "-start_ms", batch: int = 2_000
) -> Iterator[Row[Call, str | None]]:
    """Stream export rows without loading them all (CDR-2 export)."""
    result = session.execute(export_query(f, sort).execution_options(yield_per=batch))
    yield from result


# --- statistics (ST-1) -----------------------------------------------------------------------


@dataclass
class Totals:
    calls: int = 0
    answered: int = 0
    duration_ms: int = 0
    billable_s: int = 0
    cost: Decimal = field(default_factory=lambda: Decimal(0))

    def add(self, other: Totals) -> None:
        self.calls += other.calls
        self.answered += other.answered
        self.duration_ms += other.duration_ms
        self.billable_s += other.billable_s
        self.cost += other.cost


@dataclass
class StatRow:
    key: str | None
    label: str
    totals: Totals


def _measures() -> list[Any]:
    answered = case((Call.answer_ms.is_not(None), 1), else_=0)
    return [
        func.count(Call.id),
        func.coalesce(func.sum(answered), 0),
        func.coalesce(func.sum(Call.duration_ms), 0),
        func.coalesce(func.sum(Call.billable_s), 0),
        func.sum(Call.cost),
    ]


def _totals(row: Sequence[Any]) -> Totals:
    calls, answered, duration, billable, cost = row
    money = Decimal(0) if cost is None else Decimal(cost)
    return Totals(int(calls), int(answered), int(duration), int(billable), money)


def statistics(session: Session, f: CallFilter, group: str, tz: ZoneInfo) -> list[StatRow]:
    """Totals per day (in ``tz``), direction, operator or internal number (ST-1).

    Costs are the sums of what rating recorded on each call; nothing is estimated here.
    """
    if group == "day":
        return _by_day(session, f, tz)
    if group == "operator":
        return _by_operator(session, f)
    if group in ("direction", "internal_number"):
        column = Call.direction if group == "direction" else Call.internal_number
        query = select(column, *_measures()).where(*conditions(f)).group_by(column)
        rows = [StatRow(key, key or "—", _totals(rest)) for key, *rest in session.execute(query)]
        return sorted(rows, key=lambda r: (r.key is None, r.key or ""))
    raise ValueError(f"group must be one of {', '.join(GROUPS)}")


def _by_operator(session: Session, f: CallFilter) -> list[StatRow]:
    query = (
        select(Call.operator_id, Operator.name, *_measures())
        .outerjoin(Operator, Operator.id == Call.operator_id)
        .where(*conditions(f))
        .group_by(Call.operator_id, Operator.name)
    )
    rows = [
        StatRow(None if op_id is None else str(op_id), name or "—", _totals(rest))
        for op_id, name, *rest in session.execute(query)
    ]
    return sorted(rows, key=lambda r: (r.key is None, r.label))


def _by_day(session: Session, f: CallFilter, tz: ZoneInfo) -> list[StatRow]:
    """Portable day buckets: SQL groups by 15 minutes, Python maps those to local days."""
    bucket = (Call.start_ms // _BUCKET_MS).label("bucket")
    query = select(bucket, *_measures()).where(*conditions(f)).group_by(bucket)
    days: dict[date, Totals] = {}
    for slot, *rest in session.execute(query):
        day = datetime.fromtimestamp(int(slot) * _BUCKET_MS / 1000, tz).date()
        days.setdefault(day, Totals()).add(_totals(rest))
    for day in _days_between(f, tz):
        days.setdefault(day, Totals())
    return [StatRow(d.isoformat(), d.isoformat(), days[d]) for d in sorted(days)]


def _days_between(f: CallFilter, tz: ZoneInfo) -> list[date]:
    """Every local day of the period, so a chart shows days without calls as zeros."""
    if f.start_from_ms is None or f.start_to_ms is None or f.start_to_ms <= f.start_from_ms:
        return []
    first = datetime.fromtimestamp(f.start_from_ms / 1000, tz).date()
    last = datetime.fromtimestamp((f.start_to_ms - 1) / 1000, tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def local_day_start_ms(day: date, tz: ZoneInfo) -> int:
    """UTC epoch ms of local midnight of ``day`` in ``tz``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC).timestamp() * 1000)
