"""Operators (trunks) with rewrite rules, tariffs, billing accounts (TRK-1, ADM-6)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudpbx.db.base import Base, DigitString, IdMixin, TimestampMixin


class Operator(IdMixin, TimestampMixin, Base):
    """A carrier reached through a SIP trunk (TRK-1)."""

    __tablename__ = "operators"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=5060)
    transport: Mapped[str] = mapped_column(String(8), default="udp")
    # Registration-based trunks log in; IP-authenticated ones list the carrier's addresses.
    register: Mapped[bool] = mapped_column(Boolean, default=False)
    username: Mapped[str | None] = mapped_column(String(100))
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    allowed_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    # §3a: where the dialled DID is read from: Request-URI, To or Diversion.
    did_source: Mapped[str] = mapped_column(String(16), default="request_uri")
    max_channels: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    tariff_id: Mapped[int | None] = mapped_column(
        ForeignKey("tariffs.id", ondelete="RESTRICT"), index=True
    )

    rewrite_rules: Mapped[list[RewriteRule]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="RewriteRule.position"
    )


class RewriteRule(IdMixin, Base):
    """Carriers send numbers in many shapes (§3a): a regex rewrite per direction and field."""

    __tablename__ = "rewrite_rules"

    operator_id: Mapped[int] = mapped_column(
        ForeignKey("operators.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    direction: Mapped[str] = mapped_column(String(8))  # inbound / outbound
    field: Mapped[str] = mapped_column(String(8))  # caller / called
    match: Mapped[str] = mapped_column(String(200))
    replace: Mapped[str] = mapped_column(String(200))


class Tariff(IdMixin, TimestampMixin, Base):
    """Prices by destination prefix; the increment rounds billable time up."""

    __tablename__ = "tariffs"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    # E.g. 60/60 bills whole minutes, 1/1 per second, 60/1 a first minute then seconds.
    first_increment_s: Mapped[int] = mapped_column(Integer, default=60)
    increment_s: Mapped[int] = mapped_column(Integer, default=60)


class TariffRate(IdMixin, Base):
    __tablename__ = "tariff_rates"
    __table_args__ = (UniqueConstraint("tariff_id", "prefix"),)

    tariff_id: Mapped[int] = mapped_column(ForeignKey("tariffs.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(DigitString)
    description: Mapped[str] = mapped_column(String(200), default="")
    price_per_minute: Mapped[Decimal] = mapped_column()
    connection_fee: Mapped[Decimal] = mapped_column(default=Decimal(0))


class BillingAccount(IdMixin, TimestampMixin, Base):
    """ADM-6: a client's account: balance, tariff, spend."""

    __tablename__ = "billing_accounts"

    client_id: Mapped[int] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), unique=True
    )
    number: Mapped[str] = mapped_column(String(64), unique=True)
    tariff_id: Mapped[int | None] = mapped_column(
        ForeignKey("tariffs.id", ondelete="RESTRICT"), index=True
    )
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    balance: Mapped[Decimal] = mapped_column(default=Decimal(0))
    credit_limit: Mapped[Decimal] = mapped_column(default=Decimal(0))
    spent_total: Mapped[Decimal] = mapped_column(default=Decimal(0))
