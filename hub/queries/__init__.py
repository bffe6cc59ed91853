"""Read-only queries of what devices sent: telemetry for charts, detections, events."""
