"""Компоненты диалплана: the objects dialplan steps point at (PRODUCT.md §4).

Forwarding numbers (FWD-1), queues (Q-1), voice menus (IVR-1), media packs and files (MED-1),
classifiers and their contacts (CLS-1), voicemail boxes (VM-1) and telemarketing campaigns
(TM-1). Every resource is client-scoped and goes through the generic CRUD layer (api/crud.py);
the routes at the end cover what plain CRUD cannot: audio upload and download, deleting a media
file's stored audio, importing contacts from CSV, and starting/stopping a campaign.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Body, File, Request, Response, UploadFile
from fastapi.responses import FileResponse
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, Field
from sqlalchemy import inspect, select

from cloudpbx.api import rbac
from cloudpbx.api.crud import (
    CascadeQuery,
    ClientCtx,
    Ctx,
    ItemIdPath,
    Resource,
    audit,
    commit,
    delete_object,
    fetch,
    make_update_schema,
    register,
    scope_filters,
    to_read,
)
from cloudpbx.api.errors import ApiError, conflict, invalid, not_found
from cloudpbx.api.routes.numbering import Services, e164
from cloudpbx.api.schemas.common import (
    In,
    Language,
    Limit,
    Name,
    Out,
    OwnedOut,
    RefId,
    Seconds,
    Text,
)
from cloudpbx.config import Settings
from cloudpbx.db.models import (
    Campaign,
    CampaignClassifier,
    Classifier,
    Contact,
    ForwardingNumber,
    InternalNumber,
    MediaFile,
    MediaPack,
    Port,
    Queue,
    QueueAgent,
    VoicemailBox,
    VoiceMenu,
    VoiceMenuKey,
)
from cloudpbx.media.importer import (
    ConverterMissingError,
    ImportLimits,
    ImportRefused,
    ImportResult,
    import_audio_sync,
)

router = APIRouter()


# --- shared helpers --------------------------------------------------------------------------


def _services(data: dict[str, Any]) -> dict[str, Any]:
    """§4.9: services are stored as the full Services object, defaults filled in."""
    if "services" in data:
        if data["services"] is None:
            raise invalid("services", "may not be null")
        data["services"] = Services.model_validate(data["services"]).model_dump()
    return data


def _nested_list(
    data: dict[str, Any], name: str, item: type[BaseModel] | None = None
) -> list[Any] | None:
    """A nested list in a body: absent (PATCH leaves it alone) or a list, never null.

    PATCH bodies are dumped without unset fields, nested ones included: each item is dumped
    again through its schema so that defaults are filled in (the list replaces the old one).
    """
    if name not in data:
        return None
    if data[name] is None:
        raise invalid(name, "may not be null; send [] to clear the list")
    items: list[Any] = data[name]
    if item is not None:
        items = [item.model_validate(entry).model_dump() for entry in items]
        data[name] = items
    return items


def _replace_children(ctx: Ctx, obj: Any, attr: str, children: list[Any]) -> None:
    """Nested lists are replaced wholesale (Q-1 agents, IVR-1 keys).

    The old rows are deleted and flushed before the new ones are added: SQLAlchemy inserts
    before it deletes within one flush, which would trip unique keys such as (menu, key).
    """
    collection = getattr(obj, attr)
    if collection and inspect(obj).persistent:
        collection.clear()
        ctx.db.flush()
    collection.extend(children)


# --- forwarding numbers (FWD-1) --------------------------------------------------------------


class ForwardingNumberCreate(In):
    number: Annotated[str, Field(min_length=1, max_length=40, examples=["8 916 123-45-67"])]
    name: Name
    description: Text = ""
    language: Language = "ru"
    services: Services = Field(default_factory=Services)
    max_incoming_duration_s: Seconds | None = None
    max_concurrent_incoming: Limit | None = None


class ForwardingNumberRead(OwnedOut):
    number: str
    name: str
    description: str
    language: str
    services: dict[str, Any]
    max_incoming_duration_s: int | None
    max_concurrent_incoming: int | None


def _prepare_forwarding(ctx: Ctx, data: dict[str, Any], _obj: Any) -> dict[str, Any]:
    if data.get("number") is not None:
        data["number"] = e164(ctx, "number", data["number"])
    return _services(data)


FORWARDING = Resource(
    name="forwarding-numbers",
    title="forwarding number",
    model=ForwardingNumber,
    create_schema=ForwardingNumberCreate,
    update_schema=make_update_schema(ForwardingNumberCreate, "ForwardingNumberUpdate"),
    read_schema=ForwardingNumberRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "name", "number"),
    filters=("number",),
    search=("name", "number", "description"),
    prepare=_prepare_forwarding,
    tags=["components"],
)


# --- queues (Q-1) ----------------------------------------------------------------------------

Strategy = Literal["ringall", "leastrecent", "fewestcalls", "random", "rrmemory"]


class QueueAgentIn(In):
    """An agent is a port or a forwarding number: exactly one of the two ids."""

    port_id: RefId | None = None
    forwarding_number_id: RefId | None = None
    penalty: Annotated[int, Field(ge=0, le=1000, description="lower rings first")] = 0
    logged_in: bool = True


class QueueAgentRead(Out):
    port_id: int | None
    forwarding_number_id: int | None
    penalty: int
    logged_in: bool


class QueueCreate(In):
    name: Name
    description: Text = ""
    language: Language = "ru"
    strategy: Strategy = "ringall"
    pickup_group_id: RefId | None = None
    music_pack_id: RefId | None = Field(None, description="music on hold; default pack if null")
    max_callers: Limit | None = Field(None, description="callers waiting; null = no limit")
    agent_ring_s: Annotated[int, Field(ge=1, le=600)] = 20
    services: Services = Field(default_factory=Services)
    agents: list[QueueAgentIn] = Field(
        default_factory=list, max_length=500, description="in order; replaced wholesale"
    )


class QueueRead(OwnedOut):
    name: str
    description: str
    language: str
    strategy: str
    pickup_group_id: int | None
    music_pack_id: int | None
    max_callers: int | None
    agent_ring_s: int
    services: dict[str, Any]
    agents: list[QueueAgentRead]


_AGENT_KINDS = ("port_id", "forwarding_number_id")


def _check_agents(agents: list[dict[str, Any]]) -> None:
    seen: set[tuple[str, int]] = set()
    for i, agent in enumerate(agents):
        kinds = [k for k in _AGENT_KINDS if agent.get(k) is not None]
        if len(kinds) != 1:
            raise invalid(f"agents.{i}", "give exactly one of port_id or forwarding_number_id")
        kind = kinds[0]
        if (kind, agent[kind]) in seen:
            raise invalid(f"agents.{i}.{kind}", f"{kind} {agent[kind]} is listed twice")
        seen.add((kind, agent[kind]))


def _prepare_queue(_ctx: Ctx, data: dict[str, Any], _obj: Any) -> dict[str, Any]:
    agents = _nested_list(data, "agents", QueueAgentIn)
    if agents is not None:
        _check_agents(agents)
    return _services(data)


def _apply_queue(ctx: Ctx, queue: Any, values: dict[str, Any]) -> None:
    if values.get("agents") is None:
        return
    agents = []
    for i, agent in enumerate(values["agents"]):
        ctx.check_ref(Port, agent["port_id"], f"agents.{i}.port_id")
        ctx.check_ref(
            ForwardingNumber, agent["forwarding_number_id"], f"agents.{i}.forwarding_number_id"
        )
        agents.append(QueueAgent(position=i, **agent))
    _replace_children(ctx, queue, "agents", agents)


QUEUES = Resource(
    name="queues",
    title="queue",
    model=Queue,
    create_schema=QueueCreate,
    update_schema=make_update_schema(QueueCreate, "QueueUpdate"),
    read_schema=QueueRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "name"),
    filters=("strategy", "pickup_group_id", "music_pack_id"),
    search=("name", "description"),
    prepare=_prepare_queue,
    apply=_apply_queue,
    tags=["components"],
)


# --- voice menus (IVR-1) ---------------------------------------------------------------------


class VoiceMenuKeyIn(In):
    key: Annotated[str, Field(pattern=r"^[0-9*#]$", examples=["1"], description="0-9, * or #")]
    internal_number_id: RefId


class VoiceMenuKeyRead(Out):
    key: str
    internal_number_id: int


class VoiceMenuCreate(In):
    name: Name
    description: Text = ""
    language: Language = "ru"
    announcement_id: RefId | None = Field(None, description="a media file")
    digit_timeout_s: Annotated[int, Field(ge=1, le=30)] = 3
    extension_dialling: bool = False
    services: Services = Field(default_factory=Services)
    max_concurrent_incoming: Limit | None = None
    max_incoming_duration_s: Seconds | None = None
    keys: list[VoiceMenuKeyIn] = Field(
        default_factory=list, max_length=12, description="key map; replaced wholesale"
    )


class VoiceMenuRead(OwnedOut):
    name: str
    description: str
    language: str
    announcement_id: int | None
    digit_timeout_s: int
    extension_dialling: bool
    services: dict[str, Any]
    max_concurrent_incoming: int | None
    max_incoming_duration_s: int | None
    keys: list[VoiceMenuKeyRead]


def _check_keys(keys: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for i, entry in enumerate(keys):
        if entry["key"] in seen:
            raise invalid(f"keys.{i}.key", f"key {entry['key']} is mapped twice")
        seen.add(entry["key"])


def _prepare_menu(_ctx: Ctx, data: dict[str, Any], _obj: Any) -> dict[str, Any]:
    keys = _nested_list(data, "keys", VoiceMenuKeyIn)
    if keys is not None:
        _check_keys(keys)
    return _services(data)


def _apply_menu(ctx: Ctx, menu: Any, values: dict[str, Any]) -> None:
    if values.get("keys") is None:
        return
    for i, entry in enumerate(values["keys"]):
        ctx.check_ref(InternalNumber, entry["internal_number_id"], f"keys.{i}.internal_number_id")
    # Stored order is the key's, as the relationship reads it back.
    keys = [VoiceMenuKey(**entry) for entry in sorted(values["keys"], key=lambda e: e["key"])]
    _replace_children(ctx, menu, "keys", keys)


VOICE_MENUS = Resource(
    name="voice-menus",
    title="voice menu",
    model=VoiceMenu,
    create_schema=VoiceMenuCreate,
    update_schema=make_update_schema(VoiceMenuCreate, "VoiceMenuUpdate"),
    read_schema=VoiceMenuRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "name"),
    filters=("announcement_id",),
    search=("name", "description"),
    prepare=_prepare_menu,
    apply=_apply_menu,
    tags=["components"],
)


# --- media packs (MED-1) ---------------------------------------------------------------------


class MediaPackCreate(In):
    name: Name
    description: Text = ""
    is_default: bool = Field(
        False, description="music on hold and ringback replacement; at most one per client"
    )


class MediaPackRead(OwnedOut):
    name: str
    description: str
    is_default: bool


def _apply_pack(ctx: Ctx, pack: Any, values: dict[str, Any]) -> None:
    """MED-1: one default pack (marked *): choosing one clears the others, same transaction."""
    if not values.get("is_default"):
        return
    query = select(MediaPack).where(
        MediaPack.client_id == ctx.client_id, MediaPack.is_default.is_(True)
    )
    if pack.id is not None:
        query = query.where(MediaPack.id != pack.id)
    for other in ctx.db.scalars(query).all():
        before = to_read(ctx, MEDIA_PACKS, other)
        other.is_default = False
        ctx.db.flush()
        audit(ctx, "update", MEDIA_PACKS.name, other.id, before, to_read(ctx, MEDIA_PACKS, other))


MEDIA_PACKS = Resource(
    name="media-packs",
    title="media pack",
    model=MediaPack,
    create_schema=MediaPackCreate,
    update_schema=make_update_schema(MediaPackCreate, "MediaPackUpdate"),
    read_schema=MediaPackRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "name"),
    filters=("is_default",),
    search=("name", "description"),
    apply=_apply_pack,
    tags=["media"],
)


# --- media files (MED-1): metadata ------------------------------------------------------------


class MediaFileCreate(In):
    pack_id: RefId
    name: Name
    language: Language = "ru"
    description: Text = ""


class MediaFileRead(OwnedOut):
    pack_id: int
    name: str
    language: str
    description: str
    content_type: str | None = Field(description="null until audio is uploaded")
    size_bytes: int | None
    duration_ms: int | None
    sha256: str | None


MEDIA_FILES = Resource(
    name="media-files",
    title="media file",
    model=MediaFile,
    create_schema=MediaFileCreate,
    update_schema=make_update_schema(MediaFileCreate, "MediaFileUpdate"),
    read_schema=MediaFileRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "name", "duration_ms"),
    filters=("pack_id", "language"),
    search=("name", "description"),
    tags=["media"],
)

# Deleting a media file also removes its stored audio, so its DELETE route is the one below.
_MEDIA_FILES_ROUTES = replace(MEDIA_FILES, policy=replace(MEDIA_FILES.policy, delete=()))


# --- classifiers and contacts (CLS-1) --------------------------------------------------------


class ClassifierCreate(In):
    name: Name
    description: Text = ""


class ClassifierRead(OwnedOut):
    name: str
    description: str


CLASSIFIERS = Resource(
    name="classifiers",
    title="classifier",
    model=Classifier,
    create_schema=ClassifierCreate,
    update_schema=make_update_schema(ClassifierCreate, "ClassifierUpdate"),
    read_schema=ClassifierRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "name"),
    search=("name", "description"),
    tags=["classifiers"],
)


ContactName = Annotated[str, Field(max_length=200)]


class ContactCreate(In):
    classifier_id: RefId
    name: ContactName = ""
    description: Text = ""
    clip: Annotated[str, Field(min_length=1, max_length=40, examples=["+79161234567"])]


class ContactRead(OwnedOut):
    classifier_id: int
    name: str
    description: str
    clip: str


def _prepare_contact(ctx: Ctx, data: dict[str, Any], obj: Any) -> dict[str, Any]:
    if data.get("clip") is not None:
        data["clip"] = e164(ctx, "clip", data["clip"])
    # The list must be the client's own before anything about its contents is told (ADM-4).
    ctx.check_ref(Classifier, data.get("classifier_id"), "classifier_id")
    _check_contact_unique(ctx, data, obj)
    return data


def _check_contact_unique(ctx: Ctx, data: dict[str, Any], obj: Any) -> None:
    """409 naming ``clip`` when the list already has this number (the generic check would
    name the first column of the (classifier_id, clip) key)."""
    classifier_id = data.get("classifier_id") or getattr(obj, "classifier_id", None)
    clip = data.get("clip") or getattr(obj, "clip", None)
    if classifier_id is None or clip is None:
        return
    query = select(Contact.id).where(Contact.classifier_id == classifier_id, Contact.clip == clip)
    if obj is not None:
        query = query.where(Contact.id != obj.id)
    if ctx.db.scalar(query.limit(1)) is not None:
        raise conflict("clip", f"clip: {clip} is already in classifier {classifier_id}")


CONTACTS = Resource(
    name="contacts",
    title="contact",
    model=Contact,
    create_schema=ContactCreate,
    update_schema=make_update_schema(ContactCreate, "ContactUpdate"),
    read_schema=ContactRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "name", "clip"),
    filters=("classifier_id", "clip"),
    search=("name", "clip"),
    prepare=_prepare_contact,
    tags=["classifiers"],
)


# --- voicemail boxes (VM-1) ------------------------------------------------------------------

# Deliberately simple: one @, no spaces, a dot in the domain; the mail server has the last word.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class VoicemailBoxCreate(In):
    name: Name
    description: Text = ""
    email: Annotated[str | None, Field(max_length=254, examples=["office@example.com"])] = None
    language: Language = "ru"
    greeting_id: RefId | None = Field(None, description="a media file")
    max_message_s: Annotated[int, Field(ge=5, le=3600)] = 120
    attach_audio: bool = True


class VoicemailBoxRead(OwnedOut):
    name: str
    description: str
    email: str | None
    language: str
    greeting_id: int | None
    max_message_s: int
    attach_audio: bool


def _prepare_voicemail(_ctx: Ctx, data: dict[str, Any], _obj: Any) -> dict[str, Any]:
    if "email" in data:
        email = data["email"] or None
        if email is not None and not _EMAIL.fullmatch(email):
            raise invalid("email", f"{email!r} is not an e-mail address")
        data["email"] = email
    return data


VOICEMAIL = Resource(
    name="voicemail-boxes",
    title="voicemail box",
    model=VoicemailBox,
    create_schema=VoicemailBoxCreate,
    update_schema=make_update_schema(VoicemailBoxCreate, "VoicemailBoxUpdate"),
    read_schema=VoicemailBoxRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "name"),
    filters=("greeting_id",),
    search=("name", "email", "description"),
    prepare=_prepare_voicemail,
    tags=["components"],
)


# --- campaigns (TM-1) ------------------------------------------------------------------------


class CampaignCreate(In):
    name: Name
    description: Text = ""
    processing_number_id: RefId | None = Field(
        None, description="internal number whose dialplan runs once the callee answers"
    )
    classifier_ids: list[RefId] = Field(
        default_factory=list, max_length=100, description="contact lists"
    )
    max_concurrent: Annotated[int, Field(ge=1, le=100)] = 1
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    retry_interval_s: Annotated[int, Field(ge=0, le=86_400)] = 600
    ring_timeout_s: Annotated[int, Field(ge=5, le=300)] = 30


class CampaignRead(OwnedOut):
    name: str
    description: str
    processing_number_id: int | None
    classifier_ids: list[int]
    status: Literal["blocked", "active", "finished"]
    max_concurrent: int
    max_attempts: int
    retry_interval_s: int
    ring_timeout_s: int


def _prepare_campaign(_ctx: Ctx, data: dict[str, Any], _obj: Any) -> dict[str, Any]:
    seen: set[int] = set()
    for i, classifier_id in enumerate(_nested_list(data, "classifier_ids") or []):
        if classifier_id in seen:
            raise invalid(f"classifier_ids.{i}", f"classifier {classifier_id} is listed twice")
        seen.add(classifier_id)
    return data


def _apply_campaign(ctx: Ctx, campaign: Any, values: dict[str, Any]) -> None:
    ids: list[int] | None = values.get("classifier_ids")
    if ids is None:
        return
    for i, classifier_id in enumerate(ids):
        ctx.check_ref(Classifier, classifier_id, f"classifier_ids.{i}")
    # Rows are keyed by (campaign, classifier): keep those that stay, add the rest.
    kept = [link for link in campaign.classifiers if link.classifier_id in ids]
    have = {link.classifier_id for link in kept}
    campaign.classifiers = kept + [
        CampaignClassifier(classifier_id=c) for c in ids if c not in have
    ]


def _serialize_campaign(_ctx: Ctx, campaign: Any) -> BaseModel:
    columns = {c.key: getattr(campaign, c.key) for c in Campaign.__table__.columns}
    ids = sorted(link.classifier_id for link in campaign.classifiers)
    return CampaignRead.model_validate({**columns, "classifier_ids": ids})


CAMPAIGNS = Resource(
    name="campaigns",
    title="campaign",
    model=Campaign,
    create_schema=CampaignCreate,
    update_schema=make_update_schema(CampaignCreate, "CampaignUpdate"),
    read_schema=CampaignRead,
    policy=rbac.CAMPAIGNS,
    sortable=("id", "name", "status"),
    filters=("status", "processing_number_id"),
    search=("name", "description"),
    prepare=_prepare_campaign,
    apply=_apply_campaign,
    serialize=_serialize_campaign,
    tags=["telemarketing"],
)


register(
    router,
    [
        FORWARDING,
        QUEUES,
        VOICE_MENUS,
        MEDIA_PACKS,
        _MEDIA_FILES_ROUTES,
        CLASSIFIERS,
        CONTACTS,
        VOICEMAIL,
        CAMPAIGNS,
    ],
)


# --- media files (MED-1): audio upload and download -----------------------------------------

WAV_CONTENT_TYPE = "audio/wav"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Received:
    """An upload converted next to its final place (8 kHz mono 16-bit WAV), not yet visible."""

    temp: Path
    audio: ImportResult


def _media_dir(settings: Settings) -> Path:
    assert settings.media_dir is not None  # Settings derives it from data_dir
    return Path(settings.media_dir)


def _stored_path(settings: Settings, media: MediaFile) -> Path | None:
    """The audio of a media file, only ever inside the media directory."""
    if not media.storage_path:
        return None
    root = _media_dir(settings).resolve()
    path = (root / media.storage_path).resolve()
    return path if path.is_relative_to(root) else None


def _file_error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, code, f"file: {message}", field="file")


def _copy_limited(source: IO[bytes], out: IO[bytes], limit: int) -> int:
    """Copy at most ``limit`` bytes; 413 past the limit, 422 for an empty file."""
    size = 0
    while chunk := source.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _file_error(413, "too_large", f"larger than the upload limit of {limit} bytes")
        out.write(chunk)
    if size == 0:
        raise _file_error(422, "invalid", "the file is empty")
    return size


def _import_limits(settings: Settings) -> ImportLimits:
    return ImportLimits(max_bytes=settings.max_upload_bytes)


def receive_upload(upload: UploadFile, folder: Path, limits: ImportLimits) -> Received:
    """Spool an upload into ``folder`` (same file system as its final name), then convert it
    to the telephony format there (media import, issue 4): 413/415/422 naming ``file`` with
    the importer's reason, 503 when the converter is not installed."""
    limit = limits.max_bytes
    if upload.size is not None and upload.size > limit:
        raise _file_error(413, "too_large", f"larger than the upload limit of {limit} bytes")
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, suffix=".part")
    source = Path(name)
    target = source.with_suffix(".wav.part")
    try:
        with os.fdopen(fd, "wb") as out:
            _copy_limited(upload.file, out, limit)
        return Received(target, import_audio_sync(source, target, limits))
    except ImportRefused as exc:
        raise _file_error(exc.status, exc.code, exc.reason) from exc
    except ConverterMissingError as exc:
        raise _file_error(503, "unavailable", str(exc)) from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        source.unlink(missing_ok=True)


