"""CLI commands of the running agent: `run`, `status`, `doctor`, `buffer stats|export`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edge_agent.config import AgentSettings, default_config_path, load_settings
from edge_agent.doctor import run_checks
from edge_agent.errors import AgentError, ConfigError
from edge_agent.outbox import export_rows, read_stats
from edge_agent.runtime import Agent, engage_local_stop
from edge_agent.status import collect
from protocol.logs import LOG_FORMAT_ENV, LogFormatError, configure_logging, resolve_log_format

_out = Console()
_err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Agent config file (default: /etc/outpost/agent.toml)."),
]


def settings_or_exit(config: Path | None) -> AgentSettings:
    """Load the settings; a bad config prints its message and exits 2."""
    try:
        return load_settings(config or default_config_path())
    except ConfigError as exc:
        _err.print(f"[bold red]invalid configuration[/]\n{exc}", highlight=False)
        raise typer.Exit(2) from None


def run(
    config: ConfigOption = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    log_format: Annotated[
        str | None,
        typer.Option(help=f"Log lines as text or json (default: ${LOG_FORMAT_ENV}, else text)."),
    ] = None,
) -> None:
    """Run the agent in the foreground until SIGTERM or Ctrl-C (what the service runs)."""
    try:
        fmt = resolve_log_format(log_format)
    except LogFormatError as exc:
        _err.print(f"[bold red]{escape(str(exc))}[/]", highlight=False)
        raise typer.Exit(2) from None
    settings = settings_or_exit(config)
    configure_logging(log_level.upper(), fmt, role="edge-agent")
    try:
        asyncio.run(Agent(settings).run())
    except AgentError as exc:
        _err.print(f"[bold red]edge-agent stopped:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(exc.exit_code) from None


def status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Link, buffer (depth, bytes, oldest), drops, e-stop and model at a glance."""
    doc = collect(settings_or_exit(config))
    if as_json:
        typer.echo(json.dumps(doc, default=str))
        return
    table = Table(title=f"edge-agent {doc['device']}", show_header=False)
    link = doc.get("link", {})
    table.add_row("agent", "running" if doc["running"] else "[red]not running[/]")
    table.add_row("link", f"{link.get('state')} {link.get('last_error', '')}".strip())
    outbox = doc.get("outbox") or {}
    table.add_row(
        "buffer",
        f"{outbox.get('depth', 0)} rows, {outbox.get('bytes', 0) / 1e6:.2f} MB, "
        f"oldest {outbox.get('oldest_ts') or '-'}",
    )
    table.add_row("dropped", _dropped(outbox.get("dropped", {})))
    estop = doc.get("estop") or {}
    if estop.get("engaged"):
        why = f"{estop.get('source') or '?'}: {estop.get('reason') or ''}".strip()
        table.add_row("e-stop", f"[bold red]ENGAGED[/] ({escape(why)}) since {estop.get('since')}")
    else:
        table.add_row("e-stop", "released")
    table.add_row("last command", escape(str(doc.get("last_command") or "none")))
    model = doc.get("model") or {}
    table.add_row(
        "model",
        f"{model.get('name')} {model.get('version')} ({str(model.get('sha256'))[:12]})"
        if model
        else "none",
    )
    table.add_row("detect API", _detect_api(doc.get("detect_api")))
    table.add_row("gateway", _gateway(doc.get("gateway")))
    _out.print(table)


def _detect_api(api: dict[str, str] | None) -> str:
    if not api:
        return "off"
    if "error" in api:
        return f"[red]not listening[/] ({escape(api['error'])})"
    return escape(api.get("url", "?"))


def _gateway(gateway: dict[str, Any] | None) -> str:
    if not gateway:
        return "off"
    link = "connected to Kafka" if gateway.get("connected") else "[red]Kafka unreachable[/]"
    return (
        f"{link}; {gateway.get('frames', 0)} frames from {gateway.get('devices', 0)} devices, "
        f"{gateway.get('stale', 0)} stale, {gateway.get('refused', 0)} refused, "
        f"{gateway.get('unprocessed', 0)} without a model; "
        f"{gateway.get('requests', 0)} detect requests from the hub"
    )


def _dropped(dropped: dict[str, Any]) -> str:
    if not any(dropped.values()):
        return "none"
    return ", ".join(f"{cls} {count}" for cls, count in dropped.items() if count)


def doctor(config: ConfigOption = None) -> None:
    """Check config, keys, broker reachability and login, clock and disk: OK/FAIL with the fix."""
    settings = settings_or_exit(config)
    _out.print(f"[green]OK  [/] config: {config or default_config_path()}")
    failed = 0
    for check in run_checks(settings):
        mark = "[green]OK  [/]" if check.ok else "[bold red]FAIL[/]"
        _out.print(f"{mark} {check.name}: {check.detail}", highlight=False)
        if not check.ok:
            failed += 1
            _out.print(f"     fix: {check.fix}", highlight=False)
    if failed:
        raise typer.Exit(1)


def buffer_stats(config: ConfigOption = None) -> None:
    """Outbox depth, size, age and drops."""
    settings = settings_or_exit(config)
    path = settings.device.outbox_path
    if not path.is_file():
        _err.print(f"no outbox at {path} yet (the agent has not run)")
        raise typer.Exit(1)
    stats = read_stats(path)
    table = Table(title=f"outbox {path}", show_header=False)
    for label, value in (
        ("stream", stats.stream),
        ("rows", stats.depth),
        ("never sent", stats.unsent),
        ("sent, unconfirmed", stats.inflight),
        ("bytes", f"{stats.bytes} of {stats.cap_bytes} cap"),
        ("oldest", stats.oldest_ts or "-"),
        ("dropped", _dropped({k.value: v for k, v in stats.dropped.items()})),
    ):
        table.add_row(label, str(value))
    _out.print(table)


def buffer_export(
    config: ConfigOption = None,
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many rows.")] = None,
) -> None:
    """Export outbox rows as JSON lines (for support, or to replay elsewhere)."""
    settings = settings_or_exit(config)
    if out is None:
        count = export_rows(settings.device.outbox_path, sys.stdout, limit=limit)
    else:
        with out.open("w", encoding="utf-8") as handle:
            count = export_rows(settings.device.outbox_path, handle, limit=limit)
    _err.print(f"exported {count} rows")


def estop(
    config: ConfigOption = None,
    reason: Annotated[str, typer.Option(help="Why, for the event log.")] = "local e-stop",
) -> None:
    """Engage the protective stop here and now; only a signed release from the hub clears it.

    A running agent stops the robot within a control period; a stopped agent will
    start stopped. This is a protective stop, not the robot's hard-wired e-stop.
    """
    settings = settings_or_exit(config)
    try:
        where = engage_local_stop(settings, reason)
    except AgentError as exc:
        _err.print(f"[bold red]e-stop failed:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    _out.print(f"[bold red]protective stop ENGAGED[/] ({escape(reason)}): {where}")


def register(app: typer.Typer, buffer_app: typer.Typer) -> None:
    """Add these commands to the `edge-agent` CLI."""
    app.command("run")(run)
    app.command("estop")(estop)
    app.command("status")(status)
    app.command("doctor")(doctor)
    buffer_app.command("stats")(buffer_stats)
    buffer_app.command("export")(buffer_export)
