"""Per-client configuration snapshots: what the engine knows without asking the database.

ENGINEERING.md §1: configuration reaches the engine as versioned, immutable snapshots per
client; no ORM query runs on the path of an INVITE or a REGISTER, and a call keeps the snapshot
(and so the dialplan version, DP-4) it started with.

A :class:`ClientSnapshot` holds one client's ports (SIP secrets decrypted through
:class:`~cloudpbx.security.SecretBox`), internal and external numbers with the *current*
version of their dialplan as a pure :class:`~cloudpbx.dialplan.model.Dialplan`, media files
with absolute paths, music on hold (the default media pack, MED-1), forwarding numbers, voice
menus with their key maps, queues with agents, voicemail boxes, classifiers with their contacts'
numbers, pickup groups, the client's time zone and limits (ADM-5).

:class:`SnapshotStore` keeps the snapshots of every client:

- ``await load_all()`` at start builds everything with one query per table;
- ``client(id)``, ``port_by_login(login)`` (the registrar's PortDirectory), ``number(client,
  number)`` and ``dialplan_version(id)`` are dictionary reads;
- ``invalidate(client_id)`` — callable from any thread, e.g. an API worker through
  ``AppState.config_changed`` — rebuilds that client off the event loop, in a thread executor
  with its own session, and swaps the new snapshot in atomically. Rebuilds of one client are
  coalesced; each build gets a number from one generation counter taken when it *starts*, so an
  older read never replaces a newer one. A failed build keeps the old snapshot, logs, and
  retries after ``retry_s``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.config import Settings
from cloudpbx.db.models import (
    BillingAccount,
    Classifier,
    Client,
    Contact,
    Dialplan,
    DialplanVersion,
    ExternalNumber,
    ForwardingNumber,
    InternalNumber,
    MediaFile,
    MediaPack,
    PickupGroup,
    Port,
    Queue,
    VoicemailBox,
    VoiceMenu,
)
from cloudpbx.dialplan import model as dp
from cloudpbx.dialplan.convert import step_from_row
from cloudpbx.security import SecretBox

__all__ = [
    "BillingInfo",
    "ClassifierInfo",
    "ClientLimits",
    "ClientSnapshot",
    "ForwardingInfo",
    "MediaFileInfo",
    "MediaPackInfo",
    "NumberInfo",
    "PickupGroupInfo",
    "PortDirectory",
    "PortInfo",
    "QueueAgentInfo",
    "QueueInfo",
    "SnapshotStore",
    "VoiceMenuInfo",
    "VoicemailInfo",
    "build_snapshots",
]

log = logging.getLogger(__name__)

RETIRED_VERSIONS = 4096
"""Dialplan versions kept for :meth:`SnapshotStore.dialplan_version` after they stop being
current (calls hold their Dialplan object anyway; this serves look-ups by id)."""

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


def _frozen(data: Mapping[Any, Any] | None) -> Mapping[Any, Any]:
    return MappingProxyType(dict(data or {}))


# --- snapshot values --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PortInfo:
    """PRT-1: one SIP account as the registrar and the B2BUA need it."""

    id: int
    client_id: int
    name: str
    login: str
    secret: str = field(repr=False)
    algorithm: str
    is_active: bool
    services: Mapping[str, Any]
    max_concurrent_incoming: int | None
    max_incoming_duration_s: int | None
    max_concurrent_outgoing: int | None
    pickup_group_id: int | None
    callerid_number: str | None  # the port's internal number (§3a caller ID)
    callerid_external: str | None  # the external number shown on calls out through a trunk
    language: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberInfo:
    """NUM-1/NUM-2: a number and the current version of its dialplan (NUM-3)."""

    id: int
    number: str
    kind: Literal["internal", "external"]
    name: str = ""
    dialplan: dp.Dialplan | None = None
    dialplan_id: int | None = None
    dialplan_version_id: int | None = None
    # Why a stored dialplan could not be used (a call to the number then has no route).
    dialplan_error: str | None = None
    operator_id: int | None = None  # external numbers: the trunk the DID arrives on (TRK-1)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaFileInfo:
    """MED-1: a sound file; ``path`` is absolute, None while no audio was uploaded."""

    id: int
    name: str
    pack_id: int
    language: str
    path: Path | None
    duration_ms: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaPackInfo:
    id: int
    name: str
    is_default: bool
    file_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardingInfo:
    """FWD-1: an outside number dialled through a trunk."""

    id: int
    number: str
    name: str
    language: str
    services: Mapping[str, Any]
    max_incoming_duration_s: int | None
    max_concurrent_incoming: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceMenuInfo:
    """IVR-1: the announcement, the digit timeout and the key map (digit → internal number)."""

    id: int
    name: str
    language: str
    announcement_id: int | None
    digit_timeout_s: int
    extension_dialling: bool
    keys: Mapping[str, str]
    services: Mapping[str, Any]
    max_concurrent_incoming: int | None
    max_incoming_duration_s: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAgentInfo:
    """Q-1: an agent is a port or a forwarding number."""

    position: int
    port_id: int | None
    forwarding_number_id: int | None
    penalty: int
    logged_in: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueInfo:
    id: int
    name: str
    language: str
    strategy: str
    pickup_group_id: int | None
    music_pack_id: int | None
    max_callers: int | None
    agent_ring_s: int
    services: Mapping[str, Any]
    agents: tuple[QueueAgentInfo, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicemailInfo:
    """VM-1: where messages go and how long they may be."""

    id: int
    name: str
    email: str | None
    language: str
    greeting_id: int | None
    max_message_s: int
    attach_audio: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifierInfo:
    """CLS-1: the contacts' numbers (CLIPs) a call's caller is matched against."""

    id: int
    name: str
    clips: frozenset[str]

    def matches(self, caller: str) -> bool:
        return caller in self.clips


@dataclass(frozen=True, slots=True, kw_only=True)
class PickupGroupInfo:
    """PG-1: the ports whose ringing calls members may pick up."""

    id: int
    number: str
    port_ids: frozenset[int]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientLimits:
    """ADM-5 limits on the whole client (None: unlimited)."""

    max_concurrent_calls: int | None = None
    max_call_duration_s: int | None = None
    allowed_directions: frozenset[str] = frozenset()
    spend_limit: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingInfo:
    """ADM-6 billing account as of the snapshot's build (ADM-5 spend limit, billing/limits.py);
    the CDR writer has the snapshot rebuilt after charging the client."""

    tariff_id: int | None
    currency: str
    balance: Decimal
    credit_limit: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSnapshot:
    """Everything the engine needs of one client, immutable, at one ``generation``."""

    client_id: int
    generation: int
    name: str
    is_active: bool
    time_zone: str
    language: str
    area_code: str | None
    limits: ClientLimits
    numbers: Mapping[str, NumberInfo]  # "101" and "+74951234567" alike
    internal_numbers: Mapping[int, NumberInfo]  # by id: go-to targets, menu keys
    ports: Mapping[int, PortInfo]
    media_files: Mapping[int, MediaFileInfo]
    media_packs: Mapping[int, MediaPackInfo]
    moh_paths: tuple[Path, ...]  # the default pack's files with audio, in id order (MED-1)
    forwarding_numbers: Mapping[int, ForwardingInfo]
    voice_menus: Mapping[int, VoiceMenuInfo]
    queues: Mapping[int, QueueInfo]
    voicemail_boxes: Mapping[int, VoicemailInfo]
    classifiers: Mapping[int, ClassifierInfo]
    pickup_groups: Mapping[int, PickupGroupInfo]
    billing: BillingInfo | None = None

    @property
    def moh_path(self) -> Path | None:
        """The music-on-hold file: the default pack's first file with audio."""
        return self.moh_paths[0] if self.moh_paths else None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def number(self, number: str) -> NumberInfo | None:
        return self.numbers.get(number)

    def media_path(self, media_file_id: int) -> Path | None:
        info = self.media_files.get(media_file_id)
        return None if info is None else info.path


