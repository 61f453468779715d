"""Clients (tenants), users, rights, sessions, API tokens and the audit log (§1 ADM-*)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudpbx.db.base import Base, BigId, IdMixin, JsonDict, TimestampMixin, now_ms


class Client(IdMixin, TimestampMixin, Base):
    """A tenant: one company's virtual PBX (ADM-4)."""

    __tablename__ = "clients"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    area_code: Mapped[str | None] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(8), default="ru")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # ADM-5 limits on the whole client.
    max_concurrent_calls: Mapped[int | None] = mapped_column(Integer)
    max_call_duration_s: Mapped[int | None] = mapped_column(Integer)
    allowed_directions: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: ["internal", "local", "long_distance", "toll_free", "emergency"]
    )
    spend_limit: Mapped[Decimal | None] = mapped_column()


class User(IdMixin, TimestampMixin, Base):
    """A web/API account; its rights decide what it may do (ADM-1, ADM-3)."""

    __tablename__ = "users"

    login: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    level: Mapped[str] = mapped_column(String(20))
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    language: Mapped[str] = mapped_column(String(8), default="ru")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    rights: Mapped[list[UserRight]] = relationship(cascade="all, delete-orphan", lazy="selectin")
    internal_numbers: Mapped[list[UserInternalNumber]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    external_numbers: Mapped[list[UserExternalNumber]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )


class RightDef(Base):
    """The catalogue of rights (ADM-3); seeded by the first migration."""

    __tablename__ = "rights"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    title_ru: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))


class UserRight(Base):
    __tablename__ = "user_rights"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    right: Mapped[str] = mapped_column(ForeignKey("rights.name"), primary_key=True)


class UserInternalNumber(Base):
    """A client user's numbers: the scope of their ``own.*`` rights (ADM-1)."""

    __tablename__ = "user_internal_numbers"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    internal_number_id: Mapped[int] = mapped_column(
        ForeignKey("internal_numbers.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class UserExternalNumber(Base):
    __tablename__ = "user_external_numbers"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    external_number_id: Mapped[int] = mapped_column(
        ForeignKey("external_numbers.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class AuthSession(Base):
    """A login: the browser holds it as a cookie, API clients as a bearer token."""

    __tablename__ = "auth_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    remote_addr: Mapped[str | None] = mapped_column(String(64))


class ApiToken(IdMixin, Base):
    """A long-lived token for CRMs and scripts (PRODUCT.md §6); only its hash is stored."""

    __tablename__ = "api_tokens"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_ms: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    expires_ms: Mapped[int | None] = mapped_column(BigInteger)
    last_used_ms: Mapped[int | None] = mapped_column(BigInteger)


class AuditEntry(IdMixin, Base):
    """Who changed what, when, with the state before and after (ADM-7)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_client_at", "client_id", "at_ms"),)

    at_ms: Mapped[int] = mapped_column(BigInteger, default=now_ms, index=True)
    user_id: Mapped[int | None] = mapped_column(BigId)
    user_login: Mapped[str] = mapped_column(String(100), default="")
    client_id: Mapped[int | None] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(20))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    remote_addr: Mapped[str | None] = mapped_column(String(64))


class SystemSetting(Base):
    """Installation settings changeable at run time by the system administrator."""

    __tablename__ = "system_settings"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
