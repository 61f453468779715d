"""Fixtures shared by the engine's e2e tests: one in-process PBX per test module.

A module names the client it needs with ``BUILD`` (a :class:`.pbx_harness.Seeder` function;
default :func:`.pbx_harness.build_client`) and extra settings with ``PBX_OPTIONS``; a module
may still define its own ``engine_pbx`` or ``pbx`` (they take precedence)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .pbx_harness import Pbx, build_client, start_pbx


@pytest.fixture(scope="module")
def engine_pbx(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pbx]:
    build = getattr(request.module, "BUILD", build_client)
    options = getattr(request.module, "PBX_OPTIONS", {})
    running = start_pbx(tmp_path_factory.mktemp("pbx"), build, **options)
    yield running
    running.stop()
    running.thread.close()


@pytest.fixture
def pbx(engine_pbx: Pbx) -> Pbx:
    """The module's engine, with only this test's call records visible."""
    engine_pbx.reset()
    return engine_pbx
