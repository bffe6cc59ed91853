"""`edge-agent install` / `uninstall` end to end against a real enrollment endpoint."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from edge_agent.cli import app
from edge_agent.config import load_settings
from edge_agent.enroll import TOKEN_GONE, TOKEN_UNKNOWN
from edge_agent.identity import load_key, public_text
from edge_agent.systemd import RUNTIME_DIR_ENV, SYSTEMCTL_ENV
from tests.edge_agent.enroll_responder import EnrollResponder, free_port

runner = CliRunner()


class Box:
    """The paths of one robot, all under a temporary directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "etc" / "outpost" / "agent.toml"
        self.data = root / "var" / "lib" / "outpost"
        self.units = root / "units"
        self.systemd_runtime = root / "run" / "systemd" / "system"
        self.calls = root / "systemctl.calls"
        self.systemctl = root / "systemctl"

    @property
    def key(self) -> Path:
        return self.data / "device.key"

    def paths(self) -> list[str]:
        return ["--config", str(self.config), "--data-dir", str(self.data)]

    def fake_systemd(self, *, running: bool = True, fail: str = "") -> dict[str, str]:
        """A recording `systemctl` (fails on `fail` if given) and the env that selects it."""
        failing = (
            f'case "$*" in "{fail}") echo "unit is masked" >&2; exit 1;; esac\n' if fail else ""
        )
        self.systemctl.write_text(
            f'#!/bin/sh\n{failing}echo "$*" >> "{self.calls}"\n', encoding="utf-8"
        )
        self.systemctl.chmod(0o755)
        if running:
            self.systemd_runtime.mkdir(parents=True, exist_ok=True)
        return {SYSTEMCTL_ENV: str(self.systemctl), RUNTIME_DIR_ENV: str(self.systemd_runtime)}

    def systemctl_calls(self) -> list[str]:
        if not self.calls.exists():
            return []
        return self.calls.read_text(encoding="utf-8").splitlines()

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p != self.systemctl)


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def install(
    hub: EnrollResponder | str, token: str, box: Box, *extra: str, env: dict[str, str] | None = None
) -> Result:
    url = hub if isinstance(hub, str) else hub.url
    args = ["install", "--hub", url, "--token", token, "--name", "AMR 7", *box.paths(), *extra]
    return runner.invoke(app, args, env=env)


def install_no_service(hub: EnrollResponder | str, token: str, box: Box, *extra: str) -> Result:
    return install(hub, token, box, "--no-service", *extra)


# --- install -----------------------------------------------------------------------------


def test_install_creates_a_private_identity_and_a_config_that_loads(
    enroll_responder: EnrollResponder, box: Box
) -> None:
    result = install_no_service(enroll_responder, enroll_responder.issue_token(), box)

    assert result.exit_code == 0, result.output
    assert "Installed as amr-7" in result.stdout
    assert result.stdout.count("✓") == 5  # data dir, config dir, key, enroll, config
    assert mode(box.data) == 0o700
    assert mode(box.key) == 0o600
    assert mode(box.config) == 0o600
    settings = load_settings(box.config)
    assert settings.device.id == "amr-7"
    assert settings.device.name == "AMR 7"
    assert settings.device.data_dir == box.data
    assert settings.hub.url == enroll_responder.url
    assert settings.hub.public_key == enroll_responder.hub_public_key
    assert settings.mqtt.url == enroll_responder.mqtt_url
    assert (settings.mqtt.username, settings.mqtt.password) == ("amr-7", "broker-secret")
    (enrolled,) = enroll_responder.enrollments
    assert enrolled.request.public_key == public_text(load_key(box.key))


def test_second_install_is_a_no_op_that_does_not_spend_a_token(
    enroll_responder: EnrollResponder, box: Box
) -> None:
    token = enroll_responder.issue_token()
    assert install_no_service(enroll_responder, token, box).exit_code == 0
    config_before, key_before = box.config.read_bytes(), box.key.read_bytes()

    again = install_no_service(enroll_responder, token, box)

    assert again.exit_code == 0, again.output
    assert "already installed as amr-7" in again.stdout
    assert enroll_responder.attempts == 1
    assert (box.config.read_bytes(), box.key.read_bytes()) == (config_before, key_before)


def test_a_used_token_is_refused_in_plain_words(
    enroll_responder: EnrollResponder, tmp_path: Path
) -> None:
    token = enroll_responder.issue_token()
    assert install_no_service(enroll_responder, token, Box(tmp_path / "first")).exit_code == 0
    second = Box(tmp_path / "second")

    result = install_no_service(enroll_responder, token, second)

    assert result.exit_code == 1
    assert TOKEN_GONE in result.stderr
    assert "outpost hub token create" in result.stderr
    assert "✗ enroll at" in result.stdout
    assert not second.config.exists()


