"""The Outpost training pipeline: datasets, YOLO training, signed ONNX models, drift."""
