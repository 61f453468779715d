"""Clients (tenants), their billing accounts and their users (ADM-1, ADM-4, ADM-5, ADM-6).

The user machinery here (rights validation, privilege-escalation guard, self-protection,
password hashing) is shared with the provider's staff users in :mod:`.system`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal, get_args
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Response
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import delete, select, update

from cloudpbx.api import rbac
from cloudpbx.api.crud import (
    CascadeQuery,
    ClientCtx,
    Ctx,
    ItemIdPath,
    Resource,
    audit,
    commit,
    delete_object,
    fetch,
    make_update_schema,
    register,
    scope_filters,
    to_read,
)
from cloudpbx.api.errors import ApiError, invalid
from cloudpbx.api.schemas.common import (
    In,
    Limit,
    MoneyIn,
    MoneyOut,
    Name,
    RefId,
    Seconds,
    Stamped,
    Text,
    money_str,
)
from cloudpbx.db.models import (
    AuthSession,
    BillingAccount,
    Client,
    ExternalNumber,
    InternalNumber,
    MediaPack,
    Tariff,
    User,
    UserExternalNumber,
    UserInternalNumber,
    UserRight,
)
from cloudpbx.numbers import Direction
from cloudpbx.rights import COVERS, PRESETS, Level, Right
from cloudpbx.security import hash_password

router = APIRouter()

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["RUB"], description="ISO 4217")]
Lang = Literal["ru", "en"]


# --- clients (ADM-1, ADM-4, ADM-5) ----------------------------------------------------------

# ADM-5: internal calls are always allowed; the limit lists the external directions.
ExternalDirection = Literal["local", "long_distance", "international", "toll_free", "emergency"]
assert set(get_args(ExternalDirection)) == {d.value for d in Direction} - {Direction.INTERNAL}
# International calls are off until the provider enables them: the classic toll-fraud target.
DEFAULT_DIRECTIONS: list[ExternalDirection] = ["local", "long_distance", "toll_free", "emergency"]


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _check_timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Moscow")
    return value


TimeZone = Annotated[
    str, Field(max_length=64, examples=["Europe/Moscow"]), AfterValidator(_check_timezone)
]


class ClientLimits(In):
    """ADM-5 limits on the whole client; only provider staff may change them."""

    max_concurrent_calls: Limit | None = None
    max_call_duration_s: Seconds | None = None
    allowed_directions: Annotated[list[ExternalDirection], Field(max_length=10)] = Field(
        default_factory=lambda: list(DEFAULT_DIRECTIONS)
    )
    spend_limit: MoneyIn | None = Field(None, description="per billing period; null = none")


class ClientCreate(In):
    name: Name
    description: Text = ""
    timezone: TimeZone = "Europe/Moscow"
    area_code: Annotated[str | None, Field(pattern=r"^[0-9]{3,5}$", examples=["495"])] = None
    language: Lang = "ru"
    is_active: bool = True
    limits: ClientLimits = Field(default_factory=ClientLimits)


class ClientLimitsRead(BaseModel):
    max_concurrent_calls: int | None
    max_call_duration_s: int | None
    allowed_directions: list[str]
    spend_limit: MoneyOut | None


class ClientRead(Stamped):
    name: str
    description: str
    timezone: str
    area_code: str | None
    language: str
    is_active: bool
    limits: ClientLimitsRead


def _directions(values: Iterable[str]) -> list[str]:
    """Stored with ``internal`` (always allowed), deduplicated, in Direction order."""
    wanted = {*values, Direction.INTERNAL.value}
    return [d.value for d in Direction if d.value in wanted]


def _prepare_client(_ctx: Ctx, data: dict[str, Any], _obj: Any) -> dict[str, Any]:
    values = dict(data)
    if "limits" not in values:
        return values
    limits = values.pop("limits")
    if limits is None:
        raise invalid("limits", "may not be null")
    if "allowed_directions" in limits:
        if limits["allowed_directions"] is None:
            raise invalid("limits.allowed_directions", "may not be null")
        limits["allowed_directions"] = _directions(limits["allowed_directions"])
    values.update(limits)
    return values


def _apply_client(ctx: Ctx, obj: Client, _values: dict[str, Any]) -> None:
    """ADM-6, MED-1: a new client gets its billing account and default media pack at once."""
    if obj.id is not None:
        return
    ctx.db.add(obj)
    ctx.db.flush()
    ctx.db.add(new_account(obj.id))
    ctx.db.add(MediaPack(client_id=obj.id, name="По умолчанию", is_default=True))


def new_account(client_id: int) -> BillingAccount:
    return BillingAccount(
        client_id=client_id,
        number=f"BA-{client_id}",
        currency="RUB",
        balance=Decimal(0),
        credit_limit=Decimal(0),
        spent_total=Decimal(0),
    )


def _serialize_client(_ctx: Ctx, obj: Client) -> ClientRead:
    limits = ClientLimitsRead(
        max_concurrent_calls=obj.max_concurrent_calls,
        max_call_duration_s=obj.max_call_duration_s,
        allowed_directions=[d for d in obj.allowed_directions if d != Direction.INTERNAL],
        spend_limit=obj.spend_limit,
    )
    fields = {k: getattr(obj, k) for k in ClientRead.model_fields if k != "limits"}
    return ClientRead(**fields, limits=limits)


CLIENTS = Resource(
    name="clients",
    title="client",
    model=Client,
    create_schema=ClientCreate,
    update_schema=make_update_schema(ClientCreate, "ClientUpdate"),
    read_schema=ClientRead,
    policy=rbac.CLIENTS,
    client_scoped=False,
    tenant_column="id",
    sortable=("id", "name", "created_ms"),
    filters=("is_active",),
    search=("name", "description"),
    prepare=_prepare_client,
    apply=_apply_client,
    serialize=_serialize_client,
    tags=["clients"],
)


# --- billing account (ADM-6) ----------------------------------------------------------------


class BillingAccountRead(Stamped):
    client_id: int
    number: str
    tariff_id: int | None
    currency: str
    balance: MoneyOut
    credit_limit: MoneyOut
    spent_total: MoneyOut
    available: MoneyOut = Field(description="balance + credit limit: what calls may still spend")


class BillingAccountUpdate(In):
    tariff_id: RefId | None = None
    credit_limit: MoneyIn | None = None
    currency: Currency | None = None


def _nonzero(value: Decimal) -> Decimal:
    if value == 0:
        raise ValueError("a payment of zero changes nothing")
    return value


class PaymentIn(In):
    amount: Annotated[
        Decimal,
        Field(max_digits=12, decimal_places=2, examples=["1000.00"]),
        AfterValidator(_nonzero),
    ] = Field(description="positive tops the balance up, negative is a correction")
    comment: Annotated[str, Field(max_length=500)] = ""


class PaymentRead(BaseModel):
    amount: MoneyOut
    comment: str
    balance_before: MoneyOut
    balance_after: MoneyOut
    account: BillingAccountRead


def _read_account(account: BillingAccount) -> BillingAccountRead:
    fields = {k: getattr(account, k) for k in BillingAccountRead.model_fields if k != "available"}
    return BillingAccountRead(**fields, available=account.balance + account.credit_limit)


BILLING = Resource(
    name="billing-account",
    title="billing account",
    model=BillingAccount,
    create_schema=None,
    update_schema=None,
    read_schema=BillingAccountRead,
    policy=rbac.CLIENT_BILLING,
)


def _account(ctx: Ctx, action: str) -> BillingAccount:
    """The client's one account; clients made before accounts existed get theirs now."""
    filters = scope_filters(ctx, BILLING, action)
    account = ctx.db.scalar(select(BillingAccount).where(*filters))
    if account is None:
        assert ctx.client_id is not None
        account = new_account(ctx.client_id)
        ctx.db.add(account)
        ctx.db.flush()
        audit(ctx, "create", BILLING.name, account.id, None, _read_account(account))
    return account


