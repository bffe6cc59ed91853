"""Robot adapters: how the agent tells a robot to stop, drive and follow a path."""

from edge_agent.robot.base import NoRobot, RobotAdapter, RobotUnavailable

__all__ = ["NoRobot", "RobotAdapter", "RobotUnavailable"]
