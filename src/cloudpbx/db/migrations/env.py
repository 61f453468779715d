"""Alembic environment: migrates the database named by the caller or the settings."""

from alembic import context
from sqlalchemy import pool

import cloudpbx.db.models  # noqa: F401 - registers every table
from cloudpbx.db.base import Base
from cloudpbx.db.session import make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
if not url:
    from cloudpbx.config import get_settings

    url = get_settings().database_url


def run_offline() -> None:
    context.configure(
        url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Batch mode lets later migrations alter tables on SQLite (copy-and-move).
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
