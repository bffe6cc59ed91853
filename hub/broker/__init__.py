"""The MQTT broker side of the hub: the embedded broker and who may do what on it."""