def test_an_expired_token_is_refused_in_plain_words(
    enroll_responder: EnrollResponder, box: Box
) -> None:
    result = install_no_service(enroll_responder, enroll_responder.issue_token(ttl_s=0), box)

    assert result.exit_code == 1
    assert "enrollment token already used or expired" in result.stderr
    assert not box.config.exists()


def test_an_unknown_token_is_refused(enroll_responder: EnrollResponder, box: Box) -> None:
    result = install_no_service(enroll_responder, "not-a-token", box)

    assert result.exit_code == 1
    assert TOKEN_UNKNOWN in result.stderr


def test_an_unreachable_hub_is_named(box: Box) -> None:
    hub = f"http://127.0.0.1:{free_port()}"

    result = install_no_service(hub, "t", box, "--timeout", "2")

    assert result.exit_code == 1
    assert f"cannot reach the hub at {hub}" in result.stderr
    assert not box.config.exists()


def test_a_malformed_hub_url_is_refused_before_anything_changes(box: Box) -> None:
    result = install_no_service("hub.example.com", "t", box)

    assert result.exit_code == 1
    assert "must look like https://" in result.stderr
    assert box.files() == []


def test_dry_run_prints_the_plan_and_changes_nothing(
    enroll_responder: EnrollResponder, box: Box
) -> None:
    env = box.fake_systemd()
    result = install(
        enroll_responder,
        enroll_responder.issue_token(),
        box,
        "--dry-run",
        "--unit-dir",
        str(box.units),
        env=env,
    )

    assert result.exit_code == 0, result.output
    assert "Dry run: nothing was changed" in result.stdout
    for words in (
        f"create data directory {box.data} (mode 0700)",
        f"device key {box.key}",
        f"enroll at {enroll_responder.url}",
        f"write config {box.config} (mode 0600",
        f"write systemd unit {box.units / 'outpost-agent.service'}",
        f"{box.systemctl} daemon-reload",
        f"{box.systemctl} enable --now outpost-agent",
    ):
        assert words in result.stdout
    assert [p for p in box.files() if p.is_file()] == []
    assert not box.data.exists()
    assert enroll_responder.attempts == 0


def test_another_hub_needs_force(enroll_responder: EnrollResponder, box: Box) -> None:
    assert install_no_service(enroll_responder, enroll_responder.issue_token(), box).exit_code == 0
    other = f"http://127.0.0.1:{free_port()}"

    refused = install_no_service(other, "t", box)

    assert refused.exit_code == 1
    assert f"for the hub {enroll_responder.url}, not {other}" in refused.stderr
    assert "--force" in refused.stderr
    assert load_settings(box.config).hub.url == enroll_responder.url


def test_force_enrolls_again_with_the_same_key(enroll_responder: EnrollResponder, box: Box) -> None:
    assert install_no_service(enroll_responder, enroll_responder.issue_token(), box).exit_code == 0
    key_before = box.key.read_bytes()

    again = install_no_service(enroll_responder, enroll_responder.issue_token(), box, "--force")

    assert again.exit_code == 0, again.output
    assert enroll_responder.attempts == 2
    assert box.key.read_bytes() == key_before
    assert load_settings(box.config).device.id == "amr-7-2"


def test_a_key_others_can_read_is_refused(enroll_responder: EnrollResponder, box: Box) -> None:
    assert install_no_service(enroll_responder, enroll_responder.issue_token(), box).exit_code == 0
    box.key.chmod(0o644)

    result = install_no_service(enroll_responder, "t", box)

    assert result.exit_code == 1
    assert "accessible by group or others (mode 0644)" in result.stderr
    assert f"chmod 600 {box.key}" in result.stderr


# --- the service -------------------------------------------------------------------------


def test_service_unit_is_written_and_enabled(enroll_responder: EnrollResponder, box: Box) -> None:
    env = box.fake_systemd()

    result = install(
        enroll_responder, enroll_responder.issue_token(), box, "--unit-dir", str(box.units), env=env
    )

    assert result.exit_code == 0, result.output
    unit = (box.units / "outpost-agent.service").read_text(encoding="utf-8")
    executable = Path(sys.executable).parent / "edge-agent"
    assert f"\nExecStart={executable} run --config {box.config}\n" in unit
    assert f"\nReadWritePaths={box.data}\n" in unit
    assert "\nRestart=always\n" in unit
    assert not re.search(r"@[A-Z_]+@", unit.split("[Unit]")[1])  # every placeholder filled
    assert "@EDGE_AGENT@" in unit  # the header comment still explains the template
    assert mode(box.units / "outpost-agent.service") == 0o644
    assert box.systemctl_calls() == ["daemon-reload", "enable --now outpost-agent"]


