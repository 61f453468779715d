"""Детализация вызовов, statistics and the audit log: read-only (CDR-1, CDR-2, ST-1, ADM-7).

Nothing here writes (CDR-2: "nothing can be broken from statistics"): calls are written by the
engine through :mod:`cloudpbx.cdr.store`, and every query is built by :mod:`cloudpbx.cdr.search`,
the same code ``bench/cdr_search.py`` measures. Rights come from ``rbac.CDR`` (provider staff:
every client; a company's administrator: its client; a client user: the calls of their numbers)
and ``rbac.AUDIT``. Times in responses are ISO 8601 UTC with milliseconds (``start``) next to
the exact epoch milliseconds (``start_ms``); money is a decimal string. See docs/cdr.md.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import IO, Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, StreamingResponse
from openpyxl import Workbook  # type: ignore[import-untyped]
from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE  # type: ignore[import-untyped]
from openpyxl.styles import Font  # type: ignore[import-untyped]
from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.api import rbac
from cloudpbx.api.crud import ClientCtx, Ctx, InstallationCtx, ItemIdPath
from cloudpbx.api.errors import ApiError, forbidden, invalid, not_found
from cloudpbx.api.rbac import Access
from cloudpbx.api.routes.numbering import numbering_plan
from cloudpbx.api.schemas.common import Millis, OptMillis, Out, ms_to_iso
from cloudpbx.api.state import AppState
from cloudpbx.cdr import search
from cloudpbx.cdr.search import CallFilter, Cursor, NumberScope, StatRow, Totals
from cloudpbx.cdr.store import CallDirection, Outcome
from cloudpbx.db.base import now_ms
from cloudpbx.db.models import (
    AuditEntry,
    Call,
    CallEvent,
    CallLeg,
    Client,
    DialplanVersion,
    Fax,
    Recording,
)
from cloudpbx.numbers import InvalidNumber, NumberingPlan, normalize_e164

router = APIRouter()

MAX_PAGE = 500
# CDR-2 export: one file holds at most a million calls; a larger period is refused up front
# (a stream cannot turn into an error half way through).
EXPORT_CAP = 1_000_000
# ST-1 per day: a bounded number of buckets for one chart.
MAX_DAY_PERIOD = timedelta(days=400)
DEFAULT_STATS_PERIOD = timedelta(days=30)
# `number` of fewer digits than this is matched exactly, not as trailing digits.
SUFFIX_MIN_DIGITS = 3

_SEPARATORS = re.compile(r"[\s\-.()]")
_SHORT_NUMBER = re.compile(r"[0-9]{1,8}")
_DIGITS = re.compile(r"[0-9]+")
_EPOCH_MS = re.compile(r"[0-9]{1,15}")
_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last ISO 8601 instant

NumberParam = Annotated[str | None, Field(None, max_length=40)]


# --- schemas ---------------------------------------------------------------------------------


class CallRead(Out):
    """One call (CDR-1): ``start``/``answer``/``end`` in ISO 8601 UTC, ``*_ms`` the same
    instants as epoch milliseconds."""

    id: int
    uuid: str
    client_id: int
    caller: str
    called: str
    internal_number: str | None
    direction: str
    outcome: str | None
    start: Millis
    answer: OptMillis
    end: OptMillis
    start_ms: int
    answer_ms: int | None
    end_ms: int | None
    duration_ms: int
    billable_s: int
    cost: Decimal
    currency: str
    operator_id: int | None
    dialplan_version_id: int | None


class LegRead(Out):
    id: int
    direction: str
    party: str
    port_id: int | None
    operator_id: int | None
    sip_call_id: str | None
    start: Millis
    answer: OptMillis
    end: OptMillis
    start_ms: int
    answer_ms: int | None
    end_ms: int | None
    billable_s: int
    outcome: str | None
    hangup_cause: str | None
    codec: str | None
    cost: Decimal
    quality: dict[str, Any]


class EventRead(Out):
    id: int
    leg_id: int | None
    at: Millis
    at_ms: int
    kind: str
    step_level: int | None
    detail: dict[str, Any]


class RecordingRead(Out):
    id: int
    kind: str
    content_type: str
    start: Millis
    start_ms: int
    duration_ms: int
    size_bytes: int
    url: str


class FaxRead(Out):
    id: int
    status: str
    pages: int
    remote_ident: str
    error: str
    received: Millis
    received_ms: int
    has_pdf: bool
    url: str | None


class CallDetail(CallRead):
    """A call with what happened in it (CDR-1) and its DP-7 path of step levels."""

    steps: list[int]
    # DP-7: the dialplan and its version number the call ran on, to draw its path on the graph.
    dialplan_id: int | None
    dialplan_version: int | None
    legs: list[LegRead]
    events: list[EventRead]
    recordings: list[RecordingRead]
    faxes: list[FaxRead]


class CallPage(BaseModel):
    items: list[CallRead]
    total: int = Field(description=f"matches, counted up to {search.COUNT_CAP:,}")
    total_exact: bool = Field(description="false when there are more matches than total")
    limit: int
    offset: int
    next_cursor: str | None = Field(
        description="pass as cursor for the next page (sort start_ms or -start_ms)"
    )


class StatTotals(BaseModel):
    calls: int
    answered: int
    duration_ms: int
    billable_s: int
    cost: Decimal


class StatRowOut(StatTotals):
    key: str | None = Field(description="day (YYYY-MM-DD), direction, operator id or number")
    label: str


class StatisticsOut(BaseModel):
    group: str
    timezone: str
    start: Millis
    end: Millis
    start_ms: int
    end_ms: int
    rows: list[StatRowOut]
    totals: StatTotals


class AuditRead(Out):
    id: int
    at: Millis
    at_ms: int
    user_id: int | None
    user_login: str
    client_id: int | None
    action: str
    entity: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    remote_addr: str | None


class AuditPage(BaseModel):
    items: list[AuditRead]
    total: int
    limit: int
    offset: int


# --- query parameters ------------------------------------------------------------------------


class PeriodParams(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str | None = Field(
        None,
        alias="from",
        max_length=40,
        description="start of the period (inclusive): ISO 8601 date or date-time, or epoch ms;"
        " without a UTC offset it is the client's local time",
    )
    to: str | None = Field(
        None,
        max_length=40,
        description="end of the period (exclusive; a bare date includes that whole day)",
    )


class FilterParams(PeriodParams):
    caller: NumberParam = Field(None, description="calling number, exact")
    called: NumberParam = Field(None, description="called number, exact")
    internal_number: Annotated[str | None, Field(None, pattern=r"^[0-9]{1,16}$")] = None
    number: NumberParam = Field(
        None,
        description="caller or called: +E.164 or fewer than 3 digits exactly, "
        "otherwise the trailing digits (at most the last 10 compared)",
    )
    outcome: Outcome | None = None
    direction: CallDirection | None = None


CallSort = Literal["-start_ms", "start_ms", "-duration_ms", "duration_ms"]


class CallListParams(FilterParams):
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=1_000_000)
    sort: CallSort = "-start_ms"
    cursor: str | None = Field(None, max_length=40, description="next_cursor of the last page")


class ExportParams(FilterParams):
    sort: CallSort = "-start_ms"
    delimiter: Literal["comma", "semicolon"] = Field(
        "comma", description="semicolon suits Excel with a Russian locale"
    )


class StatsParams(FilterParams):
    group: Literal["day", "direction", "operator", "internal_number"] = "day"


class AuditParams(PeriodParams):
    entity: str | None = Field(None, max_length=64)
    entity_id: str | None = Field(None, max_length=64)
    action: str | None = Field(None, max_length=20)
    user_id: int | None = Field(None, ge=1, le=2**62)
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0)


class GlobalAuditParams(AuditParams):
    client_id: int | None = Field(None, ge=1, le=2**62)


# --- helpers: access, time zone, parsing -----------------------------------------------------


@dataclass
class CdrAccess:
    ctx: Ctx
    client_id: int
    scope: NumberScope | None  # None: every call of the client
    tz: ZoneInfo
    plan: NumberingPlan

    @property
    def db(self) -> Session:
        return self.ctx.db


def cdr_access(ctx: ClientCtx) -> CdrAccess:
    """404 for a client the caller may not know, 403 without a CDR right, and for a client
    user the numbers whose calls they may see (ADM-1, ADM-4)."""
    client = ctx.db.get(Client, ctx.client_id)
    assert client is not None  # client_context checked it
    principal = ctx.principal
    level = rbac.access(principal, rbac.CDR.read, client.id)
    if level is Access.NONE:
        raise forbidden("you have no right to view call detail records")
    scope = None
    if level is Access.NUMBERS:
        scope = search.scope_for(
            ctx.db,
            client.id,
            sorted(principal.internal_number_ids),
            sorted(principal.external_number_ids),
        )
    state = ctx.state
    tz = _zone(client.timezone, state)
    return CdrAccess(ctx, client.id, scope, tz, numbering_plan(state, client))


# Checked before the query parameters are: 404 and 403 come before any 422.
CdrReader = Annotated[CdrAccess, Depends(cdr_access)]


def _zone(name: str | None, state: AppState) -> ZoneInfo:
    for candidate in (name, state.settings.default_timezone, "UTC"):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def parse_time(field_name: str, text: str, tz: ZoneInfo, *, end: bool = False) -> int:
    """ISO 8601 date or date-time, or epoch milliseconds → epoch ms; 422 naming the field.

    A date-time without an offset is local time in ``tz``; a bare date is local midnight, and as
    the end of a period (``end``) the midnight after it, so ``to=2024-05-01`` includes that day.
    """
    text = text.strip()
    try:
        if _EPOCH_MS.fullmatch(text):
            value = int(text)
        elif _DATE_ONLY.fullmatch(text):
            day = date.fromisoformat(text)
            value = search.local_day_start_ms(day + timedelta(days=1) if end else day, tz)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
            value = int(moment.astimezone(UTC).timestamp() * 1000)
    except (ValueError, OverflowError) as exc:
        raise invalid(
            field_name, "expected an ISO 8601 date or date-time, or epoch milliseconds"
        ) from exc
    if not 0 <= value <= _MAX_EPOCH_MS:
        raise invalid(field_name, "must be between 1970 and 9999")
    return value


def _period(params: PeriodParams, tz: ZoneInfo) -> tuple[int | None, int | None]:
    start = None if params.from_ is None else parse_time("from", params.from_, tz)
    stop = None if params.to is None else parse_time("to", params.to, tz, end=True)
    if start is not None and stop is not None and stop <= start:
        raise invalid("to", "must be after from")
    return start, stop


def exact_number(field_name: str, raw: str, plan: NumberingPlan) -> str:
    """A number as CDRs store it: up to 8 digits as typed (internal or short numbers),
    anything longer in E.164 (PRODUCT.md §3a); 422 naming the field otherwise."""
    cleaned = _SEPARATORS.sub("", raw)
    if _SHORT_NUMBER.fullmatch(cleaned):
        return cleaned
    try:
        return normalize_e164(raw, plan)
    except InvalidNumber as exc:
        raise invalid(field_name, str(exc)) from exc


def _any_number(raw: str, plan: NumberingPlan) -> dict[str, str]:
    """``number``: +E.164 or 1–2 digits exactly, else trailing digits (CDR-2).

    Of a longer number only the last national-number-length digits are compared, so that
    ``84951234567``, ``74951234567`` and ``4951234567`` all find ``+74951234567``.
    """
    cleaned = _SEPARATORS.sub("", raw)
    if cleaned.startswith("+"):
        return {"number": exact_number("number", raw, plan)}
    if not _DIGITS.fullmatch(cleaned):
        raise invalid("number", "use digits, optionally with a leading +")
    if len(cleaned) < SUFFIX_MIN_DIGITS:
        return {"number": cleaned}
    return {"number_suffix": cleaned[-plan.national_number_length :]}


def build_filter(params: FilterParams, access: CdrAccess) -> CallFilter:
    start, stop = _period(params, access.tz)
    numbers: dict[str, Any] = {}
    if params.caller is not None:
        numbers["caller"] = exact_number("caller", params.caller, access.plan)
    if params.called is not None:
        numbers["called"] = exact_number("called", params.called, access.plan)
    if params.number is not None:
        numbers.update(_any_number(params.number, access.plan))
    return CallFilter(
        client_id=access.client_id,
        start_from_ms=start,
        start_to_ms=stop,
        internal_number=params.internal_number,
        outcome=params.outcome,
        direction=params.direction,
        scope=access.scope,
        **numbers,
    )


# --- serialisation ---------------------------------------------------------------------------


def _call_fields(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "uuid": call.uuid,
        "client_id": call.client_id,
        "caller": call.caller,
        "called": call.called,
        "internal_number": call.internal_number,
        "direction": call.direction,
        "outcome": call.outcome,
        "start": call.start_ms,
        "answer": call.answer_ms,
        "end": call.end_ms,
        "start_ms": call.start_ms,
        "answer_ms": call.answer_ms,
        "end_ms": call.end_ms,
        "duration_ms": call.duration_ms,
        "billable_s": call.billable_s,
        "cost": call.cost,
        "currency": call.currency,
        "operator_id": call.operator_id,
        "dialplan_version_id": call.dialplan_version_id,
    }


def call_read(call: Call) -> CallRead:
    return CallRead.model_validate(_call_fields(call))


def _leg_read(leg: CallLeg) -> LegRead:
    return LegRead.model_validate(
        {
            **{k: getattr(leg, k) for k in LegRead.model_fields if hasattr(leg, k)},
            "start": leg.start_ms,
            "answer": leg.answer_ms,
            "end": leg.end_ms,
        }
    )


def _event_read(event: CallEvent) -> EventRead:
    return EventRead(
        id=event.id,
        leg_id=event.leg_id,
        at=event.at_ms,
        at_ms=event.at_ms,
        kind=event.kind,
        step_level=event.step_level,
        detail=event.detail,
    )


def _recording_read(rec: Recording) -> RecordingRead:
    return RecordingRead(
        id=rec.id,
        kind=rec.kind,
        content_type=rec.content_type,
        start=rec.start_ms,
        start_ms=rec.start_ms,
        duration_ms=rec.duration_ms,
        size_bytes=rec.size_bytes,
        url=f"/api/v1/clients/{rec.client_id}/recordings/{rec.id}/audio",
    )


def _fax_read(fax: Fax) -> FaxRead:
    return FaxRead(
        id=fax.id,
        status=fax.status,
        pages=fax.pages,
        remote_ident=fax.remote_ident,
        error=fax.error,
        received=fax.received_ms,
        received_ms=fax.received_ms,
        has_pdf=fax.pdf_path is not None,
        url=f"/api/v1/clients/{fax.client_id}/faxes/{fax.id}/pdf" if fax.pdf_path else None,
    )


def _version_of(db: Session, call: Call) -> DialplanVersion | None:
    """The version row the call ran on, read with the tenant key (ADM-4)."""
    if call.dialplan_version_id is None:
        return None
    return db.scalar(
        select(DialplanVersion).where(
            DialplanVersion.id == call.dialplan_version_id,
            DialplanVersion.client_id == call.client_id,
        )
    )


def call_detail(db: Session, call: Call) -> CallDetail:
    """Legs, events, recordings and faxes of a call, each read with the tenant key (ADM-4)."""
    owned = (CallEvent.client_id == call.client_id, CallEvent.call_id == call.id)
    events = db.scalars(select(CallEvent).where(*owned).order_by(CallEvent.at_ms, CallEvent.id))
    legs = db.scalars(
        select(CallLeg)
        .where(CallLeg.client_id == call.client_id, CallLeg.call_id == call.id)
        .order_by(CallLeg.start_ms, CallLeg.id)
    )
    recordings = db.scalars(
        select(Recording)
        .where(Recording.client_id == call.client_id, Recording.call_id == call.id)
        .order_by(Recording.start_ms, Recording.id)
    )
    faxes = db.scalars(
        select(Fax)
        .where(Fax.client_id == call.client_id, Fax.call_id == call.id)
        .order_by(Fax.received_ms, Fax.id)
    )
    version = _version_of(db, call)
    return CallDetail.model_validate(
        {
            **_call_fields(call),
            "steps": list(call.steps or []),
            "dialplan_id": version.dialplan_id if version else None,
            "dialplan_version": version.number if version else None,
            "legs": [_leg_read(leg) for leg in legs],
            "events": [_event_read(e) for e in events],
            "recordings": [_recording_read(r) for r in recordings],
            "faxes": [_fax_read(f) for f in faxes],
        }
    )


# --- calls: search, export, detail (CDR-1, CDR-2) --------------------------------------------


@router.get(
    "/clients/{client_id}/calls",
    response_model=CallPage,
    tags=["cdr"],
    operation_id="list_calls",
    summary="Search call detail records",
)
def list_calls(access: CdrReader, params: Annotated[CallListParams, Query()]) -> CallPage:
    """CDR-2: calls by period, caller, called, internal number, any number (trailing digits),
    outcome and direction; newest first. Deep pages: follow ``next_cursor``."""
    call_filter = build_filter(params, access)
    cursor = _cursor(params)
    result = search.search_calls(
        access.db,
        call_filter,
        sort=params.sort,
        limit=params.limit,
        offset=params.offset,
        cursor=cursor,
    )
    return CallPage(
        items=[call_read(c) for c in result.items],
        total=result.total,
        total_exact=result.total_exact,
        limit=params.limit,
        offset=params.offset,
        next_cursor=result.next_cursor,
    )


def _cursor(params: CallListParams) -> Cursor | None:
    if params.cursor is None:
        return None
    if params.sort not in ("start_ms", "-start_ms"):
        raise invalid("cursor", "a cursor works with sort start_ms or -start_ms only")
    if params.offset:
        raise invalid("cursor", "use either cursor or offset, not both")
    try:
        return Cursor.decode(params.cursor)
    except ValueError as exc:
        raise invalid("cursor", str(exc)) from exc


@router.get(
    "/clients/{client_id}/calls/export.csv",
    tags=["cdr"],
    operation_id="export_calls_csv",
    summary="Export call detail records as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_calls_csv(
    access: CdrReader, params: Annotated[ExportParams, Query()]
) -> StreamingResponse:
    """CDR-2 export: the search's filters, streamed as UTF-8 CSV with a BOM (Excel reads the
    encoding from it), one header row, at most 1,000,000 calls (a larger period is a 422)."""
    call_filter = _export_filter(params, access)
    delimiter = ";" if params.delimiter == "semicolon" else ","
    sessions = access.ctx.state.sessions
    rows = _csv_stream(sessions, call_filter, params.sort, access.tz, delimiter)
    return StreamingResponse(
        rows,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": _attachment(access, "csv")},
    )


def _export_filter(params: FilterParams, access: CdrAccess) -> CallFilter:
    """The search's filter for an export, refused up front past EXPORT_CAP (CDR-2)."""
    call_filter = build_filter(params, access)
    matches = access.db.scalar(search.count_query(call_filter, EXPORT_CAP)) or 0
    if matches > EXPORT_CAP:
        raise ApiError(
            422,
            "too_many_rows",
            f"from: more than {EXPORT_CAP:,} calls match; choose a shorter period",
            field="from",
        )
    return call_filter


