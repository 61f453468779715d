"""Active calls (AC-1) and port availability (PRT-1): live state read through the engine.

Nothing here touches SIP: every answer comes from :class:`~cloudpbx.engine.control.EngineControl`
(``AppState.engine``), which is :class:`~cloudpbx.engine.control.NoEngine` when the API runs
without an engine in its process — lists are then empty with ``engine_running: false`` and a
hang-up answers 503 ``engine_not_running``.

The paths are ``/clients/{client_id}/active-calls…``: ``/clients/{client_id}/calls`` is the call
detail records' search (CDR-2, routes/cdr.py).

Rights: the list and the stream need a CDR or "manage calls" right of the caller's level
(provider staff: every client; a company administrator: its client; a client user: the calls of
their own numbers only — those through one of their internal numbers, or from or to one of their
numbers). Hanging up needs the level's "manage calls" right, with the same scope. Another
client's call is 404, like every other object of another tenant (ADM-4).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from cloudpbx.api import rbac
from cloudpbx.api.crud import ClientCtx, Ctx, ItemIdPath, fetch
from cloudpbx.api.errors import ApiError, forbidden, not_found
from cloudpbx.api.rbac import Access, Policy
from cloudpbx.api.routes.numbering import PORTS
from cloudpbx.api.schemas.common import Millis, OptMillis, Out
from cloudpbx.cdr import search
from cloudpbx.cdr.search import NumberScope
from cloudpbx.db.models import Port
from cloudpbx.engine.active_calls import ActiveCall, CallFeed, SubscriberDroppedError
from cloudpbx.engine.control import EngineControl, EngineNotRunningError, PortStatus
from cloudpbx.rights import Right

router = APIRouter()

HEARTBEAT_S = 15.0
"""A comment line this often keeps proxies from closing an idle event stream."""

S, A, C, N = Right, rbac.Scope.ANY_CLIENT, rbac.Scope.OWN_CLIENT, rbac.Scope.OWN_NUMBERS

# AC-1: read-only for those who see the client's calls, hang-up with "manage calls".
ACTIVE_CALLS = Policy(
    read=(
        (S.SYSTEM_MANAGE, A),
        (S.CLIENTS_VIEW_CDR, A),
        (S.CLIENTS_MANAGE_CALLS, A),
        (S.USERS_VIEW_CDR, C),
        (S.USERS_MANAGE_CALLS, C),
        (S.OWN_VIEW_CDR, N),
        (S.OWN_MANAGE_CALLS, N),
    ),
    create=(),
    update=(
        (S.SYSTEM_MANAGE, A),
        (S.CLIENTS_MANAGE_CALLS, A),
        (S.USERS_MANAGE_CALLS, C),
        (S.OWN_MANAGE_CALLS, N),
    ),
    delete=(),
)

CallUuidPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", description="call uuid")
]


# --- schemas ---------------------------------------------------------------------------------


class ActiveLegRead(Out):
    leg_id: str
    direction: str
    party: str
    port_id: int | None
    state: str


class ActiveCallRead(Out):
    """One call while it lasts (AC-1); ``start``/``answer`` are ISO 8601 UTC."""

    uuid: str
    client_id: int
    caller: str
    called: str
    internal_number: str | None
    state: str = Field(description="ringing, answered or held")
    start: Millis
    answer: OptMillis
    start_ms: int
    answer_ms: int | None
    legs: list[ActiveLegRead]


class ActiveCallList(BaseModel):
    items: list[ActiveCallRead]
    total: int
    engine_running: bool = Field(description="false: no engine in this process, lists are empty")


class ContactRead(Out):
    uri: str
    transport: str
    source: str = Field(description="address the registration came from (after NAT)")
    expires_at: Millis
    expires_at_ms: int
    user_agent: str
    available: bool = Field(description="false while the phone does not answer OPTIONS")


class PortStatusRead(BaseModel):
    """PRT-1: a port is available when one of its registered contacts answers."""

    port_id: int
    registered: bool
    available: bool
    contacts: list[ContactRead]
    engine_running: bool


# --- access ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallsAccess:
    ctx: Ctx
    client_id: int
    scope: NumberScope | None  # None: every call of the client

    @property
    def engine(self) -> EngineControl:
        return self.ctx.state.engine

    def sees(self, call: ActiveCall) -> bool:
        """ADM-1: a client user sees the calls of their numbers only."""
        if call.client_id != self.client_id:
            return False
        if self.scope is None:
            return True
        mine = self.scope.internal_numbers | self.scope.external_numbers
        return (
            call.internal_number in self.scope.internal_numbers
            or call.caller in mine
            or call.called in mine
        )


def _access(ctx: Ctx, grants: tuple[rbac.Grant, ...], refusal: str) -> CallsAccess:
    assert ctx.client_id is not None  # client_context checked the client
    principal = ctx.principal
    level = rbac.access(principal, grants, ctx.client_id)
    if level is Access.NONE:
        raise forbidden(refusal)
    scope = None
    if level is Access.NUMBERS:
        scope = search.scope_for(
            ctx.db,
            ctx.client_id,
            sorted(principal.internal_number_ids),
            sorted(principal.external_number_ids),
        )
    return CallsAccess(ctx, ctx.client_id, scope)


def calls_reader(ctx: ClientCtx) -> CallsAccess:
    """404 for a client the caller may not know, 403 without a right to see its calls."""
    return _access(ctx, ACTIVE_CALLS.read, "you have no right to see this client's calls")


def calls_manager(ctx: ClientCtx) -> CallsAccess:
    """404 for an unknown client, 403 without the "manage calls" right (AC-1)."""
    return _access(ctx, ACTIVE_CALLS.update, "you have no right to manage calls")


def stream_reader(ctx: ClientCtx) -> CallsAccess:
    """As :func:`calls_reader`, then the database connection goes back to the pool: the
    request's session lives as long as the stream, which may be hours."""
    access = calls_reader(ctx)
    ctx.db.rollback()
    return access


