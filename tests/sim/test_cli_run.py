"""`outpost sim run` and `outpost sim fault`: usage errors are one clear line and exit 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sim.cli import app

runner = CliRunner()


def test_run_without_a_way_to_enroll_says_what_to_pass(tmp_path: Path) -> None:
    done = runner.invoke(
        app,
        ["run", "--hub", "http://127.0.0.1:9", "--robots", "2", "--workdir", str(tmp_path)],
        env={"OUTPOST_API_KEY": ""},
    )
    assert done.exit_code == 2, done.output
    assert "one --token per robot, or --site and --api-key" in done.output


def test_run_refuses_more_robots_than_the_scenario_has(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: s\nsite: {width_m: 10, height_m: 10}\nrobots: [{id: r1, x: 1, y: 1}]\n"
    )
    done = runner.invoke(
        app, ["run", "--hub", "http://h", "--robots", "2", "--scenario", str(scenario)]
    )
    assert done.exit_code == 2
    assert "has 1 robots, --robots asks for 2" in done.output


def test_fault_checks_its_arguments_before_calling_the_run() -> None:
    done = runner.invoke(app, ["fault", "sensor_spike", "--robot", "r1"])
    assert done.exit_code == 2
    assert "needs metric, value" in done.output
    done = runner.invoke(app, ["fault", "meteor"])
    assert done.exit_code == 2
    assert "link_cut" in done.output
