"""MQTT → bus: validate every uplink message, produce it keyed by device, then acknowledge it."""
