from typing import Generic, TypeVar

MsgT = TypeVar("MsgT")

class Publisher(Generic[MsgT]):
    def publish(self, msg: MsgT) -> None: ...
    def get_subscription_count(self) -> int: ...
