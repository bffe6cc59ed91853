"""Hub users, roles and API credentials.

* `principal`: `Role` (viewer < operator < admin) and `Principal` (who is calling).
* `service`: `AuthService` (login, refresh rotation, API keys, authenticate a request).
* `users`: `UserService` (create and change users; also used by the CLI).
* `tokens`: HS256 access tokens; `opaque`: API keys and refresh tokens;
  `ratelimit`: failed-login limit; `policy`: input rules.

FastAPI dependencies built on these are in `hub.api.deps`.
"""

from hub.auth.principal import Principal, Role

__all__ = ["Principal", "Role"]
