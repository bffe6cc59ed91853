"""The agent's eyes: camera sources, the ONNX detector, zones and local rules, drift
statistics and the model manager."""