def _billing(action: str) -> Callable[..., Ctx]:
    """Client visibility (404) and rights (403) are checked before the body is read (422)."""

    def authorize(ctx: ClientCtx) -> Ctx:
        scope_filters(ctx, BILLING, action)
        return ctx

    return authorize


BillingReader = Annotated[Ctx, Depends(_billing("read"))]
BillingWriter = Annotated[Ctx, Depends(_billing("update"))]


@router.get(
    "/clients/{client_id}/billing-account",
    response_model=BillingAccountRead,
    tags=["clients"],
    operation_id="get_billing_account",
)
def get_billing_account(ctx: BillingReader) -> BillingAccountRead:
    """ADM-6: balance, tariff and spend of a client."""
    account = _account(ctx, "read")
    commit(ctx)
    return _read_account(account)


@router.patch(
    "/clients/{client_id}/billing-account",
    response_model=BillingAccountRead,
    tags=["clients"],
    operation_id="update_billing_account",
)
def update_billing_account(ctx: BillingWriter, body: BillingAccountUpdate) -> BillingAccountRead:
    """ADM-6: the provider assigns the tariff, the credit limit and the currency."""
    account = _account(ctx, "update")
    before = _read_account(account)
    changes = body.model_dump(exclude_unset=True)
    for key in ("credit_limit", "currency"):
        if key in changes and changes[key] is None:
            raise invalid(key, "may not be null")
    ctx.check_ref(Tariff, changes.get("tariff_id"), "tariff_id")
    for key, value in changes.items():
        setattr(account, key, value)
    _check_currency(ctx, account, "tariff_id" if "tariff_id" in changes else "currency")
    ctx.db.flush()
    after = _read_account(account)
    audit(ctx, "update", BILLING.name, account.id, before, after)
    commit(ctx)
    return after


