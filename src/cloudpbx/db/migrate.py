"""Run Alembic migrations programmatically (``cloudpbx migrate``, ``make run``, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloudpbx.db.models import RightDef
from cloudpbx.rights import DESCRIPTIONS

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def sync_rights(session: Session) -> None:
    """The rights catalogue is data (ADM-3): add rights this version knows and the DB lacks."""
    known = set(session.scalars(select(RightDef.name)))
    for right, (ru, en) in DESCRIPTIONS.items():
        if right.value not in known:
            session.add(RightDef(name=right.value, title_ru=ru, title_en=en))
    session.commit()
