"""The simulated robots' network faces: the robot side of the agent's MQTT and ROS 2 contracts."""
