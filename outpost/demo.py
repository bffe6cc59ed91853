"""`outpost demo`: the whole system on this machine, in one command.

1. An embedded hub (`outpost hub serve`: SQLite, the in-process bus, its own MQTT
   broker) in a fresh data directory, on free ports unless told otherwise.
2. A first admin with a one-time password (printed), a site and an operator API key
   for the simulator; the agents' detector is pushed to the hub's registry with its card
   (so the Models page and drift scoring know it).
3. `outpost sim run` with N simulated robots, each enrolled by a real `edge-agent
   install` and driven by a real edge agent (with the default detector when
   `models/outpost-sim-detector/model.onnx` exists).
4. A dispatcher: the robots whose scenario gives them a patrol lane are sent along it
   with path plans through the hub's API, as an operator or a fleet manager would
   (agents keep a robot still until told to move). A stopped robot gets no mission
   until it is released.
5. The dashboard URL, opened in a browser unless `--no-browser`.

Ctrl-C (or SIGTERM) stops the simulator (its agents stop their robots) and then the
hub. Everything lives under `--workdir` (default: a new temporary directory), so the
next run starts clean.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import webbrowser
from pathlib import Path
from typing import Annotated, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from edge_agent.perception.default_model import shipped_model
from protocol.processes import stop_process, wait_healthy
from sim.layout import scenario_layout
from sim.scenario import default_scenario

REPO = Path(__file__).resolve().parents[1]
SITE = "demo-warehouse"
ADMIN = "admin"
HEALTH_TIMEOUT_S = 60.0
_out = Console()
_err = Console(stderr=True)


class DemoError(Exception):
    """A step of the demo failed; the message says which and where the logs are."""


def free_port(preferred: int = 0) -> int:
    """`preferred` when it is free (0: any free port)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _command(name: str) -> str:
    sibling = Path(sys.executable).parent / name
    return str(sibling) if sibling.exists() else (shutil.which(name) or name)


