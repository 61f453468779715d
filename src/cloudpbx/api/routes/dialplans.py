"""Диалплан: dialplans with versions, DP-5 checks on save, and "where is it used?" (§3).

A dialplan belongs to one number (NUM-3) and is stored as immutable versions of steps: every
save (and every rollback) creates version N+1 and points the dialplan at it, so a call keeps
the version it started with (DP-4 "versions"). Reading, listing, renaming and deleting go
through the generic CRUD layer; the writes of steps are custom routes that validate the whole
dialplan with `cloudpbx.dialplan.validate` (DP-5) before anything is stored.

Rights: `rbac.NUMBER_CONFIG` — company administrators (and provider staff) see every dialplan
of the client, a client user those of the numbers assigned to them (ADM-1).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, false, func, or_, select
from sqlalchemy.exc import IntegrityError

from cloudpbx.api import rbac
from cloudpbx.api.crud import (
    ClientCtx,
    Ctx,
    ItemIdPath,
    Resource,
    audit,
    commit,
    fetch,
    make_update_schema,
    register,
    scope_filters,
)
from cloudpbx.api.errors import ApiError, conflict, forbidden, invalid, not_found
from cloudpbx.api.rbac import Access, Principal
from cloudpbx.api.schemas.common import In, Millis, OwnedOut, RefId, Text
from cloudpbx.api.simulation import SimulateBody, SimulationOut, simulate_stored
from cloudpbx.db.models import (
    Campaign,
    CampaignClassifier,
    Classifier,
    ClientOwned,
    Dialplan,
    DialplanStep,
    DialplanVersion,
    ExternalNumber,
    ForwardingNumber,
    InternalNumber,
    MediaFile,
    Port,
    Queue,
    QueueAgent,
    VoicemailBox,
    VoiceMenu,
    VoiceMenuKey,
)
from cloudpbx.dialplan import (
    Action,
    Condition,
    Issue,
    Resolver,
    Severity,
    Step,
    TargetKind,
    TargetRef,
    TargetStatus,
    has_errors,
    validate,
)
from cloudpbx.dialplan import Dialplan as Plan
from cloudpbx.dialplan.convert import (
    KIND_COLUMN,
    build_dialplan,
    issue_field,
    issue_to_json,
    step_from_json,
    step_from_row,
    step_to_columns,
    step_to_json,
)

router = APIRouter()

MAX_STEPS = 500
"""ADM-5: the most steps one dialplan may have (a graph nobody could read anyway)."""
MAX_LAYOUT_CHARS = 200_000

TARGET_MODELS: dict[TargetKind, type[ClientOwned]] = {
    TargetKind.PORT: Port,
    TargetKind.QUEUE: Queue,
    TargetKind.FORWARDING_NUMBER: ForwardingNumber,
    TargetKind.VOICE_MENU: VoiceMenu,
    TargetKind.MEDIA_FILE: MediaFile,
    TargetKind.VOICEMAIL_BOX: VoicemailBox,
    TargetKind.CLASSIFIER: Classifier,
    TargetKind.INTERNAL_NUMBER: InternalNumber,
}
"""DP-1: the table behind each kind of step target."""


# --- schemas ---------------------------------------------------------------------------------

Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
HHMM = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["09:00"])]
TimeRangeBody = tuple[HHMM, HHMM]
ParamKey = Annotated[str, Field(min_length=1, max_length=64)]
ParamValueBody = bool | Int32 | Annotated[str, Field(max_length=1000)]
Layout = Annotated[
    dict[str, Any], Field(description="editor drawing (box positions), kept per version")
]


class ExceptionBody(In):
    """A dated exception: a holiday (open=false) or a transferred working day (DP-4)."""

    date: dt.date
    open: bool = False
    ranges: Annotated[list[TimeRangeBody], Field(max_length=24)] = Field(default_factory=list)


class ScheduleBody(In):
    """DP-1: week days (0 = Monday … 6 = Sunday) + [start, end) ranges + dated exceptions."""

    days: Annotated[list[Annotated[int, Field(ge=-100, le=100)]], Field(max_length=7)] = Field(
        default_factory=lambda: list(range(7))
    )
    ranges: Annotated[list[TimeRangeBody], Field(max_length=24)] = Field(default_factory=list)
    exceptions: Annotated[list[ExceptionBody], Field(max_length=400)] = Field(default_factory=list)


class TargetBody(In):
    """DP-1: a typed reference to one of the client's objects."""

    kind: TargetKind
    id: RefId