def _record_audio(media: MediaFile, received: Received, relative: str) -> None:
    media.storage_path = relative
    media.content_type = WAV_CONTENT_TYPE
    media.size_bytes = received.audio.size
    media.duration_ms = received.audio.duration_ms
    media.sha256 = received.audio.sha256


@router.post(
    "/clients/{client_id}/media-files/{item_id}/audio",
    response_model=MediaFileRead,
    tags=["media"],
    operation_id="upload_media_file_audio",
    summary="Upload the audio of a media file",
    responses={
        413: {"description": "larger than max_upload_bytes, or longer than one hour"},
        415: {"description": "not WAV, MP3, Ogg Vorbis or FLAC; more than 8 channels"},
        422: {"description": "empty, corrupt or undecodable audio"},
        503: {"description": "the audio converter (sox) is not installed"},
    },
)
def upload_audio(
    ctx: ClientCtx,
    item_id: ItemIdPath,
    file: Annotated[
        UploadFile,
        File(description="WAV, MP3, Ogg Vorbis or FLAC; stored as 8 kHz mono 16-bit WAV"),
    ],
) -> BaseModel:
    """MED-1: convert the upload to 8 kHz mono 16-bit PCM WAV and store it as the file's audio,
    replacing any previous one (a WAV already in that format is stored as uploaded)."""
    media = fetch(ctx, MEDIA_FILES, item_id, "update")
    before = to_read(ctx, MEDIA_FILES, media)
    settings = ctx.state.settings
    root = _media_dir(settings)
    received = receive_upload(file, root / str(ctx.client_id), _import_limits(settings))
    relative = f"{ctx.client_id}/{media.id}.wav"
    try:
        _record_audio(media, received, relative)
        ctx.db.flush()
        after = to_read(ctx, MEDIA_FILES, media)
        audit(ctx, "upload_audio", MEDIA_FILES.name, media.id, before, after)
        commit(ctx)
    except BaseException:
        received.temp.unlink(missing_ok=True)
        raise
    # Only a committed row names the new audio; the rename is atomic on one file system.
    os.replace(received.temp, root / relative)
    return after


