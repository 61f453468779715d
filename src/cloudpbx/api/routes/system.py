"""The system administrator's objects: staff users, operators, tariffs, the rights catalogue.

ADM-1 (system administrator), TRK-1 (operators and their rewrite rules, §3a), ADM-6 (tariffs),
ADM-3 (the rights catalogue).
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from dataclasses import replace
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, select

from cloudpbx.api import rbac
from cloudpbx.api.crud import (
    CascadeQuery,
    Ctx,
    InstallationCtx,
    ItemIdPath,
    Resource,
    make_update_schema,
    register,
)
from cloudpbx.api.deps import CurrentPrincipal, DbSession
from cloudpbx.api.errors import conflict, invalid
from cloudpbx.api.routes.clients import (
    Currency,
    Email,
    Lang,
    Login,
    Password,
    RightNames,
    UserRules,
    apply_user,
    remove_user,
    user_fields,
    user_prepare,
)
from cloudpbx.api.schemas.common import (
    In,
    Limit,
    MoneyIn,
    MoneyOut,
    Name,
    Out,
    RefId,
    Stamped,
    Text,
)
from cloudpbx.db.models import Operator, RewriteRule, RightDef, Tariff, TariffRate, User
from cloudpbx.rights import ADDITIONAL_SETS, PRESETS, Level, Right, level_needs_client

router = APIRouter()

# --- staff users (ADM-1: system and clients administrators) ---------------------------------

STAFF_RULES = UserRules(
    audience="provider staff",
    levels=frozenset({Level.SYSTEM_ADMIN, Level.CLIENTS_ADMIN}),
    forbidden_prefixes=("users.", "own."),
)


class StaffUserCreate(In):
    login: Login
    password: Password
    full_name: Annotated[str, Field(max_length=200)] = ""
    email: Email = None
    language: Lang = "ru"
    is_active: bool = True
    level: Literal["system_admin", "clients_admin"] = "clients_admin"
    rights: RightNames = None


class StaffUserRead(Stamped):
    client_id: None = Field(None, description="staff belong to no client")
    login: str
    full_name: str
    email: str | None
    language: str
    is_active: bool
    level: str
    rights: list[str]


def _serialize_staff(_ctx: Ctx, obj: User) -> StaffUserRead:
    return StaffUserRead(**user_fields(obj))


def _staff_only() -> ColumnElement[bool]:
    """Company users are not staff: /staff-users never shows or changes them (ADM-4)."""
    return User.client_id.is_(None)


STAFF_FULL = Resource(
    name="staff-users",
    title="staff user",
    model=User,
    create_schema=StaffUserCreate,
    update_schema=make_update_schema(StaffUserCreate, "StaffUserUpdate"),
    read_schema=StaffUserRead,
    policy=rbac.SYSTEM,
    client_scoped=False,
    tenant_column=None,
    row_filter=_staff_only,
    sortable=("id", "login", "full_name", "level"),
    filters=("level", "is_active"),
    search=("login", "full_name", "email"),
    prepare=user_prepare(STAFF_RULES),
    apply=apply_user,
    serialize=_serialize_staff,
    tags=["staff-users"],
)
# Deleting has its own route (nobody deletes themselves); the rest is generic.
STAFF = replace(STAFF_FULL, policy=replace(rbac.SYSTEM, delete=()))


@router.delete(
    "/staff-users/{item_id}",
    status_code=204,
    tags=["staff-users"],
    operation_id="delete_staff_users",
    summary="Delete a staff user",
)
def delete_staff_user(
    ctx: InstallationCtx, item_id: ItemIdPath, cascade: CascadeQuery = False
) -> Response:
    return remove_user(ctx, STAFF_FULL, item_id, cascade=cascade)


# --- operators (TRK-1, §3a) -----------------------------------------------------------------

# Pydantic warns that a field called ``register`` shadows ``ABCMeta.register`` on the model
# class; instances read their field values first, so the API keeps the natural name.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
MAX_PATTERN = 200


class RewriteRuleIn(In):
    """Carriers send numbers in many shapes (§3a): ``re.sub(match, replace, number)``."""

    direction: Literal["inbound", "outbound"]
    field: Literal["caller", "called"]
    match: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN, examples=[r"^8(\d{10})$"])]
    replace: Annotated[str, Field(max_length=200, examples=[r"+7\1"])] = ""


class RewriteRuleRead(Out):
    direction: str
    field: str
    match: str
    replace: str


class OperatorCreate(In):
    name: Name
    description: Text = ""
    host: Annotated[
        str, Field(min_length=1, max_length=255, description="host name or IP, no scheme")
    ]
    port: Annotated[int, Field(ge=1, le=65535)] = 5060
    transport: Literal["udp", "tcp", "tls"] = "udp"
    register: bool = Field(False, description="register with the carrier (else IP auth)")
    username: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    secret: Annotated[str | None, Field(min_length=1, max_length=128, description="write-only")] = (
        None
    )
    allowed_addresses: Annotated[list[str], Field(max_length=100)] = Field(
        default_factory=list, description="the carrier's IPs or CIDR networks"
    )
    did_source: Literal["request_uri", "to", "diversion"] = "request_uri"
    max_channels: Limit | None = None
    is_active: bool = True
    tariff_id: RefId | None = None
    rewrite_rules: Annotated[list[RewriteRuleIn], Field(max_length=100)] = Field(
        default_factory=list, description="applied in order"
    )


class OperatorRead(Stamped):
    name: str
    description: str
    host: str
    port: int
    transport: str
    register: bool = Field(..., description="registers with the carrier (else IP auth)")
    username: str | None
    has_secret: bool
    allowed_addresses: list[str]
    did_source: str
    max_channels: int | None
    is_active: bool
    tariff_id: int | None
    rewrite_rules: list[RewriteRuleRead]


def _check_host(raw: str) -> str:
    host = raw.removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    # A name whose last label is all digits is a mistyped IPv4 address, not a host.
    if "://" in raw or not _HOSTNAME.match(raw) or raw.rstrip(".").rsplit(".", 1)[-1].isdigit():
        raise invalid("host", "a host name or IP address without scheme, port or spaces")
    return raw.lower()


def _address(raw: str, field_name: str) -> str:
    try:
        if "/" in raw:
            return str(ipaddress.ip_network(raw, strict=True))
        return str(ipaddress.ip_address(raw))
    except ValueError as exc:
        raise invalid(field_name, f"{raw!r} is not an IP address or network: {exc}") from exc


def _check_rules(rules: list[dict[str, Any]]) -> None:
    for i, rule in enumerate(rules):
        try:
            pattern = re.compile(rule["match"])
        except re.error as exc:
            raise invalid(f"rewrite_rules.{i}.match", f"not a valid regex: {exc}") from exc
        try:
            pattern.sub(rule["replace"], "")  # compiles the template: \3 without group 3 fails
        except (re.error, IndexError) as exc:
            raise invalid(f"rewrite_rules.{i}.replace", f"bad replacement: {exc}") from exc


def _not_null(values: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key in values and values[key] is None:
            raise invalid(key, "may not be null")


def _prepare_operator(ctx: Ctx, data: dict[str, Any], obj: Operator | None) -> dict[str, Any]:
    values = dict(data)
    _not_null(values, "allowed_addresses", "rewrite_rules")
    if values.get("host") is not None:
        values["host"] = _check_host(values["host"])
    if "allowed_addresses" in values:
        values["allowed_addresses"] = [
            _address(a, f"allowed_addresses.{i}") for i, a in enumerate(values["allowed_addresses"])
        ]
    _check_rules(values.get("rewrite_rules") or [])
    if "secret" in values:
        secret = values.pop("secret")
        values["secret_enc"] = ctx.state.secret_box.seal(secret) if secret else None
    _check_registration(values, obj)
    return values


def _check_registration(values: dict[str, Any], obj: Operator | None) -> None:
    """A registering trunk logs in, so it needs a username and a secret (TRK-1)."""

    def merged(key: str) -> Any:
        return values[key] if key in values else getattr(obj, key, None)

    if not merged("register"):
        return
    if not merged("username"):
        raise invalid("username", "required when register is on")
    if not merged("secret_enc"):
        raise invalid("secret", "required when register is on")


def _apply_operator(_ctx: Ctx, obj: Operator, values: dict[str, Any]) -> None:
    if values.get("rewrite_rules") is None:
        return
    obj.rewrite_rules = [
        RewriteRule(position=i, **rule) for i, rule in enumerate(values["rewrite_rules"])
    ]


def _serialize_operator(_ctx: Ctx, obj: Operator) -> OperatorRead:
    skip = {"has_secret", "rewrite_rules"}
    fields = {k: getattr(obj, k) for k in OperatorRead.model_fields if k not in skip}
    rules = [RewriteRuleRead.model_validate(r) for r in obj.rewrite_rules]
    return OperatorRead(**fields, has_secret=obj.secret_enc is not None, rewrite_rules=rules)


OPERATORS = Resource(
    name="operators",
    title="operator",
    model=Operator,
    create_schema=OperatorCreate,
    update_schema=make_update_schema(OperatorCreate, "OperatorUpdate"),
    read_schema=OperatorRead,
    policy=rbac.SYSTEM,
    client_scoped=False,
    tenant_column=None,
    sortable=("id", "name", "host"),
    filters=("is_active", "tariff_id"),
    search=("name", "host", "description"),
    prepare=_prepare_operator,
    apply=_apply_operator,
    serialize=_serialize_operator,
    tags=["operators"],
)


# --- tariffs (ADM-6) ------------------------------------------------------------------------

Increment = Annotated[int, Field(ge=1, le=3600)]


class TariffCreate(In):
    name: Name
    description: Text = ""
    currency: Currency = "RUB"
    first_increment_s: Increment = Field(60, description="first billed block, seconds")
    increment_s: Increment = Field(60, description="each following block, seconds")


class TariffRead(Stamped):
    name: str
    description: str
    currency: str
    first_increment_s: int
    increment_s: int


TARIFFS = Resource(
    name="tariffs",
    title="tariff",
    model=Tariff,
    create_schema=TariffCreate,
    update_schema=make_update_schema(TariffCreate, "TariffUpdate"),
    read_schema=TariffRead,
    policy=rbac.TARIFFS,
    client_scoped=False,
    tenant_column=None,
    sortable=("id", "name"),
    search=("name", "description"),
    tags=["tariffs"],
)


class TariffRateCreate(In):
    tariff_id: RefId
    prefix: Annotated[
        str, Field(pattern=r"^[0-9]{1,15}$", examples=["7495"], description="E.164 digits")
    ]
    description: Annotated[str, Field(max_length=200)] = ""
    price_per_minute: MoneyIn
    connection_fee: MoneyIn = Decimal(0)


class TariffRateRead(Out):
    id: int
    tariff_id: int
    prefix: str
    description: str
    price_per_minute: MoneyOut
    connection_fee: MoneyOut


def _prepare_rate(ctx: Ctx, data: dict[str, Any], obj: TariffRate | None) -> dict[str, Any]:
    """The unique (tariff, prefix) pair is reported on ``prefix``, the field a user edits."""
    _not_null(data, "price_per_minute", "connection_fee")
    tariff_id = data.get("tariff_id") or (obj.tariff_id if obj else None)
    prefix = data.get("prefix") or (obj.prefix if obj else None)
    query = select(TariffRate.id).where(
        TariffRate.tariff_id == tariff_id, TariffRate.prefix == prefix
    )
    if obj is not None:
        query = query.where(TariffRate.id != obj.id)
    if ctx.db.scalar(query.limit(1)) is not None:
        raise conflict("prefix", f"prefix: {prefix!r} already has a rate in tariff {tariff_id}")
    return data


RATES = Resource(
    name="tariff-rates",
    title="tariff rate",
    model=TariffRate,
    create_schema=TariffRateCreate,
    update_schema=make_update_schema(TariffRateCreate, "TariffRateUpdate"),
    read_schema=TariffRateRead,
    policy=rbac.TARIFFS,
    client_scoped=False,
    tenant_column=None,
    sortable=("id", "prefix", "price_per_minute"),
    filters=("tariff_id", "prefix"),
    search=("prefix", "description"),
    prepare=_prepare_rate,
    tags=["tariffs"],
)

register(router, [STAFF, OPERATORS, TARIFFS, RATES])


# --- the rights catalogue (ADM-1, ADM-2, ADM-3) ---------------------------------------------

LEVEL_TITLES: dict[Level, tuple[str, str]] = {
    Level.SYSTEM_ADMIN: ("Администратор системы", "System administrator"),
    Level.CLIENTS_ADMIN: ("Администратор клиентов", "Clients administrator"),
    Level.CLIENT_ADMIN: ("Администратор клиента", "Client administrator"),
    Level.CLIENT_USER: ("Пользователь клиента", "Client user"),
}


class RightOut(BaseModel):
    name: str
    title_ru: str
    title_en: str
    group: str = Field(description="system, https, clients, users, own or extra")
    additional: bool = Field(description="an ADM-2 additional set, combinable with any level")


class LevelOut(BaseModel):
    level: str
    title_ru: str
    title_en: str
    needs_client: bool
    rights: list[str] = Field(description="the preset given to a new account of this level")


class RightsCatalogue(BaseModel):
    rights: list[RightOut]
    levels: list[LevelOut]
    additional_sets: list[str]


def _order(name: str) -> int:
    order = list(Right._value2member_map_)
    return order.index(name) if name in order else len(order)


@router.get("/rights", response_model=RightsCatalogue, tags=["rights"], operation_id="list_rights")
def list_rights(db: DbSession, _principal: CurrentPrincipal) -> RightsCatalogue:
    """ADM-3: rights are data; the four ADM-1 levels are presets of them."""
    rows = sorted(db.scalars(select(RightDef)), key=lambda r: _order(r.name))
    extras = {r.value for r in ADDITIONAL_SETS}
    rights = [
        RightOut(
            name=r.name,
            title_ru=r.title_ru,
            title_en=r.title_en,
            group=r.name.split(".", 1)[0],
            additional=r.name in extras,
        )
        for r in rows
    ]
    levels = [
        LevelOut(
            level=level.value,
            title_ru=LEVEL_TITLES[level][0],
            title_en=LEVEL_TITLES[level][1],
            needs_client=level_needs_client(level),
            rights=sorted(r.value for r in PRESETS[level]),
        )
        for level in Level
    ]
    return RightsCatalogue(rights=rights, levels=levels, additional_sets=sorted(extras, key=_order))
