from std_msgs.msg import Header

class Vector3:
    x: float
    y: float
    z: float
    def __init__(self, *, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None: ...

class Point:
    x: float
    y: float
    z: float
    def __init__(self, *, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None: ...

class Quaternion:
    x: float
    y: float
    z: float
    w: float
    def __init__(
        self, *, x: float = 0.0, y: float = 0.0, z: float = 0.0, w: float = 1.0
    ) -> None: ...

class Pose:
    position: Point
    orientation: Quaternion
    def __init__(self, *, position: Point = ..., orientation: Quaternion = ...) -> None: ...

class PoseStamped:
    header: Header
    pose: Pose
    def __init__(self, *, header: Header = ..., pose: Pose = ...) -> None: ...

class PoseWithCovariance:
    pose: Pose

class Twist:
    linear: Vector3
    angular: Vector3
    def __init__(self, *, linear: Vector3 = ..., angular: Vector3 = ...) -> None: ...

class TwistWithCovariance:
    twist: Twist