@router.get(
    "/clients/{client_id}/media-files/{item_id}/audio",
    response_class=FileResponse,
    tags=["media"],
    operation_id="download_media_file_audio",
    summary="Download the audio of a media file",
    responses={200: {"content": {WAV_CONTENT_TYPE: {}}, "description": "the stored audio"}},
)
def download_audio(ctx: ClientCtx, item_id: ItemIdPath) -> FileResponse:
    """MED-1: stream the stored audio; only the client's own files are found (ADM-4)."""
    media = fetch(ctx, MEDIA_FILES, item_id, "read")
    path = _stored_path(ctx.state.settings, media)
    if path is None or not path.is_file():
        raise not_found("audio of this media file")
    filename = re.sub(r"[^\w.\- ]", "_", media.name).strip() or f"media-{media.id}"
    return FileResponse(
        path,
        media_type=media.content_type or "application/octet-stream",
        filename=f"{filename}.wav",
    )


@router.delete(
    "/clients/{client_id}/media-files/{item_id}",
    status_code=204,
    tags=["media"],
    operation_id="delete_media_files",
    summary="Delete a media file",
    responses={409: {"description": "in use; the body lists where"}},
)
def delete_media_file(
    ctx: ClientCtx, item_id: ItemIdPath, cascade: CascadeQuery = False
) -> Response:
    """MED-1: as the generic delete (409 listing usages), and the audio goes with the row."""
    media = fetch(ctx, MEDIA_FILES, item_id, "delete")
    before = to_read(ctx, MEDIA_FILES, media)
    path = _stored_path(ctx.state.settings, media)
    delete_object(ctx, MEDIA_FILES, media, cascade=cascade)
    audit(ctx, "delete", MEDIA_FILES.name, item_id, before, None)
    commit(ctx)
    if path is not None:
        path.unlink(missing_ok=True)
    return Response(status_code=204)


