"""Declarative base, naming conventions and shared column types."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, MetaData, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Constraint names are stable across SQLite and PostgreSQL so Alembic can alter them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite has no BIGINT autoincrement; INTEGER PRIMARY KEY is its 64-bit rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Money is exact (PRODUCT.md CDR-1): 4 decimal places cover sub-kopeck per-second tariffs.
Money = Numeric(14, 4, asdecimal=True)

# Digit strings compared by byte order: prefix searches use plain B-tree ranges on both
# databases (PostgreSQL's default collation may ignore punctuation, "C" never does).
DigitString = String(32).with_variant(String(32, collation="C"), "postgresql")


class JsonDict(TypeDecorator[dict[str, Any]]):
    """JSON object column that is never NULL in Python."""

    impl = JSON
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> dict[str, Any]:
        return dict(value or {})


def now_ms() -> int:
    """UTC wall-clock time in milliseconds (PRODUCT.md CDR-1)."""
    return time.time_ns() // 1_000_000


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {Decimal: Money}


class IdMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class TimestampMixin:
    created_ms: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    updated_ms: Mapped[int] = mapped_column(BigInteger, default=now_ms, onupdate=now_ms)
