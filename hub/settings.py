"""The hub's settings: a TOML file (`--config`), overridden by `OUTPOST_HUB_*` variables.

With no file at all the hub runs in the embedded default: SQLite in the data
directory, the in-process bus, and an MQTT broker inside the hub process. A scaled
deployment points `[database]`, `[bus]` and `[broker]` at PostgreSQL, Kafka and
Mosquitto.

Example:
    >>> s = HubSettings()
    >>> s.bus.kind, s.broker.kind, s.database.url.startswith("sqlite+aiosqlite:///")
    ('memory', 'embedded', True)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from hub.errors import HubConfigError
from protocol.models import MAX_MESSAGE_BYTES
from protocol.settings import EnvOverFileSettings, describe_settings_error

ENV_PREFIX = "OUTPOST_HUB_"
DOCS = "docs/platform-engineer.md"

Seconds = Annotated[float, Field(gt=0, le=86_400)]


def default_data_dir() -> Path:
    """`/var/lib/outpost-hub` for root, `~/.local/share/outpost-hub` otherwise."""
    if os.geteuid() == 0:
        return Path("/var/lib/outpost-hub")
    return Path.home() / ".local" / "share" / "outpost-hub"


class Section(BaseModel):
    """A settings section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSection(Section):
    """SQLite (embedded) or PostgreSQL (`postgresql+asyncpg://…`)."""

    url: str = ""
    schema_name: str = Field("", alias="schema")


class BusSection(Section):
    """In-process bus (embedded) or Kafka."""

    kind: Literal["memory", "kafka"] = "memory"
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    partitions: Annotated[int, Field(ge=1, le=1024)] | None = None
    """Partitions per topic; default 1 for the in-process bus, 6 for Kafka."""
    replication_factor: Annotated[int, Field(ge=1, le=16)] = 1
    timeout_s: Seconds = 10.0


class BrokerSection(Section):
    """The MQTT broker: `embedded` runs one inside the hub; `external` is Mosquitto or EMQX."""

    kind: Literal["embedded", "external"] = "embedded"
    url: str = "mqtt://127.0.0.1:1883"
    username: str = "outpost-hub"
    password: str = ""
    public_url: str = ""
    """The broker URL enrollment gives devices (`mqtt://hub.example.com:1883`); empty: the
    embedded broker's own address, or, when it listens everywhere, the host the
    device reached the API at."""
    provisioning: Literal["none", "dynsec"] = "none"
    """How enrollment gives a device its login in an external broker: `dynsec` through
    Mosquitto's dynamic-security plugin (the hub logs in as its admin client); `none`
    refuses enrollment (501) and leaves logins to you. The embedded broker needs none."""
    provision_timeout_s: Seconds = 5.0


class IngestSection(Section):
    """MQTT → bus."""

    routing: Literal["sessions", "shared"] = "sessions"
    """External broker only. `sessions`: one persistent MQTT session per uplink channel,
    spread over the ingest processes by the bus; a device's messages on a channel go
    through one process at a time, in order, also across a crash. `shared`: an MQTT 5
    shared subscription deals every message to any process; more than one process's worth
    of a single channel, but a device's order across processes is lost."""
    shared_group: str = "outpost-ingest"
    """The ingest processes' group: MQTT client-id prefix and bus group (`sessions`), or
    the shared subscription's name (`shared`)."""
    session_expiry_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 86400.0
    """`sessions`: how long the broker keeps a session's queued messages while no ingest
    process holds it (agents re-send anything older)."""
    batch_max: Annotated[int, Field(ge=1, le=100_000)] = 500
    batch_wait_s: Seconds = 0.005
    max_payload_bytes: Annotated[int, Field(ge=1024, le=256 << 20)] = MAX_MESSAGE_BYTES
    inference_frames_per_s: Annotated[float, Field(gt=0, le=1000)] = 5.0
    """Frames a second one thin device may send for gateway detection (more are refused)."""
    inference_frames_burst: Annotated[int, Field(ge=1, le=10_000)] = 10
    """Frames one thin device may send at once above that rate."""


class WorkerSection(Section):
    """Bus → database, watermarks, rollups, retention."""

    group: str = "outpost-writers"
    batch_max: Annotated[int, Field(ge=1, le=100_000)] = 2000
    rollup_interval_s: Seconds = 60.0
    retention_interval_s: Seconds = 3600.0


class RetentionSection(Section):
    """How long data is kept; raw telemetry can be archived before deletion."""

    raw_days: Annotated[float, Field(gt=0)] = 30
    rollup_days: Annotated[float, Field(gt=0)] = 400
    events_days: Annotated[float, Field(gt=0)] = 400
    frames_days: Annotated[float, Field(gt=0)] = 7
    """Rule-hit snapshots and captured frames (JPEGs in the database)."""
    archive_dir: str = ""


