"""CDR search benchmark (CDR-2, BENCHMARKING.md "Web and data").

Generates calls for ~20 clients over 90 days with realistic numbers, loads them with
``cloudpbx.cdr.store.bulk_insert_calls``, runs ANALYZE, then times the searches the API runs —
through ``cloudpbx.cdr.search.search_calls``, the same code as ``GET /clients/{id}/calls``
(a page of 50, newest first, plus the total counted up to 10,000) — and prints p50/p99 per
kind of search and the query plans.

    .venv/bin/python bench/cdr_search.py                       # 1,000,000 rows, SQLite
    .venv/bin/python bench/cdr_search.py --rows 100000 --fresh
    .venv/bin/python bench/cdr_search.py --database-url postgresql+psycopg://…/cdr --rows 10000000
    .venv/bin/python bench/cdr_search.py --reuse               # measure an existing load again
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from cloudpbx.cdr import search, store
from cloudpbx.cdr.search import CallFilter
from cloudpbx.db.migrate import upgrade
from cloudpbx.db.models import Call, Client, Operator
from cloudpbx.db.session import make_engine, make_sessionmaker
from cloudpbx.numbers import NumberingPlan, classify

DEFAULT_URL = "sqlite:///var/bench/cdr.db"
DAY_MS = 86_400_000
MSK = timedelta(hours=3)  # the generated clients work Moscow hours
AREA_CODES = ("495", "499", "812", "343", "383", "861", "846", "831", "473", "351")
PLAN = NumberingPlan()
# Per-minute prices by direction; incoming and internal calls are free.
PRICE = {
    "local": Decimal("0.40"),
    "long_distance": Decimal("1.50"),
    "international": Decimal("9.00"),
    "toll_free": Decimal("0"),
}
OUTCOMES = (("answered", 72), ("no_answer", 12), ("busy", 6), ("cancelled", 7), ("no_route", 3))


# --- the generated world ---------------------------------------------------------------------


@dataclass
class Tenant:
    id: int
    area: str
    dids: list[str]
    extensions: list[str]
    contacts: list[str]  # customers and suppliers, some called far more often than others
    contact_weights: list[float]


def _local(area: str, rng: random.Random) -> str:
    return f"+7{area}{rng.randrange(1_000_000, 9_999_999)}"


def _contact(area: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.55:
        return f"+79{rng.randrange(10**8, 10**9)}"  # mobile
    if roll < 0.80:
        return _local(area, rng)
    if roll < 0.96:
        return _local(rng.choice(AREA_CODES), rng)
    foreign = ("+49", "+375", "+380", "+77", "+86", "+1")
    return rng.choice(foreign) + str(rng.randrange(10**8, 10**9))


def make_tenants(session: Session, clients: int, rng: random.Random) -> list[Tenant]:
    tenants = []
    for n in range(clients):
        area = AREA_CODES[n % len(AREA_CODES)]
        client = Client(name=f"Bench client {n + 1}", area_code=area, timezone="Europe/Moscow")
        session.add(client)
        session.flush()
        contacts = [_contact(area, rng) for _ in range(rng.randrange(2_000, 20_000))]
        tenants.append(
            Tenant(
                id=client.id,
                area=area,
                dids=[_local(area, rng) for _ in range(rng.randrange(1, 6))],
                extensions=[str(100 + i) for i in range(rng.randrange(10, 150))],
                contacts=contacts,
                # Zipf-like: a few regular callers, a long tail of one-off ones.
                contact_weights=list(accumulate(1 / (i + 1) ** 0.9 for i in range(len(contacts)))),
            )
        )
    session.commit()
    return tenants


def make_operators(session: Session) -> list[int]:
    ops = [Operator(name=f"Bench carrier {n}", host=f"sip{n}.example.net") for n in range(3)]
    session.add_all(ops)
    session.commit()
    return [op.id for op in ops]


# --- calls -----------------------------------------------------------------------------------


def _start_times(rows: int, days: int, end_ms: int, rng: random.Random) -> Iterator[int]:
    """Call start times in order: working days busier, Moscow office hours busiest."""
    first = end_ms - days * DAY_MS
    weights = []
    for d in range(days):
        weekday = datetime.fromtimestamp((first + d * DAY_MS) / 1000, UTC).weekday()
        weights.append(0.3 if weekday >= 5 else 1.0)
    scale = rows / sum(weights)
    made = 0
    for d, w in enumerate(weights):
        count = rows - made if d == days - 1 else round(w * scale)
        made += count
        day_start = first + d * DAY_MS - int(MSK.total_seconds() * 1000)
        hours = [max(0.0, min(23.99, rng.gauss(13.5, 3.2))) for _ in range(count)]
        yield from sorted(day_start + int(h * 3_600_000) for h in hours)


def _outcome(rng: random.Random) -> str:
    return rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]


def _call(t: Tenant, start: int, operators: list[int], rng: random.Random) -> dict[str, Any]:
    kind = rng.random()
    ext = rng.choice(t.extensions)
    contact = rng.choices(t.contacts, cum_weights=t.contact_weights)[0]
    if kind < 0.45:
        caller, called, direction = contact, rng.choice(t.dids), "incoming"
    elif kind < 0.85:
        caller, called = rng.choice(t.dids), contact
        direction = classify(contact, PLAN, client_area_code=t.area).value
    else:
        caller, called, direction = ext, rng.choice(t.extensions), "internal"
    outcome = _outcome(rng)
    ring_ms = rng.randrange(2_000, 25_000)
    talk_s = int(rng.lognormvariate(4.2, 1.0)) + 1 if outcome == "answered" else 0
    answer = start + ring_ms if outcome == "answered" else None
    end = start + ring_ms + talk_s * 1000
    rate = PRICE.get(direction, Decimal(0))
    billable = talk_s if direction not in ("incoming", "internal") else 0
    trunk = direction != "internal"
    return {
        "client_id": t.id,
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "caller": caller,
        "called": called,
        "internal_number": ext,
        "direction": direction,
        "start_ms": start,
        "answer_ms": answer,
        "end_ms": end,
        "outcome": outcome,
        "billable_s": billable,
        "cost": (rate * billable / 60).quantize(Decimal("0.0001")),
        "operator_id": rng.choice(operators) if trunk else None,
        "steps": [1] if outcome == "answered" else [1, 2],
    }


def generate(
    tenants: list[Tenant], operators: list[int], rows: int, days: int, rng: random.Random
) -> Iterator[dict[str, Any]]:
    # Tenant sizes are skewed too: the largest has several times the calls of the smallest.
    sizes = [1 / (i + 1) ** 0.7 for i in range(len(tenants))]
    end_ms = int(datetime(2024, 6, 1, tzinfo=UTC).timestamp() * 1000)
    for start in _start_times(rows, days, end_ms, rng):
        tenant = rng.choices(tenants, sizes)[0]
        yield _call(tenant, start, operators, rng)


def _big_cache(dbapi_conn: Any, _record: Any) -> None:
    # Loading only: a million random keys in seven indexes thrash SQLite's default 2 MB page
    # cache. The measurements run on a plain engine, as the API's.
    dbapi_conn.execute("PRAGMA cache_size=-262144")


def load(url: str, rows: int, clients: int, days: int, seed: int) -> float:
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _big_cache)
    rng = random.Random(seed)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        tenants = make_tenants(session, clients, rng)
        operators = make_operators(session)
    began = time.perf_counter()
    count = store.bulk_insert_calls(engine, generate(tenants, operators, rows, days, rng))
    took = time.perf_counter() - began
    print(f"loaded {count:,} calls in {took:.1f} s ({count / took:,.0f} rows/s)")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return took


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Sample:
    client_id: int
    caller: str
    called: str
    internal_number: str | None
    start_ms: int
    direction: str


def samples(session: Session, n: int, rng: random.Random) -> list[Sample]:
    """Calls with an external party picked at random: their numbers and days are what the
    searches ask for, so a company's busy main number is asked for as often as it occurs."""
    low, high = session.execute(select(func.min(Call.id), func.max(Call.id))).one()
    picked: list[Sample] = []
    while len(picked) < n:
        call = session.get(Call, rng.randint(low, high))
        if call is not None and call.direction != "internal":
            numbers = (call.caller, call.called, call.internal_number)
            picked.append(Sample(call.client_id, *numbers, call.start_ms, call.direction))
        session.expunge_all()
    return picked