class StepBody(In):
    """DP-1: one step. Problems of values (missing steps, targets) are reported by DP-5."""

    level: Annotated[int, Field(ge=1, le=100_000, description="the step's number; 1 = entry")]
    action: Action
    target: TargetBody | None = None
    timeout: Annotated[Int32, Field(description="seconds; 0 = installation maximum")] = 0
    schedule: ScheduleBody = Field(default_factory=ScheduleBody)
    conditions: Annotated[
        dict[Condition, Int32], Field(description="DP-3 condition → step number")
    ] = Field(default_factory=dict)
    params: dict[ParamKey, ParamValueBody] = Field(default_factory=dict)
    options: dict[ParamKey, ParamValueBody] = Field(default_factory=dict)


Steps = Annotated[list[StepBody], Field(max_length=MAX_STEPS)]


class IssueOut(BaseModel):
    """A DP-5 finding; ``field`` is ``steps.<level>.<field>``."""

    severity: Severity
    code: str
    level: int | None
    field: str
    message: str


class DialplanMeta(In):
    name: Annotated[str, Field(max_length=200)] = ""
    description: Text = ""


class DialplanCreate(DialplanMeta):
    internal_number_id: RefId | None = None
    external_number_id: RefId | None = None
    steps: Steps
    layout: Layout = Field(default_factory=dict)
    comment: Text = ""


DialplanUpdate = make_update_schema(DialplanMeta, "DialplanUpdate")


class DialplanRead(OwnedOut):
    name: str
    description: str
    internal_number_id: int | None
    external_number_id: int | None
    version: int = Field(description="the current version")
    steps: list[StepBody]
    layout: dict[str, Any]
    warnings: list[IssueOut] = Field(description="what DP-5 finds in the current version")


class StepsSave(In):
    steps: Steps
    layout: Layout = Field(default_factory=dict)
    comment: Text = ""
    base_version: Annotated[
        int, Field(ge=0, description="the version the edit started from (else 409)")
    ]


class StepsCheck(In):
    steps: Steps


class CheckResult(BaseModel):
    valid: bool
    issues: list[IssueOut]


class VersionSummary(BaseModel):
    number: int
    created_ms: Millis
    created_by: int | None
    comment: str
    step_count: int
    current: bool


class VersionList(BaseModel):
    current_version: int
    items: list[VersionSummary]


class VersionRead(BaseModel):
    number: int
    created_ms: Millis
    created_by: int | None
    comment: str
    current: bool
    steps: list[StepBody]
    layout: dict[str, Any]
    warnings: list[IssueOut]


class RollbackBody(In):
    version: Annotated[int, Field(ge=1, description="the version to copy")]
    comment: Text = ""
    base_version: Annotated[int | None, Field(ge=0)] = None


class DialplanUsage(BaseModel):
    id: int
    name: str
    internal_number_id: int | None
    external_number_id: int | None
    version: int
    levels: list[int]


class UsageRef(BaseModel):
    id: int
    name: str
    where: list[str]


class UsagesRead(BaseModel):
    kind: TargetKind
    id: int
    dialplans: list[DialplanUsage]
    queues: list[UsageRef]
    voice_menus: list[UsageRef]
    campaigns: list[UsageRef]


# --- reading ---------------------------------------------------------------------------------


def _version_row(ctx: Ctx, dialplan: Dialplan, number: int) -> DialplanVersion | None:
    query = select(DialplanVersion).where(
        DialplanVersion.dialplan_id == dialplan.id, DialplanVersion.number == number
    )
    return ctx.db.scalar(query)


