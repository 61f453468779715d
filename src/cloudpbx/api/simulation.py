"""DP-6 over stored dialplans: the request / response of the simulator and its database side.

The route ``POST /api/v1/clients/{client_id}/dialplans/{id}/simulate`` (routes/dialplans.py)
and ``cloudpbx simulate`` (cli.py) both call `simulate_stored`: it loads the chosen version,
answers the simulated call's look-ups (`DbDirectory`, always inside the dialplan's client) and
runs `cloudpbx.dialplan.simulate.Simulator` — the engine's own interpreter. Bad input is an
`ApiError` 422 naming the field.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from cloudpbx.api.errors import invalid
from cloudpbx.api.schemas.common import In, RefId
from cloudpbx.config import Settings
from cloudpbx.db.models import (
    Client,
    Contact,
    Dialplan,
    DialplanVersion,
    ExternalNumber,
    InternalNumber,
    MediaFile,
    VoiceMenu,
)
from cloudpbx.dialplan import Dialplan as Plan
from cloudpbx.dialplan import TargetKind, TargetRef
from cloudpbx.dialplan.convert import build_dialplan, step_from_row
from cloudpbx.dialplan.interpreter import Ending, Menu, Move, unknown_number
from cloudpbx.dialplan.simulate import Answer, Assumption, NumberPlan, Simulation, Simulator
from cloudpbx.numbers import InvalidNumber, NumberingPlan, normalize_e164

EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
"""Simulated start times are bounded so the simulated clock can never overflow."""

Seconds = Annotated[float, Field(ge=0, le=86_400)]
Digits = Annotated[str, Field(pattern=r"^[0-9*#]{0,32}$", examples=["1", "105#"])]


class AssumedTarget(In):
    """The target an assumption is about (a port, queue, forwarding number, menu, …)."""

    kind: TargetKind
    id: RefId


class AssumptionBody(In):
    """DP-6: how one target behaves in the simulated call."""

    target: AssumedTarget
    registered: bool = Field(
        True, description="ports: has a live registration; queues: an agent is available"
    )
    answer: Answer = Field(Answer.NO_ANSWER, description="what a rung target does")
    after_s: Seconds | None = Field(
        None,
        description="seconds until the answer / busy / failure; for a message, voicemail, fax "
        "or menu announcement: how long it lasts",
    )
    talk_s: Seconds = Field(30.0, description="after an answer: when the called side hangs up")
    digits: Annotated[list[Digits], Field(max_length=10)] = Field(
        default_factory=list, description="voice menus: what the caller keys on each play"
    )
    found: bool | None = Field(None, description="classifiers: the caller is in the list")


class SimulateBody(In):
    """DP-6: "what happens if caller X calls number N at time T, with these assumptions?"."""

    caller: Annotated[str, Field(max_length=40)] = ""
    number: Annotated[str | None, Field(max_length=40)] = Field(
        None, description="the dialled number (default: the dialplan's own number)"
    )
    time: dt.datetime | None = Field(
        None, description="ISO 8601; without an offset it is the client's local time"
    )
    version: Annotated[int | None, Field(ge=1, le=2**31 - 1)] = Field(
        None, description="the dialplan version (default: the current one)"
    )
    assumptions: Annotated[list[AssumptionBody], Field(max_length=500)] = Field(
        default_factory=list
    )
    menu_digits: Annotated[list[Digits], Field(max_length=10)] = Field(
        default_factory=list, description="keys for menus without their own assumption"
    )


class MoveOut(BaseModel):
    """One move of the path (DP-7): ``to_level`` null is the end of the call."""

    from_level: int | None
    to_level: int | None
    condition: str
    reason: str
    at: dt.datetime
    elapsed_s: float
    number: str | None


class SimulationOut(BaseModel):
    dialplan_id: int
    version: int
    number: str | None
    caller: str
    time_zone: str
    start: dt.datetime = Field(description="the simulated start, UTC")
    local_start: str = Field(description="the same instant on the client's wall clock")
    steps: list[int] = Field(description="the step levels entered, in order")
    moves: list[MoveOut]
    outcome: Ending
    sip_status: int | None = Field(description="final response; null = BYE (answered)")
    answered: bool
    transitions: int
    seconds: float = Field(description="total simulated seconds")


@dataclass
class DbDirectory:
    """`cloudpbx.dialplan.simulate.Directory` over the database, scoped to one client."""

    db: Session
    client_id: int
    numbering: NumberingPlan
    _plans: dict[int, Plan | None] = field(default_factory=dict)

    def number_by_ref(self, ref: TargetRef) -> NumberPlan | None:
        row = self.db.get(InternalNumber, ref.id)
        return self._number_plan(row)

    def number_by_digits(self, number: str) -> NumberPlan | None:
        query = select(InternalNumber).where(
            InternalNumber.client_id == self.client_id, InternalNumber.number == number
        )
        return self._number_plan(self.db.scalar(query))

    def _number_plan(self, row: InternalNumber | None) -> NumberPlan | None:
        if row is None or row.client_id != self.client_id:
            return None
        if row.id not in self._plans:
            query = select(Dialplan).where(Dialplan.internal_number_id == row.id)
            self._plans[row.id] = current_plan(self.db, self.db.scalar(query))
        return NumberPlan(row.number, self._plans[row.id])

    def menu(self, menu_id: int) -> Menu | None:
        row = self._menu_row(menu_id)
        if row is None:
            return None
        ids = [key.internal_number_id for key in row.keys]
        query = select(InternalNumber.id, InternalNumber.number).where(InternalNumber.id.in_(ids))
        numbers: dict[int, str] = dict(self.db.execute(query).all())
        extensions: frozenset[str] = frozenset()
        if row.extension_dialling:
            own = select(InternalNumber.number).where(InternalNumber.client_id == self.client_id)
            extensions = frozenset(self.db.scalars(own))
        return Menu(
            keys={key.key: numbers[key.internal_number_id] for key in row.keys},
            extension_dialling=row.extension_dialling,
            extensions=extensions,
            digit_timeout_s=float(row.digit_timeout_s or 3),
        )

    def _menu_row(self, menu_id: int) -> VoiceMenu | None:
        row = self.db.get(VoiceMenu, menu_id)
        return row if row is not None and row.client_id == self.client_id else None

    def announcement_s(self, menu_id: int) -> float | None:
        row = self._menu_row(menu_id)
        if row is None or row.announcement_id is None:
            return None
        return self.media_s(row.announcement_id)

    def media_s(self, media_id: int) -> float | None:
        row = self.db.get(MediaFile, media_id)
        if row is None or row.client_id != self.client_id or row.duration_ms is None:
            return None
        return row.duration_ms / 1000

    def in_classifier(self, classifier_id: int, caller: str) -> bool:
        """CLS-1: contacts hold E.164 numbers; the caller is normalised the same way."""
        try:
            clip = normalize_e164(caller, self.numbering)
        except InvalidNumber:
            clip = caller
        query = select(Contact.id).where(
            Contact.client_id == self.client_id,
            Contact.classifier_id == classifier_id,
            Contact.clip == clip,
        )
        return self.db.scalar(query.limit(1)) is not None


def current_plan(db: Session, dialplan: Dialplan | None, number: int | None = None) -> Plan | None:
    """The pure model of ``dialplan``'s version ``number`` (default: current); None if absent."""
    if dialplan is None:
        return None
    wanted = dialplan.current_version if number is None else number
    query = select(DialplanVersion).where(
        DialplanVersion.dialplan_id == dialplan.id, DialplanVersion.number == wanted
    )
    version = db.scalar(query)
    if version is None:
        return None
    plan, _ = build_dialplan((step_from_row(s) for s in version.steps), version=version.number)
    return plan


