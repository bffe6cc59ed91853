"""The model registry: pushed ONNX versions, signed manifests, artifacts, canary rollouts.

`onnx_check` refuses an upload that is not a usable detector; `store.artifacts` keeps
artifacts on local disk by sha256; `rollout` is the pure state machine; `service`
ties them to the database, the audit log and the retained `model` downlink.
"""
