"""UDP registrations in the database, so a restart keeps phones reachable (PRT-1).

Synchronous SQLAlchemy: the registrar service calls it in an executor, never on the event
loop. Only UDP bindings are stored (a connection-oriented binding dies with its connection,
RFC 5626 §5.2). Writes are batched: one transaction applies the latest state of every
binding that changed since the previous batch (delete, then insert: portable upsert).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.db.models.telephony import Registration
from cloudpbx.db.session import session_scope
from cloudpbx.engine.location import Binding, BindingKey
from cloudpbx.transport.base import Address, TransportKind

__all__ = ["RegistrationDb", "StoredRegistration"]

logger = logging.getLogger(__name__)

_MAX_URI = 1000  # the column's size


@dataclass(frozen=True, slots=True)
class StoredRegistration:
    """A persisted binding, before a flow is attached to it again."""

    port_id: int
    client_id: int
    uri: str
    source: Address
    local: Address
    expires_at: float  # wall-clock seconds
    user_agent: str
    call_id: str
    cseq: int


class RegistrationDb:
    """The ``registrations`` table (see the module docstring)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def load(self, now: float) -> list[StoredRegistration]:
        """The live rows; the expired ones are deleted on the way."""
        now_ms = int(now * 1000)
        with session_scope(self.sessions) as session:
            session.execute(delete(Registration).where(Registration.expires_at_ms <= now_ms))
            rows = session.scalars(select(Registration).order_by(Registration.id)).all()
            return [_stored(row) for row in rows]

    def write(self, changes: Sequence[tuple[BindingKey, Binding | None]]) -> None:
        """Apply the latest state of each changed binding (None: it is gone)."""
        if not changes:
            return
        try:
            self._write(changes)
        except IntegrityError:
            # A port deleted meanwhile (its rows cascade away): write the others one by one.
            for change in changes:
                try:
                    self._write([change])
                except IntegrityError:
                    logger.info("registration of port %d not persisted: port gone", change[0][0])

    def _write(self, changes: Sequence[tuple[BindingKey, Binding | None]]) -> None:
        keys = [key for key, _ in changes]
        with session_scope(self.sessions) as session:
            for chunk in _chunks(keys, 200):
                session.execute(delete(Registration).where(or_(*map(_matches, chunk))))
            session.add_all(_row(b) for _, b in changes if b is not None and _storable(b))


def _matches(key: BindingKey) -> ColumnElement[bool]:
    return and_(Registration.port_id == key[0], Registration.contact_uri == key[1])


def _chunks(keys: list[BindingKey], size: int) -> list[list[BindingKey]]:
    return [keys[i : i + size] for i in range(0, len(keys), size)]


def _storable(binding: Binding) -> bool:
    if binding.transport is not TransportKind.UDP:
        return False
    if len(binding.uri) > _MAX_URI:
        logger.warning("contact URI of port %d too long to persist", binding.port_id)
        return False
    return True


def _row(binding: Binding) -> Registration:
    source, local = binding.flow.remote, binding.flow.local
    return Registration(
        client_id=binding.client_id,
        port_id=binding.port_id,
        contact_uri=binding.uri,
        source_host=source[0],
        source_port=source[1],
        local_host=local[0],
        local_port=local[1],
        transport=binding.transport.value,
        expires_at_ms=int(binding.expires_at * 1000),
        user_agent=binding.user_agent[:200],
        call_id=binding.call_id[:200],
        cseq=binding.cseq,
    )


def _stored(row: Registration) -> StoredRegistration:
    return StoredRegistration(
        port_id=row.port_id,
        client_id=row.client_id,
        uri=row.contact_uri,
        source=(row.source_host, row.source_port),
        local=(row.local_host, row.local_port),
        expires_at=row.expires_at_ms / 1000,
        user_agent=row.user_agent,
        call_id=row.call_id,
        cseq=row.cseq,
    )
