"""The agent's settings: a TOML file, overridden by `OUTPOST_AGENT_*` variables.

Validated once at start-up and passed down; nothing reads settings at import
time. A bad file is one `ConfigError` naming the file, the key and what is
allowed; the CLI turns it into exit status 2.

Example:
    >>> s = AgentSettings.model_validate({"device": {"id": "amr-7"}})
    >>> s.outbox.synchronous, s.uplink.resend_timeout_s
    ('NORMAL', 30.0)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import aiomqtt
from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from edge_agent.errors import ConfigError
from edge_agent.perception.camera_config import CameraList
from edge_agent.perception.detect_api import DetectApiSection
from edge_agent.perception.gateway import GatewaySection
from edge_agent.perception.model_config import ModelSection
from edge_agent.perception.pipeline import PerceptionSection
from edge_agent.sections import PositiveSeconds, Section
from protocol.settings import EnvOverFileSettings, describe_settings_error
from protocol.topics import DEVICE_ID_PATTERN

ENV_PREFIX = "OUTPOST_AGENT_"
SYSTEM_CONFIG = Path("/etc/outpost/agent.toml")
SYSTEM_DATA_DIR = Path("/var/lib/outpost")


def default_config_path() -> Path:
    """`/etc/outpost/agent.toml` for root, `~/.config/outpost/agent.toml` otherwise."""
    if os.geteuid() == 0:
        return SYSTEM_CONFIG
    return Path.home() / ".config" / "outpost" / "agent.toml"


def default_data_dir() -> Path:
    """`/var/lib/outpost` for root, `~/.local/share/outpost` otherwise."""
    if os.geteuid() == 0:
        return SYSTEM_DATA_DIR
    return Path.home() / ".local" / "share" / "outpost"


class DeviceSection(Section):
    """Who this device is and where it keeps its state."""

    id: Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
    name: str = ""
    data_dir: Path = Field(default_factory=default_data_dir)

    @property
    def key_path(self) -> Path:
        """The device's Ed25519 private key (mode 0600)."""
        return self.data_dir / "device.key"

    @property
    def outbox_path(self) -> Path:
        """The SQLite outbox."""
        return self.data_dir / "outbox.db"

    @property
    def status_path(self) -> Path:
        """Where the running agent publishes its live status for `edge-agent status`."""
        return self.data_dir / "status.json"


class HubSection(Section):
    """The hub this device enrolled with."""

    url: str = ""
    public_key: str = ""


class MqttSection(Section):
    """The broker the agent publishes to (`mqtts://` for TLS)."""

    url: Annotated[str, StringConstraints(pattern=r"^mqtts?://[^/\s]+(:\d+)?/?$")] = (
        "mqtt://127.0.0.1:1883"
    )
    username: str = ""
    password: str = ""
    protocol: Literal["5", "3.1.1"] = "5"
    """MQTT 5 for Mosquitto and EMQX; "3.1.1" for a hub's embedded broker (enrollment says)."""
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    session_expiry_s: Annotated[int, Field(ge=0, le=604_800)] = 3600
    connect_timeout_s: PositiveSeconds = 10.0
    ca_file: str = ""
    """PEM file of the CA that signed the broker's certificate (`mqtts://` with a private
    CA); empty: the system's trusted CAs."""

    @field_validator("ca_file")
    @classmethod
    def _readable_ca(cls, value: str) -> str:
        if value and not Path(value).is_file():
            raise ValueError(f"no such file: {value} (a PEM CA certificate)")
        return value

    def tls(self) -> aiomqtt.TLSParameters | None:
        """TLS settings for `mqtts://` URLs (certificate and host name checked), else None.

        Example:
            >>> MqttSection(url="mqtt://b:1883").tls() is None
            True
        """
        if not self.url.startswith("mqtts://"):
            return None
        return aiomqtt.TLSParameters(ca_certs=self.ca_file or None)


class OutboxSection(Section):
    """The SQLite store-and-forward buffer.

    `synchronous = "NORMAL"` (WAL) survives a crash of the agent with no loss and may
    lose the last transactions on power loss; `"FULL"` survives power loss too, at a
    lower write rate.
    """

    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    cap_mb: Annotated[float, Field(gt=0, le=1_000_000)] = 256.0
    downsample_at: Annotated[float, Field(gt=0, le=1)] = 0.8