def _port(ctx: ClientCtx, item_id: ItemIdPath) -> Port:
    """The port, 404 for another client's, 403 without the right to read ports."""
    port: Port = fetch(ctx, PORTS, item_id, "read")
    return port


CallsReader = Annotated[CallsAccess, Depends(calls_reader)]
StreamReader = Annotated[CallsAccess, Depends(stream_reader)]
CallsManager = Annotated[CallsAccess, Depends(calls_manager)]


def _read(call: ActiveCall) -> ActiveCallRead:
    return ActiveCallRead(
        uuid=call.uuid,
        client_id=call.client_id,
        caller=call.caller,
        called=call.called,
        internal_number=call.internal_number,
        state=call.state.value,
        start=call.start_ms,
        answer=call.answer_ms,
        start_ms=call.start_ms,
        answer_ms=call.answer_ms,
        legs=[
            ActiveLegRead(
                leg_id=leg.leg_id,
                direction=leg.direction,
                party=leg.party,
                port_id=leg.port_id,
                state=leg.state.value,
            )
            for leg in call.legs
        ],
    )


async def _visible_calls(access: CallsAccess) -> list[ActiveCall]:
    return [c for c in await access.engine.active_calls(access.client_id) if access.sees(c)]


# --- routes ----------------------------------------------------------------------------------


@router.get(
    "/clients/{client_id}/active-calls",
    response_model=ActiveCallList,
    tags=["active calls"],
    operation_id="list_active_calls",
    summary="List the client's active calls",
)
async def list_active_calls(access: CallsReader) -> ActiveCallList:
    """AC-1: the calls up right now, oldest first (a client user: those of their numbers)."""
    calls = await _visible_calls(access)
    return ActiveCallList(
        items=[_read(c) for c in calls], total=len(calls), engine_running=access.engine.running
    )


