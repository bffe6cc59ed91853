"""Enrolling simulated robots the way a field technician enrolls real ones.

Each robot gets a single-use token (given, or created through the hub's API with an
operator's API key) and a real `edge-agent install --no-service` run; the installed
config (device identity, broker credentials, pinned hub key) is then extended with
the robot, its camera and the link proxy (`agent_config`).

Example:
    tokens = create_tokens("http://127.0.0.1:8080", api_key="opk_...", site="plant-a", count=3)
    installed = install_agent(hub_url, tokens[0], name="robot-1", workdir=Path("fleet/robot-1"))
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from sim.errors import SimError

TOKENS_PATH = "/api/v1/enrollment-tokens"
INSTALL_TIMEOUT_S = 120.0


class EnrollError(SimError):
    """A robot could not be enrolled: the message says which and what the hub or installer said."""


def edge_agent_command() -> str:
    """The `edge-agent` program beside this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "edge-agent"
    if beside.exists():
        return str(beside)
    found = shutil.which("edge-agent")
    if found is None:
        raise EnrollError("edge-agent is not installed (pip install 'outpost[edge]')")
    return found


def create_tokens(hub_url: str, *, api_key: str, site: str, count: int) -> list[str]:
    """`count` single-use enrollment tokens for `site`, through `POST /api/v1/enrollment-tokens`."""
    tokens = []
    with httpx.Client(base_url=hub_url.rstrip("/"), timeout=10) as client:
        for _ in range(count):
            try:
                answer = client.post(
                    TOKENS_PATH, json={"site_id": site}, headers={"X-API-Key": api_key}
                )
            except httpx.HTTPError as exc:
                raise EnrollError(f"cannot reach the hub at {hub_url}: {exc}") from exc
            if answer.status_code != httpx.codes.CREATED:
                raise EnrollError(
                    f"the hub refused an enrollment token for site {site!r}: "
                    f"{answer.status_code} {answer.text[:200]}"
                )
            tokens.append(str(answer.json()["token"]))
    return tokens


def install_agent(hub_url: str, token: str, *, name: str, workdir: Path) -> Path:
    """`edge-agent install --no-service` into `workdir`; the installed config's path."""
    workdir.mkdir(parents=True, exist_ok=True)
    config, data_dir = workdir / "agent.toml", workdir / "data"
    argv = [
        edge_agent_command(),
        "install",
        *("--hub", hub_url, "--token", token, "--name", name),
        *("--config", str(config), "--data-dir", str(data_dir), "--no-service"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_AGENT_")}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise EnrollError(f"{name}: edge-agent install did not finish in {exc.timeout} s") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-400:]
        raise EnrollError(f"{name}: edge-agent install failed ({done.returncode}): {said}")
    return config


def read_config(path: Path) -> dict[str, Any]:
    """A TOML config as a dict."""
    return tomllib.loads(path.read_text(encoding="utf-8"))


def device_of(installed: dict[str, Any]) -> str:
    """The device id the hub gave the robot at enrollment."""
    return str(installed["device"]["id"])


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra`'s sections merged in (tables merged key by key, the rest replaced).

    >>> merged({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}, "c": [1]})
    {'a': {'x': 1, 'y': 3}, 'b': 1, 'c': [1]}
    """
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def write_config(path: Path, document: dict[str, Any]) -> Path:
    """Write a TOML config; returns `path`."""
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return path