def _plan_of(version: DialplanVersion | None) -> Plan:
    if version is None:
        return Plan(steps={}, version=0)
    plan, _ = build_dialplan((step_from_row(s) for s in version.steps), version=version.number)
    return plan


def _stored_issues(plan: Plan) -> list[IssueOut]:
    """DP-5 findings of a stored version. Targets were checked on save; a later delete with
    ``cascade=true`` empties the reference, which then shows as an error here."""
    if not plan.steps:
        return []
    return _issues_out(validate(plan, lambda _ref: TargetStatus.OK))


def _issues_out(issues: Iterable[Issue]) -> list[IssueOut]:
    return [IssueOut.model_validate(issue_to_json(i)) for i in issues]


def _steps_out(plan: Plan) -> list[StepBody]:
    return [StepBody.model_validate(step_to_json(s)) for s in plan.steps.values()]


def _serialize(ctx: Ctx, obj: Any) -> DialplanRead:
    version = _version_row(ctx, obj, obj.current_version)
    plan = _plan_of(version)
    return DialplanRead(
        id=obj.id,
        client_id=obj.client_id,
        created_ms=obj.created_ms,
        updated_ms=obj.updated_ms,
        name=obj.name,
        description=obj.description,
        internal_number_id=obj.internal_number_id,
        external_number_id=obj.external_number_id,
        version=obj.current_version,
        steps=_steps_out(plan),
        layout=dict(version.layout) if version is not None else {},
        warnings=_stored_issues(plan),
    )


def _own_numbers(principal: Principal) -> ColumnElement[bool]:
    """ADM-1: a client user reaches the dialplans of the numbers assigned to them."""
    conditions: list[ColumnElement[bool]] = []
    if principal.internal_number_ids:
        conditions.append(Dialplan.internal_number_id.in_(principal.internal_number_ids))
    if principal.external_number_ids:
        conditions.append(Dialplan.external_number_id.in_(principal.external_number_ids))
    return or_(*conditions) if conditions else false()


DIALPLANS = Resource(
    name="dialplans",
    title="dialplan",
    model=Dialplan,
    create_schema=None,  # custom route below: a dialplan is created with its version 1
    update_schema=DialplanUpdate,
    read_schema=DialplanRead,
    policy=rbac.NUMBER_CONFIG,
    sortable=("id", "name"),
    filters=("internal_number_id", "external_number_id"),
    search=("name", "description"),
    number_filter=_own_numbers,
    serialize=_serialize,
    tags=["dialplans"],
)

register(router, [DIALPLANS])


# --- validation (DP-5) -----------------------------------------------------------------------


def _resolver(ctx: Ctx) -> Resolver:
    """Look a target up for the dialplan's client: ok, foreign (another client's) or missing."""

    def resolve(ref: TargetRef) -> TargetStatus:
        model = TARGET_MODELS[ref.kind]
        owner = ctx.db.scalar(select(model.client_id).where(model.id == ref.id))
        if owner is None:
            return TargetStatus.MISSING
        return TargetStatus.OK if owner == ctx.client_id else TargetStatus.FOREIGN

    return resolve


def _parse(bodies: Sequence[StepBody]) -> list[Step]:
    steps: list[Step] = []
    for body in bodies:
        try:
            steps.append(step_from_json(body.model_dump(mode="json")))
        except (KeyError, ValueError) as exc:  # shapes are checked by the schema already
            raise invalid(f"steps.{body.level}", str(exc)) from exc
    return steps


def _check(ctx: Ctx, steps: Iterable[Step], version: int) -> tuple[Plan, list[Issue]]:
    plan, issues = build_dialplan(steps, version=version)
    issues += validate(plan, _resolver(ctx))
    issues.sort(key=lambda i: (i.severity is Severity.WARNING, i.level or 0))
    return plan, issues


