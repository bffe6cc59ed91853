"""`edge-agent model list|activate|rollback`: the model versions on this device.

When the agent is running, the swap must happen in the process that serves frames:
the CLI leaves a request under `{data_dir}/models/requests/` and waits for the
agent's answer (the agent looks for requests every `[model] request_poll_s`). A
manifest's artifact is downloaded by the CLI first, with a progress bar, so the
agent only checks and loads it. When the agent is not running, the CLI does every
check itself and records the result in `state.json`: the agent starts with it.

Exit status: 0 done (or already so), 1 refused (the reason is printed), 2 bad usage
or configuration.

    edge-agent model list [--json]
    edge-agent model activate NAME VERSION          # a version already on disk
    edge-agent model activate --manifest m.json     # a signed manifest; its url may be file://
    edge-agent model rollback
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from edge_agent.cli_runtime import ConfigOption, settings_or_exit
from edge_agent.config import AgentSettings
from edge_agent.errors import AgentError
from edge_agent.perception.model_fetch import Progress as ProgressCallback
from edge_agent.perception.model_store import (
    InstalledModel,
    ModelRejected,
    ModelRequest,
    ModelResult,
    ModelState,
    ModelStore,
    read_result,
    submit_request,
)
from edge_agent.perception.models import Activation, ModelManager, manager_for
from edge_agent.status import collect
from protocol.errors import SignatureError

_out = Console()
_err = Console(stderr=True)

WaitOption = Annotated[
    float,
    typer.Option("--wait", min=1.0, help="Seconds to wait for the running agent's answer."),
]


def register(model_app: typer.Typer) -> None:
    """Add `list`, `activate` and `rollback` to the `edge-agent model` group."""
    model_app.command("list")(list_models)
    model_app.command("activate")(activate)
    model_app.command("rollback")(rollback)


def _quiet_logs() -> None:
    # The CLI prints each outcome itself; the manager's log lines would say it twice.
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")


def list_models(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Installed model versions; the active and the previous one are marked."""
    settings = settings_or_exit(config)
    store = ModelStore(settings.device.data_dir / "models")
    try:
        installed, problems = store.scan()
    except OSError as exc:
        _err.print(f"cannot read {store.versions}: {exc.strerror or exc}", highlight=False)
        raise typer.Exit(1) from None
    state = store.read_state()
    rows = [_row(model, state) for model in installed]
    if as_json:
        typer.echo(json.dumps(rows))
    elif not rows:
        _out.print(f"no model versions installed in {store.versions}", highlight=False)
    else:
        _out.print(_table(rows))
    for problem in problems:
        _err.print(f"[yellow]skipped:[/] {escape(problem)}", highlight=False)


def activate(
    name: Annotated[str | None, typer.Argument(help="Model name (installed).")] = None,
    version: Annotated[str | None, typer.Argument(help="Version (installed).")] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(help="A hub-signed manifest (JSON) to download and activate."),
    ] = None,
    config: ConfigOption = None,
    wait: WaitOption = 300.0,
) -> None:
    """Activate a version on disk, or the model of a signed manifest, after every check."""
    by_name = name is not None and version is not None
    if by_name == (manifest is not None) or (name is None) != (version is None):
        _err.print("give NAME VERSION, or --manifest PATH (not both)")
        raise typer.Exit(2)
    settings = settings_or_exit(config)
    _quiet_logs()
    manager = _manager(settings)
    pid = _agent_pid(settings)
    if manifest is None:
        request = ModelRequest(action="activate", name=name, version=version)
        result = _run(_carry_out(manager, request, pid, wait))
    else:
        result = _run(_from_manifest(manager, _read(manifest), pid, wait))
    _report(result, pid)


def rollback(config: ConfigOption = None, wait: WaitOption = 300.0) -> None:
    """Go back to the previous version (kept on disk); the current one becomes previous."""
    settings = settings_or_exit(config)
    _quiet_logs()
    manager = _manager(settings)
    pid = _agent_pid(settings)
    _report(_run(_carry_out(manager, ModelRequest(action="rollback"), pid, wait)), pid)


# --- doing it -------------------------------------------------------------------------------


