"""API fixtures: the app over the test database and callers of every ADM-1 level."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cloudpbx.app import build_state, create_app, ensure_dirs
from cloudpbx.config import Settings
from cloudpbx.db.base import now_ms
from cloudpbx.db.models import AuthSession, Client, User, UserRight
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.rights import PRESETS, Level
from cloudpbx.security import hash_password, new_token, token_hash

PASSWORD = "correct horse battery staple"
# One argon2 hash reused by every test user: hashing costs ~90 ms each.
_HASH = hash_password(PASSWORD)


@dataclass
class Caller:
    """A logged-in API client: a TestClient with a bearer token."""

    http: TestClient
    user_id: int
    client_id: int | None
    headers: dict[str, str] = field(default_factory=dict)

    def get(self, url: str, **kw: Any) -> Any:
        return self.http.get(url, headers=self.headers, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.http.post(url, headers=self.headers, **kw)

    def put(self, url: str, **kw: Any) -> Any:
        return self.http.put(url, headers=self.headers, **kw)

    def patch(self, url: str, **kw: Any) -> Any:
        return self.http.patch(url, headers=self.headers, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.http.delete(url, headers=self.headers, **kw)

    def ok(self, method: str, url: str, status: int = 200, **kw: Any) -> Any:
        response = getattr(self, method)(url, **kw)
        assert response.status_code == status, response.text
        return response.json() if response.content else None


@pytest.fixture
def settings(database_url: str, data_dir: Path, engine: Engine) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        secret_key="test-secret-key",
        cookie_secure=False,
    )


@pytest.fixture(scope="session")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """Building the routes costs ~0.4 s: one app per worker, its state renewed per test."""
    scratch = tmp_path_factory.mktemp("app")
    return create_app(Settings(database_url="sqlite://", secret_key="x", data_dir=scratch))


@pytest.fixture
def app_client(settings: Settings, shared_app: FastAPI) -> Iterator[TestClient]:
    state = build_state(settings)
    ensure_dirs(settings)
    shared_app.state.cloudpbx = state
    with TestClient(shared_app) as client:
        yield client
    state.sessions.kw["bind"].dispose()


@dataclass
class World:
    """Builds clients and users directly in the database, then logs them in."""

    http: TestClient
    engine: Engine

    def client(self, name: str, **kw: Any) -> int:
        with make_sessionmaker(self.engine)() as session:
            row = Client(name=name, **kw)
            session.add(row)
            session.commit()
            return row.id

    def user(
        self,
        level: Level,
        client_id: int | None = None,
        *,
        extra: tuple[str, ...] = (),
        login: str | None = None,
    ) -> int:
        with make_sessionmaker(self.engine)() as session:
            user = User(
                login=login
                or f"{level.value}-{client_id}-{len(extra)}-{id(self)}-"
                f"{session.query(User).count()}",
                password_hash=_HASH,
                level=level.value,
                client_id=client_id,
            )
            rights = {r.value for r in PRESETS[level]} | set(extra)
            user.rights = [UserRight(right=r) for r in sorted(rights)]
            session.add(user)
            session.commit()
            return user.id

    def login(self, user_id: int) -> Caller:
        """A session as POST /auth/login makes it (test_auth.py tests that route itself),
        written directly: an argon2 check per test caller would dominate the suite's time."""
        token = new_token()
        with make_sessionmaker(self.engine)() as session:
            user = session.get(User, user_id)
            assert user is not None
            client_id = user.client_id
            session.add(
                AuthSession(
                    token_hash=token_hash(token),
                    user_id=user_id,
                    csrf_token="csrf",
                    expires_ms=now_ms() + 3_600_000,
                )
            )
            session.commit()
        return Caller(self.http, user_id, client_id, {"Authorization": f"Bearer {token}"})

    def caller(
        self, level: Level, client_id: int | None = None, extra: tuple[str, ...] = ()
    ) -> Caller:
        return self.login(self.user(level, client_id, extra=extra))


@pytest.fixture
def world(app_client: TestClient, engine: Engine) -> World:
    return World(app_client, engine)


@pytest.fixture
def sysadmin(world: World) -> Caller:
    return world.caller(Level.SYSTEM_ADMIN)