class PortDirectory(Protocol):
    """What the registrar needs: a port by its installation-unique SIP login."""

    def port_by_login(self, login: str) -> PortInfo | None: ...


# --- building ---------------------------------------------------------------------------------


@dataclass
class _Rows:
    """One client's rows, grouped from table-wide queries."""

    client: Client
    ports: list[Port] = field(default_factory=list)
    internal: list[InternalNumber] = field(default_factory=list)
    external: list[ExternalNumber] = field(default_factory=list)
    plans: list[tuple[Dialplan, DialplanVersion]] = field(default_factory=list)
    packs: list[MediaPack] = field(default_factory=list)
    files: list[MediaFile] = field(default_factory=list)
    forwarding: list[ForwardingNumber] = field(default_factory=list)
    menus: list[VoiceMenu] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    boxes: list[VoicemailBox] = field(default_factory=list)
    classifiers: list[Classifier] = field(default_factory=list)
    contacts: list[tuple[int, str]] = field(default_factory=list)
    groups: list[PickupGroup] = field(default_factory=list)
    account: BillingAccount | None = None


@dataclass(frozen=True)
class _BuildContext:
    secret_box: SecretBox
    media_root: Path
    default_timezone: str


def build_snapshots(
    session: Session,
    client_ids: Sequence[int] | None,
    *,
    generation: int,
    secret_box: SecretBox,
    media_root: Path,
    default_timezone: str = "UTC",
) -> dict[int, ClientSnapshot]:
    """Snapshots of the given clients (None: all) from one read; absent ids do not exist."""
    ctx = _BuildContext(secret_box, media_root.resolve(), default_timezone)
    rows = _load_rows(session, client_ids)
    return {cid: _snapshot(ctx, r, generation) for cid, r in rows.items()}


