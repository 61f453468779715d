"""Login, logout, who am I, API tokens (ADM-7, issue 2 §4)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudpbx.api.crud import Ctx, ItemIdPath, audit
from cloudpbx.api.deps import SESSION_COOKIE, CurrentPrincipal, DbSession, State, authenticate
from cloudpbx.api.errors import ApiError, not_found
from cloudpbx.api.schemas.common import In, Millis, OptMillis, Out
from cloudpbx.db.base import now_ms
from cloudpbx.db.models import ApiToken, AuthSession, User
from cloudpbx.rights import Right
from cloudpbx.security import new_token, token_hash, verify_password

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginIn(In):
    login: Annotated[str, Field(min_length=1, max_length=100)]
    password: Annotated[str, Field(min_length=1, max_length=200)]


class LoginOut(BaseModel):
    token: str = Field(description="bearer token for API clients (the browser uses the cookie)")
    csrf_token: str = Field(description="send as X-CSRF-Token with cookie-authenticated changes")
    expires_ms: Millis


class MeOut(BaseModel):
    id: int
    login: str
    full_name: str
    level: str
    client_id: int | None
    language: str
    rights: list[str]
    internal_number_ids: list[int]
    external_number_ids: list[int]
    csrf_token: str | None = Field(
        None,
        description="the X-CSRF-Token of this cookie session (the one the login gave); "
        "null for bearer-token callers, which need none",
    )


def _keys(login: str, request: Request) -> tuple[str, ...]:
    host = request.client.host if request.client else "?"
    return (f"login:{login.lower()}", f"addr:{host}")


def _check_password(db: Session, body: LoginIn) -> User | None:
    user = db.scalar(select(User).where(User.login == body.login))
    # Verify even for unknown logins so timing does not reveal which logins exist.
    ok = verify_password(user.password_hash if user else None, body.password)
    if not ok or user is None or not user.is_active:
        return None
    if Right.HTTPS_LOGIN.value not in {r.right for r in user.rights}:
        return None
    return user


@router.post("/login", response_model=LoginOut, operation_id="login")
def login(
    body: LoginIn, request: Request, response: Response, db: DbSession, state: State
) -> LoginOut:
    """Start a session: a Secure, HttpOnly, SameSite=Strict cookie plus a bearer token."""
    keys = _keys(body.login, request)
    wait = state.limiter.retry_after(keys)
    if wait:
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed logins; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    user = _check_password(db, body)
    if user is None:
        state.limiter.failed(keys)
        raise ApiError(401, "bad_credentials", "wrong login or password")
    state.limiter.succeeded(keys)
    return _open_session(
        db,
        user,
        request,
        response,
        state.settings.session_ttl_seconds,
        secure=state.settings.cookie_secure,
    )


def _open_session(
    db: Session, user: User, request: Request, response: Response, ttl: int, *, secure: bool
) -> LoginOut:
    token, csrf = new_token(), secrets.token_urlsafe(24)
    expires = now_ms() + ttl * 1000
    host = request.client.host if request.client else None
    db.add(
        AuthSession(
            token_hash=token_hash(token),
            user_id=user.id,
            csrf_token=csrf,
            expires_ms=expires,
            remote_addr=host,
        )
    )
    db.commit()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ttl,
        httponly=True,
        secure=secure,
        samesite="strict",
        path="/",
    )
    return LoginOut(token=token, csrf_token=csrf, expires_ms=expires)


@router.post("/logout", status_code=204, operation_id="logout")
def logout(request: Request, db: DbSession) -> Response:
    user = authenticate(request, db)
    token = request.cookies.get(SESSION_COOKIE) or request.headers.get("authorization", "")[7:]
    row = db.get(AuthSession, token_hash(token.strip()))
    if row is not None and row.user_id == user.id:
        db.delete(row)
        db.commit()
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _session_csrf(request: Request, db: Session) -> str | None:
    """ADM-7: the CSRF token of the cookie session that made this request, so a reloaded page
    needs no copy of it in storage. Never for bearer callers (a bearer header takes precedence
    in `authenticate`, and such callers need no CSRF token); never a new secret."""
    if request.headers.get("authorization"):
        return None
    cookie = request.cookies.get(SESSION_COOKIE)
    row = db.get(AuthSession, token_hash(cookie)) if cookie else None
    return row.csrf_token if row is not None else None


@router.get("/me", response_model=MeOut, operation_id="me")
def me(principal: CurrentPrincipal, request: Request, response: Response, db: DbSession) -> MeOut:
    # The answer carries the session's CSRF token: no cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    user = db.get(User, principal.user_id)
    assert user is not None
    return MeOut(
        id=user.id,
        login=user.login,
        full_name=user.full_name,
        level=user.level,
        client_id=user.client_id,
        language=user.language,
        rights=sorted(principal.rights),
        internal_number_ids=sorted(principal.internal_number_ids),
        external_number_ids=sorted(principal.external_number_ids),
        csrf_token=_session_csrf(request, db),
    )


class TokenIn(In):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    ttl_days: Annotated[int | None, Field(None, ge=1, le=3650)] = None


class TokenOut(Out):
    id: int
    name: str
    created_ms: Millis
    expires_ms: OptMillis
    last_used_ms: OptMillis


class TokenCreated(TokenOut):
    token: str = Field(description="shown once; only its hash is stored")


@router.get("/tokens", response_model=list[TokenOut], operation_id="list_api_tokens")
def list_tokens(principal: CurrentPrincipal, db: DbSession) -> list[ApiToken]:
    return list(db.scalars(select(ApiToken).where(ApiToken.user_id == principal.user_id)))


@router.post(
    "/tokens", response_model=TokenCreated, status_code=201, operation_id="create_api_token"
)
def create_token(
    body: TokenIn, request: Request, principal: CurrentPrincipal, db: DbSession, state: State
) -> TokenCreated:
    """An API token for a CRM or a script, with the rights of the user who made it."""
    token = "cpx_" + new_token()
    expires = now_ms() + body.ttl_days * 86_400_000 if body.ttl_days else None
    row = ApiToken(
        user_id=principal.user_id, name=body.name, token_hash=token_hash(token), expires_ms=expires
    )
    db.add(row)
    db.flush()
    ctx = Ctx(
        db=db, principal=principal, state=state, client_id=principal.client_id, request=request
    )
    audit(ctx, "create", "api_tokens", row.id, None, {"name": body.name})
    db.commit()
    return TokenCreated(token=token, **TokenOut.model_validate(row).model_dump())


@router.delete("/tokens/{token_id}", status_code=204, operation_id="delete_api_token")
def delete_token(
    token_id: ItemIdPath, request: Request, principal: CurrentPrincipal, db: DbSession, state: State
) -> Response:
    row = db.get(ApiToken, token_id)
    if row is None or row.user_id != principal.user_id:
        raise not_found("token")
    db.delete(row)
    ctx = Ctx(
        db=db, principal=principal, state=state, client_id=principal.client_id, request=request
    )
    audit(ctx, "delete", "api_tokens", token_id, {"name": row.name}, None)
    db.commit()
    return Response(status_code=204)
