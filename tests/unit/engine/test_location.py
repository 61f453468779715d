"""The in-memory location store (PRT-1): keys, flows, expiry heap."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from cloudpbx.engine.location import Binding, LocationStore, MemoryLocationStore
from cloudpbx.transport.base import Flow, TransportKind

LOCAL = ("127.0.0.1", 5060)


def flow(kind: TransportKind = TransportKind.UDP, port: int = 40000, conn: int = 1) -> Flow:
    return Flow(kind=kind, local=LOCAL, remote=("127.0.0.1", port), connection_id=conn)


def binding(port_id: int = 1, uri: str = "sip:a@h", expires_at: float = 100.0, **kw) -> Binding:
    fields = {
        "port_id": port_id,
        "client_id": 9,
        "uri": uri,
        "flow": flow(),
        "expires_at": expires_at,
        "call_id": "c",
        "cseq": 1,
    }
    fields.update(kw)
    return Binding(**fields)


def test_memory_store_implements_the_protocol() -> None:
    """ENGINEERING.md §1: the in-process store sits behind the LocationStore protocol."""
    store: LocationStore = MemoryLocationStore()
    store.put(binding())
    assert len(store) == 1


def test_put_replaces_by_port_and_uri() -> None:
    """PRT-1: a binding is identified by (port, contact URI)."""
    store = MemoryLocationStore()
    store.put(binding(expires_at=10))
    store.put(binding(expires_at=20))
    store.put(binding(uri="sip:b@h"))
    store.put(binding(port_id=2))
    assert len(store) == 3
    assert store.get((1, "sip:a@h")).expires_at == 20
    assert sorted(b.uri for b in store.bindings(1)) == ["sip:a@h", "sip:b@h"]
    assert store.remove((1, "sip:a@h")) is not None
    assert store.remove((1, "sip:a@h")) is None
    assert len(store) == 2


def test_pop_expired_uses_the_latest_expiry() -> None:
    """PRT-1: a refreshed binding does not expire at its old time (lazy heap deletion)."""
    store = MemoryLocationStore()
    store.put(binding(expires_at=10))
    store.put(binding(expires_at=50))
    store.put(binding(uri="sip:b@h", expires_at=30))
    assert store.pop_expired(10) == []
    assert [b.uri for b in store.pop_expired(40)] == ["sip:b@h"]
    assert [b.uri for b in store.pop_expired(50)] == ["sip:a@h"]
    assert len(store) == 0


def test_remove_flow_only_touches_that_connection() -> None:
    """RFC 5626 §5.2: a closed connection takes its bindings with it."""
    store = MemoryLocationStore()
    conn_a = flow(TransportKind.TCP, 1, conn=5)
    conn_b = flow(TransportKind.TCP, 2, conn=6)
    store.put(binding(uri="sip:1@h", flow=conn_a))
    store.put(binding(uri="sip:2@h", flow=conn_a, port_id=2))
    store.put(binding(uri="sip:3@h", flow=conn_b))
    assert sorted(b.uri for b in store.remove_flow(conn_a)) == ["sip:1@h", "sip:2@h"]
    assert [b.uri for b in store.all()] == ["sip:3@h"]
    # Moving a binding to another flow unindexes the old one.
    store.put(binding(uri="sip:3@h", flow=flow()))
    assert store.remove_flow(conn_b) == []
    assert len(store) == 1


def test_binding_views() -> None:
    """PRT-1: source, transport and the remaining time a 200 announces."""
    b = binding(flow=flow(TransportKind.TCP, 1234), expires_at=100.0)
    assert b.source == ("127.0.0.1", 1234)
    assert b.transport is TransportKind.TCP
    assert b.expires_in(40.2) == 60
    assert b.expires_in(200) == 0
    assert b.key == (1, "sip:a@h")


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 50), st.booleans()),
        max_size=40,
    ),
    st.integers(0, 60),
)
def test_store_matches_a_dict_model(ops: list[tuple[int, int, int, bool]], now: int) -> None:
    """PRT-1: whatever the puts and removes, expiry returns exactly the model's expired ones."""
    store = MemoryLocationStore()
    model: dict[tuple[int, str], Binding] = {}
    for port_id, n, expires_at, remove in ops:
        b = binding(port_id=port_id, uri=f"sip:{n}@h", expires_at=float(expires_at))
        if remove:
            store.remove(b.key)
            model.pop(b.key, None)
        else:
            store.put(b)
            model[b.key] = b
    expired = store.pop_expired(now)
    assert sorted(x.key for x in expired) == sorted(
        k for k, b in model.items() if b.expires_at <= now
    )
    assert sorted(x.key for x in store.all()) == sorted(
        k for k, b in model.items() if b.expires_at > now
    )
    assert len(store) == len(model) - len(expired)
    assert all(replace(x) == x for x in expired)
