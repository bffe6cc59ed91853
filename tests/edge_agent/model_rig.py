"""Helpers for the model manager's tests: tiny ONNX detectors, hub-signed manifests and
assignments, and a real HTTP artifact server on loopback that checks Basic auth."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import ModelAssignment, ModelManifest, encode, generate_private_key, sign

HUB_KEY = generate_private_key()
OTHER_KEY = generate_private_key()
DEVICE = "amr-7"
USERNAME, PASSWORD = "amr-7", "device-secret"
CLASSES = ("person", "forklift")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def v8_output(rows: Sequence[Sequence[float]], anchors: int = 8) -> np.ndarray:
    """A YOLOv8 output `(1, 4 + nc, anchors)` with `rows` (cx, cy, w, h, scores...) first."""
    out = np.zeros((1, 4 + len(CLASSES), anchors), dtype=np.float32)
    for i, row in enumerate(rows):
        out[0, :, i] = row
    return out


def constant_model(
    path: Path,
    output: np.ndarray | None = None,
    *,
    names: Sequence[str] = CLASSES,
    imgsz: int = 160,
    tag: str = "",
) -> Path:
    """An ONNX detector whose output is `output` whatever the frame (a person by default).

    `tag` goes into the metadata, so two models can differ in their bytes only.
    """
    import onnx

    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    value = v8_output([[80, 80, 40, 60, 0.9, 0.1]]) if output is None else output
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["output0"], value=numpy_helper.from_array(value))],
        "constant",
        [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, (1, 3, imgsz, imgsz))],
        [helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, value.shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    names_text = repr(dict(enumerate(names)))
    metadata = {"names": names_text, "imgsz": f"[{imgsz}, {imgsz}]", "task": "detect"}
    if tag:
        metadata["tag"] = tag
    helper.set_model_props(model, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def manifest_for(
    data: bytes,
    *,
    url: str,
    name: str = "det",
    version: str = "1",
    classes: Sequence[str] = CLASSES,
    input_size: tuple[int, int] = (160, 160),
    key: Ed25519PrivateKey = HUB_KEY,
) -> ModelManifest:
    """A manifest describing `data`, signed by `key` (the hub's unless told otherwise)."""
    manifest = ModelManifest(
        name=name,
        version=version,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        url=url,
        input_size=input_size,
        classes=list(classes),
        baseline={"class_hist": [0.5, 0.5]},
        created_at=NOW,
    )
    return sign(manifest, key)


def assignment_for(
    manifest: ModelManifest, *, device: str = DEVICE, key: Ed25519PrivateKey = HUB_KEY
) -> bytes:
    """The retained `model` downlink payload for `manifest`, signed by `key`."""
    return encode(sign(ModelAssignment(device=device, manifest=manifest, assigned_at=NOW), key))


class ArtifactServer:
    """Serves `files[path]` over HTTP on loopback to clients with the device's Basic auth.

    `fail_next` answers the next requests with that many 503s; `requests` counts them.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        self.declared_length: int | None = None
        rig = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                rig.requests.append({"path": self.path, "auth": self.headers["Authorization"]})
                expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
                if self.headers["Authorization"] != f"Basic {expected}":
                    self._answer(401, b"unauthorized")
                elif rig.fail_next > 0:
                    rig.fail_next -= 1
                    self._answer(503, b"busy")
                elif self.path not in rig.files:
                    self._answer(404, b"not found")
                else:
                    self._answer(200, rig.files[self.path], rig.declared_length)

            def _answer(self, code: int, body: bytes, length: int | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        """`http://127.0.0.1:PORT`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self, path: str, data: bytes) -> str:
        """Serve `data` at `path`; return its URL."""
        self.files[path] = data
        return self.base + path

    def __enter__(self) -> ArtifactServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
