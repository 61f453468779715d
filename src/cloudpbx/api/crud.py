"""The one CRUD layer every resource goes through (issue 2 §4–§6).

A :class:`Resource` declares a model, its schemas and its rights :class:`Policy`; :func:`router`
builds list/create/read/update/delete routes that always apply, in this order: the client is
visible to the caller (else 404), the caller's rights allow the action (else 403), rows are
filtered by tenant and — for client users — by their numbers, references point at objects of
the same client (else 422 naming the field), unique fields are free (else 409 naming the field),
and every change is written to the audit log with the state before and after.

This module deliberately avoids ``from __future__ import annotations``: the route functions are
built in closures and FastAPI must see their real parameter types.
"""

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    UniqueConstraint,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloudpbx.api import rbac
from cloudpbx.api.deps import CurrentPrincipal, DbSession, State
from cloudpbx.api.errors import ApiError, conflict, forbidden, invalid, not_found
from cloudpbx.api.rbac import Access, Policy, Principal
from cloudpbx.api.state import AppState
from cloudpbx.db.base import Base
from cloudpbx.db.models import AuditEntry, Client, Dialplan, DialplanStep, DialplanVersion

M = TypeVar("M", bound=Base)
MAX_PAGE = 500


@dataclass
class Ctx:
    """Everything a hook needs about the request being served."""

    db: Session
    principal: Principal
    state: AppState
    client_id: int | None
    request: Request | None = None

    def check_ref(self, model: type[Base], ref_id: int | None, field_name: str) -> None:
        """A reference must name an existing object of the same client (DP-5, ADM-4)."""
        if ref_id is None:
            return
        table = model.__table__
        assert isinstance(table, Table)
        query = select(table.c.id).where(table.c.id == ref_id)
        if "client_id" in table.c and self.client_id is not None:
            query = query.where(table.c.client_id == self.client_id)
        if self.db.scalar(query) is None:
            raise invalid(
                field_name, f"{table.name.rstrip('s')} {ref_id} not found", "bad_reference"
            )


Hook = Callable[[Ctx, dict[str, Any], Any], dict[str, Any]]
Apply = Callable[[Ctx, Any, dict[str, Any]], None]
Serialize = Callable[[Ctx, Any], BaseModel]
NumberFilter = Callable[[Principal], ColumnElement[bool]]


@dataclass
class Resource(Generic[M]):
    """A REST resource over one model; see the module docstring for what it guarantees."""

    name: str
    title: str
    model: type[M]
    create_schema: type[BaseModel] | None
    update_schema: type[BaseModel] | None
    read_schema: type[BaseModel]
    policy: Policy
    client_scoped: bool = True
    tenant_column: str | None = "client_id"
    sortable: tuple[str, ...] = ("id",)
    filters: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    number_filter: NumberFilter | None = None
    # Rows of the model that are not this resource's at all (e.g. users without a client).
    row_filter: Callable[[], ColumnElement[bool]] | None = None
    prepare: Hook | None = None
    apply: Apply | None = None
    serialize: Serialize | None = None
    after_write: Callable[[Ctx, Any], None] | None = None
    tags: list[str | Enum] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"/clients/{{client_id}}/{self.name}" if self.client_scoped else f"/{self.name}"

    @property
    def table(self) -> Table:
        table = self.model.__table__
        assert isinstance(table, Table)
        return table


def make_update_schema(create: type[BaseModel], name: str) -> type[BaseModel]:
    """Every field of the create schema, optional: PATCH changes only what it names.

    The field's constraints (``info.metadata``) stay on the inner type so that ``null`` is
    allowed by the schema and refused, naming the field, only where the column is NOT NULL.
    """
    fields: dict[str, Any] = {}
    for fname, info in create.model_fields.items():
        inner = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        optional = inner | None  # type: ignore[operator]
        fields[fname] = (optional, Field(None, description=info.description))
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def page_schema(read: type[BaseModel], name: str) -> type[BaseModel]:
    return create_model(
        name,
        items=(list[read], ...),  # type: ignore[valid-type]
        total=(int, ...),
        limit=(int, ...),
        offset=(int, ...),
    )


# --- scope ---------------------------------------------------------------------------------


def ensure_client(ctx: Ctx) -> None:
    """404 for a client the caller may not know of, or that does not exist (ADM-4)."""
    if ctx.client_id is None:
        return
    if (
        not rbac.sees_client(ctx.principal, ctx.client_id)
        or ctx.db.get(Client, ctx.client_id) is None
    ):
        raise not_found("client")