_Q = TypeVar("_Q", bound=Select)  # type: ignore[type-arg]


def _scoped(query: _Q, column: Any, ids: Sequence[int] | None) -> _Q:
    return query if ids is None else query.where(column.in_(ids))


_GROUPED: tuple[tuple[Any, str], ...] = (
    (Port, "ports"),
    (InternalNumber, "internal"),
    (ExternalNumber, "external"),
    (MediaPack, "packs"),
    (MediaFile, "files"),
    (ForwardingNumber, "forwarding"),
    (VoiceMenu, "menus"),
    (Queue, "queues"),
    (VoicemailBox, "boxes"),
    (Classifier, "classifiers"),
    (PickupGroup, "groups"),
)


def _load_rows(session: Session, ids: Sequence[int] | None) -> dict[int, _Rows]:
    if ids is not None and not ids:
        return {}
    clients = session.scalars(_scoped(select(Client), Client.id, ids)).all()
    rows = {c.id: _Rows(client=c) for c in clients}
    wanted = list(rows) if ids is not None else None

    for model, attr in _GROUPED:
        query = _scoped(select(model), model.client_id, wanted).order_by(model.id)
        for obj in session.scalars(query):
            target = rows.get(obj.client_id)
            if target is not None:
                getattr(target, attr).append(obj)
    _load_plans(session, rows, wanted)
    _load_contacts(session, rows, wanted)
    _load_accounts(session, rows, wanted)
    return rows


def _load_plans(session: Session, rows: dict[int, _Rows], ids: Sequence[int] | None) -> None:
    """Each dialplan with its current version (the steps come with the version: selectin)."""
    query = select(Dialplan, DialplanVersion).join(
        DialplanVersion,
        (DialplanVersion.dialplan_id == Dialplan.id)
        & (DialplanVersion.number == Dialplan.current_version),
    )
    for plan, version in session.execute(_scoped(query, Dialplan.client_id, ids)):
        target = rows.get(plan.client_id)
        if target is not None:
            target.plans.append((plan, version))


def _load_contacts(session: Session, rows: dict[int, _Rows], ids: Sequence[int] | None) -> None:
    # Only the numbers: a telemarketing classifier may hold 100,000 contacts.
    query = select(Contact.client_id, Contact.classifier_id, Contact.clip)
    for client_id, classifier_id, clip in session.execute(_scoped(query, Contact.client_id, ids)):
        target = rows.get(client_id)
        if target is not None:
            target.contacts.append((classifier_id, clip))


def _load_accounts(session: Session, rows: dict[int, _Rows], ids: Sequence[int] | None) -> None:
    query = _scoped(select(BillingAccount), BillingAccount.client_id, ids)
    for account in session.scalars(query):
        target = rows.get(account.client_id)
        if target is not None:
            target.account = account


def _billing(account: BillingAccount | None) -> BillingInfo | None:
    if account is None:
        return None
    return BillingInfo(
        tariff_id=account.tariff_id,
        currency=account.currency,
        balance=account.balance,
        credit_limit=account.credit_limit,
    )


