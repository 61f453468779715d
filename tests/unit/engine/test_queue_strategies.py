"""Q-1 queue strategies and the queue's shared state (engine/actions/queue.py), pure."""

from __future__ import annotations

import random

import pytest

from cloudpbx.engine.actions.queue import (
    STRATEGIES,
    AgentStats,
    Candidate,
    LocalQueueState,
    LocalQueueStates,
    choose,
    next_attempt,
)

A, B, C = Candidate(11, 0), Candidate(12, 1), Candidate(13, 2)
AGENTS = [C, A, B]  # any order in: positions decide


def test_ringall_rings_every_available_agent_in_position_order() -> None:
    """Q-1 ringall (the default): all available agents at once."""
    assert choose("ringall", AGENTS, {}) == [11, 12, 13]


def test_unknown_strategy_is_ringall() -> None:
    """Q-1: ringall is the default strategy."""
    assert choose("linear", AGENTS, {}) == [11, 12, 13]


def test_no_candidate_rings_nobody() -> None:
    """Q-1: with no free agent nothing is rung, whatever the strategy."""
    for strategy in STRATEGIES:
        assert choose(strategy, [], {}) == []


def test_leastrecent_prefers_never_called_then_oldest() -> None:
    """Q-1 leastrecent: the free agent connected least recently from this queue."""
    stats = {11: AgentStats(3, 5_000), 12: AgentStats(1, 9_000)}
    assert choose("leastrecent", AGENTS, stats) == [13]  # never called
    stats[13] = AgentStats(1, 7_000)
    assert choose("leastrecent", AGENTS, stats) == [11]


def test_leastrecent_tie_goes_to_the_lower_position() -> None:
    """Q-1 leastrecent: nobody was called yet → the first agent."""
    assert choose("leastrecent", AGENTS, {}) == [11]


def test_fewestcalls_picks_the_agent_with_fewest_calls() -> None:
    """Q-1 fewestcalls: the free agent who handled fewest calls from this queue."""
    stats = {11: AgentStats(4, 1), 12: AgentStats(2, 2), 13: AgentStats(2, 3)}
    assert choose("fewestcalls", AGENTS, stats) == [12]  # a tie → lower position
    assert choose("fewestcalls", [A, C], stats) == [13]


def test_random_uses_the_injected_generator() -> None:
    """Q-1 random: a random free agent; every agent comes up, reproducibly with a seed."""
    picks = {choose("random", AGENTS, {}, rng=random.Random(seed))[0] for seed in range(40)}
    assert picks == {11, 12, 13}
    first = [choose("random", AGENTS, {}, rng=random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]


def test_rrmemory_continues_after_the_last_agent_who_answered() -> None:
    """Q-1 rrmemory: round robin remembering the last agent that answered (wraps around)."""
    assert choose("rrmemory", AGENTS, {}) == [11]
    assert choose("rrmemory", AGENTS, {}, last_answered_position=0) == [12]
    assert choose("rrmemory", AGENTS, {}, last_answered_position=1) == [13]
    assert choose("rrmemory", AGENTS, {}, last_answered_position=2) == [11]
    # The next one is busy (not a candidate): the one after it.
    assert choose("rrmemory", [A, C], {}, last_answered_position=0) == [13]


def test_lowest_penalty_agents_are_rung_first() -> None:
    """Q-1 agents' penalty: only the lowest penalty among the free agents takes part."""
    high = Candidate(11, 0, penalty=5)
    assert choose("ringall", [high, B, C], {}) == [12, 13]
    assert choose("leastrecent", [high, Candidate(12, 1, penalty=5)], {}) == [11]


@pytest.mark.parametrize("strategy", ["leastrecent", "fewestcalls", "rrmemory"])
def test_next_attempt_rings_the_next_agent_after_no_answer(strategy: str) -> None:
    """Q-1: an agent who did not answer is not rung again before the others were; then a new
    round starts."""
    tried: frozenset[int] = frozenset()
    order = []
    for _ in range(4):
        chosen, tried = next_attempt(strategy, AGENTS, tried, {})
        order.append(chosen[0])
    assert order == [11, 12, 13, 11]


def test_next_attempt_ringall_rings_everyone_every_time() -> None:
    """Q-1 ringall: each attempt rings all free agents again."""
    chosen, tried = next_attempt("ringall", AGENTS, frozenset(), {})
    assert chosen == [11, 12, 13]
    chosen, _tried = next_attempt("ringall", AGENTS, tried, {})
    assert chosen == [11, 12, 13]


def test_next_attempt_falls_back_to_the_higher_penalty_after_no_answer() -> None:
    """Q-1: when the lowest-penalty agents did not answer, the next ones are rung."""
    high = Candidate(13, 2, penalty=1)
    chosen, tried = next_attempt("ringall", [A, B, high], frozenset(), {})
    assert chosen == [11, 12]
    chosen, tried = next_attempt("ringall", [A, B, high], tried, {})
    assert chosen == [13]


def test_queue_order_and_autofill() -> None:
    """Q-1 "callers wait in order": a caller rings only when every caller ahead rings."""
    state = LocalQueueState()
    assert [state.join(u) for u in ("c1", "c2", "c3")] == [1, 2, 3]
    assert state.join("c2") == 2  # joining twice keeps the place
    assert state.may_ring("c1")
    assert not state.may_ring("c2")
    state.set_ringing("c1", True)
    assert state.may_ring("c2")
    assert not state.may_ring("c3")
    state.leave("c1")
    assert state.length() == 2
    assert state.may_ring("c2")
    assert not state.may_ring("gone")


def test_connected_updates_the_agent_stats() -> None:
    """Q-1: calls handled and last call time per agent, the last agent who answered."""
    state = LocalQueueStates().state(1, 7)
    state.connected(12, 1_000)
    state.connected(12, 2_000)
    state.connected(11, 3_000)
    assert state.stats()[12] == AgentStats(2, 2_000)
    assert state.last_answered() == 11
    assert LocalQueueStates().state(1, 7) is not state  # a new engine starts empty


def test_states_are_per_client_and_queue() -> None:
    """Q-1: one state per queue of a client."""
    states = LocalQueueStates()
    assert states.state(1, 7) is states.state(1, 7)
    assert states.state(1, 7) is not states.state(2, 7)