def _checked(ctx: Ctx, steps: Iterable[Step], version: int) -> Plan:
    """DP-5: the dialplan to save, or 422 ``dialplan_invalid`` listing every issue."""
    plan, issues = _check(ctx, steps, version)
    if has_errors(issues):
        first = next(i for i in issues if i.severity is Severity.ERROR)
        raise ApiError(
            422,
            "dialplan_invalid",
            first.message,
            field=issue_field(first),
            details=[issue_to_json(i) for i in issues],
        )
    return plan


def _layout(layout: dict[str, Any]) -> dict[str, Any]:
    """The editor's drawing is free-form JSON, but bounded and storable on every database."""
    try:
        text = json.dumps(layout, allow_nan=False)
    except ValueError as exc:  # NaN / Infinity: Python parses them, PostgreSQL JSON does not
        raise invalid("layout", "must be plain JSON (no NaN or Infinity)") from exc
    if len(text) > MAX_LAYOUT_CHARS:
        raise invalid("layout", f"is too large (at most {MAX_LAYOUT_CHARS} characters of JSON)")
    return layout


# --- writing ---------------------------------------------------------------------------------


def _flush(ctx: Ctx, field: str | None = None) -> None:
    """Flush, turning a unique-key race with a concurrent request into a 409."""
    try:
        ctx.db.flush()
    except IntegrityError as exc:
        ctx.db.rollback()
        raise conflict(field, "the dialplan was changed by someone else; reload it") from exc


def _add_version(
    ctx: Ctx, dialplan: Dialplan, plan: Plan, layout: dict[str, Any], comment: str
) -> None:
    """Store ``plan`` as version N+1 and make it current; old versions are never touched."""
    latest = ctx.db.scalar(
        select(func.max(DialplanVersion.number)).where(DialplanVersion.dialplan_id == dialplan.id)
    )
    number = max(latest or 0, dialplan.current_version) + 1
    ctx.db.add(
        DialplanVersion(
            dialplan_id=dialplan.id,
            client_id=dialplan.client_id,
            number=number,
            created_by=ctx.principal.user_id,
            comment=comment,
            layout=layout,
            steps=[DialplanStep(**step_to_columns(s)) for s in plan.steps.values()],
        )
    )
    dialplan.current_version = number
    _flush(ctx)


def _store_version(
    ctx: Ctx, dialplan: Dialplan, plan: Plan, layout: dict[str, Any], comment: str, action: str
) -> DialplanRead:
    """Add ``plan`` as the new current version, audited as ``action`` with before/after."""
    before = _serialize(ctx, dialplan)
    _add_version(ctx, dialplan, plan, layout, comment)
    after = _serialize(ctx, dialplan)
    audit(ctx, action, DIALPLANS.name, dialplan.id, before, after)
    commit(ctx)
    return after


def _check_base(dialplan: Dialplan, base_version: int | None) -> None:
    """Optimistic concurrency: an edit of an older version would silently undo another's."""
    if base_version is None or base_version == dialplan.current_version:
        return
    raise conflict(
        "base_version",
        f"the dialplan was changed by someone else: you edited version {base_version}, "
        f"the current version is {dialplan.current_version}; reload it and apply your changes",
        details=[{"current_version": dialplan.current_version}],
    )


