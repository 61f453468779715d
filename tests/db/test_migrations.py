"""The Alembic migrations build exactly the schema of the models (issue 2 §3)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select

from cloudpbx.db.base import Base
from cloudpbx.db.models import RightDef
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.rights import Right


def test_migrated_schema_matches_models(engine: Engine) -> None:
    """Autogenerate against the migrated database finds nothing left to do."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_every_table_exists(engine: Engine) -> None:
    names = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= names


def test_rights_catalogue_is_data(engine: Engine) -> None:
    """ADM-3: the rights are rows, synchronised from the code's catalogue."""
    with make_sessionmaker(engine)() as session:
        stored = set(session.scalars(select(RightDef.name)))
    assert stored == {r.value for r in Right}


def test_client_indexes_lead_cdr(engine: Engine) -> None:
    """CDR-1: every call index used for search is led by the client."""
    indexes = inspect(engine).get_indexes("calls")
    searchable = [i for i in indexes if i["name"].startswith("ix_calls_client")]
    assert len(searchable) >= 5
    assert all(i["column_names"][0] == "client_id" for i in searchable)
