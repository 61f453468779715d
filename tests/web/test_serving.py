"""How the Python app serves the built UI (issue 6 §1): SPA fallback, caching, API 404s,
and a clear page when the UI is not built; and the committed API schema is current."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloudpbx.app import create_app
from cloudpbx.config import Settings
from cloudpbx.web import IMMUTABLE, mount_web

from .conftest import REPO


def _client(tmp_path: Path, dist: Path) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data")
    app = create_app(settings)
    app.router.routes = [r for r in app.router.routes if getattr(r, "name", None) != "web"]
    mount_web(app, settings, dist)
    return TestClient(app)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><div id=root></div>")
    (root / "assets" / "index-abc123.js").write_text("console.log(1)")
    (root / "favicon.svg").write_text("<svg/>")
    return root


def test_spa_routes_fall_back_to_the_page(tmp_path: Path, dist: Path) -> None:
    """Issue 6 §1: a reload of /clients/7/ports gets index.html, always revalidated."""
    http = _client(tmp_path, dist)
    for path in ("/", "/clients/7/ports", "/clients/7/ports/new"):
        response = http.get(path)
        assert response.status_code == 200, path
        assert "id=root" in response.text
        assert response.headers["cache-control"] == "no-cache"


def test_hashed_assets_are_cached_for_a_year(tmp_path: Path, dist: Path) -> None:
    http = _client(tmp_path, dist)
    asset = http.get("/assets/index-abc123.js")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == IMMUTABLE
    assert http.get("/favicon.svg").headers["cache-control"] == "no-cache"
    # An asset of an older build is a 404, not the HTML page under a .js name.
    assert http.get("/assets/index-old.js").status_code == 404


def test_api_paths_never_fall_back(tmp_path: Path, dist: Path) -> None:
    http = _client(tmp_path, dist)
    response = http.get("/api/v1/no-such-route")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert http.get("/api/v1/health").json()["status"] == "ok"


def test_paths_cannot_escape_the_build(tmp_path: Path, dist: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    http = _client(tmp_path, dist)
    response = http.get("/..%2fsecret.txt")
    assert "secret" not in response.text


def test_missing_build_says_how_to_build(tmp_path: Path) -> None:
    http = _client(tmp_path, tmp_path / "no-dist")
    response = http.get("/clients")
    assert response.status_code == 503
    assert "scripts/build-web.sh" in response.text


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_committed_api_schema_matches_the_app(web_dist: Path) -> None:
    """ENGINEERING.md §5: the UI's typed client is generated from the current OpenAPI."""
    result = subprocess.run(
        ["sh", str(REPO / "web" / "scripts" / "gen-api.sh"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
