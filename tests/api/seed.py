"""One object of every client-owned kind, written straight to the database.

The cross-tenant and rights tests need a fully furnished client without depending on the
create routes they are testing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from cloudpbx.db.base import now_ms
from cloudpbx.db.models import (
    AuditEntry,
    BillingAccount,
    Call,
    CallEvent,
    CallLeg,
    Campaign,
    CampaignClassifier,
    Classifier,
    Client,
    Contact,
    Dialplan,
    DialplanStep,
    DialplanVersion,
    ExternalNumber,
    Fax,
    ForwardingNumber,
    InternalNumber,
    MediaFile,
    MediaPack,
    Operator,
    PickupGroup,
    Port,
    Queue,
    QueueAgent,
    Recording,
    Tariff,
    TariffRate,
    User,
    UserInternalNumber,
    UserRight,
    VoicemailBox,
    VoiceMenu,
    VoiceMenuKey,
)
from cloudpbx.db.models.telephony import Webhook
from cloudpbx.db.session import make_sessionmaker
from cloudpbx.rights import PRESETS, Level
from cloudpbx.security import SecretBox

from .conftest import _HASH


def furnished_client(engine: Engine, name: str, digits: str) -> dict[str, int]:
    """Create client `name` with one object of each kind; returns ids by URL segment."""
    box = SecretBox("test-secret-key")
    with make_sessionmaker(engine)() as s:
        client = _add(s, Client(name=name, area_code="495"))
        ids: dict[str, int] = {"client": client.id}
        cid = client.id
        s.add(BillingAccount(client_id=cid, number=f"BA-{cid}"))
        number = _add(s, InternalNumber(client_id=cid, number=f"{digits}00"))
        ext = _add(s, ExternalNumber(client_id=cid, number=f"+7495{digits}00000"))
        group = _add(s, PickupGroup(client_id=cid, number="1"))
        port = _add(
            s,
            Port(
                client_id=cid,
                name="Линия 1",
                sip_login=f"{name}-1",
                sip_secret_enc=box.seal("secret-123"),
                pickup_group_id=group.id,
            ),
        )
        fwd = _add(s, ForwardingNumber(client_id=cid, number="+79161234567", name="Мобильный"))
        pack = _add(s, MediaPack(client_id=cid, name="По умолчанию", is_default=True))
        media = _add(s, MediaFile(client_id=cid, pack_id=pack.id, name="Приветствие"))
        queue = Queue(client_id=cid, name="Продажи")
        queue.agents = [QueueAgent(port_id=port.id)]
        queue = _add(s, queue)
        menu = VoiceMenu(client_id=cid, name="Меню", announcement_id=media.id)
        menu.keys = [VoiceMenuKey(key="1", internal_number_id=number.id)]
        menu = _add(s, menu)
        classifier = _add(s, Classifier(client_id=cid, name="VIP"))
        contact = _add(s, Contact(client_id=cid, classifier_id=classifier.id, clip="+79160000000"))
        vm = _add(s, VoicemailBox(client_id=cid, name="Ящик"))
        campaign = Campaign(client_id=cid, name="Обзвон", processing_number_id=number.id)
        campaign.classifiers = [CampaignClassifier(classifier_id=classifier.id)]
        campaign = _add(s, campaign)
        plan = _add(s, Dialplan(client_id=cid, internal_number_id=number.id, current_version=1))
        s.add(
            DialplanVersion(
                dialplan_id=plan.id,
                client_id=cid,
                number=1,
                steps=[
                    DialplanStep(
                        level=1,
                        action="ring_port",
                        timeout_s=5,
                        port_id=port.id,
                        conditions={"no_answer": 2},
                    ),
                    DialplanStep(level=2, action="play_message", media_file_id=media.id),
                ],
            )
        )
        hook = _add(
            s, Webhook(client_id=cid, url="https://crm.example.com/", secret_enc=box.seal("s" * 16))
        )
        call, recording, fax = _call(s, cid, number.number)
        user = _user(s, cid, name, number.id)
        audit = _add(
            s,
            AuditEntry(
                client_id=cid,
                action="create",
                entity="ports",
                entity_id=str(port.id),
                user_login="seed",
            ),
        )
        s.commit()
        ids.update(
            {
                "internal-numbers": number.id,
                "external-numbers": ext.id,
                "pickup-groups": group.id,
                "ports": port.id,
                "forwarding-numbers": fwd.id,
                "media-packs": pack.id,
                "media-files": media.id,
                "queues": queue.id,
                "voice-menus": menu.id,
                "classifiers": classifier.id,
                "contacts": contact.id,
                "voicemail-boxes": vm.id,
                "campaigns": campaign.id,
                "dialplans": plan.id,
                "calls": call.id,
                "recordings": recording.id,
                "faxes": fax.id,
                "users": user.id,
                "audit": audit.id,
                "webhooks": hook.id,
            }
        )
        return ids


def _add(session: Any, row: Any) -> Any:
    session.add(row)
    session.flush()
    return row


def _call(s: Any, cid: int, internal: str) -> tuple[Call, Recording, Fax]:
    start = now_ms() - 60_000
    call = _add(
        s,
        Call(
            client_id=cid,
            uuid=f"call-{cid}-{start}",
            caller="+74950000001",
            called=internal,
            caller_rev="1000000594",
            called_rev=internal[::-1],
            internal_number=internal,
            start_ms=start,
            answer_ms=start + 1000,
            end_ms=start + 30_000,
            duration_ms=30_000,
            billable_s=29,
            outcome="answered",
            steps=[1],
        ),
    )
    s.add(
        CallLeg(
            call_id=call.id, client_id=cid, direction="in", party="+74950000001", start_ms=start
        )
    )
    s.add(CallEvent(call_id=call.id, client_id=cid, at_ms=start, kind="step", step_level=1))
    rec = _add(
        s, Recording(call_id=call.id, client_id=cid, storage_path=f"{cid}/rec.wav", start_ms=start)
    )
    fax = _add(s, Fax(call_id=call.id, client_id=cid, pdf_path=f"{cid}/fax.pdf", received_ms=start))
    return call, rec, fax


def _user(s: Any, cid: int, name: str, number_id: int) -> User:
    user = User(
        login=f"{name}-user", password_hash=_HASH, level=Level.CLIENT_USER.value, client_id=cid
    )
    user.rights = [UserRight(right=r.value) for r in PRESETS[Level.CLIENT_USER]]
    user.internal_numbers = [UserInternalNumber(internal_number_id=number_id)]
    return _add(s, user)


def system_objects(engine: Engine) -> dict[str, int]:
    """Installation-wide objects: an operator, a tariff with a rate, a staff user."""
    with make_sessionmaker(engine)() as s:
        tariff = _add(s, Tariff(name="Базовый"))
        rate = _add(s, TariffRate(tariff_id=tariff.id, prefix="7495", price_per_minute=1))
        operator = _add(s, Operator(name="Carrier", host="127.0.0.1", tariff_id=tariff.id))
        staff = User(login="support-1", password_hash=_HASH, level=Level.CLIENTS_ADMIN.value)
        staff.rights = [UserRight(right=r.value) for r in PRESETS[Level.CLIENTS_ADMIN]]
        staff = _add(s, staff)
        s.commit()
        return {
            "tariffs": tariff.id,
            "tariff-rates": rate.id,
            "operators": operator.id,
            "staff-users": staff.id,
        }
