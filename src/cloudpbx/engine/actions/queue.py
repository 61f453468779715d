"""Call queues (Q-1, PRODUCT.md DP-4 "queue" row). See docs/engine.md "Queues, classifiers and
pickup".

A ``ring_queue`` step:

1. **No route** when no agent can take calls at all: no port agent that is logged in, active
   and registered (a contact that answers qualify). Busy agents count as present: waiting for
   them is what a queue is for. Forwarding-number agents are skipped (no outbound trunks yet:
   logged, event ``queue_skip``).
2. **Busy** when the queue is full: ``max_callers`` callers already wait.
3. Otherwise the caller joins the queue (FIFO) and is **answered** (200 OK, billing starts) to
   hear music on hold -- as Asterisk's ``Queue()`` does: music needs an answered call (183
   early media would do without answering, but many phones and carriers drop long early
   media). The music is the queue's media pack's first file, else the client's default pack's
   (MED-1), else the ringback tone, played from the caller's relay socket like every other
   sound of the PBX.
4. While waiting, one **attempt** after the other rings the agents the strategy picks
   (:func:`next_attempt`) for the queue's ``agent_ring_s``; the first to answer is bridged (the
   other branches are CANCELled) and the step then ends as a ring step does: the agent hangs
   up with the caller still there → After answer. An agent who does not answer in time is
   cancelled and the next agent(s) are rung. Available agents are those registered and in no
   call (ringing or talking, either way). Callers ring in queue order: a caller rings only
   when every caller ahead of it is ringing agents already (Asterisk's ``autofill``).
5. The step's timeout (the maximum wait; 0 = the ring maximum) expired → **No answer**.

Strategies (Q-1), among the available agents with the lowest penalty not yet tried in this
round (a round ends when all were tried): ``ringall`` all of them, ``leastrecent`` the one
connected least recently to a caller of this queue (never first), ``fewestcalls`` the one with
fewest calls handled from this queue, ``random``, ``rrmemory`` the next after the agent who
answered last, in position order. Ties go to the lower position.

The queue's shared state -- who waits in which order, agents' calls handled and last call
time, the last agent who answered -- is a :class:`QueueState` behind a small protocol
(:class:`QueueStates`): in-process now (:class:`LocalQueueStates`), a Redis implementation can
replace it with several engine nodes (ENGINEERING.md §1).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from cloudpbx.dialplan.interpreter import Outcome, RunAction
from cloudpbx.engine.call import Call, Leg, RingEvent, epoch_ms
from cloudpbx.media.player import AudioSource, FileSource, ToneSource
from cloudpbx.media.tones import tone_plan

__all__ = [
    "STRATEGIES",
    "AgentStats",
    "Candidate",
    "LocalQueueState",
    "LocalQueueStates",
    "QueueRegistry",
    "QueueState",
    "QueueStates",
    "busy_ports",
    "choose",
    "next_attempt",
    "run_queue",
]

log = logging.getLogger(__name__)

STRATEGIES = ("ringall", "leastrecent", "fewestcalls", "random", "rrmemory")
"""Q-1 strategies; ``ringall`` is the default (an unknown name falls back to it)."""

RETRY_S = 0.5
"""How often a waiting caller looks again for a free agent (agents' calls end elsewhere)."""


# --- strategies (pure) ------------------------------------------------------------------------


@dataclass(slots=True)
class AgentStats:
    """What a queue remembers of one agent (Q-1 ``leastrecent``/``fewestcalls``)."""

    calls: int = 0  # callers of this queue connected to the agent
    last_call_ms: int | None = None  # when the last one was connected (epoch ms)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An available agent: a port in no call, registered."""

    port_id: int
    position: int
    penalty: int = 0


def choose(
    strategy: str,
    candidates: Sequence[Candidate],
    stats: Mapping[int, AgentStats],
    *,
    last_answered_position: int | None = None,
    rng: random.Random | None = None,
) -> list[int]:
    """Q-1: the port ids to ring in one attempt, among ``candidates`` (only the lowest penalty
    takes part); empty when there is no candidate."""
    if not candidates:
        return []
    best = min(c.penalty for c in candidates)
    pool = sorted((c for c in candidates if c.penalty == best), key=lambda c: c.position)
    if strategy == "leastrecent":
        return [min(pool, key=lambda c: _recency(stats.get(c.port_id))).port_id]
    if strategy == "fewestcalls":
        return [min(pool, key=lambda c: _calls(stats.get(c.port_id))).port_id]
    if strategy == "random":
        return [(rng or random.Random()).choice(pool).port_id]
    if strategy == "rrmemory":
        return [_round_robin(pool, last_answered_position).port_id]
    return [c.port_id for c in pool]  # ringall


def _recency(stats: AgentStats | None) -> tuple[bool, int]:
    # Never connected sorts first, then the oldest connection (min() keeps position order).
    if stats is None or stats.last_call_ms is None:
        return (False, 0)
    return (True, stats.last_call_ms)


def _calls(stats: AgentStats | None) -> int:
    return 0 if stats is None else stats.calls


def _round_robin(pool: Sequence[Candidate], last_position: int | None) -> Candidate:
    if last_position is None:
        return pool[0]
    return next((c for c in pool if c.position > last_position), pool[0])


def next_attempt(
    strategy: str,
    available: Sequence[Candidate],
    tried: frozenset[int],
    stats: Mapping[int, AgentStats],
    *,
    last_answered_position: int | None = None,
    rng: random.Random | None = None,
) -> tuple[list[int], frozenset[int]]:
    """One caller's next attempt: the agents to ring and the new set of agents tried in this
    round. An agent who did not answer is not rung again before every other available agent
    was ("then the next agent(s)"); once all were, a new round starts."""
    fresh = [c for c in available if c.port_id not in tried]
    if not fresh:
        fresh, tried = list(available), frozenset()
    chosen = choose(strategy, fresh, stats, last_answered_position=last_answered_position, rng=rng)
    return chosen, tried | frozenset(chosen)


# --- the queue's shared state -----------------------------------------------------------------


class QueueState(Protocol):
    """One queue's state shared by its callers (in-process, or Redis with several nodes)."""

    def join(self, call_uuid: str) -> int: ...
    def leave(self, call_uuid: str) -> None: ...
    def length(self) -> int: ...
    def set_ringing(self, call_uuid: str, ringing: bool) -> None: ...
    def may_ring(self, call_uuid: str) -> bool: ...
    def connected(self, port_id: int, now_ms: int) -> None: ...
    def stats(self) -> Mapping[int, AgentStats]: ...
    def last_answered(self) -> int | None: ...


class QueueStates(Protocol):
    """Where the queues' states are: one per (client, queue)."""

    def state(self, client_id: int, queue_id: int) -> QueueState: ...


@dataclass
class LocalQueueState:
    """:class:`QueueState` in this process."""

    waiting: list[str] = field(default_factory=list)  # call uuids, in arrival order
    ringing: set[str] = field(default_factory=set)
    agents: dict[int, AgentStats] = field(default_factory=dict)
    last_port: int | None = None

    def join(self, call_uuid: str) -> int:
        """Queue ``call_uuid`` at the end; its 1-based position."""
        if call_uuid not in self.waiting:
            self.waiting.append(call_uuid)
        return self.waiting.index(call_uuid) + 1

    def leave(self, call_uuid: str) -> None:
        if call_uuid in self.waiting:
            self.waiting.remove(call_uuid)
        self.ringing.discard(call_uuid)

    def length(self) -> int:
        return len(self.waiting)

    def set_ringing(self, call_uuid: str, ringing: bool) -> None:
        if ringing:
            self.ringing.add(call_uuid)
        else:
            self.ringing.discard(call_uuid)

    def may_ring(self, call_uuid: str) -> bool:
        """Queue order: every caller ahead rings agents already (autofill)."""
        if call_uuid not in self.waiting:
            return False
        ahead = self.waiting[: self.waiting.index(call_uuid)]
        return all(uuid in self.ringing for uuid in ahead)

    def connected(self, port_id: int, now_ms: int) -> None:
        """The agent took a caller of this queue (stats of ``leastrecent``/``fewestcalls``)."""
        stats = self.agents.setdefault(port_id, AgentStats())
        stats.calls += 1
        stats.last_call_ms = now_ms
        self.last_port = port_id

    def stats(self) -> Mapping[int, AgentStats]:
        return self.agents

    def last_answered(self) -> int | None:
        return self.last_port


class LocalQueueStates:
    """:class:`QueueStates` in this process (a queue's state lives as long as the engine)."""

    def __init__(self) -> None:
        self._states: dict[tuple[int, int], LocalQueueState] = {}

    def state(self, client_id: int, queue_id: int) -> LocalQueueState:
        return self._states.setdefault((client_id, queue_id), LocalQueueState())


class QueueRegistry:
    """The queues of an engine: their shared ``states`` and this process's waiting callers
    (``waiting``: call uuid → :class:`QueueCall`, what pickup (PG-1) looks at)."""

    def __init__(self, states: QueueStates | None = None, *, retry_s: float = RETRY_S) -> None:
        self.states: QueueStates = states or LocalQueueStates()
        self.waiting: dict[str, QueueCall] = {}
        self.retry_s = retry_s
        self.rng = random.Random()


_NO_PORT = SimpleNamespace(id=None, name="", services={}, max_incoming_duration_s=None)
"""Stands for a callee port that is gone from the configuration: no services, no limits."""


def busy_ports(b2bua: Any) -> set[int]:
    """Ports in a call now, as caller or callee, ringing or talking (Q-1 "free agent")."""
    return {
        leg.port_id
        for call in b2bua.calls.values()
        for leg in call.live_legs()
        if leg.port_id is not None
    }


# --- the step ---------------------------------------------------------------------------------


async def run_queue(
    registry: QueueRegistry, b2bua: Any, call: Call, snapshot: Any, decision: RunAction
) -> Outcome:
    """Perform a ``ring_queue`` step (see the module docstring)."""
    target = decision.step.target
    queue = snapshot.queues.get(target.id) if target is not None else None
    if queue is None:
        b2bua._event(call, "no_route", decision.level, f"queue {target} does not exist")
        return Outcome.NO_ROUTE
    waiting = QueueCall(registry, b2bua, call, snapshot, decision, queue)
    return await waiting.run()


class QueueCall:
    """One caller in one queue step."""

    def __init__(
        self,
        registry: QueueRegistry,
        b2bua: Any,
        call: Call,
        snapshot: Any,
        decision: RunAction,
        queue: Any,
    ) -> None:
        self.registry = registry
        self.b2bua = b2bua
        self.call = call
        self.snapshot = snapshot
        self.decision = decision
        self.queue = queue
        self.state = registry.states.state(call.client_id, queue.id)
        self.events: asyncio.Queue[RingEvent] = asyncio.Queue()
        self.tried: frozenset[int] = frozenset()

    @property
    def pickup_group_id(self) -> int | None:
        return self.queue.pickup_group_id  # type: ignore[no-any-return]

    def offer(self, leg: Leg) -> None:
        """PG-1: a picker's leg, already answered, takes this caller."""
        self.events.put_nowait(RingEvent(leg, "answered"))

    async def run(self) -> Outcome:
        refused = self._entry_check()
        if refused is not None:
            return refused
        uuid = self.call.uuid
        position = self.state.join(uuid)
        self.registry.waiting[uuid] = self
        try:
            self.b2bua.answer_caller(self.call)
            self._event("queue", f"{self.queue.name}: position {position}")
            self.b2bua._play_on(self.call, "a", self._music())
            return await self._wait()
        finally:
            self.state.leave(uuid)
            self.registry.waiting.pop(uuid, None)
            self.b2bua._stop_ringback(self.call)

    def _entry_check(self) -> Outcome | None:
        """DP-4: nobody to take the call → No route; the queue full → Busy."""
        self._skip_forwarding_agents()
        present = [a for a in self._port_agents() if self._contacts(a.port_id)]
        if not present:
            self._event("no_route", f"queue {self.queue.name}: no agent logged in and registered")
            return Outcome.NO_ROUTE
        limit = self.queue.max_callers
        if limit is not None and limit > 0 and self.state.length() >= limit:
            self._event("queue_full", f"queue {self.queue.name}: {limit} callers wait")
            return Outcome.BUSY
        return None

    async def _wait(self) -> Outcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.decision.timeout_s or self.b2bua.config.ring_max_s)
        while (left := deadline - loop.time()) > 0:
            chosen = self._choose() if self.state.may_ring(self.call.uuid) else []
            if chosen:
                ring_s = min(float(self.queue.agent_ring_s or left), left)
                outcome = await self._attempt(chosen, ring_s)
            else:
                outcome = await self._idle(min(self.registry.retry_s, left))
            if outcome is not None:
                return outcome
        self._event("queue_timeout", f"{self.decision.timeout_s} s")
        return Outcome.NO_ANSWER  # DP-4: the maximum wait was reached

    # --- agents -------------------------------------------------------------------------------

    def _port_agents(self) -> list[Any]:
        ports = self.snapshot.ports
        return [
            a
            for a in self.queue.agents
            if a.port_id is not None
            and a.logged_in
            and a.port_id in ports
            and ports[a.port_id].is_active
        ]

    def _skip_forwarding_agents(self) -> None:
        for agent in self.queue.agents:
            if agent.forwarding_number_id is not None:
                log.warning(
                    "call %s queue %s: not implemented: forwarding-number agent %d skipped"
                    " (no outbound trunks)",
                    self.call.uuid,
                    self.queue.name,
                    agent.forwarding_number_id,
                )
                self._event("queue_skip", f"forwarding number {agent.forwarding_number_id}")

    def _contacts(self, port_id: int) -> list[Any]:
        return [b for b in self.b2bua.registrar.contacts(port_id) if b.available]

    def _available(self) -> list[Candidate]:
        busy = busy_ports(self.b2bua)
        return [
            Candidate(a.port_id, a.position, a.penalty)
            for a in self._port_agents()
            if a.port_id not in busy and self._contacts(a.port_id)
        ]

    def _choose(self) -> list[int]:
        last = self.state.last_answered()
        positions = {a.port_id: a.position for a in self.queue.agents if a.port_id is not None}
        chosen, self.tried = next_attempt(
            self.queue.strategy,
            self._available(),
            self.tried,
            self.state.stats(),
            last_answered_position=positions.get(last) if last is not None else None,
            rng=self.registry.rng,
        )
        return chosen

    # --- ringing ------------------------------------------------------------------------------

    async def _attempt(self, chosen: Iterable[int], ring_s: float) -> Outcome | None:
        branches = self._ring(chosen)
        if not branches:
            return await self._idle(ring_s)
        self.state.set_ringing(self.call.uuid, True)
        try:
            return await self._await(branches, ring_s)
        finally:
            self.state.set_ringing(self.call.uuid, False)
            for leg in branches:
                if leg is not self.call.callee:
                    self.b2bua._drop_branch(leg)

    def _ring(self, chosen: Iterable[int]) -> list[Leg]:
        branches: list[Leg] = []
        names = []
        for port_id in chosen:
            port = self.snapshot.ports[port_id]
            names.append(port.name)
            for binding in self._contacts(port_id):
                branches.append(self.b2bua._fork(self.call, port, binding, self.events))
        if branches:
            self._event("queue_ring", ", ".join(names))
        return branches

    async def _await(self, branches: list[Leg], ring_s: float) -> Outcome | None:
        loop = asyncio.get_running_loop()
        end = loop.time() + ring_s
        pending = set(branches)
        while pending and (left := end - loop.time()) > 0:
            event = await self._next_event(left)
            if event is None:
                break
            if event.kind == "answered" and not event.leg.cancelled:
                return await self._connect(event.leg, branches)
            if event.kind == "failed":
                pending.discard(event.leg)
        return None

    async def _idle(self, seconds: float) -> Outcome | None:
        """Wait between attempts; a picker (PG-1) may take the caller meanwhile."""
        event = await self._next_event(seconds)
        if event is not None and event.kind == "answered" and not event.leg.cancelled:
            return await self._connect(event.leg, [])
        return None

    async def _next_event(self, timeout: float) -> RingEvent | None:
        try:
            return await asyncio.wait_for(self.events.get(), timeout=max(0.0, timeout))
        except TimeoutError:
            return None

    async def _connect(self, leg: Leg, branches: list[Leg]) -> Outcome:
        """An agent (or a picker) answered: the others stop ringing, the caller leaves the
        queue (the next one moves up) and is bridged; then as a ring step (DP-4)."""
        for other in branches:
            if other is not leg:
                self.b2bua._drop_branch(other)
        self.state.leave(self.call.uuid)
        self.registry.waiting.pop(self.call.uuid, None)
        port = self._port(leg.port_id)
        if leg.port_id is not None:
            self.state.connected(leg.port_id, epoch_ms())
        self._event("queue_answered", leg.party)
        outcome: Outcome = await self.b2bua._bridge(
            self.call, self.snapshot, port, leg, self.decision
        )
        return outcome

    def _port(self, port_id: int | None) -> Any:
        port = self.snapshot.ports.get(port_id)
        if port is None:  # a port added after the call started (a picker): the newest snapshot
            latest = self.b2bua.snapshots.client(self.call.client_id)
            port = latest.ports.get(port_id) if latest is not None else None
        return port if port is not None else _NO_PORT

    # --- media and records --------------------------------------------------------------------

    def _music(self) -> AudioSource:
        """The queue's media pack's first file, the default pack's, or the ringback tone."""
        path = self._pack_music() or self.snapshot.moh_path
        if path is not None:
            try:
                return FileSource(path, loop=True)
            except (OSError, ValueError) as exc:
                log.warning("call %s: music on hold %s: %s", self.call.uuid, path, exc)
        return ToneSource(tone_plan(self.b2bua.config.tone_country)["ringback"])

    def _pack_music(self) -> Path | None:
        pack = self.snapshot.media_packs.get(self.queue.music_pack_id)
        for file_id in pack.file_ids if pack is not None else ():
            path = self.snapshot.media_path(file_id)
            if path is not None and Path(path).is_file():
                return Path(path)
        return None

    def _event(self, kind: str, detail: str) -> None:
        self.b2bua._event(self.call, kind, self.decision.level, detail)