def _external(s: Sample) -> str:
    return s.caller if s.direction == "incoming" else s.called


def kinds() -> dict[str, Callable[[Sample], CallFilter]]:
    """The searches of BENCHMARKING.md, each built the way the API builds it."""

    def day(s: Sample) -> CallFilter:
        first = s.start_ms - s.start_ms % DAY_MS
        return CallFilter(s.client_id, start_from_ms=first, start_to_ms=first + DAY_MS)

    return {
        "caller (exact)": lambda s: CallFilter(s.client_id, caller=s.caller),
        "called (exact)": lambda s: CallFilter(s.client_id, called=s.called),
        "internal number": lambda s: CallFilter(s.client_id, internal_number=s.internal_number),
        "number, last 7 digits": lambda s: CallFilter(s.client_id, number_suffix=_external(s)[-7:]),
        "period (one day)": day,
    }


def measure(
    sessions: sessionmaker[Session], build: Callable[[Sample], CallFilter], picks: list[Sample]
) -> tuple[list[float], list[int]]:
    times, totals = [], []
    for s in picks[:20]:  # warm-up, not counted
        with sessions() as session:
            search.search_calls(session, build(s))
    for s in picks:
        with sessions() as session:
            began = time.perf_counter()
            result = search.search_calls(session, build(s))
            times.append((time.perf_counter() - began) * 1000)
            totals.append(result.total)
    return times, totals


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def explain(engine: Engine, f: CallFilter) -> list[str]:
    """The plans of the page query and of the capped count, as the database reports them."""
    with Session(engine) as session:
        page = search.page_query(session, f)
    out = []
    for label, query in (("page", page), ("count", search.count_query(f))):
        compiled = query.compile(dialect=engine.dialect)
        if engine.dialect.name == "sqlite":
            prefix = "EXPLAIN QUERY PLAN "
            params: Any = tuple(compiled.params[k] for k in compiled.positiontup or ())
        else:
            prefix = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
            params = compiled.params
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(prefix + str(compiled), params).all()
        out.append(f"  {label}:")
        out += [f"    {row[-1]}" for row in rows]
    return out


