"""The hub serves the dashboard at `/` without shadowing the API (hub/web.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from hub.web import ENV_VAR, dashboard_dir, mount_dashboard


def _app(directory: Path) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    mount_dashboard(app, directory)
    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        return await client.get(path)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A tiny stand-in for dashboard/out."""
    (tmp_path / "fleet").mkdir()
    (tmp_path / "_next" / "static").mkdir(parents=True)
    (tmp_path / "index.html").write_text("<p>home</p>")
    (tmp_path / "fleet" / "index.html").write_text("<p>fleet</p>")
    (tmp_path / "404.html").write_text("<p>no such page</p>")
    (tmp_path / "_next" / "static" / "app.js").write_text("1")
    return tmp_path


async def test_pages_are_served_and_the_api_keeps_priority(export: Path) -> None:
    app = _app(export)
    assert (await _get(app, "/")).text == "<p>home</p>"
    assert (await _get(app, "/fleet/")).text == "<p>fleet</p>"
    assert (await _get(app, "/api/v1/ping")).json() == {"pong": "yes"}
    missing = await _get(app, "/api/v1/nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    page = await _get(app, "/nope")
    assert (page.status_code, page.text) == (404, "<p>no such page</p>")


async def test_hashed_assets_are_cached_and_pages_revalidated(export: Path) -> None:
    app = _app(export)
    asset = await _get(app, "/_next/static/app.js")
    assert "immutable" in asset.headers["cache-control"]
    assert (await _get(app, "/fleet/")).headers["cache-control"] == "no-cache"


async def test_a_missing_build_is_said_plainly_and_the_api_still_works(tmp_path: Path) -> None:
    app = _app(tmp_path / "out")
    home = await _get(app, "/")
    assert home.status_code == 503
    assert "dashboard is not built" in home.text
    assert "make dashboard" in home.text
    assert (await _get(app, "/api/v1/ping")).status_code == 200


def test_the_directory_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert dashboard_dir() == tmp_path
    monkeypatch.delenv(ENV_VAR)
    assert dashboard_dir().parts[-2:] == ("dashboard", "out")
