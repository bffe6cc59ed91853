from rclpy.time import Time

class Clock:
    def now(self) -> Time: ...
