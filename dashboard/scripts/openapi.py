"""Print the hub's OpenAPI document (JSON) for the dashboard's typed API client.

Builds the app with default settings against a throwaway data directory and SQLite
file; nothing is served and nothing outside the temporary directory is written.

Usage: `.venv/bin/python dashboard/scripts/openapi.py > dashboard/openapi.json`
"""

from __future__ import annotations

import json
import sys
import tempfile

from hub.app import create_app
from hub.settings import HubSettings
from hub.storage.db import create_engine


async def _ok() -> str:
    return "ok"


def main() -> None:
    """Write the OpenAPI document to stdout, keys sorted so the file diffs well."""
    with tempfile.TemporaryDirectory(prefix="outpost-openapi-") as tmp:
        settings = HubSettings.model_validate({"data_dir": tmp})
        engine = create_engine(settings.database.url)
        app = create_app(settings, engine, _ok, _ok)
        json.dump(app.openapi(), sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
