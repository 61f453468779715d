"""Dialplans with versions and steps (PRODUCT.md §3, DP-1…DP-7).

A dialplan belongs to one number. Saving creates a new immutable version; a call keeps the
version it started with (DP-4 "versions"). Step targets are typed foreign keys, one column per
kind, so "where is this port used?" is a join and a used object cannot vanish silently.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudpbx.db.base import Base, BigId, IdMixin, JsonDict, now_ms
from cloudpbx.db.models.telephony import ClientOwned


class Dialplan(ClientOwned, Base):
    __tablename__ = "dialplans"

    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # NUM-3: each number has its own dialplan; exactly one of the two is set.
    internal_number_id: Mapped[int | None] = mapped_column(
        ForeignKey("internal_numbers.id", ondelete="CASCADE"), unique=True
    )
    external_number_id: Mapped[int | None] = mapped_column(
        ForeignKey("external_numbers.id", ondelete="CASCADE"), unique=True
    )
    current_version: Mapped[int] = mapped_column(Integer, default=0)

    versions: Mapped[list[DialplanVersion]] = relationship(
        cascade="all, delete-orphan", order_by="DialplanVersion.number", lazy="select"
    )


class DialplanVersion(IdMixin, Base):
    __tablename__ = "dialplan_versions"
    __table_args__ = (UniqueConstraint("dialplan_id", "number"),)

    dialplan_id: Mapped[int] = mapped_column(
        ForeignKey("dialplans.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    created_ms: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    created_by: Mapped[int | None] = mapped_column(BigId)
    comment: Mapped[str] = mapped_column(Text, default="")
    # Editor layout (box positions), kept with the version so rollback restores the drawing.
    layout: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)

    steps: Mapped[list[DialplanStep]] = relationship(
        cascade="all, delete-orphan", order_by="DialplanStep.level", lazy="selectin"
    )


class DialplanStep(IdMixin, Base):
    """DP-1: level, action with a typed target, timeout, schedule, conditions."""

    __tablename__ = "dialplan_steps"
    __table_args__ = (UniqueConstraint("version_id", "level"),)

    version_id: Mapped[int] = mapped_column(
        ForeignKey("dialplan_versions.id", ondelete="CASCADE"), index=True
    )
    level: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    timeout_s: Mapped[int] = mapped_column(Integer, default=0)
    port_id: Mapped[int | None] = mapped_column(
        ForeignKey("ports.id", ondelete="RESTRICT"), index=True
    )
    queue_id: Mapped[int | None] = mapped_column(
        ForeignKey("queues.id", ondelete="RESTRICT"), index=True
    )
    forwarding_number_id: Mapped[int | None] = mapped_column(
        ForeignKey("forwarding_numbers.id", ondelete="RESTRICT"), index=True
    )
    voice_menu_id: Mapped[int | None] = mapped_column(
        ForeignKey("voice_menus.id", ondelete="RESTRICT"), index=True
    )
    media_file_id: Mapped[int | None] = mapped_column(
        ForeignKey("media_files.id", ondelete="RESTRICT"), index=True
    )
    voicemail_box_id: Mapped[int | None] = mapped_column(
        ForeignKey("voicemail_boxes.id", ondelete="RESTRICT"), index=True
    )
    classifier_id: Mapped[int | None] = mapped_column(
        ForeignKey("classifiers.id", ondelete="RESTRICT"), index=True
    )
    goto_number_id: Mapped[int | None] = mapped_column(
        ForeignKey("internal_numbers.id", ondelete="RESTRICT"), index=True
    )
    # {"days": [0..6], "ranges": [["09:00","18:00"]], "exceptions": [...]}; {} = always.
    schedule: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    # Condition name -> step level (DP-3).
    conditions: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    # Action parameters that are not targets, e.g. the classifier's found/not-found steps.
    params: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    # Supplementary-service options of the step (DP-1).
    options: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