def _snapshot(ctx: _BuildContext, r: _Rows, generation: int) -> ClientSnapshot:
    c = r.client
    internal = {n.id: n.number for n in r.internal}
    external = {n.id: n.number for n in r.external}
    numbers = _numbers(r, c.id)
    files = {f.id: _media_file(ctx, f) for f in r.files}
    packs = _packs(r)
    return ClientSnapshot(
        client_id=c.id,
        generation=generation,
        name=c.name,
        is_active=c.is_active,
        time_zone=_zone_name(c.timezone, ctx.default_timezone, c.id),
        language=c.language,
        area_code=c.area_code,
        limits=ClientLimits(
            max_concurrent_calls=c.max_concurrent_calls,
            max_call_duration_s=c.max_call_duration_s,
            allowed_directions=frozenset(c.allowed_directions or ()),
            spend_limit=c.spend_limit,
        ),
        numbers=MappingProxyType({n.number: n for n in numbers}),
        internal_numbers=MappingProxyType({n.id: n for n in numbers if n.kind == "internal"}),
        ports=MappingProxyType(_ports(ctx, r.ports, internal, external)),
        media_files=MappingProxyType(files),
        media_packs=MappingProxyType(packs),
        moh_paths=_moh(packs, files),
        forwarding_numbers=MappingProxyType({f.id: _forwarding(f) for f in r.forwarding}),
        voice_menus=MappingProxyType({m.id: _menu(m, internal) for m in r.menus}),
        queues=MappingProxyType({q.id: _queue(q) for q in r.queues}),
        voicemail_boxes=MappingProxyType({b.id: _box(b) for b in r.boxes}),
        classifiers=MappingProxyType(_classifiers(r)),
        pickup_groups=MappingProxyType(_groups(r)),
        billing=_billing(r.account),
    )


def _zone_name(name: str | None, default: str, client_id: int) -> str:
    for candidate in (name, default, "UTC"):
        if not candidate:
            continue
        try:
            ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            log.error("client %s: unknown time zone %r, using the next default", client_id, name)
            continue
        return candidate
    return "UTC"


def _ports(
    ctx: _BuildContext,
    ports: Sequence[Port],
    internal: Mapping[int, str],
    external: Mapping[int, str],
) -> dict[int, PortInfo]:
    out: dict[int, PortInfo] = {}
    for p in ports:
        try:
            secret = ctx.secret_box.open(p.sip_secret_enc)
        except ValueError:
            # Sealed with another installation's key: it could never authenticate, and one
            # log line beats a storm of 401s.
            log.error("port %s (%s): SIP secret cannot be decrypted; left out", p.id, p.sip_login)
            continue
        out[p.id] = _port(p, secret, internal, external)
    return out


def _port(
    p: Port, secret: str, internal: Mapping[int, str], external: Mapping[int, str]
) -> PortInfo:
    return PortInfo(
        id=p.id,
        client_id=p.client_id,
        name=p.name,
        login=p.sip_login,
        secret=secret,
        algorithm=p.auth_algorithm,
        is_active=p.is_active,
        services=_frozen(p.services),
        max_concurrent_incoming=p.max_concurrent_incoming,
        max_incoming_duration_s=p.max_incoming_duration_s,
        max_concurrent_outgoing=p.max_concurrent_outgoing,
        pickup_group_id=p.pickup_group_id,
        callerid_number=internal.get(p.callerid_internal_id or 0),
        callerid_external=external.get(p.callerid_external_id or 0),
        language=p.language,
    )


def _numbers(r: _Rows, client_id: int) -> list[NumberInfo]:
    plans: dict[tuple[str, int], tuple[Dialplan, DialplanVersion]] = {}
    for plan, version in r.plans:
        if plan.internal_number_id is not None:
            plans[("internal", plan.internal_number_id)] = (plan, version)
        elif plan.external_number_id is not None:
            plans[("external", plan.external_number_id)] = (plan, version)
    out = [
        _number(client_id, "internal", n.id, n.number, n.name, plans.get(("internal", n.id)))
        for n in r.internal
    ]
    out += [
        _number(
            client_id, "external", n.id, n.number, "", plans.get(("external", n.id)), n.operator_id
        )
        for n in r.external
    ]
    return out


