"""Numbers, ports and dialplan components of a client (PRODUCT.md §2, §4)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloudpbx.db.base import Base, DigitString, IdMixin, JsonDict, TimestampMixin


class ClientOwned(IdMixin, TimestampMixin):
    """Every client object carries its client: the tenant filter of ADM-4."""

    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)


class InternalNumber(ClientOwned, Base):
    """NUM-2: an extension of a client; its dialplan decides what a call to it does."""

    __tablename__ = "internal_numbers"
    __table_args__ = (UniqueConstraint("client_id", "number"),)

    number: Mapped[str] = mapped_column(DigitString)
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")


class ExternalNumber(ClientOwned, Base):
    """NUM-1: a DID in E.164, unique in the installation, allocated to a client."""

    __tablename__ = "external_numbers"

    number: Mapped[str] = mapped_column(DigitString, unique=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")


class PickupGroup(ClientOwned, Base):
    """PG-1: ports of one group may pick up each other's ringing calls."""

    __tablename__ = "pickup_groups"
    __table_args__ = (UniqueConstraint("client_id", "number"),)

    number: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")


class Port(ClientOwned, Base):
    """PRT-1: a SIP account, the "virtual image of a phone"."""

    __tablename__ = "ports"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # The SIP login is unique in the installation so a phone registering with the server's
    # address as its domain is still identified (issue 5 §1).
    sip_login: Mapped[str] = mapped_column(String(64), unique=True)
    # The SIP secret is encrypted at rest (never a web-password hash): digest auth needs it
    # to compute HA1 for MD5 and SHA-256 (RFC 8760) in the installation's realm.
    sip_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    auth_algorithm: Mapped[str] = mapped_column(String(16), default="MD5")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(8), default="ru")
    pickup_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("pickup_groups.id", ondelete="RESTRICT"), index=True
    )
    # §3a: each port has a caller ID: an internal number and an external one for outbound.
    callerid_internal_id: Mapped[int | None] = mapped_column(
        ForeignKey("internal_numbers.id", ondelete="RESTRICT"), index=True
    )
    callerid_external_id: Mapped[int | None] = mapped_column(
        ForeignKey("external_numbers.id", ondelete="RESTRICT"), index=True
    )
    services: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    max_concurrent_incoming: Mapped[int | None] = mapped_column(Integer)
    max_incoming_duration_s: Mapped[int | None] = mapped_column(Integer)
    max_concurrent_outgoing: Mapped[int | None] = mapped_column(Integer)


class ForwardingNumber(ClientOwned, Base):
    """FWD-1: an outside number dialled through a trunk ("Заданный номер")."""

    __tablename__ = "forwarding_numbers"

    number: Mapped[str] = mapped_column(DigitString)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(8), default="ru")
    services: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    max_incoming_duration_s: Mapped[int | None] = mapped_column(Integer)
    max_concurrent_incoming: Mapped[int | None] = mapped_column(Integer)


class MediaPack(ClientOwned, Base):
    """MED-1: a bundle of sound files; the default pack is music on hold."""

    __tablename__ = "media_packs"
    __table_args__ = (UniqueConstraint("client_id", "name"),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class MediaFile(ClientOwned, Base):
    """MED-1: a named sound file of a pack, stored in telephony format."""

    __tablename__ = "media_files"

    pack_id: Mapped[int] = mapped_column(
        ForeignKey("media_packs.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="ru")
    description: Mapped[str] = mapped_column(Text, default="")
    storage_path: Mapped[str | None] = mapped_column(String(500))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))


class Queue(ClientOwned, Base):
    """Q-1: a call queue with agents and a ringing strategy."""

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(8), default="ru")
    strategy: Mapped[str] = mapped_column(String(20), default="ringall")
    pickup_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("pickup_groups.id", ondelete="RESTRICT"), index=True
    )
    music_pack_id: Mapped[int | None] = mapped_column(
        ForeignKey("media_packs.id", ondelete="RESTRICT"), index=True
    )
    max_callers: Mapped[int | None] = mapped_column(Integer)
    agent_ring_s: Mapped[int] = mapped_column(Integer, default=20)
    services: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)

    agents: Mapped[list[QueueAgent]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="QueueAgent.position"
    )


class QueueAgent(IdMixin, Base):
    """An agent is a port or a forwarding number (Q-1)."""

    __tablename__ = "queue_agents"

    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    port_id: Mapped[int | None] = mapped_column(
        ForeignKey("ports.id", ondelete="RESTRICT"), index=True
    )
    forwarding_number_id: Mapped[int | None] = mapped_column(
        ForeignKey("forwarding_numbers.id", ondelete="RESTRICT"), index=True
    )
    penalty: Mapped[int] = mapped_column(Integer, default=0)
    logged_in: Mapped[bool] = mapped_column(Boolean, default=True)