def _number_of(body: DialplanCreate) -> tuple[str, int]:
    """NUM-3: a dialplan belongs to exactly one number, internal or external."""
    given = [
        (name, value)
        for name, value in (
            ("internal_number_id", body.internal_number_id),
            ("external_number_id", body.external_number_id),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise invalid(
            "internal_number_id", "give exactly one of internal_number_id and external_number_id"
        )
    return given[0]


def _check_number(ctx: Ctx, field: str, number_id: int) -> None:
    """The number is this client's and has no dialplan yet (409 naming the field)."""
    model = InternalNumber if field == "internal_number_id" else ExternalNumber
    ctx.check_ref(model, number_id, field)
    column = getattr(Dialplan, field)
    existing = ctx.db.scalar(select(Dialplan.id).where(column == number_id))
    if existing is not None:
        number = ctx.db.scalar(select(model.number).where(model.id == number_id))
        raise conflict(field, f"number {number} already has a dialplan (dialplan {existing})")


@router.post(
    "/clients/{client_id}/dialplans",
    response_model=DialplanRead,
    status_code=201,
    tags=["dialplans"],
    operation_id="create_dialplans",
    summary="Create a dialplan with its version 1",
)
def create_dialplan(ctx: ClientCtx, body: DialplanCreate) -> DialplanRead:
    """NUM-3, DP-1, DP-5: a number's dialplan, checked before it is stored."""
    scope_filters(ctx, DIALPLANS, "create")
    field, number_id = _number_of(body)
    _check_number(ctx, field, number_id)
    plan = _checked(ctx, _parse(body.steps), version=1)
    dialplan = Dialplan(
        client_id=ctx.client_id, name=body.name, description=body.description, current_version=0
    )
    setattr(dialplan, field, number_id)
    ctx.db.add(dialplan)
    _flush(ctx, field)
    _add_version(ctx, dialplan, plan, _layout(body.layout), body.comment)
    after = _serialize(ctx, dialplan)
    audit(ctx, "create", DIALPLANS.name, dialplan.id, None, after)
    commit(ctx)
    return after


@router.put(
    "/clients/{client_id}/dialplans/{item_id}/steps",
    response_model=DialplanRead,
    tags=["dialplans"],
    operation_id="save_dialplan_steps",
    summary="Save the steps as a new version",
)
def save_steps(ctx: ClientCtx, item_id: ItemIdPath, body: StepsSave) -> DialplanRead:
    """DP-5: validated, then stored as version N+1 (DP-4 "versions"); 409 on a stale base."""
    dialplan = fetch(ctx, DIALPLANS, item_id, "update")
    _check_base(dialplan, body.base_version)
    plan = _checked(ctx, _parse(body.steps), version=dialplan.current_version + 1)
    return _store_version(ctx, dialplan, plan, _layout(body.layout), body.comment, "update")


@router.post(
    "/clients/{client_id}/dialplans/validate",
    response_model=CheckResult,
    tags=["dialplans"],
    operation_id="validate_dialplan",
    summary="Check steps without saving (for the editor)",
)
def check_steps(ctx: ClientCtx, body: StepsCheck) -> CheckResult:
    """DP-5 as a dry run: every issue, errors first; nothing is stored."""
    scope_filters(ctx, DIALPLANS, "read")
    _plan, issues = _check(ctx, _parse(body.steps), version=0)
    return CheckResult(valid=not has_errors(issues), issues=_issues_out(issues))


# --- versions --------------------------------------------------------------------------------

VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="version number")]


@router.get(
    "/clients/{client_id}/dialplans/{item_id}/versions",
    response_model=VersionList,
    tags=["dialplans"],
    operation_id="list_dialplan_versions",
    summary="List the saved versions, newest first",
)
def list_versions(ctx: ClientCtx, item_id: ItemIdPath) -> VersionList:
    """DP-4 "versions": every save is kept."""
    dialplan = fetch(ctx, DIALPLANS, item_id, "read")
    v = DialplanVersion
    query = (
        select(v.number, v.created_ms, v.created_by, v.comment, func.count(DialplanStep.id))
        .outerjoin(DialplanStep, DialplanStep.version_id == v.id)
        .where(v.dialplan_id == dialplan.id)
        .group_by(v.id, v.number, v.created_ms, v.created_by, v.comment)
        .order_by(v.number.desc())
    )
    items = [
        VersionSummary(
            number=number,
            created_ms=created_ms,
            created_by=created_by,
            comment=comment,
            step_count=count,
            current=number == dialplan.current_version,
        )
        for number, created_ms, created_by, comment, count in ctx.db.execute(query).all()
    ]
    return VersionList(current_version=dialplan.current_version, items=items)


