"""The safety supervisor: it alone grants or withdraws the robot's motion permission."""

from edge_agent.safety.supervisor import (
    Decision,
    Drive,
    FollowPath,
    SafetyStore,
    SafetySupervisor,
    Stop,
)

__all__ = ["Decision", "Drive", "FollowPath", "SafetyStore", "SafetySupervisor", "Stop"]
