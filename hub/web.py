"""The operator dashboard: the Next.js static export (`dashboard/out`) served at `/`.

It is the router's fallback (what answers when no route matches), so every API route
keeps priority, even one added after it; an unknown `/api/...` path still answers the
API's JSON 404, never a page. Client routes are directories of the
export (`/device/` is `out/device/index.html`), found by `StaticFiles(html=True)`.
When the export is missing, `/` says so in plain words (503) and the API works as
before. The directory is `OUTPOST_HUB_DASHBOARD_DIR`, else `dashboard/out` in the
source tree; it is looked up per request, so `make dashboard` needs no restart.

Example:
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> mount_dashboard(app, Path("/nonexistent"))
    >>> app.router.default.directory
    PosixPath('/nonexistent')
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketClose

logger = logging.getLogger(__name__)

ENV_VAR = "OUTPOST_HUB_DASHBOARD_DIR"
SOURCE_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "out"
NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Outpost: dashboard not built</title></head>
<body style="font-family: sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>The Outpost dashboard is not built</h1>
<p>This hub serves its API (<a href="/docs">/docs</a>, <a href="/api/v1/health">/api/v1/health</a>),
but found no dashboard at <code>{directory}</code>.</p>
<p>Build it with <code>make dashboard</code> in the source tree (Node 20 and npm), or point
<code>{env}</code> at a built <code>dashboard/out</code> directory.</p>
</body></html>
"""


def dashboard_dir() -> Path:
    """Where the built dashboard is: `$OUTPOST_HUB_DASHBOARD_DIR`, else `dashboard/out`."""
    configured = os.environ.get(ENV_VAR, "").strip()
    return Path(configured) if configured else SOURCE_DIR


class DashboardFiles(StaticFiles):
    """The export, with long caching for hashed assets and revalidation for pages."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        """The file, with a `Cache-Control` that fits it."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        immutable = str(scope.get("path", "")).startswith("/_next/static/")
        cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
        response.headers["Cache-Control"] = cache
        return response


class Dashboard:
    """ASGI app for everything the API does not route: the export, or a plain notice."""

    def __init__(self, directory: Path) -> None:
        """Serve `directory` (which may appear, or vanish, while the hub runs)."""
        self.directory = directory
        self._files = DashboardFiles(directory=directory, html=True, check_dir=False)
        self._warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one request."""
        if scope["type"] == "websocket":
            await WebSocketClose(code=1008)(scope, receive, send)
            return
        if scope["type"] != "http":  # lifespan is the app's, never mounted apps'
            return
        path = str(scope.get("path", ""))
        if path == "/api" or path.startswith("/api/"):
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
            return
        if not (self.directory / "index.html").is_file():
            await self._not_built()(scope, receive, send)
            return
        await self._files(scope, receive, send)

    def _not_built(self) -> Response:
        if not self._warned:
            self._warned = True
            logger.warning("dashboard: not built, no %s (run `make dashboard`)", self.directory)
        return HTMLResponse(NOT_BUILT.format(directory=self.directory, env=ENV_VAR), 503)


def mount_dashboard(app: FastAPI, directory: Path | None = None) -> None:
    """Serve the dashboard for every path no route of `app` matches (`/`, `/fleet/`, ...)."""
    # The router's fallback rather than a mount at "/": a mount would shadow routes
    # registered after it (tests add some), and it would show up among the routes.
    app.router.default = Dashboard(directory or dashboard_dir())
