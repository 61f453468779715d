"""FastAPI dependencies: database session, the authenticated principal, CSRF (ADM-7)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudpbx.api.errors import ApiError
from cloudpbx.api.rbac import Principal
from cloudpbx.api.state import AppState
from cloudpbx.db.base import now_ms
from cloudpbx.db.models import ApiToken, AuthSession, User
from cloudpbx.rights import Level
from cloudpbx.security import token_hash

SESSION_COOKIE = "cloudpbx_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.cloudpbx
    return state


def get_db(state: Annotated[AppState, Depends(get_state)]) -> Iterator[Session]:
    session = state.sessions()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


State = Annotated[AppState, Depends(get_state)]
DbSession = Annotated[Session, Depends(get_db)]


def _unauthorized(message: str = "authentication required") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _user_from_session(db: Session, token: str, request: Request, *, cookie: bool) -> User:
    row = db.get(AuthSession, token_hash(token))
    if row is None or row.expires_ms <= now_ms():
        raise _unauthorized("session expired or unknown")
    # Cookie sessions need the CSRF header on every state-changing request; bearer tokens
    # are never sent by a browser on its own, so they do not.
    csrf_ok = request.headers.get(CSRF_HEADER) == row.csrf_token
    if cookie and request.method not in SAFE_METHODS and not csrf_ok:
        raise ApiError(403, "csrf_failed", f"missing or wrong {CSRF_HEADER} header")
    user = db.get(User, row.user_id)
    if user is None:
        raise _unauthorized()
    return user


def _user_from_api_token(db: Session, token: str) -> User | None:
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None or (row.expires_ms is not None and row.expires_ms <= now_ms()):
        return None
    return db.get(User, row.user_id)


def authenticate(request: Request, db: Session) -> User:
    bearer = _bearer(request)
    if bearer is not None:
        user = _user_from_api_token(db, bearer) if bearer.startswith("cpx_") else None
        if user is None:
            user = _user_from_session(db, bearer, request, cookie=False)
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise _unauthorized()
        user = _user_from_session(db, cookie, request, cookie=True)
    if not user.is_active:
        raise _unauthorized("account disabled")
    return user


def principal_of(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        login=user.login,
        level=Level(user.level),
        client_id=user.client_id,
        rights=frozenset(r.right for r in user.rights),
        internal_number_ids=frozenset(n.internal_number_id for n in user.internal_numbers),
        external_number_ids=frozenset(n.external_number_id for n in user.external_numbers),
    )


def get_principal(request: Request, db: DbSession) -> Principal:
    principal = principal_of(authenticate(request, db))
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