class UplinkSection(Section):
    """How the outbox is forwarded to the hub."""

    max_inflight: Annotated[int, Field(ge=1, le=10_000)] = 100
    batch_messages: Annotated[int, Field(ge=1, le=10_000)] = 200
    resend_timeout_s: PositiveSeconds = 30.0
    resend_timeout_max_s: PositiveSeconds | None = None
    """Re-sends that bring no watermark progress double the timeout, up to this (None: no
    backoff). Backing off spares a slow hub, but delays filling a gap left by an outage."""
    resend_window: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    """Rows one round of re-sends publishes at most, the lowest seqs first (the gap the
    watermark waits on)."""
    drain_rate: Annotated[float, Field(gt=0, le=1_000_000)] = 500.0
    live_window_s: PositiveSeconds = 5.0
    backoff_initial_s: PositiveSeconds = 0.5
    backoff_max_s: PositiveSeconds = 30.0
    state_interval_s: PositiveSeconds = 10.0
    poll_interval_s: PositiveSeconds = 0.05


class HostSource(Section):
    """CPU, memory, disk and temperatures of this machine."""

    type: Literal["host"] = "host"
    interval_s: PositiveSeconds = 5.0


class OutboxSource(Section):
    """Depth, size, age and drops of the outbox."""

    type: Literal["outbox"] = "outbox"
    interval_s: PositiveSeconds = 10.0


class SyntheticSource(Section):
    """A counter at a fixed rate, for commissioning a link and for tests."""

    type: Literal["synthetic"] = "synthetic"
    rate_hz: Annotated[float, Field(gt=0, le=100_000)] = 10.0
    metric: str = "synthetic.counter"
    limit: Annotated[int, Field(ge=0)] = 0
    """Stop after this many points (0: never)."""


SourceConfig = Annotated[HostSource | OutboxSource | SyntheticSource, Field(discriminator="type")]


def _default_sources() -> list[HostSource | OutboxSource | SyntheticSource]:
    return [HostSource(), OutboxSource()]


class TelemetrySection(Section):
    """Telemetry sources and how their points are batched into messages."""

    batch_points: Annotated[int, Field(ge=1, le=5000)] = 500
    batch_delay_s: PositiveSeconds = 1.0
    sources: list[SourceConfig] = Field(default_factory=_default_sources)


class SafetySection(Section):
    """The safety supervisor's watchdogs."""

    link_timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    heartbeat_timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    control_period_s: Annotated[float, Field(ge=0.005, le=1)] = 0.05
    hardware_input: Path | None = None
    """A file whose content is `hardware_active` while a hardware stop input is asserted
    (a sysfs GPIO `value` file, say); unreadable counts as asserted. None: no input."""
    hardware_active: Annotated[str, StringConstraints(min_length=1, max_length=16)] = "1"


RosTopic = Annotated[str, StringConstraints(pattern=r"^[A-Za-z~][A-Za-z0-9_/]*$", max_length=200)]


class RosSection(Section):
    """The ROS 2 robot (`[robot] adapter = "ros"`): topic names, relative to `namespace`."""

    namespace: Annotated[str, StringConstraints(pattern=r"^(/[A-Za-z][A-Za-z0-9_]*)*/?$")] = ""
    """ROS namespace of the robot's topics, such as `/amr7` (empty: the root)."""
    domain_id: Annotated[int, Field(ge=0, le=232)] | None = None
    """ROS_DOMAIN_ID to join; None: the environment's (0 when unset)."""
    cmd_vel: RosTopic = "cmd_vel"
    """`geometry_msgs/Twist` the agent publishes (a zero Twist on stop)."""
    path: RosTopic = "plan"
    """`nav_msgs/Path` the agent publishes for a path plan."""
    odom: RosTopic = "odom"
    """`nav_msgs/Odometry` from the robot: pose, velocity, and the heartbeat."""
    battery: RosTopic = "battery_state"
    """`sensor_msgs/BatteryState` from the robot."""
    estop: RosTopic | Literal[""] = ""
    """`std_msgs/Bool` hardware e-stop state (true: pressed); empty: none. Until it is
    first heard it counts as pressed."""
    frame_id: RosTopic = "map"
    """The frame of the path's poses."""


