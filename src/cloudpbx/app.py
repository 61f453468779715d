"""Composition root: builds the settings, the database and the ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from cloudpbx import __version__
from cloudpbx.api import errors
from cloudpbx.api.routes import (
    auth,
    calls,
    cdr,
    clients,
    components,
    dialplans,
    numbering,
    system,
    webhooks,
)
from cloudpbx.api.state import AppState, LoginLimiter
from cloudpbx.config import Settings, get_settings
from cloudpbx.db.session import make_engine, make_sessionmaker
from cloudpbx.security import SecretBox
from cloudpbx.web import mount_web

API_PREFIX = "/api/v1"


def build_state(settings: Settings) -> AppState:
    engine = make_engine(settings.database_url)
    return AppState(
        settings=settings,
        sessions=make_sessionmaker(engine),
        secret_box=SecretBox(settings.secret_key),
        limiter=LoginLimiter(settings.login_max_failures, settings.login_window_seconds),
    )


def api_router() -> APIRouter:
    api = APIRouter(prefix=API_PREFIX)
    for module in (auth, system, clients, numbering, components, dialplans, cdr, calls, webhooks):
        api.include_router(module.router)
    return api


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def engine_lifespan(state: AppState) -> Lifespan:
    """Run the SIP engine (issue 5) in the ASGI server's event loop for the app's lifetime:
    one process, one loop (ENGINEERING.md §1). The API reaches it only through
    ``state.engine`` (EngineControl) and tells it about changes through ``config_changed``."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from cloudpbx.engine.control import NoEngine
        from cloudpbx.engine.runtime import EngineRuntime

        runtime = EngineRuntime(state.settings, state.sessions, state.secret_box)
        await runtime.start()
        state.engine = runtime.control
        state.config_listeners.append(runtime.invalidate)
        state.installation_listeners.append(runtime.reload_trunks)
        try:
            yield
        finally:
            state.config_listeners.remove(runtime.invalidate)
            state.installation_listeners.remove(runtime.reload_trunks)
            state.engine = NoEngine()
            await runtime.stop()

    return lifespan


def create_app(settings: Settings | None = None, *, engine: bool = False) -> FastAPI:
    """The ASGI app; ``engine=True`` also runs the SIP engine in its lifespan (``cloudpbx
    run``), tests build it without."""
    settings = settings or get_settings()
    state = build_state(settings)
    app = FastAPI(
        title="cloudpbx",
        version=__version__,
        description="Management API of the cloudpbx multi-tenant virtual PBX.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=engine_lifespan(state) if engine else None,
    )
    app.state.cloudpbx = state
    errors.install(app)
    app.include_router(api_router())

    @app.get(f"{API_PREFIX}/health", tags=["system"], operation_id="health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    # The SPA's catch-all GET route: after every API route.
    mount_web(app, settings)
    ensure_dirs(settings)
    return app


def ensure_dirs(settings: Settings) -> None:
    for path in (settings.data_dir, settings.media_dir, settings.recordings_dir):
        if path is not None:
            Path(path).mkdir(parents=True, exist_ok=True)
