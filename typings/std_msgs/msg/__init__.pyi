from builtin_interfaces.msg import Time

class Header:
    stamp: Time
    frame_id: str
    def __init__(self, *, stamp: Time = ..., frame_id: str = "") -> None: ...

class Bool:
    data: bool
    def __init__(self, *, data: bool = False) -> None: ...
