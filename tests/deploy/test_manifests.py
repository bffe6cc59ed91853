"""The compose file and the Kubernetes manifests, validated offline (no container engine here).

Kubernetes: every resource against the API schemas of Kubernetes 1.30 in strict mode
(an unknown or misspelt field fails), plus the references schemas cannot see (config
maps, secret keys, selectors, autoscaler targets). Compose: the compose-spec JSON
schema (`tests/deploy/compose-spec.json`, from the compose-spec project), plus its
references. Both: the hub settings they mount load, and the broker configuration they
ship is `deploy/mosquitto/production.conf` rendered.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hub.settings import HubSettings

REPO = Path(__file__).resolve().parents[2]
K8S, COMPOSE = REPO / "deploy" / "k8s", REPO / "deploy" / "compose"
K8S_VERSION = "1.30"
SECRET_ENV = {
    "database": {"url": "postgresql+asyncpg://outpost:x@postgres:5432/outpost"},
    "broker": {"password": "x"},
}


def k8s_resources(path: Path) -> list[dict[str, Any]]:
    resources = []
    for doc in yaml.safe_load_all(path.read_text()):
        resources += doc["items"] if doc["kind"] == "List" else [doc]
    return resources


def kustomized() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [r for name in kustomization["resources"] for r in k8s_resources(K8S / name)]


def test_every_manifest_is_listed_and_valid() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk
    for resource in [*kustomized(), *k8s_resources(K8S / "secret.example.yaml")]:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_a_misspelt_field_is_refused() -> None:
    """The validation can fail: strict mode refuses a field Kubernetes does not know."""
    deployment = next(r for r in kustomized() if r["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def _pod_specs(resources: list[dict[str, Any]]) -> list[tuple[dict[str, Any], set[str]]]:
    """Each pod template's spec, with the volume names it may mount (claims included)."""
    kinds = {"Deployment", "StatefulSet", "Job"}
    specs = []
    for r in resources:
        if r["kind"] in kinds:
            spec = r["spec"]["template"]["spec"]
            claims = {c["metadata"]["name"] for c in r["spec"].get("volumeClaimTemplates", [])}
            specs.append((spec, claims | {v["name"] for v in spec.get("volumes", [])}))
    return specs


def test_kubernetes_references_resolve() -> None:
    resources = kustomized()
    names = {(r["kind"], r["metadata"]["name"]) for r in resources}
    secret = k8s_resources(K8S / "secret.example.yaml")[0]
    secret_keys = set(secret["stringData"])
    external = {("ConfigMap", "outpost-broker-ca"), ("Secret", "outpost-broker-tls")}
    for spec, volumes in _pod_specs(resources):
        for container in spec.get("initContainers", []) + spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "outpost-hub"
                    assert ref["key"] in secret_keys, ref
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts <= volumes, container["name"]
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
            if "secret" in volume:
                for item in volume["secret"].get("items", []):
                    assert item["key"] in secret_keys
            for source in volume.get("projected", {}).get("sources", []):
                for kind in ("configMap", "secret"):
                    if kind in source:
                        assert (kind[0].upper() + kind[1:], source[kind]["name"]) in external
    for r in resources:
        if r["kind"] in {"Deployment", "StatefulSet"}:
            selector = r["spec"]["selector"]["matchLabels"]
            labels = r["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), r["metadata"]["name"]
        if r["kind"] == "HorizontalPodAutoscaler":
            target = r["spec"]["scaleTargetRef"]
            assert (target["kind"], target["name"]) in names


def _hub_toml_k8s() -> str:
    config = next(
        r
        for r in kustomized()
        if r["kind"] == "ConfigMap" and r["metadata"]["name"] == "outpost-hub"
    )
    return str(config["data"]["hub.toml"])


def test_the_hub_settings_they_mount_load() -> None:
    compose = tomllib.loads((COMPOSE / "hub.toml").read_text())
    k8s = tomllib.loads(_hub_toml_k8s())
    assert compose == k8s
    settings = HubSettings(**{**k8s, **{k: {**k8s.get(k, {}), **v} for k, v in SECRET_ENV.items()}})
    assert settings.broker.provisioning == "dynsec"
    assert settings.bus.kind == "kafka"
    assert settings.metrics.port == 9100


def rendered_broker_config(*, state: str, tls: str, bind: str, plugin: str) -> list[str]:
    """production.conf with its placeholders filled, without its leading comment block."""
    text = (
        (REPO / "deploy" / "mosquitto" / "production.conf")
        .read_text()
        .replace("@STATE_DIR@", state)
        .replace("@TLS_DIR@", tls)
        .replace("@INTERNAL_BIND@", bind)
        .replace("@PLUGIN@", plugin)
    )
    return _without_header(text)


def _without_header(text: str) -> list[str]:
    lines = text.splitlines()
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return lines


def test_the_broker_config_they_ship_is_production_conf() -> None:
    expected = rendered_broker_config(
        state="/mosquitto/data",
        tls="/mosquitto/config/tls",
        bind="0.0.0.0",  # noqa: S104 - the compose network / the pod, not the host
        plugin="/usr/lib/mosquitto_dynamic_security.so",
    )
    assert _without_header((COMPOSE / "mosquitto.conf").read_text()) == expected
    config = next(
        r for r in kustomized() if r["kind"] == "ConfigMap" and r["metadata"]["name"] == "mosquitto"
    )
    assert _without_header(config["data"]["mosquitto.conf"]) == expected


def test_compose_is_valid() -> None:
    schema = json.loads((REPO / "tests" / "deploy" / "compose-spec.json").read_text())
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    jsonschema.Draft201909Validator(schema).validate(compose)
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                target = COMPOSE / source
                assert target.exists() or source == "./tls", (name, source)
            else:
                assert source in compose["volumes"], (name, source)
        build = service.get("build")
        if build:
            dockerfile = (COMPOSE / build["context"] / build["dockerfile"]).resolve()
            assert dockerfile.is_file()
    assert services["hub-ingest"]["deploy"]["replicas"] == 2
    assert (COMPOSE / ".env.example").is_file()


def test_a_bad_compose_file_is_refused() -> None:
    schema = json.loads((REPO / "tests" / "deploy" / "compose-spec.json").read_text())
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    compose["services"]["hub-api"]["restart"] = ["always"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(schema).validate(compose)


def test_the_image_copies_what_exists() -> None:
    dockerfile = (REPO / "deploy" / "docker" / "hub.Dockerfile").read_text()
    sources = [
        line.split()[1]
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    built = {"dashboard/out"}  # made by `make dashboard` before `docker build`
    for source in sources:
        assert (REPO / source).exists() or source in built, source