@router.get(
    "/clients/{client_id}/dialplans/{item_id}/versions/{number}",
    response_model=VersionRead,
    tags=["dialplans"],
    operation_id="get_dialplan_version",
    summary="Read one saved version",
)
def get_version(ctx: ClientCtx, item_id: ItemIdPath, number: VersionPath) -> VersionRead:
    dialplan = fetch(ctx, DIALPLANS, item_id, "read")
    version = _version_row(ctx, dialplan, number)
    if version is None:
        raise not_found("version")
    plan = _plan_of(version)
    return VersionRead(
        number=version.number,
        created_ms=version.created_ms,
        created_by=version.created_by,
        comment=version.comment,
        current=version.number == dialplan.current_version,
        steps=_steps_out(plan),
        layout=dict(version.layout),
        warnings=_stored_issues(plan),
    )


@router.post(
    "/clients/{client_id}/dialplans/{item_id}/rollback",
    response_model=DialplanRead,
    tags=["dialplans"],
    operation_id="rollback_dialplan",
    summary="Make a copy of an old version the new current version",
)
def rollback(ctx: ClientCtx, item_id: ItemIdPath, body: RollbackBody) -> DialplanRead:
    """DP-4 "versions": rollback adds version N+1 (a re-validated copy); history stays."""
    dialplan = fetch(ctx, DIALPLANS, item_id, "update")
    _check_base(dialplan, body.base_version)
    source = _version_row(ctx, dialplan, body.version)
    if source is None:
        raise not_found("version")
    steps = [step_from_row(s) for s in source.steps]
    plan = _checked(ctx, steps, version=dialplan.current_version + 1)
    comment = body.comment or f"rollback to version {source.number}"
    return _store_version(ctx, dialplan, plan, dict(source.layout), comment, "rollback")


@router.post(
    "/clients/{client_id}/dialplans/{item_id}/simulate",
    response_model=SimulationOut,
    tags=["dialplans"],
    operation_id="simulate_dialplan",
    summary="Simulate a call: the path of steps with the reason for each move (DP-6)",
)
def simulate(
    ctx: ClientCtx,
    item_id: ItemIdPath,
    body: Annotated[SimulateBody | None, Body()] = None,
) -> SimulationOut:
    """DP-6: the engine's interpreter run on assumed states; nothing is stored or rung."""
    dialplan = fetch(ctx, DIALPLANS, item_id, "read")
    now = dt.datetime.now(dt.UTC)
    return simulate_stored(ctx.db, ctx.state.settings, dialplan, body or SimulateBody(), now)


# --- usages (DP-1: "where is this port used?") -----------------------------------------------


@router.get(
    "/clients/{client_id}/usages",
    response_model=UsagesRead,
    tags=["dialplans"],
    operation_id="get_usages",
    summary="Where an object is used: dialplans, queues, voice menus, campaigns",
)
def get_usages(
    ctx: ClientCtx,
    kind: Annotated[TargetKind, Query(description="the object's kind")],
    item_id: Annotated[RefId, Query(alias="id", description="the object's id")],
) -> UsagesRead:
    """DP-1: targets are references, so "where is this port used?" has an answer."""
    if rbac.access(ctx.principal, rbac.CLIENT_CONFIG.read, ctx.client_id) is not Access.FULL:
        raise forbidden("you have no right to view this client's settings")
    model = TARGET_MODELS[kind]
    query = select(model.id).where(model.id == item_id, model.client_id == ctx.client_id)
    if ctx.db.scalar(query) is None:
        raise not_found(kind.label)
    return UsagesRead(
        kind=kind,
        id=item_id,
        dialplans=_dialplan_usages(ctx, kind, item_id),
        queues=_queue_usages(ctx, kind, item_id),
        voice_menus=_menu_usages(ctx, kind, item_id),
        campaigns=_campaign_usages(ctx, kind, item_id),
    )


