from std_msgs.msg import Header

class BatteryState:
    header: Header
    voltage: float
    percentage: float
    present: bool
    def __init__(
        self, *, header: Header = ..., voltage: float = ..., percentage: float = ...
    ) -> None: ...