def simulate_stored(
    db: Session, settings: Settings, dialplan: Dialplan, body: SimulateBody, now: dt.datetime
) -> SimulationOut:
    """DP-6 for a stored dialplan (already checked to be the caller's to read)."""
    client = db.get(Client, dialplan.client_id)
    assert client is not None  # the dialplan row references it
    version = body.version or dialplan.current_version
    plan = current_plan(db, dialplan, version)
    if plan is None:
        raise invalid("version", f"version {version} of dialplan {dialplan.id} does not exist")
    start = _start(body.time, client.timezone, now)
    numbering = _numbering(settings, client)
    number, known = _dialled(db, dialplan, body.number, numbering)
    directory = DbDirectory(db, client.id, numbering)
    simulator = Simulator(
        directory=directory,
        time_zone=client.timezone,
        caller=body.caller,
        assumptions=_assumptions(body.assumptions),
        menu_digits=tuple(body.menu_digits),
        ring_max_s=settings.ring_max_s,
    )
    result = simulator.run(plan, start, number=number) if known else _unknown(number, start)
    return _out(dialplan.id, plan.version, number, body.caller, client.timezone, start, result)


def _start(given: dt.datetime | None, time_zone: str, now: dt.datetime) -> dt.datetime:
    """A time without an offset is the client's wall clock (what an administrator types)."""
    if given is None:
        start = now
    elif given.tzinfo is None or given.utcoffset() is None:
        start = given.replace(tzinfo=ZoneInfo(time_zone))
    else:
        start = given
    if not EARLIEST <= start < LATEST:
        raise invalid("time", "must be between 1970 and 2200")
    return start.astimezone(dt.UTC)


