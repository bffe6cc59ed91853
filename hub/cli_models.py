"""`outpost model push` and `outpost model rollout status|promote|rollback`.

Unlike `outpost hub …`, these talk to a running hub's REST API (`--hub URL`, default
`$OUTPOST_HUB_URL` or http://127.0.0.1:8080) with an admin API key (`--api-key` or
`$OUTPOST_API_KEY`), so an ML engineer runs them from their own machine. Exit
status: 0 done, 2 refused or unreachable (the hub's reason is printed).

Example:
    outpost model push det.onnx --name det --version 3 --card card.json \\
        --target group:4 --canary 10%
    outpost model rollout status 12
    outpost model rollout promote 12
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from hub.cli import model_app, rollout_app

DEFAULT_HUB = "http://127.0.0.1:8080"
TIMEOUT_S = 30.0
UPLOAD_TIMEOUT_S = 600.0
_err = Console(stderr=True)
_out = Console()

HubOption = Annotated[
    str,
    typer.Option(
        "--hub", envvar="OUTPOST_HUB_URL", help="The hub's API address.", show_default=True
    ),
]
KeyOption = Annotated[
    str,
    typer.Option(
        "--api-key",
        envvar="OUTPOST_API_KEY",
        help="An admin API key (opk_…); or set OUTPOST_API_KEY.",
        show_default=False,
    ),
]


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]{escape(message)}[/]", highlight=False)
    raise typer.Exit(2)


def parse_target(spec: str) -> dict[str, Any]:
    """`group:ID`, `site:ID` or `devices:ID,ID,…` as the API's rollout target.

    Example:
        >>> parse_target("devices:amr-1,amr-2"), parse_target("group:4")
        ({'devices': ['amr-1', 'amr-2']}, {'group': 4})
    """
    kind, _, value = spec.partition(":")
    if kind == "group" and value.isdigit():
        return {"group": int(value)}
    if kind == "site" and value:
        return {"site": value}
    if kind in ("devices", "device") and value:
        return {"devices": [v.strip() for v in value.split(",") if v.strip()]}
    _fail(f"--target {spec!r}: use group:ID, site:ID or devices:ID,ID,…")


def parse_percent(text: str) -> int:
    """`10%` or `10` → 10 (1..100).

    Example:
        >>> parse_percent("25%")
        25
    """
    digits = text.strip().removesuffix("%")
    if not digits.isdigit() or not 1 <= int(digits) <= 100:
        _fail(f"--canary {text!r}: a share of the target from 1% to 100%")
    return int(digits)


def _client(hub: str, api_key: str, timeout: float = TIMEOUT_S) -> httpx.Client:
    if not api_key:
        _fail("no API key: pass --api-key or set OUTPOST_API_KEY (an admin's key)")
    return httpx.Client(base_url=hub.rstrip("/"), headers={"X-API-Key": api_key}, timeout=timeout)


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = client.request(method, f"/api/v1{path}", **kwargs)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the hub at {client.base_url}: {exc}")
    if response.status_code >= 400:
        _fail(f"the hub refused ({response.status_code}): {_reason(response)}")
    return response.json()


def _reason(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:500]
    if isinstance(detail, dict):
        return str(detail.get("message") or detail)
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail)
    return str(detail)


class _Reading(io.FileIO):
    """A file that advances a progress bar as httpx reads it."""

    def __init__(self, path: Path, advance: Any) -> None:
        super().__init__(path, "rb")
        self._advance = advance

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self._advance(len(chunk))
        return chunk


@model_app.command("push")
def push_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The ONNX model.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Model name, e.g. det (default: the card's).")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="A new version, e.g. 3 (default: the card's).")
    ] = None,
    card: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Model card (JSON).")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="Also start a rollout: group:ID, site:ID or devices:ID,ID,…"),
    ] = None,
    canary: Annotated[str, typer.Option(help="Canary share of the target.")] = "10%",
    auto_promote: Annotated[
        bool, typer.Option(help="Promote by itself once the canary is healthy.")
    ] = False,
    hub: HubOption = DEFAULT_HUB,
    api_key: KeyOption = "",
) -> None:
    """Upload a model with its card; with --target, start a canary rollout of it."""
    rollout_target = parse_target(target) if target else None
    percent = parse_percent(canary)
    card_text = card.read_text(encoding="utf-8") if card else None
    described: dict[str, Any] = {}
    if card_text is not None:
        try:
            described = json.loads(card_text)
        except ValueError as exc:
            _fail(f"{card}: not JSON: {exc}")
    name = name or _card_field(described, "name")
    version = version or _card_field(described, "version")
    if not name or not version:
        _fail("give --name and --version, or a --card that has them (outpost train writes both)")
    with _client(hub, api_key, UPLOAD_TIMEOUT_S) as client:
        pushed = _upload(client, file, name, version, card_text)
        _out.print(f"pushed {pushed['name']} {pushed['version']} (sha256 {pushed['sha256']})")
        if rollout_target is not None:
            body = {
                "name": name,
                "version": version,
                "target": rollout_target,
                "canary_percent": percent,
                "auto_promote": auto_promote,
            }
            _show(_call(client, "POST", "/rollouts", json=body))


def _card_field(card: Any, key: str) -> str | None:
    value = card.get(key) if isinstance(card, dict) else None
    return value if isinstance(value, str) and value else None


def _upload(
    client: httpx.Client, file: Path, name: str, version: str, card: str | None
) -> dict[str, Any]:
    data = {"name": name, "version": version}
    if card is not None:
        data["card"] = card
    columns = ("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=_err, transient=True) as progress:
        task = progress.add_task(f"uploading {file.name}", total=file.stat().st_size)
        with _Reading(file, lambda n: progress.advance(task, n)) as reader:
            files = {"file": (file.name, reader, "application/octet-stream")}
            result: dict[str, Any] = _call(client, "POST", "/models", files=files, data=data)
    return result


@rollout_app.command("status")
def status_command(
    rollout_id: Annotated[int | None, typer.Argument(help="A rollout; none: list them.")] = None,
    hub: HubOption = DEFAULT_HUB,
    api_key: KeyOption = "",
) -> None:
    """Show a rollout's state and each device's progress (or list the rollouts)."""
    with _client(hub, api_key) as client:
        if rollout_id is not None:
            _show(_call(client, "GET", f"/rollouts/{rollout_id}"))
            return
        table = Table("id", "model", "target", "canary", "state", "reason")
        for r in _call(client, "GET", "/rollouts")["items"]:
            table.add_row(
                str(r["id"]),
                f"{r['name']} {r['version']}",
                json.dumps(r["target"]),
                f"{r['canary_percent']}%",
                r["state"],
                escape(r["reason"] or ""),
            )
        _out.print(table)


@rollout_app.command("promote")
def promote_command(
    rollout_id: Annotated[int, typer.Argument(help="The rollout.")],
    hub: HubOption = DEFAULT_HUB,
    api_key: KeyOption = "",
) -> None:
    """Give the model to the rest of the target (once the canary is healthy)."""
    with _client(hub, api_key) as client:
        _show(_call(client, "POST", f"/rollouts/{rollout_id}/promote"))


@rollout_app.command("rollback")
def rollback_command(
    rollout_id: Annotated[int, typer.Argument(help="The rollout.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the rollout).")] = "",
    hub: HubOption = DEFAULT_HUB,
    api_key: KeyOption = "",
) -> None:
    """Give every assigned device its previous model again."""
    with _client(hub, api_key) as client:
        _show(_call(client, "POST", f"/rollouts/{rollout_id}/rollback", json={"reason": reason}))


def _show(rollout: dict[str, Any]) -> None:
    _out.print(
        f"rollout {rollout['id']}: {rollout['name']} {rollout['version']} → "
        f"{json.dumps(rollout['target'])}, canary {rollout['canary_percent']}%: "
        f"[bold]{rollout['state']}[/]",
        highlight=False,
    )
    if rollout.get("reason"):
        _out.print(f"reason: {escape(rollout['reason'])}", highlight=False)
    table = Table("device", "canary", "status", "assigned", "detail")
    for d in rollout.get("devices", []):
        table.add_row(
            d["device_id"],
            "yes" if d["canary"] else "",
            d["status"],
            (d["assigned_at"] or "")[:19],
            escape(d["detail"] or ""),
        )
    _out.print(table)
