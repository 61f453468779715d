"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when
``CLOUDPBX_TEST_DATABASE_URL`` is set by ``make test``), the app, and logged-in callers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, make_url, text

from cloudpbx import security
from cloudpbx.db.base import Base
from cloudpbx.db.migrate import sync_rights, upgrade
from cloudpbx.db.session import make_engine, make_sessionmaker

KEEP_TABLES = {"rights", "alembic_version"}


@pytest.fixture(scope="session", autouse=True)
def fast_argon2() -> Iterator[None]:
    """Real argon2id, with cheap parameters: production cost (~90 ms) per user would
    dominate the suite. Hashes made here verify like any other."""
    original = security._hasher
    security._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    yield
    security._hasher = original


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> str:
    url = os.environ.get("CLOUDPBX_TEST_DATABASE_URL")
    if not url:
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    return _worker_database(url, worker_id)


def _worker_database(url: str, worker_id: str) -> str:
    """Each xdist worker gets its own PostgreSQL database, created on first use."""
    if worker_id == "master":
        return url
    parsed = make_url(url)
    name = f"{parsed.database}_{worker_id}"
    admin = make_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    _drop_everything(engine)
    upgrade(database_url)
    with make_sessionmaker(engine)() as session:
        sync_rights(session)
    yield engine
    engine.dispose()


def _drop_everything(engine: Engine) -> None:
    """A reused PostgreSQL database starts empty so the migrations run from the start."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


def truncate_all(engine: Engine) -> None:
    tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name not in KEEP_TABLES]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture
def engine(migrated_engine: Engine) -> Iterator[Engine]:
    yield migrated_engine
    truncate_all(migrated_engine)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