def _numbering(settings: Settings, client: Client) -> NumberingPlan:
    plan = settings.numbering_plan
    return replace(plan, default_area_code=client.area_code) if client.area_code else plan


def _dialled(
    db: Session, dialplan: Dialplan, given: str | None, numbering: NumberingPlan
) -> tuple[str | None, bool]:
    """The dialled number and whether it exists; another existing number is a 422."""
    own = _own_number(db, dialplan)
    e164 = _e164(given, numbering)
    if given is None or own in (given, e164):
        return own, True
    internal = select(InternalNumber.id).where(
        InternalNumber.client_id == dialplan.client_id, InternalNumber.number == given
    )
    external = select(ExternalNumber.id).where(
        ExternalNumber.client_id == dialplan.client_id, ExternalNumber.number == e164
    )
    if db.scalar(internal) is not None or db.scalar(external) is not None:
        raise invalid(
            "number",
            f"{given} is another number of this client; simulate its own dialplan "
            f"(this dialplan belongs to {own})",
        )
    return given, False


def _e164(given: str | None, numbering: NumberingPlan) -> str | None:
    try:
        return None if given is None else normalize_e164(given, numbering)
    except InvalidNumber:
        return None


def _own_number(db: Session, dialplan: Dialplan) -> str | None:
    if dialplan.internal_number_id is not None:
        return db.scalar(
            select(InternalNumber.number).where(InternalNumber.id == dialplan.internal_number_id)
        )
    if dialplan.external_number_id is not None:
        return db.scalar(
            select(ExternalNumber.number).where(ExternalNumber.id == dialplan.external_number_id)
        )
    return None


def _assumptions(bodies: list[AssumptionBody]) -> dict[TargetRef, Assumption]:
    found: dict[TargetRef, Assumption] = {}
    for index, body in enumerate(bodies):
        ref = TargetRef(kind=body.target.kind, id=body.target.id)
        if ref in found:
            raise invalid(f"assumptions.{index}.target", f"{ref} is assumed twice")
        found[ref] = Assumption(
            registered=body.registered,
            answer=body.answer,
            after_s=body.after_s,
            talk_s=body.talk_s,
            digits=tuple(body.digits),
            found=body.found,
        )
    return found


def _unknown(number: str | None, start: dt.datetime) -> Simulation:
    """DP-4: 404 only when the dialled number does not exist — the engine's lookup."""
    end = unknown_number(number or "")
    reason = f"number {number} does not exist → the call ends: SIP {end.sip_status}"
    move = Move(None, None, end.outcome.value, reason, start, number)
    return Simulation([move], [], end.outcome, end.sip_status, False, 0.0, 0)


