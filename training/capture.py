"""`outpost capture pull`: the frames agents captured, as a YOLO dataset ready for labelling.

Agents keep the frames their model was unsure about (top confidence in a band) and
upload them on a `capture` command; the hub keeps them with the objects the model
reported. This command pages through `GET /api/v1/frames?purpose=capture` (or one
device's frames) and writes, under `--out`:

    images/<device>_<frame_id>.jpg   the frame as the camera saw it
    labels/<device>_<frame_id>.txt   the model's boxes as YOLO pre-labels, to correct
    data.yaml                        names (kept stable across pulls), train/val = images
    captures.csv                     device, frame, time, model, top confidence

Running it again fetches only frames it does not have yet; class ids already in
`data.yaml` keep their numbers and new class names are appended.

Example:
    >>> yolo_line(0, {"x1": 0.1, "y1": 0.2, "x2": 0.3, "y2": 0.6})
    '0 0.200000 0.400000 0.200000 0.400000'
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

DEFAULT_HUB = "http://127.0.0.1:8080"
PAGE = 200
_out = Console()
_err = Console(stderr=True)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

capture_app = typer.Typer(help="Frames captured by agents for retraining.", no_args_is_help=True)


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]{escape(message)}[/]", highlight=False)
    raise typer.Exit(2)


def yolo_line(class_id: int, box: dict[str, float]) -> str:
    """One YOLO label line from a normalised corner box: `id cx cy w h`."""
    x1, y1, x2, y2 = box["x1"], box["y1"], box["x2"], box["y2"]
    return f"{class_id} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"


class CaptureDataset:
    """The output directory: its class names, what it already holds, and how to add a frame."""

    def __init__(self, root: Path) -> None:
        if root.exists() and not root.is_dir():
            _fail(f"--out {root}: is a file, not a directory")
        self.root = root
        self.images, self.labels = root / "images", root / "labels"
        self.images.mkdir(parents=True, exist_ok=True)
        self.labels.mkdir(parents=True, exist_ok=True)
        self.names = self._names()
        self.index = root / "captures.csv"

    def _names(self) -> list[str]:
        data = self.root / "data.yaml"
        if not data.exists():
            return []
        try:
            names = yaml.safe_load(data.read_text(encoding="utf-8")).get("names", [])
        except (yaml.YAMLError, AttributeError) as exc:
            _fail(f"{data}: not a YOLO data.yaml ({exc}); move it away or use another --out")
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names)]
        return [str(n) for n in names]

    @staticmethod
    def stem(item: dict[str, Any]) -> str:
        """`<device>_<frame_id>`, safe as a file name."""
        return _UNSAFE.sub("_", f"{item['device_id']}_{item['frame_id']}")

    def has(self, item: dict[str, Any]) -> bool:
        """Whether this frame was pulled before."""
        return (self.images / f"{self.stem(item)}.jpg").exists()

    def add(self, item: dict[str, Any], jpeg: bytes) -> None:
        """Write the image, its pre-labels and its index line (the image last: it marks done)."""
        stem = self.stem(item)
        lines = []
        for obj in item["objects"]:
            name = str(obj["cls"])
            if name not in self.names:
                self.names.append(name)
            lines.append(yolo_line(self.names.index(name), obj["box"]))
        (self.labels / f"{stem}.txt").write_text("".join(f"{x}\n" for x in lines))
        top = max((float(o["conf"]) for o in item["objects"]), default=0.0)
        model = item.get("model") or {}
        new = not self.index.exists()
        with self.index.open("a", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            if new:
                writer.writerow(["image", "device", "frame_id", "ts", "model", "top_conf"])
            writer.writerow(
                [
                    f"images/{stem}.jpg",
                    item["device_id"],
                    item["frame_id"],
                    item["ts"],
                    f"{model.get('name', '')}:{model.get('version', '')}".strip(":"),
                    f"{top:.3f}",
                ]
            )
        tmp = self.images / f".{stem}.jpg.part"
        tmp.write_bytes(jpeg)
        tmp.replace(self.images / f"{stem}.jpg")

    def write_yaml(self) -> None:
        """`data.yaml` for ultralytics and labelling tools (train and val: every image)."""
        data = {
            "path": str(self.root.resolve()),
            "train": "images",
            "val": "images",
            "names": dict(enumerate(self.names)),
        }
        (self.root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _pages(
    client: httpx.Client, path: str, params: dict[str, Any], limit: int
) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    seen = 0
    while seen < limit:
        query = {**params, "limit": min(PAGE, limit - seen)}
        if cursor:
            query["cursor"] = cursor
        page = _get(client, path, query).json()
        for item in page["items"]:
            seen += 1
            yield item
        cursor = page.get("next_cursor")
        if not cursor or not page["items"]:
            return


def _get(client: httpx.Client, url: str, params: dict[str, Any] | None = None) -> httpx.Response:
    try:
        answer = client.get(url, params=params)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the hub at {client.base_url}: {exc}")
    if answer.status_code == 401:
        _fail("the hub refused the API key (401): check --api-key / OUTPOST_API_KEY")
    if answer.status_code == 404:
        _fail(f"not found (404): {url}: {answer.text[:200]}")
    if answer.is_error:
        _fail(f"the hub answered {answer.status_code} for {url}: {answer.text[:300]}")
    return answer


@capture_app.command("pull")
def pull(
    out: Annotated[Path, typer.Option("--out", help="Dataset directory (created).")],
    hub: Annotated[
        str, typer.Option("--hub", envvar="OUTPOST_HUB_URL", help="The hub's API address.")
    ] = DEFAULT_HUB,
    api_key: Annotated[
        str,
        typer.Option(
            "--api-key", envvar="OUTPOST_API_KEY", help="An API key (opk_…), viewer or above."
        ),
    ] = "",
    device: Annotated[
        str | None, typer.Option("--device", help="Only this device's captures.")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option("--since", help="Only captures from this time on (ISO 8601, UTC if bare)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many frames.")] = 1000,
) -> None:
    """Fetch captured frames and their model's boxes into a YOLO dataset for labelling."""
    if not api_key:
        _fail("no API key: pass --api-key or set OUTPOST_API_KEY")
    dataset = CaptureDataset(out)
    path = f"/api/v1/devices/{device}/frames" if device else "/api/v1/frames"
    params: dict[str, Any] = {"purpose": "capture"}
    if since is not None:
        params["from"] = (since if since.tzinfo else since.astimezone()).isoformat()
    headers = {"X-API-Key": api_key}
    fetched = skipped = 0
    with (
        httpx.Client(base_url=hub.rstrip("/"), headers=headers, timeout=30) as client,
        Progress(
            TextColumn("[bold]capture pull"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_err,
        ) as progress,
    ):
        task = progress.add_task("frames", total=None)
        for item in _pages(client, path, params, limit):
            if dataset.has(item):
                skipped += 1
            else:
                dataset.add(item, _get(client, item["url"]).content)
                fetched += 1
            progress.advance(task)
    dataset.write_yaml()
    _out.print(
        f"{fetched} new frame(s), {skipped} already here, {len(dataset.names)} class(es) "
        f"in [bold]{escape(str(out))}[/] (pre-labels in labels/, index in captures.csv)"
    )
