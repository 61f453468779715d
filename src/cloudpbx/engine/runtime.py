"""The engine runtime: everything ``cloudpbx run`` starts besides the web API (issue 5 item 8).

:class:`EngineRuntime` is the engine's composition root. ``await start()`` builds, in order:

1. the :class:`~cloudpbx.engine.snapshot.SnapshotStore` (every client's configuration, loaded
   off the loop) -- the registrar's port directory and the B2BUA's only source of configuration;
2. the :class:`~cloudpbx.engine.cdr.CdrWriter`, which first closes the calls a crash left open
   (``close_orphans``) so that the call records stay consistent;
3. the :class:`~cloudpbx.engine.active_calls.CallRegistry` (AC-1);
4. the RTP port allocator and the :class:`~cloudpbx.media.relay.RelayManager` from the settings
   (``rtp_port_min`` … ``rtp_port_max``, ``rtp_timeout_s``);
5. the :class:`~cloudpbx.engine.sipstack.SipStack` with the registrar (digest, qualify, UDP
   bindings restored from the database) and the :class:`~cloudpbx.engine.b2bua.B2bua` with
   its :class:`~cloudpbx.engine.fax.FaxService` (FAXRECEIVER, files under ``recordings_dir``);
6. the listeners: SIP over UDP and TCP on ``sip_host:sip_port`` and over WebSocket on
   ``sip_ws_port`` (RFC 7118, browser phones).

It implements :class:`~cloudpbx.engine.control.EngineControl` through ``control``
(:class:`~cloudpbx.engine.control.LocalEngineControl`: active calls, hang-up, port status).
``await stop()`` hangs up the calls, stops the listeners, drains the call records and the
registrations, in the reverse order. Configuration changes made through the API reach it with
``invalidate(client_id)`` (the API's ``config_changed`` hook).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.config import Settings
from cloudpbx.engine.actions import CallActions
from cloudpbx.engine.active_calls import CallRegistry
from cloudpbx.engine.b2bua import B2bua, B2buaConfig, WriterSink
from cloudpbx.engine.cdr import CdrWriter
from cloudpbx.engine.control import LocalEngineControl, PortStatus, port_status_of
from cloudpbx.engine.fax import FaxService
from cloudpbx.engine.location import MemoryLocationStore
from cloudpbx.engine.registrar import Registrar
from cloudpbx.engine.registrar_service import RegistrarService
from cloudpbx.engine.registration_db import RegistrationDb
from cloudpbx.engine.sipstack import SipStack
from cloudpbx.engine.snapshot import ClientSnapshot, SnapshotStore
from cloudpbx.engine.trunks import TrunkService, TrunkStatus, trunk_summary
from cloudpbx.media.ports import RtpPortAllocator
from cloudpbx.media.relay import RelayManager
from cloudpbx.security import SecretBox
from cloudpbx.services.webhooks import WebhookService, db_loader

__all__ = ["EngineRuntime", "Listening"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Listening:
    """Where the engine listens (ports picked by the system when 0 was asked)."""

    udp: tuple[str, int]
    tcp: tuple[str, int]
    ws: tuple[str, int] | None


class EngineRuntime:
    """The SIP engine of one process (see the module docstring).

    ``sip_port`` / ``ws_port`` override the settings (0: any free port, for tests); ``ws_port``
    ``-1`` disables the WebSocket listener.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        secret_box: SecretBox,
        *,
        sip_port: int | None = None,
        ws_port: int | None = None,
        qualify_interval: float | None = 30.0,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.secret_box = secret_box
        self.sip_port = settings.sip_port if sip_port is None else sip_port
        self.ws_port = settings.sip_ws_port if ws_port is None else ws_port
        self.qualify_interval = qualify_interval
        self.registry = CallRegistry()
        self.snapshots = SnapshotStore(sessions, secret_box, settings)
        # A rated call changed a client's balance: its snapshot (spend limit) is rebuilt.
        self.cdr = CdrWriter(
            sessions, recordings_dir=settings.recordings_dir, on_charged=self.snapshots.invalidate
        )
        self.ports = RtpPortAllocator(settings.rtp_port_min, settings.rtp_port_max)
        self.relays = RelayManager(
            self.ports,
            host=settings.sip_host,
            max_sessions=max(1, self.ports.limit // 2),
            inactivity_timeout=settings.rtp_timeout_s,
        )
        self.stack = SipStack(advertised_address=settings.advertised_sip_address)
        self.registrar = Registrar(
            self.snapshots,
            MemoryLocationStore(),
            realm=settings.sip_realm,
            nonce_key=_nonce_key(settings.secret_key),
        )
        self.registrar_service = RegistrarService(
            self.registrar,
            self.stack,
            db=RegistrationDb(sessions),
            qualify_interval=qualify_interval,
        )
        self.b2bua = B2bua(
            self.stack,
            snapshots=self.snapshots,
            registrar=self.registrar,
            relays=self.relays,
            registry=self.registry,
            cdr=WriterSink(self.cdr),
            config=B2buaConfig(
                media_address=settings.advertised_media_address,
                ring_max_s=settings.ring_max_s,
                recordings_dir=settings.recordings_dir,
            ),
            fax=FaxService(settings.recordings_dir),
            # Voice menus and voicemail (IVR-1, VM-1): prompts, recordings, mail.
            actions=CallActions.from_settings(settings, self.cdr),
        )
        # TRK-1: carriers' calls in, forwarding numbers out, registrations with carriers.
        self.trunks = TrunkService(
            self.stack, sessions, secret_box, self.snapshots, numbering=settings.numbering_plan
        )
        self.b2bua.trunks = self.trunks
        self.control = LocalEngineControl(
            self.registry, hangup=self.b2bua.hangup, port_status=self.port_status
        )
        # PRODUCT.md §6: call events POSTed, signed, to the clients' CRMs (docs/webhooks.md).
        self.webhooks = WebhookService(
            self.registry,
            db_loader(sessions, secret_box),
            allow_private=settings.webhooks_allow_private,
        )
        self.listening: Listening | None = None
        self._started = False

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self) -> Listening:
        """Load configuration, open the call records, listen; returns the bound addresses."""
        loaded = await self.snapshots.load_all()
        self.snapshots.listeners.append(self._on_snapshot)
        await self.cdr.start()
        await self.cdr.close_orphans()
        self.registrar_service.attach(self.stack)
        self._started = True
        host = self.settings.sip_host
        udp, tcp = await self.stack.listen_udp_tcp(host, self.sip_port)
        ws = None
        if self.ws_port >= 0:
            ws = await self.stack.listen_ws(host, self.ws_port)
        restored = await self.registrar_service.start(udp_flow_to=self.stack.udp_flow_to)
        trunks = await self.trunks.start()
        hooks = await self.webhooks.start()
        self.listening = Listening(udp=udp, tcp=tcp, ws=ws)
        log.info(
            "SIP engine: %d client(s), %d registration(s) restored, UDP/TCP %s:%d, WS %s",
            loaded,
            restored,
            udp[0],
            udp[1],
            f"{ws[0]}:{ws[1]}" if ws else "off",
        )
        log.info("trunks: %d (%s)", trunks, trunk_summary(list(self.trunk_status().values())))
        log.info("webhooks: %d active", hooks)
        return self.listening

    async def stop(self) -> None:
        """Hang up every call, stop listening, write what is queued (idempotent)."""
        if not self._started:
            return
        self._started = False
        await self.b2bua.close()
        await self.webhooks.stop()
        if self.b2bua.actions is not None:
            await self.b2bua.actions.close()  # voicemail mails still being sent get a moment
        await self.registrar_service.stop()
        await self.trunks.stop()  # unREGISTERs while the stack still runs
        await self.stack.close()
        self.relays.close()
        await self.cdr.close()
        await self.snapshots.close()

    def invalidate(self, client_id: int) -> None:
        """The API changed the client's configuration: rebuild its snapshot (any thread)."""
        self.snapshots.invalidate(client_id)
        self.webhooks.invalidate(client_id)

    def reload_trunks(self) -> None:
        """The API changed an operator (TRK-1): reload the trunks (any thread)."""
        self.trunks.invalidate()

    # --- EngineControl pieces ----------------------------------------------------------------

    def port_status(self, client_id: int) -> Mapping[int, PortStatus]:
        """PRT-1: each of the client's ports with its registered contacts."""
        snapshot = self.snapshots.client(client_id)
        if snapshot is None:
            return {}
        return {
            port_id: port_status_of(port_id, self.registrar.contacts(port_id))
            for port_id in snapshot.ports
        }

    def trunk_status(self) -> Mapping[int, TrunkStatus]:
        """TRK-1: each trunk's state (registered, failed, IP-authenticated) and channels."""
        return self.trunks.status()

    def _on_snapshot(self, client_id: int, snapshot: ClientSnapshot | None) -> None:
        """A port deleted or disabled loses its registrations at once."""
        keep: set[int] = set()
        if snapshot is not None:
            keep = {p.id for p in snapshot.ports.values() if p.is_active}
        for binding in list(self.registrar.store.all()):
            if binding.client_id == client_id and binding.port_id not in keep:
                self.registrar.drop_port(binding.port_id)

    def stats(self) -> dict[str, Any]:
        return {
            "calls": len(self.b2bua.calls),
            "relay_sessions": len(self.relays),
            "registrations": len(self.registrar.store),
            "counters": dict(self.b2bua.counters),
        }


def _nonce_key(secret_key: str) -> bytes:
    """The digest nonce key, derived from the installation secret (RFC 7616 §3.3: the nonce
    is opaque to clients; ours are HMACs any node with the same secret can check)."""
    return hashlib.sha256(b"cloudpbx sip digest nonce\x00" + secret_key.encode()).digest()