def _out(
    dialplan_id: int,
    version: int,
    number: str | None,
    caller: str,
    time_zone: str,
    start: dt.datetime,
    result: Simulation,
) -> SimulationOut:
    moves = [
        MoveOut(
            from_level=m.from_level,
            to_level=m.to_level,
            condition=m.condition,
            reason=m.reason,
            at=m.at,
            elapsed_s=(m.at - start).total_seconds(),
            number=m.number,
        )
        for m in result.moves
    ]
    local = start.astimezone(ZoneInfo(time_zone))
    return SimulationOut(
        dialplan_id=dialplan_id,
        version=version,
        number=number,
        caller=caller,
        time_zone=time_zone,
        start=start,
        local_start=local.isoformat(),
        steps=result.steps,
        moves=moves,
        outcome=result.outcome,
        sip_status=result.sip_status,
        answered=result.answered,
        transitions=result.transitions,
        seconds=result.seconds,
    )


# --- the command line (``cloudpbx simulate``) ------------------------------------------------


def body_from_cli(
    assume: list[str],
    digits: list[str],
    *,
    caller: str | None,
    time: str | None,
    version: int | None,
    number: str | None,
) -> SimulateBody:
    """``--assume KIND:ID=STATE[@S]`` (STATE: answer, no_answer, busy, fail, unregistered,
    found, not_found; ``@S``: after S seconds) and the other options, validated as the API
    validates its body (pydantic ValidationError on bad input)."""
    fields: dict[str, object] = {
        "assumptions": [_assumption_from_cli(text) for text in assume],
        "menu_digits": digits,
    }
    given = {"caller": caller, "time": time, "version": version, "number": number}
    fields.update({name: value for name, value in given.items() if value is not None})
    return SimulateBody.model_validate(fields)


def _assumption_from_cli(text: str) -> dict[str, object]:
    ref, _, state = text.partition("=")
    kind, _, ref_id = ref.partition(":")
    state, _, after = state.partition("@")
    item: dict[str, object] = {"target": {"kind": kind, "id": ref_id}}
    if state == "unregistered":
        item["registered"] = False
    elif state in ("found", "not_found"):
        item["found"] = state == "found"
    else:
        item["answer"] = state
    if after:
        item["after_s"] = after
    return item


def find_dialplan(
    db: Session, settings: Settings, client_id: int, dialplan_id: int | None, number: str | None
) -> Dialplan:
    """The dialplan by id, or the one of the dialled ``number``, in client ``client_id``."""
    if dialplan_id is not None:
        row = db.get(Dialplan, dialplan_id)
        if row is None or row.client_id != client_id:
            raise invalid("dialplan", f"dialplan {dialplan_id} not found in client {client_id}")
        return row
    if number is None:
        raise invalid("dialplan", "give --dialplan or --number")
    client = db.get(Client, client_id)
    if client is None:
        raise invalid("client", f"client {client_id} not found")
    row = db.scalar(_dialplan_of_number(client, number, _numbering(settings, client)))
    if row is None:
        raise invalid("number", f"{number}: no such number with a dialplan (a call gets 404)")
    return row


def _dialplan_of_number(client: Client, number: str, numbering: NumberingPlan) -> Select[Dialplan]:
    internal = select(InternalNumber.id).where(
        InternalNumber.client_id == client.id, InternalNumber.number == number
    )
    external = select(ExternalNumber.id).where(
        ExternalNumber.client_id == client.id, ExternalNumber.number == _e164(number, numbering)
    )
    return select(Dialplan).where(
        Dialplan.client_id == client.id,
        or_(
            Dialplan.internal_number_id.in_(internal),
            Dialplan.external_number_id.in_(external),
        ),
    )


def format_path(result: SimulationOut) -> str:
    """The simulated path as text: one line per move, then the end."""
    lines = [
        f"dialplan {result.dialplan_id} version {result.version}, number {result.number}, "
        f"caller {result.caller or '-'}, start {result.local_start} ({result.time_zone})"
    ]
    for move in result.moves:
        lines.append(f"  +{move.elapsed_s:7.1f} s  {move.reason}")
    status = "BYE" if result.sip_status is None else f"SIP {result.sip_status}"
    lines.append(
        f"outcome {result.outcome.value}, {status}, steps {result.steps}, "
        f"{result.transitions} transitions, {result.seconds:g} s simulated"
    )
    return "\n".join(lines)
