from std_msgs.msg import Header

class BatteryState:
    header: Header
    voltage: float
    percentage: float
    present: bool
    def __init__(
        self, *, header: Header = ..., voltage: float = ..., percentage: float = ...
    ) -> None: ...

class Image:
    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes
    def __init__(
        self,
        *,
        header: Header = ...,
        height: int = 0,
        width: int = 0,
        encoding: str = "",
        is_bigendian: int = 0,
        step: int = 0,
        data: bytes = ...,
    ) -> None: ...
