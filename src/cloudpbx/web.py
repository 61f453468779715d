"""Serves the built web interface (``web/dist``) at ``/`` next to the API (issue 6 §1).

- ``/assets/*`` are Vite's content-hashed files: cached for a year (``immutable``), since a
  new build gives them new names.
- Every other GET outside ``/api`` answers ``index.html`` (``no-cache``) so the single-page
  app's own routes (``/clients/7/ports``) survive a reload or a bookmark.
- Paths under ``/api`` never fall back to the page: an unknown API path stays a JSON 404.
- Without a build the page says that the UI is not built and how to build it (503), instead
  of a bare 404; the API keeps working.

The directory is ``web/dist`` of the source tree, or ``$CLOUDPBX_WEB_DIST`` for installs that
keep the built files elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from cloudpbx.config import Settings

DEFAULT_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"

NOT_BUILT_PAGE = """<!doctype html>
<html lang="ru"><head><meta charset="utf-8"><title>cloudpbx: web interface not built</title>
</head><body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>Веб-интерфейс не собран / The web interface is not built</h1>
<p>Не найден каталог <code>{dist}</code>. Соберите интерфейс:</p>
<p>The directory <code>{dist}</code> is missing. Build the interface:</p>
<pre>scripts/build-web.sh        # npm ci + npm run build in web/ (needs Node.js 18+)</pre>
<p>(<code>make run</code> does it too.) The API works without it:
<a href="/api/v1/docs">/api/v1/docs</a>.</p>
</body></html>
"""


def web_dist(settings: Settings) -> Path:
    """Where the built UI lives: a ``web_dist`` setting if there is one, else the env or tree."""
    configured = getattr(settings, "web_dist", None) or os.environ.get("CLOUDPBX_WEB_DIST")
    return Path(configured) if configured else DEFAULT_DIST


def _inside(root: Path, relative: str) -> Path | None:
    """The file `relative` names under `root`, or None (missing, a directory, or escaping)."""
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def _api_not_found(path: str) -> JSONResponse:
    body = {"code": "not_found", "message": f"no API route {path}", "field": None, "details": None}
    return JSONResponse(body, status_code=404)


def mount_web(app: FastAPI, settings: Settings, dist: Path | None = None) -> None:
    """Add the catch-all GET route serving the UI; call it after every API router."""
    root = (dist or web_dist(settings)).resolve()

    async def serve(request: Request, path: str) -> Response:
        if path == "api" or path.startswith("api/"):
            return _api_not_found(request.url.path)
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(NOT_BUILT_PAGE.format(dist=root), status_code=503)
        found = _inside(root, path) if path else None
        if found is not None:
            hashed = found.parent == root / "assets"
            cache = IMMUTABLE if hashed else REVALIDATE
            return FileResponse(found, headers={"Cache-Control": cache})
        if path.startswith("assets/"):
            # A stale page asking for an asset of an older build: a 404, not the HTML page.
            return Response(status_code=404)
        return FileResponse(index, headers={"Cache-Control": REVALIDATE})

    app.add_api_route(
        "/{path:path}", serve, methods=["GET", "HEAD"], include_in_schema=False, name="web"
    )
