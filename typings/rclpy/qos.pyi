from enum import IntEnum

class ReliabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2

class DurabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2

class HistoryPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2

class QoSProfile:
    def __init__(
        self,
        *,
        depth: int = ...,
        history: HistoryPolicy = ...,
        reliability: ReliabilityPolicy = ...,
        durability: DurabilityPolicy = ...,
    ) -> None: ...

qos_profile_sensor_data: QoSProfile
