"""Device logins in Mosquitto, kept by the hub through the dynamic-security plugin.

In scale mode (`[broker] kind = "external"`, `provisioning = "dynsec"`) enrollment
creates, for each device, a Mosquitto client (username = device id, the issued
password) holding one role, `outpost-device-<id>`, whose ACLs are exactly those of
the embedded broker (`hub.broker.access.may`): publish the device's own uplink
channels, subscribe to its own downlink channels, nothing else. Removing the device
deletes the client (Mosquitto disconnects it at once) and its role.

The hub talks to the plugin over MQTT: a JSON command list published to
`$CONTROL/dynamic-security/v1`, the answer read from `.../v1/response`. It logs in
as `[broker] username`, the plugin's admin client (`mosquitto_ctrl dynsec init
FILE outpost-hub`); `bootstrap` gives that client the `outpost-hub` role (publish
and subscribe under `outpost/`) once, idempotently.

Example:
    >>> [c["command"] for c in device_commands("amr-7", "pw")]
    ['createRole', 'createClient']
    >>> sorted({a["acltype"] for a in device_commands("amr-7", "pw")[0]["acls"]})
    ['publishClientSend', 'subscribeLiteral']
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiomqtt
import orjson

from protocol import DOWNLINK_CHANNELS, UPLINK_CHANNELS, Channel, topic
from protocol.transport import NO_DELAY

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
HUB_ROLE = "outpost-hub"
_ALREADY = ("already exists",)
_MISSING = ("not found",)


class ProvisioningError(Exception):
    """The broker refused or did not answer a provisioning command; the message says which."""


class Provisioner(Protocol):
    """Keeps device logins in the broker (the embedded broker needs none: it reads the DB)."""

    async def add_device(self, device_id: str, password: str) -> None:
        """Create the device's login, limited to its own topics."""
        ...

    async def remove_device(self, device_id: str) -> None:
        """Delete the device's login and disconnect it; nothing to delete is fine."""
        ...


def device_role(device_id: str) -> str:
    """The role holding one device's ACLs."""
    return f"outpost-device-{device_id}"


def device_commands(device_id: str, password: str) -> list[dict[str, Any]]:
    """The plugin commands that create `device_id`'s role and client."""
    role = device_role(device_id)
    acls = [
        {"acltype": "publishClientSend", "topic": topic(device_id, Channel(c)), "allow": True}
        for c in sorted(UPLINK_CHANNELS)
    ] + [
        {"acltype": "subscribeLiteral", "topic": topic(device_id, Channel(c)), "allow": True}
        for c in sorted(DOWNLINK_CHANNELS)
    ]
    return [
        {"command": "createRole", "rolename": role, "textname": f"Outpost device {device_id}",
         "acls": acls},
        {"command": "createClient", "username": device_id, "password": password,
         "textname": f"Outpost device {device_id}", "roles": [{"rolename": role}]},
    ]  # fmt: skip


class DynsecProvisioner:
    """`Provisioner` for Mosquitto's dynamic-security plugin (see the module docstring)."""

    def __init__(self, url: str, *, username: str, password: str, timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 1883
        self._username, self._password, self._timeout = username, password, timeout_s

    async def bootstrap(self) -> None:
        """Give the hub's own client publish and subscribe rights under `outpost/` (idempotent).

        Mosquitto disconnects every connection of a client whose roles change, so the
        role is added only when missing (and the answer to that command may be lost
        with the connection: the role is checked again instead).
        """
        acls = [
            {"acltype": kind, "topic": "outpost/#", "allow": True}
            for kind in ("publishClientSend", "publishClientReceive", "subscribePattern")
        ]
        await self.run(
            [{"command": "createRole", "rolename": HUB_ROLE, "acls": acls}], tolerate=_ALREADY
        )
        if await self._has_hub_role():
            return
        add = {"command": "addClientRole", "username": self._username, "rolename": HUB_ROLE}
        with contextlib.suppress(ProvisioningError):
            await self.run([add], tolerate=_ALREADY)
        if not await self._has_hub_role():
            raise ProvisioningError(
                f"could not give Mosquitto client {self._username!r} the {HUB_ROLE!r} role"
            )

    async def _has_hub_role(self) -> bool:
        (answer,) = await self.run([{"command": "getClient", "username": self._username}])
        roles = answer.get("data", {}).get("client", {}).get("roles", [])
        return any(r.get("rolename") == HUB_ROLE for r in roles)

    async def add_device(self, device_id: str, password: str) -> None:
        """Create the device's role and client; a leftover of an earlier try is replaced."""
        await self.remove_device(device_id)
        await self.run(device_commands(device_id, password))

    async def remove_device(self, device_id: str) -> None:
        """Delete the client (Mosquitto kicks its connection) and its role."""
        await self.run(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": device_role(device_id)},
            ],
            tolerate=_MISSING,
        )

    async def run(
        self, commands: list[dict[str, Any]], *, tolerate: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Send `commands`, return the plugin's responses; an error not in `tolerate` raises."""
        correlation = secrets.token_hex(8)
        for command in commands:
            command["correlationData"] = correlation
        try:
            async with asyncio.timeout(self._timeout):
                responses = await self._exchange(commands, correlation)
        except TimeoutError:
            raise ProvisioningError(
                f"Mosquitto at {self._host}:{self._port} did not answer the dynamic-security "
                f"command within {self._timeout:g} s (is the plugin loaded?)"
            ) from None
        except aiomqtt.MqttError as exc:
            raise ProvisioningError(
                f"cannot reach Mosquitto at {self._host}:{self._port} as {self._username!r}: {exc}"
            ) from exc
        for response in responses:
            error = str(response.get("error", ""))
            if error and not any(t in error.lower() for t in tolerate):
                raise ProvisioningError(f"Mosquitto refused {response.get('command')}: {error}")
        return responses

    async def _exchange(
        self, commands: list[dict[str, Any]], correlation: str
    ) -> list[dict[str, Any]]:
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=f"outpost-provision-{correlation}",
            timeout=self._timeout,
            socket_options=NO_DELAY,
        )
        async with client:
            await client.subscribe(RESPONSE_TOPIC, qos=1)
            await client.publish(CONTROL_TOPIC, orjson.dumps({"commands": commands}), qos=1)
            async for message in client.messages:
                body = orjson.loads(message.payload)
                responses: list[dict[str, Any]] = body.get("responses", [])
                if responses and all(r.get("correlationData") == correlation for r in responses):
                    return responses
        raise ProvisioningError("the broker closed the connection before answering")