def _number(
    client_id: int,
    kind: Literal["internal", "external"],
    number_id: int,
    number: str,
    name: str,
    plan: tuple[Dialplan, DialplanVersion] | None,
    operator_id: int | None = None,
) -> NumberInfo:
    if plan is None:
        return NumberInfo(
            id=number_id, number=number, kind=kind, name=name, operator_id=operator_id
        )
    row, version = plan
    try:
        dialplan = dp.Dialplan.from_steps(
            (step_from_row(s) for s in version.steps), version=version.number
        )
        error = None
    except (ValueError, KeyError, TypeError) as exc:
        # One corrupt dialplan must not take the client's other numbers down with it.
        log.error("client %s number %s: dialplan %s unusable: %s", client_id, number, row.id, exc)
        dialplan, error = None, str(exc)
    return NumberInfo(
        id=number_id,
        number=number,
        kind=kind,
        name=name,
        dialplan=dialplan,
        dialplan_id=row.id,
        dialplan_version_id=version.id,
        dialplan_error=error,
        operator_id=operator_id,
    )


def _media_file(ctx: _BuildContext, f: MediaFile) -> MediaFileInfo:
    path = None if not f.storage_path else (ctx.media_root / f.storage_path)
    return MediaFileInfo(
        id=f.id,
        name=f.name,
        pack_id=f.pack_id,
        language=f.language,
        path=path,
        duration_ms=f.duration_ms,
    )


def _packs(r: _Rows) -> dict[int, MediaPackInfo]:
    files: dict[int, list[int]] = {}
    for f in r.files:
        files.setdefault(f.pack_id, []).append(f.id)
    return {
        p.id: MediaPackInfo(
            id=p.id, name=p.name, is_default=p.is_default, file_ids=tuple(files.get(p.id, ()))
        )
        for p in r.packs
    }


def _moh(
    packs: Mapping[int, MediaPackInfo], files: Mapping[int, MediaFileInfo]
) -> tuple[Path, ...]:
    """MED-1: the default pack is music on hold (and ringback replacement)."""
    default = next((p for p in packs.values() if p.is_default), None)
    if default is None:
        return ()
    paths = (files[i].path for i in default.file_ids)
    return tuple(p for p in paths if p is not None)


def _forwarding(f: ForwardingNumber) -> ForwardingInfo:
    return ForwardingInfo(
        id=f.id,
        number=f.number,
        name=f.name,
        language=f.language,
        services=_frozen(f.services),
        max_incoming_duration_s=f.max_incoming_duration_s,
        max_concurrent_incoming=f.max_concurrent_incoming,
    )


def _menu(m: VoiceMenu, internal: Mapping[int, str]) -> VoiceMenuInfo:
    keys = {
        k.key: internal[k.internal_number_id] for k in m.keys if k.internal_number_id in internal
    }
    return VoiceMenuInfo(
        id=m.id,
        name=m.name,
        language=m.language,
        announcement_id=m.announcement_id,
        digit_timeout_s=m.digit_timeout_s,
        extension_dialling=m.extension_dialling,
        keys=MappingProxyType(keys),
        services=_frozen(m.services),
        max_concurrent_incoming=m.max_concurrent_incoming,
        max_incoming_duration_s=m.max_incoming_duration_s,
    )


def _queue(q: Queue) -> QueueInfo:
    agents = tuple(
        QueueAgentInfo(
            position=a.position,
            port_id=a.port_id,
            forwarding_number_id=a.forwarding_number_id,
            penalty=a.penalty,
            logged_in=a.logged_in,
        )
        for a in q.agents
    )
    return QueueInfo(
        id=q.id,
        name=q.name,
        language=q.language,
        strategy=q.strategy,
        pickup_group_id=q.pickup_group_id,
        music_pack_id=q.music_pack_id,
        max_callers=q.max_callers,
        agent_ring_s=q.agent_ring_s,
        services=_frozen(q.services),
        agents=agents,
    )


def _box(b: VoicemailBox) -> VoicemailInfo:
    return VoicemailInfo(
        id=b.id,
        name=b.name,
        email=b.email,
        language=b.language,
        greeting_id=b.greeting_id,
        max_message_s=b.max_message_s,
        attach_audio=b.attach_audio,
    )


