from geometry_msgs.msg import PoseStamped, PoseWithCovariance, TwistWithCovariance
from std_msgs.msg import Header

class Path:
    header: Header
    poses: list[PoseStamped]
    def __init__(self, *, header: Header = ..., poses: list[PoseStamped] = ...) -> None: ...

class Odometry:
    header: Header
    child_frame_id: str
    pose: PoseWithCovariance
    twist: TwistWithCovariance
    def __init__(self, *, header: Header = ..., child_frame_id: str = "") -> None: ...