def _attachment(access: CdrAccess, extension: str) -> str:
    stamp = datetime.now(access.tz).strftime("%Y%m%d-%H%M")
    return f'attachment; filename="calls-{access.client_id}-{stamp}.{extension}"'


CSV_HEADER = (
    "id",
    "uuid",
    "start_utc",
    "start_local",
    "answer_utc",
    "end_utc",
    "duration_ms",
    "billable_s",
    "caller",
    "called",
    "internal_number",
    "direction",
    "outcome",
    "operator",
    "cost",
    "currency",
    "steps",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def _cell(value: Any) -> str:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv_row(call: Call, operator: str | None, tz: ZoneInfo) -> list[str]:
    local = datetime.fromtimestamp(call.start_ms / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")
    values: list[Any] = [
        call.id,
        call.uuid,
        ms_to_iso(call.start_ms),
        local,
        ms_to_iso(call.answer_ms),
        ms_to_iso(call.end_ms),
        call.duration_ms,
        call.billable_s,
        call.caller,
        call.called,
        call.internal_number,
        call.direction,
        call.outcome,
        operator,
        call.cost,
        call.currency,
        ">".join(str(s) for s in call.steps or []),
    ]
    return [_cell(v) for v in values]


def _csv_stream(
    sessions: sessionmaker[Session],
    call_filter: CallFilter,
    sort: str,
    tz: ZoneInfo,
    delimiter: str,
    flush_every: int = 500,
) -> Iterator[bytes]:
    """Rows are read in batches by a session of the stream's own: the request's session ends
    with the request, the stream outlives it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(CSV_HEADER)
    with sessions() as session:
        for n, (call, operator) in enumerate(search.iter_export(session, call_filter, sort), 1):
            writer.writerow(_csv_row(call, operator, tz))
            if n % flush_every == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()


XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_XLSX_CHUNK = 64 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Per CSV column: width in characters and number format. Excel has no time zones, so each time
# is written in the zone its header names: *_utc in UTC, start_local in the client's zone.
_UTC_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
_TEXT = "@"  # "Text": numbers such as +7495... or 0123 stay as typed, also when edited
_XLSX_COLUMNS: dict[str, tuple[int, str | None]] = {
    "id": (10, None),
    "uuid": (38, _TEXT),
    "start_utc": (24, _UTC_FORMAT),
    "start_local": (20, "yyyy-mm-dd hh:mm:ss"),
    "answer_utc": (24, _UTC_FORMAT),
    "end_utc": (24, _UTC_FORMAT),
    "duration_ms": (12, None),
    "billable_s": (11, None),
    "caller": (17, _TEXT),
    "called": (17, _TEXT),
    "internal_number": (16, _TEXT),
    "direction": (14, _TEXT),
    "outcome": (11, _TEXT),
    "operator": (20, _TEXT),
    "cost": (10, "0.00##"),  # money: 2 to 4 decimals, as NUMERIC(14,4) stores it
    "currency": (9, _TEXT),
    "steps": (14, _TEXT),
}


class XlsxExportParams(FilterParams):
    sort: CallSort = "-start_ms"


@router.get(
    "/clients/{client_id}/calls/export.xlsx",
    tags=["cdr"],
    operation_id="export_calls_xlsx",
    summary="Export call detail records as XLSX",
    response_class=StreamingResponse,
    responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}},
)
def export_calls_xlsx(
    access: CdrReader, params: Annotated[XlsxExportParams, Query()]
) -> StreamingResponse:
    """CDR-2 export as an Excel workbook: the CSV's rows and columns (same filters, sort and
    1,000,000-call cap), times as Excel date-times, cost as a number, numbers as text."""
    call_filter = _export_filter(params, access)
    rows = search.iter_export(access.db, call_filter, params.sort)
    file = tempfile.TemporaryFile()  # noqa: SIM115 - _file_chunks closes it after sending
    try:
        write_xlsx(file, rows, access.tz)
    except BaseException:
        file.close()
        raise
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    headers = {"Content-Disposition": _attachment(access, "xlsx"), "Content-Length": str(size)}
    return StreamingResponse(_file_chunks(file), media_type=XLSX_MEDIA_TYPE, headers=headers)


def write_xlsx(file: IO[bytes], rows: Iterable[tuple[Call, str | None]], tz: ZoneInfo) -> None:
    """Write-only openpyxl streams the rows to a temporary sheet file and zips it into
    ``file``: memory stays bounded however many calls there are; strings are inline (no
    shared-string table growing with the rows)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("calls")
    sheet.freeze_panes = "A2"
    for index, (width, _) in enumerate(_XLSX_COLUMNS.values(), 1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    bold = Font(bold=True)
    sheet.append([_xlsx_cell(sheet, name, None, bold) for name in CSV_HEADER])
    formats = [number_format for _, number_format in _XLSX_COLUMNS.values()]
    for call, operator in rows:
        values = _xlsx_values(call, operator, tz)
        sheet.append([_xlsx_cell(sheet, v, f) for v, f in zip(values, formats, strict=True)])
    workbook.save(file)


def _xlsx_values(call: Call, operator: str | None, tz: ZoneInfo) -> list[Any]:
    """The CSV row's values, typed: Excel date-times (naive, see _XLSX_COLUMNS), Decimal cost."""
    return [
        call.id,
        call.uuid,
        _naive(call.start_ms, UTC),
        _naive(call.start_ms, tz),
        _naive(call.answer_ms, UTC),
        _naive(call.end_ms, UTC),
        call.duration_ms,
        call.billable_s,
        call.caller,
        call.called,
        call.internal_number,
        call.direction,
        call.outcome,
        operator,
        call.cost,
        call.currency,
        ">".join(str(s) for s in call.steps or []),
    ]


def _naive(epoch_ms: int | None, tz: tzinfo) -> datetime | None:
    if epoch_ms is None:
        return None
    moment = (_EPOCH + timedelta(milliseconds=epoch_ms)).astimezone(tz)  # exact, no float
    return moment.replace(tzinfo=None)


def _xlsx_cell(
    sheet: Any, value: Any, number_format: str | None, font: Font | None = None
) -> WriteOnlyCell | None:
    """A typed cell; a string is always text, never a formula (unlike the CSV, no ``'`` is
    needed: Excel does not evaluate a text cell)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)  # control characters are invalid XML
    cell = WriteOnlyCell(sheet, value)
    if isinstance(value, str):
        cell.data_type = "s"
    if number_format is not None:
        cell.number_format = number_format
    if font is not None:
        cell.font = font
    return cell


def _file_chunks(file: IO[bytes]) -> Iterator[bytes]:
    with file:
        while chunk := file.read(_XLSX_CHUNK):
            yield chunk


@router.get(
    "/clients/{client_id}/calls/{call_id}",
    response_model=CallDetail,
    tags=["cdr"],
    operation_id="get_call",
    summary="Read one call with legs, events, recordings and faxes",
)
def get_call(access: CdrReader, call_id: ItemIdPath) -> CallDetail:
    """CDR-1 details of one call and DP-7's list of steps; another tenant's call is a 404."""
    scoped = CallFilter(client_id=access.client_id, scope=access.scope)
    call = search.get_call(access.db, scoped, call_id)
    if call is None:
        raise not_found("call")
    return call_detail(access.db, call)


# --- recordings and faxes --------------------------------------------------------------------


CallFile = TypeVar("CallFile", Recording, Fax)


def _call_file(access: CdrAccess, model: type[CallFile], item_id: int, what: str) -> CallFile:
    """A recording or fax of the client, of a call the caller may see; else 404 (ADM-4)."""
    query = select(model).where(model.client_id == access.client_id, model.id == item_id)
    row = access.db.scalar(query)
    if row is None or not _visible_call(access, row.call_id):
        raise not_found(what)
    return row


def _visible_call(access: CdrAccess, call_id: int) -> bool:
    if access.scope is None:
        return True
    scoped = CallFilter(client_id=access.client_id, scope=access.scope)
    return search.get_call(access.db, scoped, call_id) is not None


def stored_file(state: AppState, relative: str, what: str) -> Path:
    """A file under ``recordings_dir``; 404 when it is missing or points outside it."""
    assert state.settings.recordings_dir is not None  # Settings derive it from data_dir
    base = Path(state.settings.recordings_dir).resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise ApiError(
            404, "file_missing", f"the file of {what} is missing from the recordings storage"
        )
    return path


@router.get(
    "/clients/{client_id}/recordings/{recording_id}/audio",
    tags=["cdr"],
    operation_id="download_recording",
    summary="Listen to or download a call recording",
    response_class=FileResponse,
    responses={200: {"content": {"audio/wav": {}}}, 404: {"description": "not found"}},
)
def download_recording(access: CdrReader, recording_id: ItemIdPath) -> FileResponse:
    """CDR-2: the recording's audio, with HTTP ranges for seeking in a player."""
    rec = _call_file(access, Recording, recording_id, "recording")
    path = stored_file(access.ctx.state, rec.storage_path, f"recording {rec.id}")
    filename = f"call-{rec.call_id}-recording-{rec.id}{path.suffix}"
    return FileResponse(path, media_type=rec.content_type, filename=filename)


@router.get(
    "/clients/{client_id}/faxes/{fax_id}/pdf",
    tags=["cdr"],
    operation_id="download_fax",
    summary="Download a received fax as PDF",
    response_class=FileResponse,
    responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "not found"}},
)
def download_fax(access: CdrReader, fax_id: ItemIdPath) -> FileResponse:
    """FAX-1: the received document from the call detail."""
    fax = _call_file(access, Fax, fax_id, "fax")
    if fax.pdf_path is None:
        raise ApiError(404, "file_missing", f"fax {fax.id} has no PDF (status: {fax.status})")
    path = stored_file(access.ctx.state, fax.pdf_path, f"fax {fax.id}")
    filename = f"call-{fax.call_id}-fax-{fax.id}.pdf"
    return FileResponse(path, media_type="application/pdf", filename=filename)