# --- contacts import (CLS-1) ----------------------------------------------------------------

MAX_IMPORT_ERRORS = 20


class ContactImportResult(BaseModel):
    classifier_id: int
    created: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class ContactRow:
    line: int
    name: str
    clip: str
    description: str


class RowError(Exception):
    def __init__(self, field: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.line = line


def _decode_csv(body: bytes, content_type: str | None) -> str:
    """UTF-8 (a BOM is fine) unless the Content-Type names another charset."""
    charset = "utf-8-sig"
    match = re.search(r"charset=\"?([\w.:-]+)", content_type or "", re.IGNORECASE)
    if match:
        try:
            charset = codecs.lookup(match.group(1)).name
        except LookupError as exc:
            raise invalid("csv", f"unknown charset {match.group(1)!r}") from exc
    if b"\x00" in body:
        raise invalid("csv", "contains NUL bytes: not a text file")
    try:
        return body.decode(charset).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise invalid(
            "csv",
            f"not {charset} text (byte {exc.start}); save as CSV UTF-8 or send "
            "Content-Type: text/csv; charset=windows-1251",
        ) from exc


def _delimiter(text: str) -> str:
    """Comma; a semicolon when the first line has semicolons and no commas (Russian Excel)."""
    first = text.split("\n", 1)[0]
    return ";" if ";" in first and "," not in first else ","


def _is_header(record: list[str]) -> bool:
    return len(record) >= 2 and not any(ch.isdigit() for ch in record[1])


def _contact_row(ctx: Ctx, line: int, record: list[str], seen: dict[str, int]) -> ContactRow:
    if len(record) not in (2, 3):
        raise RowError("columns", f"expected name,clip[,description]: got {len(record)} columns")
    name, raw_clip = record[0].strip(), record[1].strip()
    description = record[2].strip() if len(record) == 3 else ""
    if len(name) > 200:
        raise RowError("name", "longer than 200 characters")
    if len(description) > 4000:
        raise RowError("description", "longer than 4000 characters")
    try:
        clip = e164(ctx, "clip", raw_clip)
    except ApiError as exc:
        raise RowError("clip", exc.body.message.removeprefix("clip: ")) from exc
    if clip in seen:
        raise RowError("clip", f"{clip} is also on line {seen[clip]}")
    seen[clip] = line
    return ContactRow(line, name, clip, description)


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of every non-blank record; broken quoting is a RowError."""
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(text), strict=True)
    while True:
        line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RowError("csv", str(exc), line) from exc
        if any(cell.strip() for cell in record):
            yield line, record


def parse_contacts(ctx: Ctx, text: str) -> list[ContactRow]:
    """CLS-1 import: every line checked; any error refuses the whole file, naming its line."""
    rows: list[ContactRow] = []
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    try:
        for index, (line, record) in enumerate(_records(text)):
            if index == 0 and _is_header(record):
                continue
            try:
                rows.append(_contact_row(ctx, line, record, seen))
            except RowError as exc:
                errors.append({"line": line, "field": exc.field, "message": exc.message})
                if len(errors) >= MAX_IMPORT_ERRORS:
                    break
    except RowError as exc:
        errors.append({"line": exc.line, "field": exc.field, "message": exc.message})
    _raise_import_errors(errors)
    return rows


def _raise_import_errors(errors: list[dict[str, Any]]) -> None:
    if not errors:
        return
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise ApiError(
        422,
        "invalid",
        f"line {first['line']}: {first['field']}: {first['message']}{more}; nothing imported",
        field="csv",
        details=errors,
    )


def store_contacts(ctx: Ctx, classifier: Classifier, rows: list[ContactRow]) -> dict[str, int]:
    """Add new numbers; a number already in the list gets the file's name and description."""
    existing = {
        c.clip: c
        for c in ctx.db.scalars(select(Contact).where(Contact.classifier_id == classifier.id))
    }
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for row in rows:
        contact = existing.get(row.clip)
        if contact is None:
            ctx.db.add(
                Contact(
                    client_id=classifier.client_id,
                    classifier_id=classifier.id,
                    name=row.name,
                    clip=row.clip,
                    description=row.description,
                )
            )
            counts["created"] += 1
        elif (contact.name, contact.description) != (row.name, row.description):
            contact.name, contact.description = row.name, row.description
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    return counts


CsvBody = Annotated[
    bytes,
    Body(
        media_type="text/csv",
        description="lines of name,clip[,description]; UTF-8 unless charset says otherwise",
        examples=["name,clip,description\nИванов,+79161234567,VIP\nPetrov,84951234567,"],
    ),
]


@router.post(
    "/clients/{client_id}/classifiers/{item_id}/contacts/import",
    response_model=ContactImportResult,
    tags=["classifiers"],
    operation_id="import_contacts",
    summary="Import contacts into a classifier from CSV",
    responses={413: {"description": "larger than max_upload_bytes"}},
)
def import_contacts(
    ctx: ClientCtx, item_id: ItemIdPath, body: CsvBody, request: Request
) -> ContactImportResult:
    """CLS-1: all-or-nothing import of a contact list (CSV body, Content-Type text/csv)."""
    classifier = fetch(ctx, CLASSIFIERS, item_id, "update")
    scope_filters(ctx, CONTACTS, "create")
    limit = ctx.state.settings.max_upload_bytes
    if len(body) > limit:
        raise ApiError(413, "too_large", f"csv: larger than {limit} bytes", field="csv")
    rows = parse_contacts(ctx, _decode_csv(body, request.headers.get("content-type")))
    counts = store_contacts(ctx, classifier, rows)
    audit(ctx, "import", CONTACTS.name, classifier.id, None, {"classifier_id": item_id, **counts})
    commit(ctx)
    return ContactImportResult(classifier_id=classifier.id, **counts)


# --- campaign start / stop (TM-1) -----------------------------------------------------------

# action -> (required status, new status); "finished" is set by the dialler, never here.
_TRANSITIONS = {"start": ("blocked", "active"), "stop": ("active", "blocked")}


def _check_startable(campaign: Campaign) -> None:
    if campaign.processing_number_id is None:
        raise invalid("processing_number_id", "a campaign needs a processing number to start")
    if not campaign.classifiers:
        raise invalid("classifier_ids", "a campaign needs at least one classifier to start")


def change_status(ctx: Ctx, item_id: int, action: str) -> BaseModel:
    campaign = fetch(ctx, CAMPAIGNS, item_id, "update")
    source, target = _TRANSITIONS[action]
    if campaign.status != source:
        raise conflict("status", f"campaign is {campaign.status}: cannot {action} it")
    if action == "start":
        _check_startable(campaign)
    before = to_read(ctx, CAMPAIGNS, campaign)
    campaign.status = target
    ctx.db.flush()
    after = to_read(ctx, CAMPAIGNS, campaign)
    audit(ctx, action, CAMPAIGNS.name, campaign.id, before, after)
    commit(ctx)
    return after


def _status_route(action: str, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """``POST …/campaigns/{item_id}/<action>``: a status change, answered with the campaign."""
    return router.post(
        f"/clients/{{client_id}}/campaigns/{{item_id}}/{action}",
        response_model=CampaignRead,
        tags=["telemarketing"],
        operation_id=f"{action}_campaign",
        summary=summary,
        responses={
            409: {"description": "not allowed in the campaign's status"},
            422: {"description": "processing number or classifiers missing"},
        },
    )


@_status_route("start", "Start a campaign (Blocked → Active)")
def start_campaign(ctx: ClientCtx, item_id: ItemIdPath) -> BaseModel:
    """TM-1: needs a processing number and at least one classifier."""
    return change_status(ctx, item_id, "start")


@_status_route("stop", "Stop a campaign (Active → Blocked)")
def stop_campaign(ctx: ClientCtx, item_id: ItemIdPath) -> BaseModel:
    """TM-1: an active campaign goes back to Blocked; contacts' outcomes are kept."""
    return change_status(ctx, item_id, "stop")