def _classifiers(r: _Rows) -> dict[int, ClassifierInfo]:
    clips: dict[int, set[str]] = {}
    for classifier_id, clip in r.contacts:
        clips.setdefault(classifier_id, set()).add(clip)
    return {
        c.id: ClassifierInfo(id=c.id, name=c.name, clips=frozenset(clips.get(c.id, ())))
        for c in r.classifiers
    }


def _groups(r: _Rows) -> dict[int, PickupGroupInfo]:
    members: dict[int, set[int]] = {}
    for p in r.ports:
        if p.pickup_group_id is not None:
            members.setdefault(p.pickup_group_id, set()).add(p.id)
    return {
        g.id: PickupGroupInfo(id=g.id, number=g.number, port_ids=frozenset(members.get(g.id, ())))
        for g in r.groups
    }


# --- the store --------------------------------------------------------------------------------

SwapListener = Callable[[int, "ClientSnapshot | None"], None]


class SnapshotStore:
    """The engine's configuration: every client's current snapshot (see the module doc)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        secret_box: SecretBox,
        settings: Settings,
        *,
        retry_s: float = 5.0,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self._sessions = sessions
        self._secret_box = secret_box
        self._media_root = Path(settings.media_dir or settings.data_dir / "media")
        self._default_tz = settings.default_timezone
        self._retry_s = retry_s
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(2, thread_name_prefix="snapshot")
        self._clients: dict[int, ClientSnapshot] = {}
        # The generation last installed per client, deletions included (a tombstone), so a
        # slow older build can neither bring back a deleted client nor an older state.
        self._installed: dict[int, int] = {}
        self._logins: dict[str, PortInfo] = {}
        self._dids: dict[str, tuple[int, NumberInfo]] = {}  # E.164 -> (client, number), TRK-1
        self._versions: dict[int, dp.Dialplan] = {}
        self._retired: OrderedDict[int, dp.Dialplan] = OrderedDict()
        self._generations = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._early: set[int] = set()
        self._early_lock = threading.Lock()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._dirty: set[int] = set()
        self._retries: dict[int, asyncio.TimerHandle] = {}
        self._closed = False
        self.listeners: list[SwapListener] = []
        """Called on the loop after each swap with (client_id, snapshot or None if gone)."""

    # --- reads (event loop, no I/O) -----------------------------------------------------------

    def client(self, client_id: int) -> ClientSnapshot | None:
        return self._clients.get(client_id)

    def clients(self) -> list[ClientSnapshot]:
        return list(self._clients.values())

    def port_by_login(self, login: str) -> PortInfo | None:
        """PortDirectory for the registrar: SIP logins are unique in the installation."""
        return self._logins.get(login)

    def number_by_did(self, e164: str) -> tuple[ClientSnapshot, NumberInfo] | None:
        """TRK-1: the external number a carrier's call is for, and its client (DIDs are
        unique in the installation, so the number picks the client)."""
        found = self._dids.get(e164)
        snap = self._clients.get(found[0]) if found is not None else None
        return None if found is None or snap is None else (snap, found[1])

    def number(self, client_id: int, number: str) -> NumberInfo | None:
        snap = self._clients.get(client_id)
        return None if snap is None else snap.numbers.get(number)

    def dialplan_version(self, version_id: int) -> dp.Dialplan | None:
        """A dialplan version by id: current ones, and recently replaced ones (DP-4)."""
        return self._versions.get(version_id) or self._retired.get(version_id)

    # --- loading and rebuilding ---------------------------------------------------------------

    async def load_all(self) -> int:
        """Build every client's snapshot; returns how many clients were loaded."""
        self._loop = asyncio.get_running_loop()
        generation = next(self._generations)
        built = await self._loop.run_in_executor(self._executor, self._build, None, generation)
        for client_id in set(self._clients) - set(built):
            self._install(client_id, None, generation)
        for client_id, snap in built.items():
            self._install(client_id, snap, generation)
        with self._early_lock:
            early, self._early = self._early, set()
        for client_id in early:
            self._schedule(client_id)
        return len(built)

    def invalidate(self, client_id: int) -> None:
        """The client's configuration changed: rebuild it. Safe from any thread."""
        loop = self._loop
        if loop is None:
            with self._early_lock:
                self._early.add(client_id)
            return
        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self._schedule(client_id)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._schedule, client_id)

    async def refresh(self, client_id: int) -> ClientSnapshot | None:
        """Rebuild one client now and wait for it (tests, the CLI)."""
        self.invalidate(client_id)
        await self.wait_idle()
        return self._clients.get(client_id)

    async def wait_idle(self) -> None:
        """Wait until no rebuild is running or queued."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        await self.wait_idle()
        if self._own_executor:
            self._executor.shutdown(wait=False)

    def _schedule(self, client_id: int) -> None:
        if self._closed:
            return
        handle = self._retries.pop(client_id, None)
        if handle is not None:
            handle.cancel()
        if client_id in self._running:
            self._dirty.add(client_id)  # rebuilt again once the running build is in
            return
        assert self._loop is not None
        task = self._loop.create_task(self._rebuild(client_id), name=f"snapshot-{client_id}")
        self._running[client_id] = task

    async def _rebuild(self, client_id: int) -> None:
        assert self._loop is not None
        try:
            while True:
                self._dirty.discard(client_id)
                generation = next(self._generations)
                try:
                    built = await self._loop.run_in_executor(
                        self._executor, self._build, [client_id], generation
                    )
                except Exception:
                    log.exception("snapshot of client %s failed; keeping the old one", client_id)
                    self._retry_later(client_id)
                    return
                self._install(client_id, built.get(client_id), generation)
                if client_id not in self._dirty:
                    return
        finally:
            self._running.pop(client_id, None)

    def _retry_later(self, client_id: int) -> None:
        if self._closed or self._loop is None:
            return
        self._retries[client_id] = self._loop.call_later(self._retry_s, self._schedule, client_id)

    def _build(
        self, client_ids: Sequence[int] | None, generation: int
    ) -> dict[int, ClientSnapshot]:
        """Runs in the executor, with its own session (never the event loop's thread)."""
        with self._sessions() as session:
            return build_snapshots(
                session,
                client_ids,
                generation=generation,
                secret_box=self._secret_box,
                media_root=self._media_root,
                default_timezone=self._default_tz,
            )

    def _install(self, client_id: int, snap: ClientSnapshot | None, generation: int) -> None:
        """Swap in a build unless a newer one is already in (builds may finish out of order)."""
        if self._installed.get(client_id, 0) > generation:
            return
        self._installed[client_id] = generation
        old = self._clients.get(client_id)
        if snap is None:
            self._clients.pop(client_id, None)
        else:
            self._clients[client_id] = snap
        self._reindex(old, snap)
        for listener in list(self.listeners):
            try:
                listener(client_id, snap)
            except Exception:
                log.exception("snapshot listener failed for client %s", client_id)

    def _reindex(self, old: ClientSnapshot | None, new: ClientSnapshot | None) -> None:
        old_ports = old.ports.values() if old is not None else ()
        for port in old_ports:
            if self._logins.get(port.login) is port:
                del self._logins[port.login]
        if new is not None:
            self._logins.update((p.login, p) for p in new.ports.values())
        self._reindex_dids(old, new)
        self._reindex_versions(_versions(old), _versions(new))

    def _reindex_dids(self, old: ClientSnapshot | None, new: ClientSnapshot | None) -> None:
        if old is not None:
            for info in old.numbers.values():
                found = self._dids.get(info.number)
                if found is not None and found[1] is info:
                    del self._dids[info.number]
        if new is not None:
            for info in new.numbers.values():
                if info.kind == "external":
                    self._dids[info.number] = (new.client_id, info)

    def _reindex_versions(
        self, old: Mapping[int, dp.Dialplan], new: Mapping[int, dp.Dialplan]
    ) -> None:
        for version_id, plan in old.items():
            if version_id not in new:
                self._versions.pop(version_id, None)
                self._retired[version_id] = plan
        self._versions.update(new)
        while len(self._retired) > RETIRED_VERSIONS:
            self._retired.popitem(last=False)


def _versions(snap: ClientSnapshot | None) -> Mapping[int, dp.Dialplan]:
    if snap is None:
        return _EMPTY
    return {
        n.dialplan_version_id: n.dialplan
        for n in snap.numbers.values()
        if n.dialplan is not None and n.dialplan_version_id is not None
    }