# --- statistics (ST-1) -----------------------------------------------------------------------


@router.get(
    "/clients/{client_id}/statistics",
    response_model=StatisticsOut,
    tags=["cdr"],
    operation_id="call_statistics",
    summary="Call totals per day, direction, operator or internal number",
)
def call_statistics(access: CdrReader, params: Annotated[StatsParams, Query()]) -> StatisticsOut:
    """ST-1: calls, answered calls, duration, billable seconds and recorded cost per group;
    days are the client's local days. The period defaults to the last 30 days."""
    call_filter = build_filter(params, access)
    stop = call_filter.start_to_ms if call_filter.start_to_ms is not None else now_ms()
    start = call_filter.start_from_ms
    if start is None:
        start = stop - int(DEFAULT_STATS_PERIOD.total_seconds() * 1000)
    if params.group == "day" and stop - start > MAX_DAY_PERIOD.total_seconds() * 1000:
        raise invalid("from", f"a per-day chart covers at most {MAX_DAY_PERIOD.days} days")
    call_filter = replace(call_filter, start_from_ms=start, start_to_ms=stop)
    rows = search.statistics(access.db, call_filter, params.group, access.tz)
    return _stats_out(params.group, access.tz, start, stop, rows)


def _stats_out(
    group: str, tz: ZoneInfo, start: int, stop: int, rows: list[StatRow]
) -> StatisticsOut:
    total = Totals()
    for row in rows:
        total.add(row.totals)
    return StatisticsOut(
        group=group,
        timezone=tz.key,
        start=start,
        end=stop,
        start_ms=start,
        end_ms=stop,
        rows=[StatRowOut(key=r.key, label=r.label, **_totals_dict(r.totals)) for r in rows],
        totals=StatTotals(**_totals_dict(total)),
    )


