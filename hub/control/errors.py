"""Control's refusals, in the API's error shape."""

from __future__ import annotations

from hub.auth.errors import ApiError
from hub.errors import HubError


class PublishError(HubError):
    """The broker did not take a command (down, refused the hub's login, timed out)."""

    retriable = True


class PublishFailed(ApiError):
    """Stored and audited, but the broker did not confirm the publish (503)."""

    status = 503
    code = "publish_failed"