def test_unit_dir_comes_from_the_environment(enroll_responder: EnrollResponder, box: Box) -> None:
    env = {**box.fake_systemd(), "OUTPOST_AGENT_UNIT_DIR": str(box.units)}

    result = install(enroll_responder, enroll_responder.issue_token(), box, env=env)

    assert result.exit_code == 0, result.output
    assert (box.units / "outpost-agent.service").is_file()


def test_without_systemd_the_unit_is_written_and_the_way_to_start_is_said(
    enroll_responder: EnrollResponder, box: Box
) -> None:
    env = box.fake_systemd(running=False)

    result = install(
        enroll_responder, enroll_responder.issue_token(), box, "--unit-dir", str(box.units), env=env
    )

    assert result.exit_code == 0, result.output
    unit_path = box.units / "outpost-agent.service"
    assert unit_path.is_file()
    assert box.systemctl_calls() == []
    assert (
        f"systemd is not running here: unit written to {unit_path}; "
        f"start the agent with `edge-agent run --config {box.config}`"
    ) in result.stdout


def test_a_failing_systemctl_is_reported_and_a_rerun_finishes_the_job(
    enroll_responder: EnrollResponder, box: Box
) -> None:
    token = enroll_responder.issue_token()
    env = box.fake_systemd(fail="enable --now outpost-agent")
    units = ["--unit-dir", str(box.units)]

    failed = install(enroll_responder, token, box, *units, env=env)

    assert failed.exit_code == 1
    assert "✗ run `" in failed.stdout
    assert "unit is masked" in failed.stderr
    env = box.fake_systemd()
    fixed = install(enroll_responder, token, box, *units, env=env)
    assert fixed.exit_code == 0, fixed.output
    assert "already installed as amr-7" in fixed.stdout
    assert box.systemctl_calls()[-2:] == ["daemon-reload", "enable --now outpost-agent"]
    assert enroll_responder.attempts == 1


# --- uninstall ---------------------------------------------------------------------------


def installed_with_service(responder: EnrollResponder, box: Box) -> dict[str, str]:
    env = box.fake_systemd()
    units = ["--unit-dir", str(box.units)]
    result = install(responder, responder.issue_token(), box, *units, env=env)
    assert result.exit_code == 0, result.output
    (box.data / "outbox.db").write_bytes(b"unsent rows")
    return env


def uninstall(box: Box, *extra: str, env: dict[str, str]) -> Result:
    args = ["uninstall", "--config", str(box.config), "--unit-dir", str(box.units), *extra]
    return runner.invoke(app, args, env=env)


def test_uninstall_reverses_the_install(enroll_responder: EnrollResponder, box: Box) -> None:
    env = installed_with_service(enroll_responder, box)

    result = uninstall(box, env=env)

    assert result.exit_code == 0, result.output
    assert not (box.units / "outpost-agent.service").exists()
    assert not box.config.exists()
    assert not box.data.exists()
    assert box.systemctl_calls()[2:] == ["disable --now outpost-agent", "daemon-reload"]


def test_uninstall_keep_data_keeps_the_outbox_but_not_the_key(
    enroll_responder: EnrollResponder, box: Box
) -> None:
    env = installed_with_service(enroll_responder, box)

    result = uninstall(box, "--keep-data", env=env)

    assert result.exit_code == 0, result.output
    assert (box.data / "outbox.db").read_bytes() == b"unsent rows"
    assert not box.key.exists()
    assert not box.config.exists()


def test_uninstall_dry_run_changes_nothing(enroll_responder: EnrollResponder, box: Box) -> None:
    env = installed_with_service(enroll_responder, box)
    before = box.files()

    result = uninstall(box, "--dry-run", env=env)

    assert result.exit_code == 0, result.output
    assert f"remove data directory {box.data}" in result.stdout
    assert box.files() == before
    assert len(box.systemctl_calls()) == 2


def test_uninstall_when_nothing_is_installed_says_so(box: Box) -> None:
    result = uninstall(box, env=box.fake_systemd())

    assert result.exit_code == 0, result.output
    assert "nothing to uninstall" in result.stdout


def test_reinstall_after_uninstall_enrolls_a_new_identity(
    enroll_responder: EnrollResponder, box: Box
) -> None:
    env = installed_with_service(enroll_responder, box)
    first_key = box.key.read_bytes()
    assert uninstall(box, env=env).exit_code == 0

    result = install_no_service(enroll_responder, enroll_responder.issue_token(), box)

    assert result.exit_code == 0, result.output
    assert box.key.read_bytes() != first_key


def test_deploy_unit_is_a_relative_link_to_the_packaged_one() -> None:
    root = Path(__file__).resolve().parents[2]
    link = root / "deploy" / "systemd" / "outpost-agent.service"
    assert link.is_symlink()
    assert not os.readlink(link).startswith("/")
    assert link.resolve() == root / "edge_agent" / "service" / "outpost-agent.service"