@router.get(
    "/clients/{client_id}/active-calls/stream",
    tags=["active calls"],
    operation_id="stream_active_calls",
    summary="Live stream of call events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_active_calls(access: StreamReader) -> StreamingResponse:
    """AC-1 live push: ``snapshot`` (the current calls) first, then ``started``, ``answered``,
    ``held``, ``resumed``, ``updated`` and ``ended`` with the call as JSON data; a comment line
    every 15 s. ``dropped`` means the reader fell behind: reconnect. Without an engine the
    stream sends ``snapshot`` with ``engine_running: false`` and ends."""
    engine = access.engine
    # Subscribe before reading the list: a call may then appear twice, never be missed.
    feed = engine.subscribe(access.client_id)
    calls = await _visible_calls(access)
    return StreamingResponse(
        _events(access, feed, calls),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/clients/{client_id}/active-calls/{call_uuid}/hangup",
    status_code=204,
    tags=["active calls"],
    operation_id="hangup_active_call",
    summary="Hang up an active call",
    responses={
        204: {"description": "the call is being hung up"},
        403: {"description": "no manage-calls right"},
        404: {"description": "no such active call for this caller"},
        503: {"description": "no engine runs in this process"},
    },
)
async def hangup_active_call(access: CallsManager, call_uuid: CallUuidPath) -> Response:
    """AC-1: end the call for every party (those with the "manage calls" right)."""
    engine = access.engine
    if not engine.running:
        raise _not_running()
    call = next((c for c in await _visible_calls(access) if c.uuid == call_uuid), None)
    if call is None:
        raise not_found("active call")
    try:
        ended = await engine.hangup(access.client_id, call_uuid)
    except EngineNotRunningError as exc:
        raise _not_running() from exc
    if not ended:
        raise not_found("active call")  # it ended in the meantime
    return Response(status_code=204)


@router.get(
    "/clients/{client_id}/ports/{item_id}/status",
    response_model=PortStatusRead,
    tags=["ports"],
    operation_id="get_port_status",
    summary="Registration and availability of a port",
)
async def port_status(port: Annotated[Port, Depends(_port)], ctx: ClientCtx) -> PortStatusRead:
    """PRT-1: the port's registered contacts and whether it is available (a live contact)."""
    engine = ctx.state.engine
    assert ctx.client_id is not None
    statuses = await engine.port_status(ctx.client_id)
    status = statuses.get(port.id) or PortStatus(port_id=port.id)
    return PortStatusRead(
        port_id=port.id,
        registered=status.registered,
        available=status.available,
        contacts=[
            ContactRead(
                uri=c.uri,
                transport=c.transport,
                source=c.source,
                expires_at=c.expires_at_ms,
                expires_at_ms=c.expires_at_ms,
                user_agent=c.user_agent,
                available=c.available,
            )
            for c in status.contacts
        ],
        engine_running=engine.running,
    )


# --- helpers ---------------------------------------------------------------------------------


def _not_running() -> ApiError:
    return ApiError(503, "engine_not_running", "engine not running: calls cannot be managed")


def _sse(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _snapshot(access: CallsAccess, calls: Iterable[ActiveCall]) -> bytes:
    payload = {
        "engine_running": access.engine.running,
        "calls": [_read(c).model_dump(mode="json") for c in calls],
    }
    return _sse("snapshot", payload)


async def _events(
    access: CallsAccess, feed: CallFeed, calls: list[ActiveCall]
) -> AsyncIterator[bytes]:
    """The SSE body; the feed is closed however the stream ends (client gone included)."""
    try:
        yield _snapshot(access, calls)
        iterator = feed.__aiter__()
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    update = await iterator.__anext__()
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            except StopAsyncIteration:
                return
            except SubscriberDroppedError as exc:
                yield _sse("dropped", {"reason": str(exc)})
                return
            if access.sees(update.call):
                yield _sse(update.kind, _read(update.call).model_dump(mode="json"))
    finally:
        feed.close()
