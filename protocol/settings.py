"""Settings files: one line per problem, naming the file, the key and what is allowed.

Both deployables (agent and hub) read TOML settings validated by pydantic; this is
the one place that turns a validation error into the message a person reads.

Example:
    >>> from pydantic import BaseModel, ConfigDict, ValidationError
    >>> from typing import Literal
    >>> class S(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     mode: Literal["a", "b"] = "a"
    >>> try:
    ...     S.model_validate({"mode": "c", "typo": 1})
    ... except ValidationError as exc:
    ...     print(describe_settings_error(exc, "hub.toml", docs="docs/x.md"))
    hub.toml: mode: Input should be 'a' or 'b' (got 'c')
    hub.toml: typo: unknown key (check the spelling against docs/x.md)
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


class EnvOverFileSettings(BaseSettings):
    """Settings read from a file (passed as keyword arguments) where environment variables win."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables first, then the file's values, then defaults."""
        return env_settings, init_settings


def describe_settings_error(exc: ValidationError, source: str, *, docs: str) -> str:
    """One line per problem: `file: key: what is wrong (got …)`."""
    lines = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            message = f"unknown key (check the spelling against {docs})"
        elif err["type"] == "missing":
            message = "required key is missing"
        else:
            message = f"{err['msg']} (got {err.get('input')!r:.60})"
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)