def _check_currency(ctx: Ctx, account: BillingAccount, field_name: str) -> None:
    """A tariff prices calls in its currency: the account must be kept in the same one."""
    tariff = ctx.db.get(Tariff, account.tariff_id) if account.tariff_id else None
    if tariff is not None and tariff.currency != account.currency:
        raise invalid(
            field_name,
            f"tariff {tariff.id} is in {tariff.currency}, the account in {account.currency}",
        )


@router.post(
    "/clients/{client_id}/billing-account/payments",
    response_model=PaymentRead,
    status_code=201,
    tags=["clients"],
    operation_id="create_payment",
)
def create_payment(ctx: BillingWriter, body: PaymentIn) -> PaymentRead:
    """ADM-6: the only way to change a balance; every payment is in the audit log."""
    account = _account(ctx, "update")
    before = account.balance
    # One UPDATE adds the amount, so two payments at once cannot lose one another.
    ctx.db.execute(
        update(BillingAccount)
        .where(BillingAccount.id == account.id)
        .values(balance=BillingAccount.balance + body.amount)
    )
    ctx.db.refresh(account)
    payment = PaymentRead(
        amount=body.amount,
        comment=body.comment,
        balance_before=before,
        balance_after=account.balance,
        account=_read_account(account),
    )
    audit(
        ctx,
        "payment",
        BILLING.name,
        account.id,
        {"balance": money_str(before)},
        payment.model_dump(mode="json", exclude={"account"}),
    )
    commit(ctx)
    return payment


# --- users (ADM-1, ADM-3): shared by company users and provider staff -----------------------

