"""API latency: list 100 objects and create one (issue 2 benchmarks; BENCHMARKING.md).

Starts `cloudpbx run` in a child process pinned to core 1 (this load generator runs on core 0),
creates a client with 100 ports through the API, then measures sequential requests:

    .venv/bin/python bench/api_latency.py                       # SQLite in a temp dir
    scripts/with-postgres.sh sh -c '.venv/bin/python bench/api_latency.py \
        --database-url "$CLOUDPBX_TEST_DATABASE_URL"'           # throw-away PostgreSQL

Prints p50/p99 in milliseconds and the server's CPU time per request.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str]) -> subprocess.Popen[bytes]:
    subprocess.run(
        [sys.executable, "-m", "cloudpbx.cli", "migrate"], env=env, check=True, capture_output=True
    )
    cmd = [sys.executable, "-m", "cloudpbx.cli", "run"]
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        cmd = ["taskset", "-c", "1", *cmd]
        os.sched_setaffinity(0, {0})
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(url: str) -> None:
    for _ in range(150):
        try:
            if httpx.get(f"{url}/api/v1/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(client: httpx.Client, n: int, request) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for i in range(n):
        start = time.perf_counter()
        response = request(i)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code < 300, response.text
    return times


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("-n", type=int, default=500)
    args = parser.parse_args()
    data = tempfile.mkdtemp(prefix="cloudpbx-bench-")
    port = free_port()
    env = {**os.environ, "CLOUDPBX_DATA_DIR": data, "CLOUDPBX_HTTP_PORT": str(port)}
    if args.database_url:
        env["CLOUDPBX_DATABASE_URL"] = args.database_url
    subprocess.run(
        [sys.executable, "-m", "cloudpbx.cli", "migrate"], env=env, check=True, capture_output=True
    )
    demo = subprocess.run(
        [sys.executable, "-m", "cloudpbx.cli", "demo", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    creds = json.loads(demo.stdout)
    server = start_server(env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        run(url, creds, args.n, server.pid, args.database_url or "sqlite")
    finally:
        server.terminate()
        server.wait()


def run(url: str, creds: dict, n: int, pid: int, db: str) -> None:  # type: ignore[type-arg]
    admin = next(u for u in creds["users"] if u["level"] == "client_admin")
    with httpx.Client(base_url=url) as client:
        token = client.post(
            "/api/v1/auth/login", json={"login": admin["login"], "password": admin["password"]}
        ).json()
        client.headers["Authorization"] = f"Bearer {token['token']}"
        base = f"/api/v1/clients/{creds['client_id']}/ports"
        for i in range(97):  # the demo has 3 ports: 100 in all
            client.post(base, json={"name": f"Порт {i}", "sip_login": f"bench-seed-{i}"})
        rows = []
        for name, request in (
            ("list 100 ports", lambda i: client.get(base, params={"limit": 100})),
            (
                "create a port",
                lambda i: client.post(base, json={"name": f"b{i}", "sip_login": f"bench-{i}"}),
            ),
        ):
            cpu0 = cpu_seconds(pid)
            times = measure(client, n, request)
            cpu_ms = (cpu_seconds(pid) - cpu0) / n * 1000
            rows.append((name, statistics.median(times), pct(times, 99), cpu_ms))
    engine = "postgresql" if db.startswith("postgresql") else "sqlite"
    print(f"{engine}, {n} sequential requests each")
    print(f"{'request':<16} {'p50 ms':>8} {'p99 ms':>8} {'server CPU ms/req':>18}")
    for name, p50, p99, cpu in rows:
        print(f"{name:<16} {p50:8.2f} {p99:8.2f} {cpu:18.2f}")


if __name__ == "__main__":
    main()
