"""The dashboard's sources type-check, and its static export is built (`make dashboard`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def npx(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`npx --no-install ARGS` in dashboard/ (never downloads a package)."""
    assert shutil.which("npx"), "Node.js is missing: the dashboard needs Node 20 and npm"
    assert (DASHBOARD / "node_modules").is_dir(), "dashboard/node_modules missing: make dashboard"
    return subprocess.run(
        ["npx", "--no-install", *args],
        cwd=DASHBOARD,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_typescript_type_check_passes() -> None:
    assert (DASHBOARD / "src/api/schema.d.ts").is_file(), "no API schema: make dashboard"
    done = npx("tsc", "--noEmit")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_static_export_has_every_page() -> None:
    out = DASHBOARD / "out"
    assert (out / "index.html").is_file(), "dashboard/out is not built: make dashboard"
    for page in ("login", "fleet", "device", "alerts", "models", "audit"):
        assert (out / page / "index.html").is_file(), f"no {page} page in dashboard/out"
    # No request leaves the machine: no CDN fonts or scripts in the pages.
    html = (out / "fleet" / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in html
    assert "https://" not in html.replace("https://nextjs.org", "")