Login = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{1,99}$", examples=["ivanov"])]
Password = Annotated[str, Field(min_length=10, max_length=200, description="write-only")]
Email = Annotated[str | None, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
RightNames = Annotated[
    list[str] | None,
    Field(
        max_length=len(Right),
        description="the user's rights (names from GET /rights); omitted = the level's preset",
    ),
]


@dataclass(frozen=True)
class UserRules:
    """What one kind of account may hold: its levels and the rights of the other side."""

    audience: str
    levels: frozenset[Level]
    forbidden_prefixes: tuple[str, ...]


COMPANY_RULES = UserRules(
    audience="company users",
    levels=frozenset({Level.CLIENT_ADMIN, Level.CLIENT_USER}),
    forbidden_prefixes=("system.", "clients."),
)


def _hash(values: dict[str, Any]) -> None:
    if "password" not in values:
        return
    password = values.pop("password")
    if password is None:
        raise invalid("password", "may not be null")
    # argon2id (ADM-7); these routes are sync, so FastAPI runs them in a worker thread.
    values["password_hash"] = hash_password(password)


def _level(values: dict[str, Any], obj: User | None) -> Level:
    if "level" in values and values["level"] is None:
        raise invalid("level", "may not be null")
    level = values.get("level") or (obj.level if obj else "")
    return Level(level)


def _validated_rights(rules: UserRules, names: list[str]) -> set[str]:
    for name in names:
        if name not in Right._value2member_map_:
            raise invalid("rights", f"unknown right {name!r}; see GET /rights")
        if name.startswith(rules.forbidden_prefixes):
            raise invalid("rights", f"{name} cannot be given to {rules.audience}")
    return set(names)


def _new_rights(
    rules: UserRules, values: dict[str, Any], obj: User | None, level: Level
) -> set[str] | None:
    """The rights after this write, or None when they do not change.

    Omitted (or null) rights mean the level's preset on create and on a change of level.
    """
    given = values.pop("rights", None)
    if given is not None:
        return _validated_rights(rules, given)
    if obj is None or level.value != obj.level:
        return {r.value for r in PRESETS[level]}
    return None


def current_rights(obj: User | None) -> set[str]:
    return {r.right for r in obj.rights} if obj is not None else set()


def grantable(rights: frozenset[str]) -> set[str]:
    """The rights a company caller may hand out: its own and those they cover."""
    return set(rights) | {own.value for own, by in COVERS.items() if by.value in rights}


def _guard_escalation(ctx: Ctx, obj: User | None, rights: set[str]) -> None:
    """ADM-3: a company administrator grants only rights it holds itself."""
    if ctx.principal.is_provider:
        return
    granted = rights - current_rights(obj) - grantable(ctx.principal.rights)
    if granted:
        raise ApiError(
            403,
            "forbidden",
            f"rights: you cannot grant rights you do not hold: {', '.join(sorted(granted))}",
            field="rights",
        )


def _guard_takeover(ctx: Ctx, obj: User | None, values: dict[str, Any]) -> None:
    """Nor may it set the password of an account holding rights it lacks."""
    if obj is None or ctx.principal.is_provider or "password" not in values:
        return
    if not current_rights(obj) <= grantable(ctx.principal.rights):
        raise ApiError(
            403,
            "forbidden",
            "password: this account holds rights you do not; ask its administrator",
            field="password",
        )


def _guard_self(
    ctx: Ctx, obj: User | None, values: dict[str, Any], level: Level, rights: set[str] | None
) -> None:
    """Nobody locks themselves out: no demotion, deactivation or loss of rights (ADM-1)."""
    if obj is None or obj.id != ctx.principal.user_id:
        return
    if level.value != obj.level:
        raise invalid("level", "you cannot change your own level")
    if values.get("is_active") is False:
        raise invalid("is_active", "you cannot deactivate your own account")
    if rights is not None and not current_rights(obj) <= rights:
        raise invalid("rights", "you cannot remove your own rights")


def _check_numbers(ctx: Ctx, values: dict[str, Any]) -> None:
    for key, model in (
        ("internal_number_ids", InternalNumber),
        ("external_number_ids", ExternalNumber),
    ):
        if key in values and values[key] is None:
            values[key] = []
        for i, number_id in enumerate(values.get(key, [])):
            ctx.check_ref(model, number_id, f"{key}.{i}")


def user_prepare(rules: UserRules) -> Callable[[Ctx, dict[str, Any], Any], dict[str, Any]]:
    """The prepare hook of a kind of user: hash, level, rights and the guards above."""

    def prepare(ctx: Ctx, data: dict[str, Any], obj: User | None) -> dict[str, Any]:
        values = dict(data)
        level = _level(values, obj)
        if level not in rules.levels:
            raise invalid(
                "level", f"{rules.audience} have levels {', '.join(sorted(rules.levels))}"
            )
        rights = _new_rights(rules, values, obj, level)
        _guard_self(ctx, obj, values, level, rights)
        _guard_takeover(ctx, obj, data)
        if rights is not None:
            _guard_escalation(ctx, obj, rights)
            values["rights"] = rights
        _check_numbers(ctx, values)
        _hash(values)  # last: argon2 is slow, refused requests need not pay for it
        return values

    return prepare


def _sync(items: list[Any], wanted: Iterable[Any], key: str, make: Callable[[Any], Any]) -> None:
    """Make a child collection hold exactly ``wanted``, keeping rows that stay."""
    wanted = list(dict.fromkeys(wanted))
    keep = [item for item in items if getattr(item, key) in wanted]
    have = {getattr(item, key) for item in keep}
    items[:] = keep + [make(w) for w in wanted if w not in have]


def apply_user(ctx: Ctx, obj: User, values: dict[str, Any]) -> None:
    if "rights" in values:
        _sync(obj.rights, sorted(values["rights"]), "right", lambda r: UserRight(right=r))
    if "internal_number_ids" in values:
        _sync(
            obj.internal_numbers,
            values["internal_number_ids"],
            "internal_number_id",
            lambda n: UserInternalNumber(internal_number_id=n),
        )
    if "external_number_ids" in values:
        _sync(
            obj.external_numbers,
            values["external_number_ids"],
            "external_number_id",
            lambda n: UserExternalNumber(external_number_id=n),
        )
    if obj.id is not None and "password_hash" in values:
        # ADM-7: a new password ends every session opened with the old one.
        ctx.db.execute(delete(AuthSession).where(AuthSession.user_id == obj.id))


def user_fields(obj: User) -> dict[str, Any]:
    return {
        "id": obj.id,
        "created_ms": obj.created_ms,
        "updated_ms": obj.updated_ms,
        "client_id": obj.client_id,
        "login": obj.login,
        "full_name": obj.full_name,
        "email": obj.email,
        "language": obj.language,
        "is_active": obj.is_active,
        "level": obj.level,
        "rights": sorted(current_rights(obj)),
    }


def remove_user(ctx: Ctx, res: Resource[Any], item_id: int, *, cascade: bool) -> Response:
    """Delete a user (never oneself), audited like every generic delete."""
    fetch(ctx, res, item_id, "read")  # one the caller cannot see is 404 whatever the action
    obj = fetch(ctx, res, item_id, "delete")
    if obj.id == ctx.principal.user_id:
        raise ApiError(422, "invalid", "you cannot delete your own account", field="id")
    before = to_read(ctx, res, obj)
    delete_object(ctx, res, obj, cascade=cascade)
    audit(ctx, "delete", res.name, obj.id, before, None)
    commit(ctx)
    return Response(status_code=204)


class UserCreate(In):
    login: Login
    password: Password
    full_name: Annotated[str, Field(max_length=200)] = ""
    email: Email = None
    language: Lang = "ru"
    is_active: bool = True
    level: Literal["client_admin", "client_user"] = "client_user"
    rights: RightNames = None
    internal_number_ids: Annotated[list[RefId], Field(max_length=1000)] = Field(
        default_factory=list, description="the numbers a client user's own.* rights cover"
    )
    external_number_ids: Annotated[list[RefId], Field(max_length=1000)] = Field(
        default_factory=list
    )


class UserRead(Stamped):
    client_id: int
    login: str
    full_name: str
    email: str | None
    language: str
    is_active: bool
    level: str
    rights: list[str]
    internal_number_ids: list[int]
    external_number_ids: list[int]


def _serialize_user(_ctx: Ctx, obj: User) -> UserRead:
    return UserRead(
        **user_fields(obj),
        internal_number_ids=sorted(n.internal_number_id for n in obj.internal_numbers),
        external_number_ids=sorted(n.external_number_id for n in obj.external_numbers),
    )


USERS_FULL = Resource(
    name="users",
    title="user",
    model=User,
    create_schema=UserCreate,
    update_schema=make_update_schema(UserCreate, "UserUpdate"),
    read_schema=UserRead,
    policy=rbac.CLIENT_USERS,
    sortable=("id", "login", "full_name", "level"),
    filters=("level", "is_active"),
    search=("login", "full_name", "email"),
    prepare=user_prepare(COMPANY_RULES),
    apply=apply_user,
    serialize=_serialize_user,
    tags=["users"],
)
# Deleting a user has its own route (nobody deletes themselves); the rest is generic.
USERS = replace(USERS_FULL, policy=replace(rbac.CLIENT_USERS, delete=()))

register(router, [CLIENTS, USERS])


@router.delete(
    "/clients/{client_id}/users/{item_id}",
    status_code=204,
    tags=["users"],
    operation_id="delete_users",
    summary="Delete a user",
)
def delete_user(ctx: ClientCtx, item_id: ItemIdPath, cascade: CascadeQuery = False) -> Response:
    return remove_user(ctx, USERS_FULL, item_id, cascade=cascade)
