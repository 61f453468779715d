"""`make run` in miniature: migrate, demo, run — as a user starts cloudpbx (issue 2 §8)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudpbx.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDPBX_")}
    return {
        **clean,
        "CLOUDPBX_DATA_DIR": str(tmp_path),
        "CLOUDPBX_HTTP_PORT": str(_free_port()),
        # `run` starts the SIP engine too: loopback, free ports (tests run in parallel).
        "CLOUDPBX_SIP_HOST": "127.0.0.1",
        "CLOUDPBX_SIP_PORT": str(_free_port()),
        "CLOUDPBX_SIP_WS_PORT": str(_free_port()),
    }


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    _cli(env, "migrate")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudpbx.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{env['CLOUDPBX_HTTP_PORT']}"
    try:
        _wait(url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("cloudpbx run did not answer within 30 s")


def test_demo_is_idempotent_and_logins_work(env: dict[str, str], server: str) -> None:
    """Issue 2 §8: the printed credentials log in; a second `demo` prints the same ones."""
    first = json.loads(_cli(env, "demo", "--json").stdout)
    second = json.loads(_cli(env, "demo", "--json").stdout)
    assert first == second
    assert [p["number"] for p in first["phones"]] == ["100", "200", "201"]
    admin = next(u for u in first["users"] if u["level"] == "client_admin")
    login = httpx.post(
        f"{server}/api/v1/auth/login", json={"login": admin["login"], "password": admin["password"]}
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    cid = first["client_id"]
    ports = httpx.get(f"{server}/api/v1/clients/{cid}/ports", headers=headers).json()
    assert sorted(p["sip_login"] for p in ports["items"]) == ["demo100", "demo200", "demo201"]
    plans = httpx.get(f"{server}/api/v1/clients/{cid}/dialplans", headers=headers).json()
    assert plans["total"] == 5
    for plan in plans["items"]:
        # The demo's dialplans pass DP-5 validation: no errors among their issues.
        assert not [w for w in plan["warnings"] if w["severity"] == "error"], plan


def test_create_admin(env: dict[str, str], server: str) -> None:
    _cli(env, "create-admin", "root2", "--password", "long-enough-password")
    login = httpx.post(
        f"{server}/api/v1/auth/login", json={"login": "root2", "password": "long-enough-password"}
    )
    assert login.status_code == 200