class Demo:
    """The hub and simulator processes of one demo run."""

    def __init__(self, workdir: Path, *, port: int, robots: int, model: Path | None) -> None:
        self.workdir, self.robots, self.model = workdir, robots, model
        self.api_port, self.mqtt_port = free_port(port), free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.password = secrets.token_urlsafe(12)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_HUB_")},
            "OUTPOST_HUB_DATA_DIR": str(workdir / "hub-data"),
            "OUTPOST_HUB_PORT": str(self.api_port),
            "OUTPOST_HUB_BROKER__URL": f"mqtt://127.0.0.1:{self.mqtt_port}",
        }
        self.hub: subprocess.Popen[bytes] | None = None
        self.sim: subprocess.Popen[bytes] | None = None

    def _log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start_hub(self) -> None:
        """`outpost hub serve`, then wait until its health check answers."""
        with self._log("hub").open("ab") as log:
            self.hub = subprocess.Popen(
                [_command("outpost"), "hub", "serve"],
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        try:
            wait_healthy(f"{self.url}/api/v1/health", self.hub, timeout_s=HEALTH_TIMEOUT_S)
        except (ChildProcessError, TimeoutError) as exc:
            raise DemoError(f"the hub did not start ({exc}); see {self._log('hub')}") from None

    def set_up(self) -> str:
        """The admin (one-time password), the site with the warehouse's floor plan (for the
        map), and an operator key for the simulator."""
        self._run("hub", "init", "--username", ADMIN, "--password-stdin", stdin=self.password)
        self._run("hub", "site", "add", SITE)
        with httpx.Client(base_url=f"{self.url}/api/v1", timeout=10) as api:
            login = api.post("/auth/login", json={"username": ADMIN, "password": self.password})
            if not login.is_success:
                raise DemoError(f"cannot log in as {ADMIN}: {login.text[:200]}")
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            layout = scenario_layout(default_scenario(self.robots))
            placed = api.put(f"/sites/{SITE}/layout", json=layout, headers=admin)
            if not placed.is_success:
                raise DemoError(f"cannot set the site's layout: {placed.text[:200]}")
            key = api.post("/auth/api-keys", json={"name": "outpost demo simulator"}, headers=admin)
            if not key.is_success:
                raise DemoError(f"cannot create the simulator's API key: {key.text[:200]}")
            return str(key.json()["key"])

    def register_model(self, api_key: str) -> bool:
        """Push the agents' detector with its card (when it has one beside it), so that the
        hub's registry, the Models page and drift scoring know the model they run."""
        if self.model is None or not (self.model.parent / "card.json").is_file():
            return False
        card = str(self.model.parent / "card.json")
        env = {"OUTPOST_API_KEY": api_key, "OUTPOST_HUB_URL": self.url}
        self._run("model", "push", str(self.model), "--card", card, env=env, timeout=120)
        return True

    def _run(
        self, *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: int = 60
    ) -> None:
        done = subprocess.run(
            [_command("outpost"), *args],
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise DemoError(f"outpost {' '.join(args[:3])} failed: {done.stderr.strip()[-300:]}")

    def start_sim(self, api_key: str) -> None:
        """`outpost sim run` against the hub, in the background."""
        args = [
            _command("outpost"), "sim", "run", "--hub", self.url, "--robots", str(self.robots),
            "--site", SITE, "--workdir", str(self.workdir / "fleet"),
            "--control-port", str(free_port()),
        ]  # fmt: skip
        if self.model is not None:
            args += ["--model", str(self.model)]
        with self._log("sim").open("ab") as log:
            self.sim = subprocess.Popen(
                args,
                env={**self.env, "OUTPOST_API_KEY": api_key},
                stdout=log,
                stderr=log,
                start_new_session=True,  # its agents go with it, whatever happens
            )

    def wait(self) -> int:
        """Until Ctrl-C, or until the hub or the simulator exits on its own."""
        while True:
            for name, process in (("hub", self.hub), ("sim", self.sim)):
                if process is not None and process.poll() is not None:
                    _err.print(
                        f"[red]{name} exited ({process.returncode}); see {self._log(name)}[/]"
                    )
                    return 1
            time.sleep(0.5)

    def stop(self) -> None:
        """The simulator first (its agents stop their robots), then the hub."""
        for process in (self.sim, self.hub):
            if process is not None:
                stop_process(process, sig=signal.SIGINT, grace_s=20, group=True)


class Dispatcher:
    """Sends each patrolling robot along its lane every `every_s`, unless it is stopped."""

    def __init__(self, url: str, api_key: str, robots: int, every_s: float = 40.0) -> None:
        self._url, self._every = url, every_s
        self._headers = {"X-API-Key": api_key}
        self._lanes = {r.id: r.patrol for r in default_scenario(robots).robots if r.patrol}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)

    def start(self) -> None:
        """Dispatch in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop dispatching."""
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        with httpx.Client(base_url=f"{self._url}/api/v1", headers=self._headers, timeout=10) as api:
            while not self._stop.is_set():
                # The hub starting or stopping: try again next round.
                with contextlib.suppress(httpx.HTTPError):
                    self._dispatch(api)
                self._stop.wait(self._every)

    def _dispatch(self, api: httpx.Client) -> None:
        for device in api.get("/devices", params={"limit": 200}).json()["items"]:
            lane = self._lanes.get(device["name"])
            state = device.get("state") or {}
            engaged = bool((state.get("estop") or {}).get("engaged"))
            if lane and state.get("online") and not engaged:
                waypoints = [{"x": x, "y": y} for x, y in lane]
                body = {"waypoints": waypoints, "speed": 0.8, "timeout_s": 120}
                api.post(f"/devices/{device['id']}/path", json=body)


def _detector_text(detector: Path | None, registered: bool) -> str:
    if detector is None:
        return "no detector: cameras only"
    where = ", in the hub's registry" if registered else ""
    return f"detector {detector.parent.name}/{detector.name}{where}"


def _fail(message: str) -> NoReturn:
    _err.print(f"[bold red]{escape(message)}[/]")
    raise typer.Exit(2)


def demo(
    robots: Annotated[int, typer.Option("--robots", min=1, max=36, help="Simulated robots.")] = 3,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Print the URL; do not open a browser.")
    ] = False,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="API/dashboard port (busy: any free).")
    ] = 8080,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Where everything lives (default: a new temp dir)."),
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="ONNX detector for the agents.")
    ] = None,
) -> None:
    """Embedded hub, simulated fleet and dashboard on this machine (Ctrl-C stops it all)."""
    root = workdir or Path(tempfile.mkdtemp(prefix="outpost-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    detector = model or shipped_model()
    if detector is not None and not detector.is_file():
        _fail(f"--model {detector}: no such file")
    run = Demo(root, port=port, robots=robots, model=detector)
    interrupted = False

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    # Started from a background job of a script, this process inherits SIGINT *ignored*
    # (POSIX shells do that), and so would the hub and the simulator: Ctrl-C or `kill -INT`
    # would then stop nothing. A handler (unlike "ignore") is reset for the children.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    dispatcher: Dispatcher | None = None
    try:
        with _out.status("starting the hub…"):
            run.start_hub()
            key = run.set_up()
            registered = run.register_model(key)
        with _out.status(f"starting {robots} simulated robots with real agents…"):
            run.start_sim(key)
        dispatcher = Dispatcher(run.url, key, robots, every_s=20.0)
        dispatcher.start()
        _out.print(
            Panel.fit(
                f"Dashboard: [bold]{run.url}/[/]\n"
                f"Log in as [bold]{ADMIN}[/] with the one-time password "
                f"[bold]{escape(run.password)}[/]\n"
                f"{robots} robot(s) enrolling into site {SITE} "
                f"({_detector_text(detector, registered)})\n"
                f"Logs and data: {root}\nCtrl-C stops everything.",
                title="Outpost demo",
            )
        )
        if not no_browser:
            webbrowser.open(f"{run.url}/")
        code = run.wait()
    except KeyboardInterrupt:
        interrupted = True
    except DemoError as exc:
        _err.print(f"[bold red]{escape(str(exc))}[/]")
        code = 2
    finally:
        with _out.status("stopping…"):
            if dispatcher is not None:
                dispatcher.close()
            run.stop()
    if interrupted:
        _out.print("stopped.")
    raise typer.Exit(code)