class RobotSection(Section):
    """Which robot this agent drives, and how to reach it."""

    adapter: Literal["none", "mqtt", "websocket", "ros"] = "none"
    """`none`: a gateway or camera box (motion fails); `mqtt`/`websocket`: JSON to the robot;
    `ros`: ROS 2 topics (needs the `ros` extra)."""
    url: Annotated[str, StringConstraints(pattern=r"^(mqtts?|wss?)://[^\s]+$")] = (
        "mqtt://127.0.0.1:1883"
    )
    """mqtt://HOST:PORT for `mqtt`; ws://HOST:PORT/PATH (or wss://) for `websocket`."""
    username: str = ""
    password: str = ""
    topic_prefix: str = ""
    """Default `robot/{device id}`: PREFIX/cmd_vel, path, stop, odom, battery, faults."""
    stop_repeat_hz: Annotated[float, Field(ge=0, le=100)] = 5.0
    """While stopped, the zero velocity is sent again at this rate (0: once); the ROS 2
    adapter also repeats the drive at this rate while moving (base controllers time out)."""
    ros: RosSection = RosSection()

    @model_validator(mode="after")
    def _url_fits_adapter(self) -> RobotSection:
        schemes = {"mqtt": ("mqtt://", "mqtts://"), "websocket": ("ws://", "wss://")}
        wanted = schemes.get(self.adapter)
        if wanted and not self.url.startswith(wanted):
            raise ValueError(
                f"url {self.url!r} does not suit adapter {self.adapter!r}: "
                f"use {' or '.join(w + 'HOST:PORT' for w in wanted)}"
            )
        return self


class MetricsSection(Section):
    """Prometheus metrics on a local port (0 disables)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9108


class AgentSettings(EnvOverFileSettings):
    """Everything the agent reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    device: DeviceSection
    hub: HubSection = HubSection()
    mqtt: MqttSection = MqttSection()
    outbox: OutboxSection = OutboxSection()
    uplink: UplinkSection = UplinkSection()
    telemetry: TelemetrySection = TelemetrySection()
    safety: SafetySection = SafetySection()
    robot: RobotSection = RobotSection()
    cameras: CameraList = Field(default_factory=list)
    perception: PerceptionSection = PerceptionSection()
    model: ModelSection = ModelSection()
    metrics: MetricsSection = MetricsSection()
    detect_api: DetectApiSection = DetectApiSection()
    gateway: GatewaySection = GatewaySection()

    @model_validator(mode="after")
    def _ports_differ(self) -> AgentSettings:
        port = self.detect_api.port
        if port and port == self.metrics.port:
            raise ValueError(
                f"[detect_api] port {port} is [metrics] port too: give one of them another port"
            )
        return self

    @model_validator(mode="after")
    def _cameras_exist(self) -> AgentSettings:
        if self.gateway.enabled:  # zones and rules may name the cameras of its devices
            return self
        named = {c.name for c in self.cameras}
        unknown = sorted(self.perception.cameras - named)
        if unknown:
            have = ", ".join(sorted(named)) or "none configured"
            raise ValueError(
                f"perception zones or rules name camera(s) {', '.join(unknown)}, "
                f"which [[cameras]] does not define (cameras: {have})"
            )
        return self


def load_settings(path: Path | None = None) -> AgentSettings:
    """Read and validate the settings file; raise `ConfigError` naming file, key and allowed."""
    path = path or default_config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; run `edge-agent install` or pass --config"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return settings_from_dict(data, source=str(path))


def settings_from_dict(data: dict[str, Any], *, source: str) -> AgentSettings:
    """Validate already-parsed settings; errors name `source`."""
    try:
        return AgentSettings(**data)
    except ValidationError as exc:
        raise ConfigError(
            describe_settings_error(exc, source, docs="docs/field-technician.md")
        ) from None
