from typing import Generic, TypeVar

MsgT = TypeVar("MsgT")

class Subscription(Generic[MsgT]): ...