def _dialplan_usages(ctx: Ctx, kind: TargetKind, item_id: int) -> list[DialplanUsage]:
    """Steps of current versions only: old versions are history, not use (DP-4)."""
    column = getattr(DialplanStep, KIND_COLUMN[kind])
    query = (
        select(Dialplan, DialplanStep.level)
        .join(DialplanVersion, DialplanVersion.dialplan_id == Dialplan.id)
        .join(DialplanStep, DialplanStep.version_id == DialplanVersion.id)
        .where(
            column == item_id,
            Dialplan.client_id == ctx.client_id,
            DialplanVersion.number == Dialplan.current_version,
        )
        .order_by(Dialplan.id, DialplanStep.level)
    )
    found: dict[int, DialplanUsage] = {}
    for dialplan, level in ctx.db.execute(query).all():
        usage = found.setdefault(
            dialplan.id,
            DialplanUsage(
                id=dialplan.id,
                name=dialplan.name,
                internal_number_id=dialplan.internal_number_id,
                external_number_id=dialplan.external_number_id,
                version=dialplan.current_version,
                levels=[],
            ),
        )
        usage.levels.append(level)
    return list(found.values())


def _refs(rows: Iterable[Any]) -> list[UsageRef]:
    """Group ``(id, name, where)`` rows by object, keeping the order of first appearance."""
    found: dict[int, UsageRef] = {}
    for obj_id, name, where in rows:
        found.setdefault(obj_id, UsageRef(id=obj_id, name=name, where=[])).where.append(where)
    return list(found.values())


def _queue_usages(ctx: Ctx, kind: TargetKind, item_id: int) -> list[UsageRef]:
    """Q-1: ports and forwarding numbers are queue agents."""
    columns = {
        TargetKind.PORT: QueueAgent.port_id,
        TargetKind.FORWARDING_NUMBER: QueueAgent.forwarding_number_id,
    }
    if kind not in columns:
        return []
    query = (
        select(Queue.id, Queue.name)
        .join(QueueAgent, QueueAgent.queue_id == Queue.id)
        .where(columns[kind] == item_id, Queue.client_id == ctx.client_id)
        .order_by(Queue.id, QueueAgent.position)
    )
    return _refs((qid, name, "agent") for qid, name in ctx.db.execute(query).all())


def _menu_usages(ctx: Ctx, kind: TargetKind, item_id: int) -> list[UsageRef]:
    """IVR-1: keys point at internal numbers; the announcement is a media file."""
    if kind is TargetKind.INTERNAL_NUMBER:
        query = (
            select(VoiceMenu.id, VoiceMenu.name, VoiceMenuKey.key)
            .join(VoiceMenuKey, VoiceMenuKey.menu_id == VoiceMenu.id)
            .where(VoiceMenuKey.internal_number_id == item_id)
            .where(VoiceMenu.client_id == ctx.client_id)
            .order_by(VoiceMenu.id, VoiceMenuKey.key)
        )
        return _refs((mid, name, f"key {key}") for mid, name, key in ctx.db.execute(query).all())
    if kind is TargetKind.MEDIA_FILE:
        announced = (
            select(VoiceMenu.id, VoiceMenu.name)
            .where(VoiceMenu.announcement_id == item_id, VoiceMenu.client_id == ctx.client_id)
            .order_by(VoiceMenu.id)
        )
        rows = ctx.db.execute(announced).all()
        return _refs((mid, name, "announcement") for mid, name in rows)
    return []


def _campaign_usages(ctx: Ctx, kind: TargetKind, item_id: int) -> list[UsageRef]:
    """TM-1: a campaign's processing number and its classifiers (contact lists)."""
    if kind is TargetKind.INTERNAL_NUMBER:
        query = select(Campaign.id, Campaign.name).where(
            Campaign.processing_number_id == item_id, Campaign.client_id == ctx.client_id
        )
        where = "processing number"
    elif kind is TargetKind.CLASSIFIER:
        query = (
            select(Campaign.id, Campaign.name)
            .join(CampaignClassifier, CampaignClassifier.campaign_id == Campaign.id)
            .where(CampaignClassifier.classifier_id == item_id)
            .where(Campaign.client_id == ctx.client_id)
        )
        where = "contact list"
    else:
        return []
    rows = ctx.db.execute(query.order_by(Campaign.id)).all()
    return _refs((cid, name, where) for cid, name in rows)