def run(engine: Engine, queries: int, seed: int) -> None:
    rng = random.Random(seed + 1)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(Call)) or 0
        picks = samples(session, queries, rng)
    print(f"\n{total:,} calls, {engine.dialect.name}; {queries} queries per kind\n")
    header = f"{'search':<24}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'median total':>14}"
    print(header)
    print("-" * len(header))
    plans: list[str] = []
    for name, build in kinds().items():
        times, totals = measure(sessions, build, picks)
        print(
            f"{name:<24}{percentile(times, 50):>9.2f}{percentile(times, 99):>9.2f}"
            f"{max(times):>9.2f}{statistics.median(totals):>14,.0f}"
        )
        plans += [f"\n{name}:", *explain(engine, build(picks[0]))]
    print("\nquery plans (first sample of each kind):")
    print("\n".join(plans))


# --- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--queries", type=int, default=200, help="per kind of search (≥ 200)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--reuse", action="store_true", help="measure the existing data only")
    parser.add_argument("--fresh", action="store_true", help="delete the SQLite file first")
    args = parser.parse_args(argv)
    if args.fresh and args.database_url.startswith("sqlite:///"):
        Path(args.database_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    engine = make_engine(args.database_url)
    if not args.reuse:
        upgrade(args.database_url)
        with Session(engine) as session:
            if session.scalar(select(func.count()).select_from(Call)):
                print("the database already holds calls: use --reuse, --fresh or another URL")
                return 2
        load(args.database_url, args.rows, args.clients, args.days, args.seed)
    run(engine, args.queries, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
