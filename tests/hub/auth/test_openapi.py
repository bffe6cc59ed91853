"""The OpenAPI document is the dashboard's contract: complete, and honest about auth."""

from __future__ import annotations

import json
import re

from tests.hub.auth.support import Hub

OPEN = {
    "/api/v1/health",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/enroll",  # the enrollment token is the credential
}


async def test_every_reference_resolves_and_every_operation_is_described(hub: Hub) -> None:
    spec = (await hub.client.get("/openapi.json")).json()
    refs = set(re.findall(r"#/components/schemas/(\w+)", json.dumps(spec)))
    assert refs <= set(spec["components"]["schemas"])
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            assert op.get("summary"), f"{method} {path}"
            assert op.get("tags"), f"{method} {path}"
            success = [code for code in op["responses"] if code.startswith("2")]
            assert success, f"{method} {path}"


async def test_protected_operations_declare_their_security_and_401(hub: Hub) -> None:
    spec = (await hub.client.get("/openapi.json")).json()
    # Devices fetch model artifacts with their broker login (HTTP Basic), not a user's.
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey", "deviceBasic"}
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if path in OPEN:
                assert "security" not in op, f"{method} {path}"
                continue
            expected = [{"bearer": []}, {"apiKey": []}]
            if path.startswith("/api/v1/models/artifacts/"):
                expected = [{"deviceBasic": []}]
            assert op["security"] == expected, f"{method} {path}"
            assert "401" in op["responses"], f"{method} {path}"
            error = op["responses"]["401"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/ErrorBody"}


async def test_login_documents_json_and_form_bodies(hub: Hub) -> None:
    spec = (await hub.client.get("/openapi.json")).json()
    body = spec["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/x-www-form-urlencoded"}
    assert body["application/json"]["schema"]["required"] == ["username", "password"]
