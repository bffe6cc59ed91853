"""`outpost drift report`: how far each device's camera has drifted, and `outpost drift reset`.

Reads `GET /api/v1/devices/{id}/drift` from a running hub for every device in the
API key's scope (or one `--device`, or the devices running one `--model`), prints a
table (newest window, PSI per histogram against the camera's own reference, the worst,
a verdict, and the worst PSI against the model's training baseline) and writes a PNG:
per device, each histogram of the newest window beside the training baseline and the
reference. `outpost drift reset --device ID` makes the hub learn a camera's reference
again after it was moved or re-aimed on purpose.

PSI reading: under 0.1 stable, 0.1 to 0.25 watch, over 0.25 drifted. A camera always
differs a little from the training set, so the verdict is read against its reference;
the training figure says how far the site is from what the model learned from.

Example:
    >>> verdict(0.05), verdict(0.2), verdict(0.4)
    ('stable', 'watch', 'drifted')
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

DEFAULT_HUB = "http://127.0.0.1:8080"
WATCH, DRIFTED = 0.1, 0.25
_out = Console()
_err = Console(stderr=True)

drift_app = typer.Typer(help="Drift of live data against a model's baseline.", no_args_is_help=True)


def verdict(psi: float) -> str:
    """`stable`, `watch` or `drifted`."""
    return "drifted" if psi > DRIFTED else "watch" if psi >= WATCH else "stable"


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]{escape(message)}[/]", highlight=False)
    raise typer.Exit(2)


HubOption = Annotated[
    str, typer.Option("--hub", envvar="OUTPOST_HUB_URL", help="The hub's API address.")
]
KeyOption = Annotated[
    str, typer.Option("--api-key", envvar="OUTPOST_API_KEY", help="An API key (opk_…).")
]


def _client(hub: str, api_key: str) -> httpx.Client:
    if not api_key:
        _fail("no API key: pass --api-key or set OUTPOST_API_KEY")
    return httpx.Client(base_url=hub.rstrip("/"), headers={"X-API-Key": api_key}, timeout=30)


def _call(
    client: httpx.Client, method: str, path: str, params: dict[str, Any] | None = None
) -> Any:
    """The JSON answer; any failure is one clear message and exit status 2."""
    try:
        answer = client.request(method, path, params=params)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the hub at {client.base_url}: {exc}")
    if answer.status_code == 401:
        _fail("the hub refused the API key (401): check --api-key / OUTPOST_API_KEY")
    if answer.status_code == 403:
        _fail(f"the hub refused (403): {answer.text[:300]}")
    if answer.status_code == 404:
        _fail(f"not found (404): {path}")
    if answer.is_error:
        _fail(f"the hub answered {answer.status_code} for {path}: {answer.text[:300]}")
    return answer.json()


def _get(client: httpx.Client, path: str, params: dict[str, Any] | None = None) -> Any:
    return _call(client, "GET", path, params)


def _devices(client: httpx.Client) -> list[dict[str, Any]]:
    devices, cursor = [], None
    while True:
        page = _get(
            client, "/api/v1/devices", {"limit": 200, **({"cursor": cursor} if cursor else {})}
        )
        devices += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return devices


def plot(reports: list[dict[str, Any]], path: Path) -> None:
    """One row per device, one panel per histogram: baseline, reference and newest window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in reports if r["histograms"]]
    if not rows:
        return
    cols = max(len(r["histograms"]) for r in rows)
    figure, axes = plt.subplots(
        len(rows), cols, figsize=(3.2 * cols, 2.6 * len(rows)), squeeze=False
    )
    for row, report in zip(axes, rows, strict=False):
        for ax, hist in zip(row, report["histograms"], strict=False):
            x = range(len(hist["bins"]))
            ax.bar([i - 0.27 for i in x], hist["baseline"], width=0.27, label="training")
            if hist.get("reference") is not None:
                ax.bar(list(x), hist["reference"], width=0.27, label="reference")
            ax.bar([i + 0.27 for i in x], hist["live"], width=0.27, label="newest window")
            psi = hist.get("psi")
            score = "learning the reference" if psi is None else f"PSI {psi:.2f} ({verdict(psi)})"
            ax.set_title(f"{report['device_id']} · {hist['key']}\n{score}", fontsize=8)
            ax.set_xticks(list(x), hist["bins"], fontsize=6, rotation=90)
            ax.tick_params(axis="y", labelsize=6)
        for ax in row[len(report["histograms"]) :]:
            ax.axis("off")
    axes[0][0].legend(fontsize=6)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


@drift_app.command("report")
def report(
    hub: HubOption = DEFAULT_HUB,
    api_key: KeyOption = "",
    device: Annotated[str | None, typer.Option("--device", help="Only this device.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Only devices running this model (its name).")
    ] = None,
    png: Annotated[Path, typer.Option("--png", help="Where to write the chart.")] = Path(
        "drift-report.png"
    ),
) -> None:
    """A table of each device's drift, and a PNG of its distributions against the baseline."""
    with _client(hub, api_key) as c:
        ids = [device] if device else [d["id"] for d in _devices(c)]
        reports = [_get(c, f"/api/v1/devices/{i}/drift") for i in ids]
    if model:
        reports = [r for r in reports if (r.get("model") or {}).get("name") == model]
    table = Table(title="Drift against each camera's reference (PSI)")
    columns = ("device", "model", "window", "per histogram", "worst", "verdict", "vs training")
    for column in columns:
        table.add_column(column)
    worst_overall = 0.0
    for r in reports:
        m = r.get("model") or {}
        name = f"{m.get('name', '?')}:{m.get('version', '?')}" if m else "none"
        if not r["has_baseline"] or not r["histograms"]:
            why = "no baseline in the registry" if not r["has_baseline"] else "no drift window yet"
            table.add_row(r["device_id"], name, "-", why, "-", "-", "-")
            continue
        train = f"{max(h['psi_train'] for h in r['histograms']):.2f}"
        window = str(r["window_ts"])[:19]
        ref = r["reference"]
        if ref["learning"]:
            learning = f"learning {ref['windows']}/{ref['needed']}"
            table.add_row(r["device_id"], name, window, "-", "-", learning, train)
            continue
        scored = [h for h in r["histograms"] if h["psi"] is not None]
        per = ", ".join(f"{h['key'].removesuffix('_hist')} {h['psi']:.2f}" for h in scored)
        worst = max((h["psi"] for h in scored), default=0.0)
        worst_overall = max(worst_overall, worst)
        table.add_row(r["device_id"], name, window, per, f"{worst:.2f}", verdict(worst), train)
    _out.print(table)
    plot(reports, png)
    if any(r["histograms"] for r in reports):
        _out.print(f"chart: [bold]{escape(str(png))}[/]")
    if worst_overall > DRIFTED:
        _out.print("[yellow]at least one device drifted: see the chart, capture frames, retrain[/]")


@drift_app.command("reset")
def reset(
    device: Annotated[str, typer.Option("--device", help="The device whose camera changed.")],
    hub: HubOption = DEFAULT_HUB,
    api_key: KeyOption = "",
) -> None:
    """Make the hub learn a device's drift reference again (after moving its camera)."""
    with _client(hub, api_key) as c:
        forgotten = _call(c, "DELETE", f"/api/v1/devices/{device}/drift/reference")["forgotten"]
    _out.print(
        f"{escape(device)}: {forgotten} reference(s) forgotten; the hub learns them again "
        "from the next drift windows"
    )