class AuthSection(Section):
    """API login: JWT lifetimes and signing secret, login rate limit.

    An empty `jwt_secret` means: generate one on first start and keep it in
    `DATA_DIR/jwt-secret` (mode 0600). Several API processes must share it: set it
    here (or `OUTPOST_HUB_AUTH__JWT_SECRET`) or give them the same data directory.
    A secret shorter than 32 bytes is refused when the API starts (not echoed back).
    """

    jwt_secret: str = Field("", repr=False)
    issuer: str = "outpost-hub"
    audience: str = "outpost-api"
    access_ttl_s: Annotated[int, Field(ge=30, le=86_400)] = 900
    refresh_ttl_s: Annotated[int, Field(ge=300, le=90 * 86_400)] = 14 * 86_400
    login_max_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    login_window_s: Annotated[int, Field(ge=1, le=86_400)] = 60


class ControlSection(Section):
    """Commands: how long each stays valid, and how long a publish may take.

    A stop stays valid longer than other commands: the agent honours a validly signed
    stop even late (stopping is always safe), and an external broker keeps it for a
    device that is offline for up to `estop_ttl_s` (MQTT 5 message expiry).
    """

    estop_ttl_s: Annotated[int, Field(ge=1, le=86_400)] = 600
    command_ttl_s: Annotated[int, Field(ge=1, le=3600)] = 30
    """Release, override and path commands: refused by the agent once this old."""
    publish_timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    """Until the broker confirms (PUBACK); past it the command is `publish_failed` (503)."""


class RegistrySection(Section):
    """`[registry]`: where model artifacts live, upload limits, how rollouts are judged.

    Artifacts are kept on local disk only (an S3-compatible store is not built yet).
    """

    artifact_dir: str = ""
    """Empty: `DATA_DIR/models`."""
    max_upload_bytes: Annotated[int, Field(ge=1024, le=4 << 30)] = 512 << 20
    canary_health_s: Annotated[float, Field(ge=0, le=7 * 86_400)] = 60.0
    """How long every canary device must run the model, unrejected, before promotion."""
    latency_factor: Annotated[float, Field(ge=1.0, le=100.0)] = 1.5
    """Roll back when canary inference latency exceeds this times the previous model's."""
    check_interval_s: Seconds = 2.0
    """How often the API process checks the rollouts in progress."""


class DriftSection(Section):
    """The drift worker: PSI of each device's drift windows against its model's baseline."""

    group: str = "outpost-drift"
    grace_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    """How long a window's points may keep arriving (an agent may split one window over
    several telemetry batches) before its scores are computed."""
    reference_windows: Annotated[int, Field(ge=1, le=1000)] = 5
    """Windows a device camera's own reference is learned from before `drift.psi` starts."""


class AlertsSection(Section):
    """Alert evaluation (a worker-role consumer group) and notifications.

    Email is sent only when `smtp_host` is set; webhooks are signed with each
    channel's own secret and retried `webhook_retries` times with capped backoff.
    """

    group: str = "outpost-alerts"
    evaluation_interval_s: Seconds = 5.0
    """How often device liveness is checked (the `device_offline` rules)."""
    offline_after_s: Seconds = 60.0
    """Default of `device_offline` rules that do not set `after_s`."""
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    webhook_retries: Annotated[int, Field(ge=0, le=20)] = 5
    retry_initial_s: Seconds = 1.0
    retry_max_s: Seconds = 60.0
    smtp_host: str = ""
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_from: str = "outpost-hub@localhost"
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = Field("", repr=False)
    smtp_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class MetricsSection(Section):
    """Prometheus metrics of this process on `http://HOST:PORT/metrics`; port 0: none."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 0


class HubSettings(EnvOverFileSettings):
    """Everything the hub reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    data_dir: Path = Field(default_factory=default_data_dir)
    database: DatabaseSection = DatabaseSection()
    bus: BusSection = BusSection()
    broker: BrokerSection = BrokerSection()
    ingest: IngestSection = IngestSection()
    worker: WorkerSection = WorkerSection()
    retention: RetentionSection = RetentionSection()
    auth: AuthSection = AuthSection()
    control: ControlSection = ControlSection()
    metrics: MetricsSection = MetricsSection()
    alerts: AlertsSection = AlertsSection()
    drift: DriftSection = DriftSection()
    registry: RegistrySection = RegistrySection()

    @model_validator(mode="after")
    def _default_database(self) -> HubSettings:
        if not self.database.url:
            url = f"sqlite+aiosqlite:///{self.data_dir / 'hub.db'}"
            object.__setattr__(self, "database", DatabaseSection(url=url))
        return self


def load_hub_settings(path: Path | None) -> HubSettings:
    """Read and validate the settings (defaults when `path` is None)."""
    data: dict[str, Any] = {}
    source = "(defaults and OUTPOST_HUB_* variables)"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HubConfigError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise HubConfigError(f"{path}: cannot read it as TOML: {exc}") from exc
    try:
        return HubSettings(**data)
    except ValidationError as exc:
        raise HubConfigError(describe_settings_error(exc, source, docs=DOCS)) from None
