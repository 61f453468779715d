"""CRM webhooks (PRODUCT.md §6 "CRM телефония"): where a client's call events are POSTed.

A webhook is a URL (http or https, no credentials in it), a secret that signs every delivery
(write-only: chosen by the client, encrypted at rest, never read back — not even in the audit
log), the event kinds wanted (empty: all) and an on/off switch. The engine's
:mod:`cloudpbx.services.webhooks` picks changes up through ``config_changed`` (crud.audit).

``POST …/webhooks/{id}/test`` sends one signed ``test`` event now, from the API process, and
answers with the CRM's HTTP status; it needs the right to change the webhook.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

import anyio.from_thread
import httpx
from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, Field

from cloudpbx.api import rbac
from cloudpbx.api.crud import (
    ClientCtx,
    Ctx,
    ItemIdPath,
    Resource,
    fetch,
    make_update_schema,
    register,
)
from cloudpbx.api.errors import invalid
from cloudpbx.api.schemas.common import In, OwnedOut, Text
from cloudpbx.db.models.telephony import Webhook
from cloudpbx.services import webhooks as delivery

router = APIRouter()


def _check_url(url: str) -> str:
    problem = delivery.url_problem(url)
    if problem is not None:
        raise ValueError(problem)
    return url


Url = Annotated[
    str,
    Field(min_length=8, max_length=2000, examples=["https://crm.example.com/pbx/events"]),
    AfterValidator(_check_url),
]
Secret = Annotated[str, Field(min_length=16, max_length=200, description="write-only")]
Event = Literal["started", "answered", "held", "resumed", "updated", "ended"]


class WebhookCreate(In):
    url: Url
    secret: Secret
    events: list[Event] = Field(default_factory=list, description="empty: every event")
    is_active: bool = True
    description: Text = ""


class WebhookRead(OwnedOut):
    url: str
    events: list[str]
    is_active: bool
    description: str


def _literal_internal(url: str) -> bool:
    """A literal internal address is refused at once; names are checked when delivering."""
    host = (httpx.URL(url).host or "").strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return delivery.is_internal(host)


def _prepare(ctx: Ctx, data: dict[str, Any], obj: Any) -> dict[str, Any]:
    url = data.get("url")
    allow = ctx.state.settings.webhooks_allow_private
    if url is not None and not allow and _literal_internal(url):
        raise invalid("url", "internal addresses are not allowed", "url_refused")
    if "events" in data and data["events"] is None:
        data["events"] = []
    if "secret" in data and data["secret"] is None:
        raise invalid("secret", "may not be null")
    secret = data.pop("secret", None)
    if secret is not None:
        data["secret_enc"] = ctx.state.secret_box.seal(secret)
    return data


WEBHOOKS = Resource(
    name="webhooks",
    title="webhook",
    model=Webhook,
    create_schema=WebhookCreate,
    update_schema=make_update_schema(WebhookCreate, "WebhookUpdate"),
    read_schema=WebhookRead,
    policy=rbac.CLIENT_CONFIG,
    sortable=("id", "url"),
    filters=("is_active",),
    search=("url", "description"),
    prepare=_prepare,
    tags=["webhooks"],
)

register(router, [WEBHOOKS])


class TestDelivery(BaseModel):
    ok: bool
    status: int | None
    error: str | None


SAMPLE_CALL: dict[str, Any] = {
    "uuid": "00000000-0000-0000-0000-000000000000",
    "caller": "+74950000000",
    "called": "100",
    "internal_number": "100",
    "state": "ringing",
    "start": None,
    "answer": None,
    "legs": [],
}


@router.post(
    "/clients/{client_id}/webhooks/{item_id}/test",
    response_model=TestDelivery,
    tags=["webhooks"],
    operation_id="test_webhook",
)
def test_webhook(ctx: ClientCtx, item_id: ItemIdPath) -> TestDelivery:
    """Send one signed ``test`` event now (one attempt) and report the CRM's answer."""
    hook = fetch(ctx, WEBHOOKS, item_id, "update")
    target = delivery.WebhookTarget(
        id=hook.id,
        client_id=hook.client_id,
        url=hook.url,
        secret=ctx.state.secret_box.open(hook.secret_enc),
    )
    allow = ctx.state.settings.webhooks_allow_private
    attempt = anyio.from_thread.run(delivery.deliver_once, target, "test", SAMPLE_CALL, allow)
    return TestDelivery(ok=attempt.ok, status=attempt.status, error=attempt.error)
