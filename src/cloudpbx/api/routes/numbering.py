"""Ресурс нумерации and Порты: internal and external numbers, ports, pickup groups (§2)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, false

from cloudpbx.api import rbac
from cloudpbx.api.crud import (
    ClientCtx,
    Ctx,
    ItemIdPath,
    Resource,
    audit,
    fetch,
    make_update_schema,
    register,
)
from cloudpbx.api.errors import invalid
from cloudpbx.api.rbac import Principal
from cloudpbx.api.schemas.common import In, Language, Limit, Name, OwnedOut, RefId, Seconds, Text
from cloudpbx.api.state import AppState
from cloudpbx.db.models import Client, ExternalNumber, InternalNumber, PickupGroup, Port
from cloudpbx.numbers import (
    InvalidNumber,
    NumberingPlan,
    is_valid_internal_number,
    normalize_e164,
)
from cloudpbx.security import generate_sip_secret

router = APIRouter()


# --- internal numbers (NUM-2) ---------------------------------------------------------------


class InternalNumberCreate(In):
    number: Annotated[str, Field(min_length=1, max_length=32, examples=["100"])]
    name: Annotated[str, Field(max_length=200)] = ""
    description: Text = ""


class InternalNumberRead(OwnedOut):
    number: str
    name: str
    description: str


def _prepare_internal(ctx: Ctx, data: dict[str, Any], _obj: Any) -> dict[str, Any]:
    if data.get("number") is not None:
        try:
            data["number"] = is_valid_internal_number(
                data["number"], ctx.state.settings.numbering_plan
            )
        except InvalidNumber as exc:
            raise invalid("number", str(exc)) from exc
    return data


def _own_internal(principal: Principal) -> ColumnElement[bool]:
    ids = principal.internal_number_ids
    return InternalNumber.id.in_(ids) if ids else false()


INTERNAL = Resource(
    name="internal-numbers",
    title="internal number",
    model=InternalNumber,
    create_schema=InternalNumberCreate,
    update_schema=make_update_schema(InternalNumberCreate, "InternalNumberUpdate"),
    read_schema=InternalNumberRead,
    policy=rbac.INTERNAL_NUMBERS,
    sortable=("id", "number", "name"),
    filters=("number",),
    search=("number", "name", "description"),
    number_filter=_own_internal,
    prepare=_prepare_internal,
    tags=["numbering"],
)


# --- external numbers (NUM-1) ---------------------------------------------------------------


class ExternalNumberCreate(In):
    number: Annotated[str, Field(min_length=1, max_length=40, examples=["+74951234567"])]
    operator_id: RefId | None = None
    description: Text = ""


class ExternalNumberRead(OwnedOut):
    number: str
    operator_id: int | None
    description: str


def _prepare_external(ctx: Ctx, data: dict[str, Any], _obj: Any) -> dict[str, Any]:
    if data.get("number") is not None:
        data["number"] = e164(ctx, "number", data["number"])
    return data


def e164(ctx: Ctx, field_name: str, raw: str) -> str:
    """Normalise to E.164 (PRODUCT.md §3a) or fail naming the field."""
    try:
        return normalize_e164(raw, _client_plan(ctx))
    except InvalidNumber as exc:
        raise invalid(field_name, str(exc)) from exc


def _client_plan(ctx: Ctx) -> NumberingPlan:
    client = ctx.db.get(Client, ctx.client_id) if ctx.client_id else None
    return numbering_plan(ctx.state, client)


def numbering_plan(state: AppState, client: Client | None) -> NumberingPlan:
    """The installation's plan, with the client's area code for national numbers (§3a)."""
    plan = state.settings.numbering_plan
    if client is None or not client.area_code:
        return plan
    return replace(plan, default_area_code=client.area_code)


def _own_external(principal: Principal) -> ColumnElement[bool]:
    ids = principal.external_number_ids
    return ExternalNumber.id.in_(ids) if ids else false()


EXTERNAL = Resource(
    name="external-numbers",
    title="external number",
    model=ExternalNumber,
    create_schema=ExternalNumberCreate,
    update_schema=make_update_schema(ExternalNumberCreate, "ExternalNumberUpdate"),
    read_schema=ExternalNumberRead,
    policy=rbac.EXTERNAL_NUMBERS,
    sortable=("id", "number"),
    filters=("number", "operator_id"),
    search=("number", "description"),
    number_filter=_own_external,
    prepare=_prepare_external,
    tags=["numbering"],
)


# --- pickup groups (PG-1) -------------------------------------------------------------------


class PickupGroupCreate(In):
    number: Annotated[str, Field(pattern=r"^[0-9]{1,16}$")]
    description: Text = ""


class PickupGroupRead(OwnedOut):
    number: str
    description: str


PICKUP = Resource(
    name="pickup-groups",
    title="pickup group",
    model=PickupGroup,
    create_schema=PickupGroupCreate,
    update_schema=make_update_schema(PickupGroupCreate, "PickupGroupUpdate"),
    read_schema=PickupGroupRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "number"),
    search=("number", "description"),
    tags=["components"],
)


# --- ports (PRT-1) --------------------------------------------------------------------------


class Services(In):
    """Supplementary services (ДВО, PRODUCT.md §4.9)."""

    transfer: bool = True
    pickup: bool = True
    hold: bool = True
    call_park: bool = False
    auto_recording: bool = False
    recording_on_demand: bool = False
    call_return: bool = False
    ringback: Literal["ringback", "music"] = Field(
        "ringback",
        description="ringback only (Только гудки) or replacement by music (Замена гудков)",
    )
    video: bool = False


SipLogin = Annotated[str, Field(pattern=r"^[A-Za-z0-9._\-]{2,64}$", examples=["line1"])]


class PortCreate(In):
    name: Name
    description: Text = ""
    sip_login: SipLogin
    sip_secret: Annotated[
        str | None, Field(min_length=8, max_length=128, description="generated when omitted")
    ] = None
    auth_algorithm: Literal["MD5", "SHA-256"] = "MD5"
    is_active: bool = True
    language: Language = "ru"
    pickup_group_id: RefId | None = None
    callerid_internal_id: RefId | None = None
    callerid_external_id: RefId | None = None
    services: Services = Field(default_factory=Services)
    max_concurrent_incoming: Limit | None = None
    max_incoming_duration_s: Seconds | None = None
    max_concurrent_outgoing: Limit | None = None


class PortRead(OwnedOut):
    name: str
    description: str
    sip_login: str
    auth_algorithm: str
    is_active: bool
    language: str
    pickup_group_id: int | None
    callerid_internal_id: int | None
    callerid_external_id: int | None
    services: dict[str, Any]
    max_concurrent_incoming: int | None
    max_incoming_duration_s: int | None
    max_concurrent_outgoing: int | None


class PortSecretRead(BaseModel):
    sip_login: str
    sip_secret: str
    realm: str


def _prepare_port(ctx: Ctx, data: dict[str, Any], obj: Any) -> dict[str, Any]:
    secret = data.pop("sip_secret", None)
    if obj is None and secret is None:
        secret = generate_sip_secret()
    if secret is not None:
        data["sip_secret_enc"] = ctx.state.secret_box.seal(secret)
    if "services" in data:
        if data["services"] is None:
            raise invalid("services", "may not be null")
        data["services"] = Services.model_validate(data["services"]).model_dump()
    return data


PORTS = Resource(
    name="ports",
    title="port",
    model=Port,
    create_schema=PortCreate,
    update_schema=make_update_schema(PortCreate, "PortUpdate"),
    read_schema=PortRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "name", "sip_login"),
    filters=("pickup_group_id", "is_active", "sip_login"),
    search=("name", "sip_login", "description"),
    prepare=_prepare_port,
    tags=["ports"],
)

register(router, [INTERNAL, EXTERNAL, PICKUP, PORTS])


@router.get(
    "/clients/{client_id}/ports/{item_id}/secret",
    response_model=PortSecretRead,
    tags=["ports"],
    operation_id="get_port_secret",
)
def port_secret(ctx: ClientCtx, item_id: ItemIdPath) -> PortSecretRead:
    """The SIP credentials to type into a phone: for those who may change the port."""
    port = fetch(ctx, PORTS, item_id, "update")
    audit(ctx, "read_secret", PORTS.name, port.id, None, None)
    ctx.db.commit()
    secret = ctx.state.secret_box.open(port.sip_secret_enc)
    return PortSecretRead(
        sip_login=port.sip_login, sip_secret=secret, realm=ctx.state.settings.sip_realm
    )
