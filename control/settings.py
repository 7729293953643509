"""Control service settings."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, model_validator

from shelterwatch.config import ServiceSettings

__all__ = ["ControlSettings"]


class ControlSettings(ServiceSettings):
    mode: Literal["development", "production"] = "production"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    store_url: str = "sqlite:///data/shelterwatch.db"
    # Bearer token for the API until user accounts land. Production refuses an empty one.
    api_token: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _no_default_secret(self) -> Self:
        token = self.api_token.get_secret_value()
        if self.mode == "production" and len(token) < 24:
            raise ValueError(
                "api_token must be set to a random secret of at least 24 characters in "
                "production (SHELTERWATCH_API_TOKEN); `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'` makes one"
            )
        return self