def scope_filters(ctx: Ctx, res: Resource[Any], action: str) -> list[ColumnElement[bool]]:
    """The row filters that the caller's rights allow for an action, or 403."""
    fixed = [res.row_filter()] if res.row_filter is not None else []
    return fixed + _grant_filters(ctx, res, action)


def _grant_filters(ctx: Ctx, res: Resource[Any], action: str) -> list[ColumnElement[bool]]:
    grants = res.policy.for_action(action)
    if res.client_scoped:
        return _client_scope(ctx, res, rbac.access(ctx.principal, grants, ctx.client_id))
    if rbac.access(ctx.principal, grants, None) is Access.FULL:
        return []
    own = ctx.principal.client_id
    if res.tenant_column and own is not None:
        level = rbac.access(ctx.principal, grants, own)
        if level is Access.FULL:
            return [res.table.c[res.tenant_column] == own]
    raise forbidden(f"you have no right to {action} {res.title}s")


def _client_scope(ctx: Ctx, res: Resource[Any], level: Access) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [res.table.c.client_id == ctx.client_id]
    if level is Access.FULL:
        return filters
    if level is Access.NUMBERS and res.number_filter is not None:
        return [*filters, res.number_filter(ctx.principal)]
    raise forbidden(f"you have no right to this action on {res.title}s")


def fetch(ctx: Ctx, res: Resource[M], item_id: int, action: str) -> M:
    query = select(res.model).where(res.table.c.id == item_id, *scope_filters(ctx, res, action))
    obj = ctx.db.scalar(query)
    if obj is None:
        raise not_found(res.title)
    return obj


# --- validation ------------------------------------------------------------------------------