class VoiceMenu(ClientOwned, Base):
    """IVR-1: announcement, digit timeout, extension dialling, key map."""

    __tablename__ = "voice_menus"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(8), default="ru")
    announcement_id: Mapped[int | None] = mapped_column(
        ForeignKey("media_files.id", ondelete="RESTRICT"), index=True
    )
    digit_timeout_s: Mapped[int] = mapped_column(Integer, default=3)
    extension_dialling: Mapped[bool] = mapped_column(Boolean, default=False)
    services: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    max_concurrent_incoming: Mapped[int | None] = mapped_column(Integer)
    max_incoming_duration_s: Mapped[int | None] = mapped_column(Integer)

    keys: Mapped[list[VoiceMenuKey]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="VoiceMenuKey.key"
    )


class VoiceMenuKey(IdMixin, Base):
    __tablename__ = "voice_menu_keys"
    __table_args__ = (UniqueConstraint("menu_id", "key"),)

    menu_id: Mapped[int] = mapped_column(
        ForeignKey("voice_menus.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(1))
    internal_number_id: Mapped[int] = mapped_column(
        ForeignKey("internal_numbers.id", ondelete="RESTRICT"), index=True
    )


class Classifier(ClientOwned, Base):
    """CLS-1: a named list of contacts, for routing by caller and for telemarketing."""

    __tablename__ = "classifiers"
    __table_args__ = (UniqueConstraint("client_id", "name"),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")


class Contact(ClientOwned, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("classifier_id", "clip"),
        Index("ix_contacts_client_clip", "client_id", "clip"),
    )

    classifier_id: Mapped[int] = mapped_column(
        ForeignKey("classifiers.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    clip: Mapped[str] = mapped_column(DigitString)


class VoicemailBox(ClientOwned, Base):
    """VM-1: messages are e-mailed with the caller's number and the time."""

    __tablename__ = "voicemail_boxes"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str | None] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(8), default="ru")
    greeting_id: Mapped[int | None] = mapped_column(
        ForeignKey("media_files.id", ondelete="RESTRICT"), index=True
    )
    max_message_s: Mapped[int] = mapped_column(Integer, default=120)
    attach_audio: Mapped[bool] = mapped_column(Boolean, default=True)


class Campaign(ClientOwned, Base):
    """TM-1: an outbound telemarketing campaign."""

    __tablename__ = "campaigns"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    processing_number_id: Mapped[int | None] = mapped_column(
        ForeignKey("internal_numbers.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="blocked")
    max_concurrent: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    retry_interval_s: Mapped[int] = mapped_column(Integer, default=600)
    ring_timeout_s: Mapped[int] = mapped_column(Integer, default=30)

    classifiers: Mapped[list[CampaignClassifier]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )


class CampaignClassifier(Base):
    __tablename__ = "campaign_classifiers"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    classifier_id: Mapped[int] = mapped_column(
        ForeignKey("classifiers.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class Registration(ClientOwned, Base):
    """PRT-1: a UDP registration kept across restarts (engine/registration_db.py).

    Only UDP bindings are stored: a TCP/TLS/WS binding dies with its connection (RFC 5626
    §5.2), while a phone on UDP keeps its NAT mapping and expects to stay reachable.
    """

    __tablename__ = "registrations"
    __table_args__ = (UniqueConstraint("port_id", "contact_uri"),)

    port_id: Mapped[int] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"))
    contact_uri: Mapped[str] = mapped_column(String(1000))
    # Where the REGISTER came from (after NAT) and where it arrived: the flow to reuse.
    source_host: Mapped[str] = mapped_column(String(64))
    source_port: Mapped[int] = mapped_column(Integer)
    local_host: Mapped[str] = mapped_column(String(64))
    local_port: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(String(8), default="UDP")
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    call_id: Mapped[str] = mapped_column(String(200))
    cseq: Mapped[int] = mapped_column(BigInteger)


class Webhook(ClientOwned, Base):
    """PRODUCT.md §6 (CRM телефония): call events POSTed to a CRM, signed with HMAC-SHA256.

    The secret signs every delivery, so it must be recoverable: it is encrypted at rest with
    the installation's SecretBox, like SIP secrets, and never read back through the API.
    """

    __tablename__ = "webhooks"

    url: Mapped[str] = mapped_column(String(2000))
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # Call event kinds delivered (engine/active_calls.py EventKind); empty means all of them.
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(Text, default="")