def _totals_dict(totals: Totals) -> dict[str, Any]:
    return {
        "calls": totals.calls,
        "answered": totals.answered,
        "duration_ms": totals.duration_ms,
        "billable_s": totals.billable_s,
        "cost": totals.cost,
    }


# --- audit log (ADM-7) -----------------------------------------------------------------------


def _audit_terms(params: AuditParams, tz: ZoneInfo) -> list[ColumnElement[bool]]:
    start, stop = _period(params, tz)
    terms: list[ColumnElement[bool]] = []
    if start is not None:
        terms.append(AuditEntry.at_ms >= start)
    if stop is not None:
        terms.append(AuditEntry.at_ms < stop)
    for column, value in (
        (AuditEntry.entity, params.entity),
        (AuditEntry.entity_id, params.entity_id),
        (AuditEntry.action, params.action),
        (AuditEntry.user_id, params.user_id),
    ):
        if value is not None:
            terms.append(column == value)
    return terms


def _require_audit(ctx: Ctx, refusal: str) -> None:
    """ADM-7: reading the log of ``ctx``'s client (or of the installation) needs AUDIT."""
    if rbac.access(ctx.principal, rbac.AUDIT.read, ctx.client_id) is not Access.FULL:
        raise forbidden(refusal)


def _audit_page(db: Session, params: AuditParams, tz: ZoneInfo, client_id: int | None) -> AuditPage:
    """One page of the log, newest first; only one client's when ``client_id`` is given."""
    terms = _audit_terms(params, tz)
    if client_id is not None:
        terms.append(AuditEntry.client_id == client_id)
    base = select(AuditEntry).where(*terms)
    total = db.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = db.scalars(
        base.order_by(AuditEntry.at_ms.desc(), AuditEntry.id.desc())
        .limit(params.limit)
        .offset(params.offset)
    )
    items = [
        AuditRead.model_validate(
            {**{k: getattr(r, k) for k in AuditRead.model_fields if k != "at"}, "at": r.at_ms}
        )
        for r in rows
    ]
    return AuditPage(items=items, total=total, limit=params.limit, offset=params.offset)


@router.get(
    "/clients/{client_id}/audit",
    response_model=AuditPage,
    tags=["audit"],
    operation_id="list_client_audit",
    summary="The audit log of one client",
)
def list_client_audit(ctx: ClientCtx, params: Annotated[AuditParams, Query()]) -> AuditPage:
    """ADM-7: who changed what of this client, when, before/after; newest first."""
    _require_audit(ctx, "you have no right to read the audit log")
    client = ctx.db.get(Client, ctx.client_id)
    tz = _zone(client.timezone if client else None, ctx.state)
    return _audit_page(ctx.db, params, tz, ctx.client_id)


@router.get(
    "/audit",
    response_model=AuditPage,
    tags=["audit"],
    operation_id="list_audit",
    summary="The whole audit log (provider staff)",
)
def list_audit(ctx: InstallationCtx, params: Annotated[GlobalAuditParams, Query()]) -> AuditPage:
    """ADM-7: every change of the installation, system-level ones included; provider only."""
    _require_audit(ctx, "only provider staff read the installation's audit log")
    return _audit_page(ctx.db, params, _zone(None, ctx.state), params.client_id)
