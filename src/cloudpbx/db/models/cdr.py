"""Call detail records: calls → legs → events, with recordings and faxes (CDR-1, DP-7).

Times are UTC epoch milliseconds (BIGINT): exact, index-friendly and identical on SQLite and
PostgreSQL. Every index is led by the client (ADM-4). Numbers are also stored reversed so that a
search by trailing digits is a prefix range scan on an index (CDR-2).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudpbx.db.base import Base, BigId, DigitString, IdMixin, JsonDict


class Call(IdMixin, Base):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_client_start", "client_id", "start_ms"),
        # start_ms last: a number's calls come out of the index newest first, so a page of a
        # number with 20,000 calls reads 50 index entries instead of sorting 20,000 rows
        # (docs/cdr.md, bench/cdr_search.py).
        Index("ix_calls_client_caller", "client_id", "caller", "start_ms"),
        Index("ix_calls_client_called", "client_id", "called", "start_ms"),
        Index("ix_calls_client_internal", "client_id", "internal_number", "start_ms"),
        Index("ix_calls_client_caller_rev", "client_id", "caller_rev", "start_ms"),
        Index("ix_calls_client_called_rev", "client_id", "called_rev", "start_ms"),
        Index("ix_calls_open", "end_ms", "heartbeat_ms"),
    )

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    caller: Mapped[str] = mapped_column(DigitString, default="")
    called: Mapped[str] = mapped_column(DigitString, default="")
    caller_rev: Mapped[str] = mapped_column(DigitString, default="")
    called_rev: Mapped[str] = mapped_column(DigitString, default="")
    internal_number: Mapped[str | None] = mapped_column(DigitString)
    direction: Mapped[str] = mapped_column(String(16), default="internal")
    start_ms: Mapped[int] = mapped_column(BigInteger)
    answer_ms: Mapped[int | None] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    # Liveness mark of the engine: a crash leaves calls open; the next start closes them
    # with the end bounded by this heartbeat (issue 5 §6).
    heartbeat_ms: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    billable_s: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(16))
    cost: Mapped[Decimal] = mapped_column(default=Decimal(0))
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    dialplan_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("dialplan_versions.id", ondelete="SET NULL")
    )
    # DP-7: the levels of the steps the call went through, in order.
    steps: Mapped[list[int]] = mapped_column(JSON, default=list)

    legs: Mapped[list[CallLeg]] = relationship(
        cascade="all, delete-orphan", lazy="select", order_by="CallLeg.start_ms"
    )


class CallLeg(IdMixin, Base):
    """One SIP dialog of a call, with its own party, trunk, outcome and cost."""

    __tablename__ = "call_legs"
    __table_args__ = (Index("ix_call_legs_client_call", "client_id", "call_id"),)

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(8))  # in / out of the PBX
    party: Mapped[str] = mapped_column(DigitString, default="")
    port_id: Mapped[int | None] = mapped_column(ForeignKey("ports.id", ondelete="SET NULL"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    sip_call_id: Mapped[str | None] = mapped_column(String(255))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    answer_ms: Mapped[int | None] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    billable_s: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(16))
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    codec: Mapped[str | None] = mapped_column(String(32))
    cost: Mapped[Decimal] = mapped_column(default=Decimal(0))
    quality: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)


class CallEvent(IdMixin, Base):
    """Step entered, answered, transferred, … (CDR-1, DP-7)."""

    __tablename__ = "call_events"
    __table_args__ = (Index("ix_call_events_client_call", "client_id", "call_id"),)

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    leg_id: Mapped[int | None] = mapped_column(BigId)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    step_level: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)


class Recording(IdMixin, Base):
    __tablename__ = "recordings"
    __table_args__ = (Index("ix_recordings_client_call", "client_id", "call_id"),)

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    storage_path: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(100), default="audio/wav")
    start_ms: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    kind: Mapped[str] = mapped_column(String(16), default="call")  # call / voicemail


class Fax(IdMixin, Base):
    __tablename__ = "faxes"
    __table_args__ = (Index("ix_faxes_client_call", "client_id", "call_id"),)

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    pdf_path: Mapped[str | None] = mapped_column(String(500))
    tiff_path: Mapped[str | None] = mapped_column(String(500))
    pages: Mapped[int] = mapped_column(Integer, default=0)
    remote_ident: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="received")
    error: Mapped[str] = mapped_column(Text, default="")
    received_ms: Mapped[int] = mapped_column(BigInteger)