def _run(work: Coroutine[Any, Any, ModelResult]) -> ModelResult:
    try:
        return asyncio.run(work)
    except AgentError as exc:
        _err.print(f"[bold red]failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


async def _carry_out(
    manager: ModelManager, request: ModelRequest, pid: int | None, wait: float
) -> ModelResult:
    if pid is not None:
        return await asyncio.to_thread(_ask_agent, manager.store, request, pid, wait)
    return await manager.execute(request)


async def _from_manifest(
    manager: ModelManager, raw: bytes, pid: int | None, wait: float
) -> ModelResult:
    request = ModelRequest(action="activate")
    with _download_bar() as progress:
        try:
            if pid is None:
                return _result(request, await manager.activate(raw, progress=progress))
            installed, fresh = await manager.install(raw, progress=progress)
        except ModelRejected as exc:
            return _refused(request, exc)
    name, version = installed.manifest.name, installed.manifest.version
    request = ModelRequest(action="activate", name=name, version=version)
    result = await asyncio.to_thread(_ask_agent, manager.store, request, pid, wait)
    if not result.ok and fresh:
        await asyncio.to_thread(manager.store.remove, name, version)
    return result


def _ask_agent(store: ModelStore, request: ModelRequest, pid: int, wait: float) -> ModelResult:
    answer = submit_request(store, request)
    deadline = time.monotonic() + wait
    with _err.status(f"waiting for the running agent (pid {pid}) to check and load the model"):
        while time.monotonic() < deadline:
            result = read_result(answer)
            if result is not None:
                return result
            time.sleep(0.1)
    (store.requests / f"request-{request.id}.json").unlink(missing_ok=True)
    raise AgentError(
        f"the running agent (pid {pid}) did not answer within {wait:g} s; "
        "see its log (journalctl -u outpost-agent)"
    )


def _result(request: ModelRequest, activation: Activation) -> ModelResult:
    return ModelResult(
        id=request.id,
        ok=True,
        active=activation.active,
        previous=activation.previous,
        latency_ms=activation.latency_ms,
        detail="" if activation.changed else "already active",
    )


def _refused(request: ModelRequest, exc: ModelRejected) -> ModelResult:
    return ModelResult(id=request.id, ok=False, refusal=exc.refusal, detail=exc.detail)


# --- helpers --------------------------------------------------------------------------------


def _manager(settings: AgentSettings) -> ModelManager:
    if not settings.hub.public_key:
        _err.print(
            "[bold red]no hub key is pinned[/] ([hub] public_key): model signatures cannot be "
            "checked; run `edge-agent install` or set it in the config"
        )
        raise typer.Exit(2)
    try:
        return manager_for(settings, settings.model, allow_file=True)
    except SignatureError as exc:
        _err.print(f"[bold red]invalid configuration[/]\n[hub] public_key: {exc}")
        raise typer.Exit(2) from None


def _agent_pid(settings: AgentSettings) -> int | None:
    doc = collect(settings)
    return int(doc["pid"]) if doc.get("running") else None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        _err.print(f"cannot read the manifest {path}: {exc.strerror or exc}")
        raise typer.Exit(2) from None


@contextmanager
def _download_bar() -> Iterator[ProgressCallback]:
    columns = (
        TextColumn("downloading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    quiet = not _err.is_terminal
    with Progress(SpinnerColumn(), *columns, console=_err, transient=True, disable=quiet) as bar:
        task = None

        def update(done: int, total: int | None) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("model", total=total)
            bar.update(task, completed=done, total=total)

        yield update


def _report(result: ModelResult, pid: int | None) -> None:
    if not result.ok:
        reason = result.refusal.value if result.refusal else "refused"
        _err.print(
            f"[bold red]refused[/] ({reason}): {escape(result.detail)}\n"
            "the model that was active stays active",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    active = result.active
    which = f"{active.name} {active.version}" if active else "?"
    if result.detail == "already active":
        _out.print(f"{escape(which)} is already active", highlight=False)
        return
    where = (
        f"the running agent (pid {pid}) now serves it"
        if pid is not None
        else "the agent is not running; it will start with it"
    )
    latency = f", median {result.latency_ms:.1f} ms" if result.latency_ms is not None else ""
    previous = result.previous
    kept = f"; previous: {previous.name} {previous.version}" if previous else ""
    _out.print(
        f"[green]model {escape(which)} active[/]{latency}{escape(kept)}\n{where}",
        highlight=False,
        soft_wrap=True,
    )


def _row(model: InstalledModel, state: ModelState) -> dict[str, Any]:
    ref, manifest = model.ref, model.manifest
    return {
        "name": manifest.name,
        "version": manifest.version,
        "sha256": manifest.sha256,
        "size": manifest.size,
        "classes": len(manifest.classes),
        "created_at": manifest.created_at.isoformat(),
        "installed_at": model.installed_at.isoformat(timespec="seconds"),
        "active": ref == state.active,
        "previous": ref == state.previous,
    }


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="model versions")
    for column in ("", "name", "version", "sha256", "size", "created"):
        table.add_column(column)
    for row in rows:
        mark = "[green]active[/]" if row["active"] else "previous" if row["previous"] else ""
        table.add_row(
            mark,
            escape(row["name"]),
            escape(row["version"]),
            row["sha256"][:12],
            _size(row["size"]),
            row["created_at"][:16].replace("T", " "),
        )
    return table


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"