def check_references(ctx: Ctx, res: Resource[Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        column = res.table.c.get(key)
        if column is None or value is None:
            continue
        for fk in column.foreign_keys:
            target = fk.column.table
            if target.name == "clients":
                continue
            model = _model_of(target)
            if model is not None:
                ctx.check_ref(model, value, key)


def _model_of(table: Any) -> type[Base] | None:
    for mapper in Base.registry.mappers:
        if mapper.local_table is table:
            cls: type[Base] = mapper.class_
            return cls
    return None


def check_not_null(res: Resource[Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        column = res.table.c.get(key)
        if value is None and column is not None and not column.nullable:
            raise invalid(key, "may not be null")


def check_unique(ctx: Ctx, res: Resource[Any], obj: Any, values: dict[str, Any]) -> None:
    """409 naming the field when a unique constraint would be violated (issue 2 §6)."""
    for constraint in res.table.constraints:
        if not isinstance(constraint, UniqueConstraint):
            continue
        names = [c.name for c in constraint.columns]
        if not any(n in values for n in names):
            continue
        wanted = {n: values.get(n, getattr(obj, n, None)) for n in names}
        query = select(res.table.c.id).where(*(res.table.c[n] == v for n, v in wanted.items()))
        if obj is not None:
            query = query.where(res.table.c.id != obj.id)
        if ctx.db.scalar(query.limit(1)) is not None:
            # Name the field the caller set, not a scoping column such as client_id.
            given = [n for n in names if n in values and n != "client_id"]
            shown = given[-1] if given else names[-1]
            raise conflict(shown, f"{shown}: {wanted[shown]!r} is already in use")


def write_values(ctx: Ctx, res: Resource[Any], data: dict[str, Any], obj: Any) -> dict[str, Any]:
    values = res.prepare(ctx, data, obj) if res.prepare else dict(data)
    column_values = {k: v for k, v in values.items() if k in res.table.c}
    check_not_null(res, column_values)
    check_references(ctx, res, column_values)
    check_unique(ctx, res, obj, column_values | _tenant(ctx, res))
    return values


def _tenant(ctx: Ctx, res: Resource[Any]) -> dict[str, Any]:
    return {"client_id": ctx.client_id} if res.client_scoped else {}


def assign(ctx: Ctx, res: Resource[Any], obj: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if key in res.table.c:
            setattr(obj, key, value)
    if res.apply:
        res.apply(ctx, obj, values)


# --- audit -----------------------------------------------------------------------------------


def to_read(ctx: Ctx, res: Resource[Any], obj: Any) -> BaseModel:
    if res.serialize:
        return res.serialize(ctx, obj)
    return res.read_schema.model_validate(obj, from_attributes=True)


def audit(
    ctx: Ctx,
    action: str,
    entity: str,
    entity_id: Any,
    before: BaseModel | dict[str, Any] | None,
    after: BaseModel | dict[str, Any] | None,
) -> None:
    """ADM-7: who, what, when, before/after — in the same transaction as the change."""
    ctx.db.add(
        AuditEntry(
            user_id=ctx.principal.user_id,
            user_login=ctx.principal.login,
            client_id=ctx.client_id,
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            before=_jsonable(before),
            after=_jsonable(after),
            remote_addr=_remote(ctx.request),
        )
    )
    _notify_after_commit(ctx, action, entity, entity_id)


# Audited actions that change nothing the engine uses.
_NOT_CONFIG = frozenset({"read_secret"})
# Installation-wide entities the engine uses (no client): operators and their trunks (TRK-1).
_INSTALLATION_CONFIG = frozenset({"operators"})
_CHANGED_KEY = "cloudpbx.config_changed"


def _notify_after_commit(ctx: Ctx, action: str, entity: str, entity_id: Any) -> None:
    """Once the change is committed, the engine rebuilds the client's snapshot (ENGINEERING
    §1), or reloads installation-wide configuration (trunks, TRK-1); a rolled-back change
    tells nobody."""
    client_id = ctx.client_id
    if client_id is None and entity == "clients" and entity_id is not None:
        client_id = int(entity_id)
    if action in _NOT_CONFIG:
        return
    if client_id is None and entity not in _INSTALLATION_CONFIG:
        return
    pending: set[int | None] | None = ctx.db.info.get(_CHANGED_KEY)
    if pending is None:
        pending = ctx.db.info[_CHANGED_KEY] = set()
        state = ctx.state

        def changed(session: Session) -> None:
            for cid in session.info.pop(_CHANGED_KEY, ()):
                if cid is None:
                    state.installation_changed()
                else:
                    state.config_changed(cid)

        event.listen(ctx.db, "after_commit", changed, once=True)
    pending.add(client_id)


def _jsonable(value: BaseModel | dict[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def _remote(request: Request | None) -> str | None:
    return request.client.host if request is not None and request.client else None


def commit(ctx: Ctx) -> None:
    try:
        ctx.db.commit()
    except IntegrityError as exc:
        ctx.db.rollback()
        raise conflict(None, "the change conflicts with existing data") from exc


# --- delete and usages -----------------------------------------------------------------------


def usages(db: Session, table: Table, item_id: int) -> list[dict[str, Any]]:
    """Rows that still reference an object through a RESTRICT key (issue 2 §6)."""
    found: list[dict[str, Any]] = []
    for other in Base.metadata.sorted_tables:
        for fk in other.foreign_keys:
            if fk.column.table is not table or fk.ondelete in ("CASCADE", "SET NULL"):
                continue
            found.extend(_referencing(db, other, fk.parent, item_id))
    return found


def _referencing(db: Session, other: Table, column: Any, item_id: int) -> list[dict[str, Any]]:
    if other.name == "dialplan_steps":
        return _live_step_usages(db, column, item_id)
    label = next((c for c in ("name", "number", "login", "key") if c in other.c), None)
    pk = other.c.id if "id" in other.c else next(iter(other.primary_key.columns))
    cols = [pk] + ([other.c[label]] if label else [])
    rows = db.execute(select(*cols).where(column == item_id).limit(50)).all()
    return [
        {
            "entity": other.name,
            "id": row[0],
            "label": row[1] if label else None,
            "field": column.name,
        }
        for row in rows
    ]


def _live_step_usages(db: Session, column: Any, item_id: int) -> list[dict[str, Any]]:
    """Only a dialplan's current version is "in use"; old versions are history (DP-4)."""
    query = (
        select(Dialplan.id, Dialplan.name, DialplanStep.level)
        .join(DialplanVersion, DialplanVersion.id == DialplanStep.version_id)
        .join(Dialplan, Dialplan.id == DialplanVersion.dialplan_id)
        .where(column == item_id, DialplanVersion.number == Dialplan.current_version)
        .limit(50)
    )
    return [
        {"entity": "dialplans", "id": dp_id, "label": f"{name} step {level}", "field": column.name}
        for dp_id, name, level in db.execute(query).all()
    ]


def detach(db: Session, table: Table, item_id: int, *, cascade: bool) -> None:
    """Clear references before a delete: history always, live ones only when asked."""
    for other in Base.metadata.sorted_tables:
        for fk in other.foreign_keys:
            if fk.column.table is not table or fk.ondelete in ("CASCADE", "SET NULL"):
                continue
            if (cascade or other.name == "dialplan_steps") and fk.parent.nullable:
                db.execute(update(other).where(fk.parent == item_id).values({fk.parent.name: None}))


def delete_object(ctx: Ctx, res: Resource[Any], obj: Any, *, cascade: bool) -> None:
    found = usages(ctx.db, res.table, obj.id)
    blocking = [u for u in found if not (cascade and res_nullable(u))]
    if blocking:
        raise ApiError(
            409,
            "in_use",
            f"{res.title} {obj.id} is in use by {len(blocking)} object(s); "
            "remove those references first or delete with cascade=true",
            details=blocking,
        )
    detach(ctx.db, res.table, obj.id, cascade=cascade)
    ctx.db.delete(obj)


def res_nullable(usage: dict[str, Any]) -> bool:
    table = Base.metadata.tables.get(usage["entity"])
    if usage["entity"] == "dialplans":
        table = Base.metadata.tables["dialplan_steps"]
    return table is not None and table.c[usage["field"]].nullable


# --- listing ---------------------------------------------------------------------------------


def list_query_schema(res: Resource[Any], name: str) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "limit": (int, Field(50, ge=1, le=MAX_PAGE, description="page size")),
        "offset": (int, Field(0, ge=0, le=2**62, description="rows to skip")),
        "sort": (
            str | None,
            Field(None, description=f"one of {', '.join(res.sortable)}; -name for descending"),
        ),
    }
    if res.search:
        fields["q"] = (
            str | None,
            Field(None, max_length=200, description=f"search in {', '.join(res.search)}"),
        )
    for fname in res.filters:
        py_type = res.table.c[fname].type.python_type
        described = f"only rows with this {fname}"
        info = (
            Field(None, description=described, ge=-(2**62), le=2**62)
            if py_type is int
            else Field(None, description=described)
        )
        fields[fname] = (py_type | None, info)
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def apply_listing(res: Resource[Any], query: Select[Any], params: BaseModel) -> Select[Any]:
    values = params.model_dump()
    for fname in res.filters:
        if values.get(fname) is not None:
            query = query.where(res.table.c[fname] == values[fname])
    text = values.get("q")
    if text:
        pattern = f"%{_escape_like(text)}%"
        query = query.where(or_(*(res.table.c[c].ilike(pattern, escape="\\") for c in res.search)))
    return query


def order_by(res: Resource[Any], sort: str | None) -> list[Any]:
    if not sort:
        return [res.table.c.id]
    name = sort.removeprefix("-")
    if name not in res.sortable:
        raise invalid("sort", f"cannot sort by {name!r}; use one of {', '.join(res.sortable)}")
    column = res.table.c[name]
    return [column.desc() if sort.startswith("-") else column, res.table.c.id]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_objects(ctx: Ctx, res: Resource[Any], params: BaseModel) -> dict[str, Any]:
    filters = scope_filters(ctx, res, "read")
    base = apply_listing(res, select(res.model).where(*filters), params)
    total = ctx.db.scalar(select(func.count()).select_from(base.order_by(None).subquery())) or 0
    limit, offset = params.limit, params.offset  # type: ignore[attr-defined]
    rows = ctx.db.scalars(base.order_by(*order_by(res, params.sort)).limit(limit).offset(offset))  # type: ignore[attr-defined]
    return {
        "items": [to_read(ctx, res, r) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


# --- the router ------------------------------------------------------------------------------


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def router(res: Resource[Any]) -> APIRouter:
    """List, create, read, update and delete routes for a resource, rights applied."""
    api = APIRouter(prefix=res.prefix, tags=list(res.tags or [res.name]))
    _add_list(api, res)
    _add_get(api, res)
    if res.create_schema is not None and res.policy.create:
        _add_create(api, res, res.create_schema)
    if res.update_schema is not None and res.policy.update:
        _add_update(api, res, res.update_schema)
    if res.policy.delete:
        _add_delete(api, res)
    return api


def _ctx(
    db: Session, principal: Principal, state: AppState, client_id: int | None, request: Request
) -> Ctx:
    ctx = Ctx(db=db, principal=principal, state=state, client_id=client_id, request=request)
    ensure_client(ctx)
    return ctx


ClientIdPath = Annotated[int, Path(ge=1, le=2**62, description="client id")]
ItemIdPath = Annotated[int, Path(ge=1, le=2**62, description="object id")]
CascadeQuery = Annotated[
    bool, Query(alias="cascade", description="clear nullable references instead of refusing")
]


def _add_list(api: APIRouter, res: Resource[Any]) -> None:
    query_model = list_query_schema(res, f"{_camel(res.name)}ListQuery")
    page = page_schema(res.read_schema, f"{_camel(res.name)}Page")
    op = f"list_{res.name.replace('-', '_')}"

    def list_all(ctx: Ctx, params: BaseModel) -> Any:
        return list_objects(ctx, res, params)

    _bind(api, res, "get", "", list_all, op, f"List {res.title}s", page, query=query_model)


def _add_get(api: APIRouter, res: Resource[Any]) -> None:
    op = f"get_{res.name.replace('-', '_')}"

    def get_one(ctx: Ctx, item_id: int) -> Any:
        return to_read(ctx, res, fetch(ctx, res, item_id, "read"))

    _bind(api, res, "get", "/{item_id}", get_one, op, f"Read a {res.title}", res.read_schema)


def _add_create(api: APIRouter, res: Resource[Any], schema: type[BaseModel]) -> None:
    op = f"create_{res.name.replace('-', '_')}"

    def create_one(ctx: Ctx, body: BaseModel) -> Any:
        scope_filters(ctx, res, "create")
        values = write_values(ctx, res, body.model_dump(), None)
        obj = res.model(**_tenant(ctx, res))
        assign(ctx, res, obj, values)
        ctx.db.add(obj)
        ctx.db.flush()
        after = to_read(ctx, res, obj)
        audit(ctx, "create", res.name, obj.id, None, after)
        commit(ctx)
        if res.after_write:
            res.after_write(ctx, obj)
        return after

    _bind(
        api,
        res,
        "post",
        "",
        create_one,
        op,
        f"Create a {res.title}",
        res.read_schema,
        body=schema,
        status=201,
    )


def _add_update(api: APIRouter, res: Resource[Any], schema: type[BaseModel]) -> None:
    op = f"update_{res.name.replace('-', '_')}"

    def update_one(ctx: Ctx, item_id: int, body: BaseModel) -> Any:
        obj = fetch(ctx, res, item_id, "update")
        before = to_read(ctx, res, obj)
        values = write_values(ctx, res, body.model_dump(exclude_unset=True), obj)
        assign(ctx, res, obj, values)
        ctx.db.flush()
        after = to_read(ctx, res, obj)
        audit(ctx, "update", res.name, obj.id, before, after)
        commit(ctx)
        if res.after_write:
            res.after_write(ctx, obj)
        return after

    _bind(
        api,
        res,
        "patch",
        "/{item_id}",
        update_one,
        op,
        f"Change a {res.title}",
        res.read_schema,
        body=schema,
    )


def _add_delete(api: APIRouter, res: Resource[Any]) -> None:
    op = f"delete_{res.name.replace('-', '_')}"

    def delete_one(ctx: Ctx, item_id: int, cascade: bool) -> Any:
        obj = fetch(ctx, res, item_id, "delete")
        before = to_read(ctx, res, obj)
        delete_object(ctx, res, obj, cascade=cascade)
        audit(ctx, "delete", res.name, item_id, before, None)
        commit(ctx)
        return Response(status_code=204)

    _bind(
        api,
        res,
        "delete",
        "/{item_id}",
        delete_one,
        op,
        f"Delete a {res.title}",
        None,
        status=204,
        cascade=True,
    )


def _bind(
    api: APIRouter,
    res: Resource[Any],
    method: str,
    path: str,
    handler: Callable[..., Any],
    op: str,
    summary: str,
    response_model: Any,
    *,
    body: type[BaseModel] | None = None,
    status: int = 200,
    cascade: bool = False,
    query: type[BaseModel] | None = None,
) -> None:
    """Wrap a handler in a FastAPI endpoint whose signature matches the resource's shape."""
    shape = _Shape(action=_ACTIONS[(method, path)], body=body, cascade=cascade, query=query)
    endpoint = _endpoint(res, path, shape, handler)
    responses = {404: {"description": "not found"}, 403: {"description": "forbidden"}}
    getattr(api, method)(
        path,
        response_model=response_model,
        status_code=status,
        operation_id=op,
        summary=summary,
        responses=responses,
    )(endpoint)


_ACTIONS = {
    ("get", ""): "read",
    ("get", "/{item_id}"): "read",
    ("post", ""): "create",
    ("patch", "/{item_id}"): "update",
    ("delete", "/{item_id}"): "delete",
}


@dataclass(frozen=True)
class _Shape:
    action: str
    body: type[BaseModel] | None
    cascade: bool
    query: type[BaseModel] | None


def _authorizer(res: Resource[Any], action: str, has_item: bool) -> Callable[..., Ctx]:
    """A dependency that checks client visibility and rights before the body is parsed.

    FastAPI resolves dependencies before it validates the body, so a caller without the right
    gets 404/403, never a 422 that would tell it about the resource's shape.
    """

    def authorize(
        request: Request, db: DbSession, principal: CurrentPrincipal, state: State, **kw: Any
    ) -> Ctx:
        ctx = _ctx(db, principal, state, kw.get("client_id"), request)
        if "item_id" in kw:
            # An object the caller cannot see is 404 whatever the action (ADM-4).
            fetch(ctx, res, kw["item_id"], "read")
        scope_filters(ctx, res, action)
        return ctx

    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("request", kw, annotation=Request),
        inspect.Parameter("db", kw, annotation=DbSession),
        inspect.Parameter("principal", kw, annotation=CurrentPrincipal),
        inspect.Parameter("state", kw, annotation=State),
    ]
    if res.client_scoped:
        params.append(inspect.Parameter("client_id", kw, annotation=ClientIdPath))
    if has_item:
        params.append(inspect.Parameter("item_id", kw, annotation=ItemIdPath))
    authorize.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return authorize


def _endpoint(
    res: Resource[Any], path: str, shape: _Shape, handler: Callable[..., Any]
) -> Callable[..., Any]:
    has_item = "{item_id}" in path

    def endpoint(ctx: Ctx, **kw: Any) -> Any:
        args: list[Any] = [ctx]
        if has_item:
            args.append(kw["item_id"])
        if shape.body is not None:
            args.append(kw["payload"])
        if shape.cascade:
            args.append(kw["cascade_"])
        if shape.query is not None:
            args.append(kw["params"])
        return handler(*args)

    endpoint.__signature__ = _signature(res, has_item, shape)  # type: ignore[attr-defined]
    return endpoint


def _signature(res: Resource[Any], has_item: bool, shape: _Shape) -> inspect.Signature:
    kw = inspect.Parameter.KEYWORD_ONLY
    authorized = Annotated[Ctx, Depends(_authorizer(res, shape.action, has_item))]
    params = [inspect.Parameter("ctx", kw, annotation=authorized)]
    if res.client_scoped:
        params.append(inspect.Parameter("client_id", kw, annotation=ClientIdPath))
    if has_item:
        params.append(inspect.Parameter("item_id", kw, annotation=ItemIdPath))
    if shape.body is not None:
        params.append(inspect.Parameter("payload", kw, annotation=shape.body))
    if shape.cascade:
        params.append(inspect.Parameter("cascade_", kw, annotation=CascadeQuery, default=False))
    if shape.query is not None:
        params.append(inspect.Parameter("params", kw, annotation=Annotated[shape.query, Query()]))
    return inspect.Signature(params)


def client_context(
    client_id: ClientIdPath,
    request: Request,
    db: DbSession,
    principal: CurrentPrincipal,
    state: State,
) -> Ctx:
    """The context of a custom route under /clients/{client_id}: the client is visible (else
    404) before anything else runs, the body included."""
    return _ctx(db, principal, state, client_id, request)


def installation_context(
    request: Request, db: DbSession, principal: CurrentPrincipal, state: State
) -> Ctx:
    """The context of a custom route outside any client."""
    return _ctx(db, principal, state, None, request)


ClientCtx = Annotated[Ctx, Depends(client_context)]
InstallationCtx = Annotated[Ctx, Depends(installation_context)]


def register(api: APIRouter, resources: Sequence[Resource[Any]]) -> None:
    for res in resources:
        api.include_router(router(res))
