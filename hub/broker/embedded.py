"""The embedded MQTT broker: amqtt inside the hub process, for one-machine installs.

MQTT 3.1.1 only (amqtt speaks no MQTT 5): agents of an embedded hub set
`[mqtt] protocol = "3.1.1"` (enrollment tells them). Sessions and retained
messages live in memory; a hub restart loses them, and nothing else: agents
keep every message until its watermark arrives and re-send the rest.

Logins and topics are checked by `hub.broker.access.DeviceAuthority` through two
amqtt plugins; amqtt instantiates plugins from dotted paths, so the authority
object travels in the plugin config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, BrokerError
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from hub.broker.access import DeviceAuthority
from hub.errors import HubError

logger = logging.getLogger(__name__)

_ACTIONS = {Action.PUBLISH: "publish", Action.SUBSCRIBE: "subscribe", Action.RECEIVE: "receive"}


class DeviceAuthPlugin(BaseAuthPlugin):
    """amqtt login check → `DeviceAuthority.authenticate`."""

    @dataclass
    class Config:
        """amqtt hydrates this from the plugin's config entry."""

        authority: Any = None

    async def authenticate(self, *, session: Session) -> bool | None:
        """True to admit the client, False to refuse it (CONNACK 'not authorized')."""
        authority: DeviceAuthority = self.config.authority
        return await authority.authenticate(session.username, session.password)


class DeviceTopicPlugin(BaseTopicPlugin):
    """amqtt topic check → `DeviceAuthority.permits`."""

    @dataclass
    class Config:
        """amqtt hydrates this from the plugin's config entry."""

        authority: Any = None

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        """True when the session's user may do `action` on `topic`."""
        authority: DeviceAuthority = self.config.authority
        name = _ACTIONS.get(action) if action is not None else None
        if name is None:
            return False
        username = session.username if session is not None else None
        return authority.permits(username, topic, name)  # type: ignore[arg-type]


def bind_address(url: str) -> tuple[str, int]:
    """Where the embedded broker listens, from `[broker] url`.

    Example:
        >>> bind_address("mqtt://0.0.0.0:1883"), bind_address("mqtt://127.0.0.1")
        (('0.0.0.0', 1883), ('127.0.0.1', 1883))
    """
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        raise HubError(
            f"[broker] url {url!r}: the embedded broker listens on plain mqtt://HOST:PORT; "
            "terminate TLS in front of it or use an external broker"
        )
    return parts.hostname or "127.0.0.1", parts.port or 1883


_EVERYWHERE = ("0.0.0.0", "::")  # noqa: S104 - names of "every interface", not a bind


def local_url(url: str) -> str:
    """The address the hub's own clients use to reach the embedded broker.

    Example:
        >>> local_url("mqtt://0.0.0.0:1883")
        'mqtt://127.0.0.1:1883'
    """
    host, port = bind_address(url)
    return f"mqtt://{'127.0.0.1' if host in _EVERYWHERE else host}:{port}"


def device_url(url: str) -> str:
    """The address to give a device: the listen address, or a placeholder for "everywhere".

    Example:
        >>> device_url("mqtt://0.0.0.0:1883"), device_url("mqtt://10.0.0.5:1883")
        ('mqtt://HUB-ADDRESS:1883', 'mqtt://10.0.0.5:1883')
    """
    host, port = bind_address(url)
    return f"mqtt://{'HUB-ADDRESS' if host in _EVERYWHERE else host}:{port}"


class EmbeddedBroker:
    """Start and stop an amqtt broker that admits the hub and enrolled devices only."""

    def __init__(self, url: str, authority: DeviceAuthority) -> None:
        host, port = bind_address(url)
        self.authority = authority
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            # No $SYS publisher, no packet logger: only our two checks.
            "plugins": {
                f"{__name__}.DeviceAuthPlugin": {"authority": authority},
                f"{__name__}.DeviceTopicPlugin": {"authority": authority},
            },
        }
        self._broker = Broker(config)
        self._address = f"{host}:{port}"

    async def start(self) -> None:
        """Listen; raise `HubError` when the address cannot be bound."""
        # amqtt logs every connection and state transition at INFO; keep warnings only.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            await self._broker.start()
        except (AMQTTError, BrokerError, OSError) as exc:
            raise HubError(
                f"the embedded MQTT broker cannot listen on {self._address}: {exc}; "
                "change [broker] url or stop what holds the port"
            ) from exc
        logger.info("embedded MQTT broker listening on %s", self._address)

    async def stop(self) -> None:
        """Disconnect every client and close the listener."""
        try:
            await self._broker.shutdown()
        except AMQTTError as exc:  # already stopping
            logger.debug("embedded broker shutdown: %s", exc)

    async def probe(self) -> str:
        """ "ok" while the broker accepts connections (for the health endpoint)."""
        if self._broker.transitions.state != "started":
            raise HubError(f"embedded broker is {self._broker.transitions.state}")
        return "ok"

    def clients(self) -> int:
        """Sessions currently known to the broker (connected or persistent)."""
        return len(self._broker.sessions)
